"""`jobdeck import crontab --monitor` for real: the monitors it prints are applied to a
real `jobdeck serve`, and a rewritten crontab line run under /bin/sh (as cron runs it)
pings them, with the job's output and exit status unchanged; against no server, or a
server that never answers, the job still runs and ends as it would, within seconds."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from jobdeck.catalog.crontab_parse import split_percent
from tests.acceptance.server import Server, wait_for
from tests.acceptance.test_serve import cli, make_server, servers

__all__ = ["servers"]

KEY = "crontab-monitor-key-0123456789"
CRONTAB = """\
# the legacy box
0 3 * * * echo out; echo "100\\% err" >&2; exit 3
*/5 * * * * true # quick
"""


def import_monitored(server: Server, tmp_path: Path, url: str) -> tuple[str, list[str]]:
    (tmp_path / "legacy.crontab").write_text(CRONTAB)
    done = cli(
        server, "import", "crontab", "legacy.crontab", "--monitor", "--url", url, "--project", "box"
    )
    assert done.returncode == 0, done.stderr
    (tmp_path / "jobdeck.yaml").write_text(done.stdout)
    lines = (tmp_path / "legacy.crontab.monitored").read_text().splitlines()
    assert (tmp_path / "legacy.crontab.monitored").stat().st_mode & 0o777 == 0o600
    return done.stdout, lines


def run_as_cron(line: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """The command part of a crontab line, through cron's % rule, under /bin/sh."""
    command, stdin = split_percent(line.split(" ", 5)[5])
    assert stdin is None
    began = time.monotonic()
    done = subprocess.run(
        ["/bin/sh", "-c", command], capture_output=True, text=True, timeout=60, check=False
    )
    return done, time.monotonic() - began


def test_a_rewritten_line_pings_its_monitor_and_keeps_the_jobs_output_and_status(
    tmp_path: Path, servers: list[Server]
) -> None:
    server = make_server(tmp_path, servers, env={"JOBDECK_PING_KEY": KEY})
    yaml, lines = import_monitored(server, tmp_path, server.url)
    assert "monitors:" in yaml
    assert 'shell: "echo out; echo \\"100% err\\" >&2; exit 3"' in yaml
    assert lines[0] == "# the legacy box"
    assert lines[1].startswith("0 3 * * * curl ")
    assert cli(server, "apply", "--yes").returncode == 0
    server.start()

    done, _ = run_as_cron(lines[1])
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "100% err\n")
    quick, _ = run_as_cron(lines[2])
    assert (quick.returncode, quick.stdout, quick.stderr) == (0, "", "")

    def monitor_runs() -> list[dict[str, object]]:
        found: list[dict[str, object]] = server.get("/api/v1/runs?kind=monitor")["items"]
        return found if len(found) == 2 else []

    runs = {r["job"]: r for r in wait_for(monitor_runs, what="both monitors' runs")}
    assert set(runs) == {"exit", "true"}  # named as the importer names schedules
    assert (runs["exit"]["status"], runs["exit"]["exit_code"]) == ("failed", 3)
    assert (runs["true"]["status"], runs["true"]["exit_code"]) == ("succeeded", 0)
    assert runs["exit"]["started_at"] is not None


def test_with_no_server_or_a_silent_one_the_job_runs_and_ends_as_it_would(
    tmp_path: Path, servers: list[Server]
) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts into its backlog, never answers
    try:
        for port, within in ((closed.getsockname()[1], 5.0), (silent.getsockname()[1], 20.0)):
            server = Server(tmp_path, env={"JOBDECK_PING_KEY": KEY})
            _, lines = import_monitored(server, tmp_path, f"http://127.0.0.1:{port}")
            done, took = run_as_cron(lines[1])
            assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "100% err\n")
            assert took < within
    finally:
        closed.close()
        silent.close()
