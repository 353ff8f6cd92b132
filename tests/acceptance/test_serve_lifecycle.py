"""`jobdeck serve` starts and stops cleanly: a busy port is the first and only thing it
says, it tells what is on and off, a restart leaves no failed worker run (its workers
stop before their SQS endpoint does), and no warm launcher outlives it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.acceptance.server import Server, wait_for
from tests.acceptance.test_serve import cli, runs_in_store, write_catalog

# A queue worker as a team writes one: boto3 long polls on the endpoint it is given; a
# connection error (the endpoint gone) fails it, as botocore's would in production.
WORKER = """\
import os, sys, boto3
from botocore.exceptions import EndpointConnectionError
sqs = boto3.client("sqs")
print("polling", flush=True)
while True:
    try:
        sqs.receive_message(QueueUrl=os.environ["JOBDECK_QUEUE_URL"], WaitTimeSeconds=1)
    except EndpointConnectionError as exc:
        print("lost the endpoint:", exc, flush=True)
        sys.exit(1)
"""

CATALOG = """\
version: 1
project: lifecycle
pools:
  tools: {{memory: 256MiB, warm: true}}
queues:
  feed-index: {{}}
workers:
  indexer:
    command: ["{python}", "{worker}"]
    queue: feed-index
    replicas: 2
    stop_grace: 5s
schedules:
  quick:
    cron: "0 0 1 1 *"
    pool: tools
    command: ["python3", "-c", "print('warm ran')"]
"""


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        try:
            server.close()
        except subprocess.TimeoutExpired:
            server.kill9()  # leave nothing behind, even when a test failed
            raise


def prepare(tmp_path: Path, servers: list[Server]) -> Server:
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    write_catalog(tmp_path, CATALOG.format(python=sys.executable, worker=worker))
    server = Server(tmp_path, args=("--isolation", "rlimit"), sqs=True)
    servers.append(server)
    assert cli(server, "apply", "--yes").returncode == 0
    return server


def worker_runs(server: Server) -> list[tuple[int, str, str | None]]:
    return [
        (run_id, status, reason)
        for run_id, job, status, reason in runs_in_store(server.state_dir)
        if job == "indexer"
    ]


def running_workers(server: Server) -> int:
    return sum(1 for _, status, _ in worker_runs(server) if status == "running")


def launchers() -> set[int]:
    """Live warm launcher processes of this machine (by their command line)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"jobdeck.execute.warm" in argv:
            found.add(int(entry.name))
    return found


def stopped(server: Server) -> int:
    """SIGTERM, and the exit status; a server that does not stop fails with its log."""
    assert server.process is not None
    process = server.process
    try:
        return server.stop(signal.SIGTERM, timeout=60)
    except subprocess.TimeoutExpired:
        server.process = process
        server.kill9()
        raise AssertionError(f"serve did not stop: {server.output()[-4000:]}") from None


def test_a_busy_port_is_reported_first_in_one_line(tmp_path: Path, servers: list[Server]) -> None:
    server = prepare(tmp_path, servers)
    catalog = tmp_path / "jobdeck.yaml"
    catalog.write_text(catalog.read_text() + '  another:\n    rate: 1h\n    command: ["true"]\n')
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", server.port))
        taken.listen()
        done = subprocess.run(
            [sys.executable, "-m", "jobdeck", "serve", "--apply", "--port", str(server.port)],
            cwd=tmp_path,
            env=server.environment(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: cannot listen on 127.0.0.1:{server.port}: ")
    assert "--port" in lines[0]
    assert worker_runs(server) == []  # nothing was started
    assert len(json.loads(cli(server, "revisions", "--json").stdout)) == 1  # nor applied


def test_serve_says_what_is_on_and_off(tmp_path: Path, servers: list[Server]) -> None:
    server = prepare(tmp_path, servers)
    server.env = {"SLACK_BOT_TOKEN": ""}
    server.start()
    said = server.output()
    assert "(TLS off)" in said
    assert f"SQS endpoint: on at {server.sqs_url}" in said
    assert "Slack bot: off (SLACK_BOT_TOKEN is not set)" in said
    assert "isolation: rlimit (asked: rlimit)" in said
    assert "store: sqlite" in said
    # Said before anything is adopted or started.
    assert said.index("Slack bot:") < said.index("running revision")


def test_a_restart_leaves_no_failed_worker_runs_and_no_launcher(
    tmp_path: Path, servers: list[Server]
) -> None:
    before = launchers()
    server = prepare(tmp_path, servers)
    server.start()
    wait_for(lambda: running_workers(server) == 2, what="two workers polling")
    done = cli(server, "run", "quick", "--wait")
    assert done.returncode == 0, done.stderr
    assert "warm ran" in done.stdout
    assert launchers() - before, "the warm pool's launcher runs"

    assert stopped(server) == 0
    ended = worker_runs(server)
    assert [(status, reason) for _, status, reason in ended] == [("cancelled", "shutdown")] * 2
    assert launchers() - before == set()  # no launcher left with parent 1

    server.start()
    wait_for(lambda: running_workers(server) == 2, what="two workers again")
    assert stopped(server) == 0
    statuses = {(status, reason) for _, status, reason in worker_runs(server)}
    assert statuses == {("cancelled", "shutdown")}
    assert "EndpointConnectionError" not in server.output()
    assert "lost the endpoint" not in "".join(
        (path / "log").read_text() for path in (server.state_dir / "runs").iterdir()
    )
    assert os.path.isdir(server.state_dir)


def test_a_relative_workdir_resolves_against_the_catalog_folder_not_the_servers(
    tmp_path: Path, servers: list[Server]
) -> None:
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "jobdeck.yaml").write_text(
        "version: 1\nproject: where\nschedules:\n  where:\n"
        '    cron: "0 0 1 1 *"\n    workdir: data\n'
        '    command: ["python3", "-c", "import os; print(os.getcwd())"]\n'
    )
    server = Server(tmp_path, state_dir=tmp_path / "state", args=("--isolation", "rlimit"))
    servers.append(server)
    applied = subprocess.run(
        [sys.executable, "-m", "jobdeck", "apply", "--yes", "-f", "jobdeck.yaml"],
        cwd=project,
        env=server.environment(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert applied.returncode == 0, applied.stderr
    server.start()  # from tmp_path, not from the project
    done = cli(server, "run", "where", "--wait")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1] == str((project / "data").resolve())
