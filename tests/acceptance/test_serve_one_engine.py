"""An SQLite store takes one engine, and a state dir belongs to one engine: a second
`jobdeck serve` refuses to start, names the running one's pid and says how to run several
engines; the refusal changes nothing, and a killed engine's lock never blocks a restart."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.acceptance.server import Server, free_port, wait_for
from tests.acceptance.test_serve import CATALOG, runs_in_store, start_run, write_catalog


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.close()


def second_serve(
    server: Server, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """A second `jobdeck serve` with the first one's environment, on other ports."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "jobdeck",
            "serve",
            "--isolation",
            "rlimit",
            "--port",
            str(free_port()),
            "--sqs-port",
            "0",
            *extra,
        ],
        cwd=server.workdir,
        env={**server.environment(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_second_serve_on_one_sqlite_state_dir_refuses_and_names_the_first(
    tmp_path: Path, servers: list[Server]
) -> None:
    write_catalog(tmp_path, CATALOG.format(sleep=0))
    first = Server(tmp_path, args=("--isolation", "rlimit", "--apply"))
    servers.append(first)
    first.start()
    assert first.process is not None
    run_id = start_run(first, "quick")

    second = second_serve(first, "--apply")

    assert second.returncode == 1, second.stderr
    message = second.stderr.strip()
    assert message.startswith("error: another jobdeck serve (pid "), message
    assert f"(pid {first.process.pid})" in message
    assert "SQLite store" in message
    assert "PostgreSQL" in message
    assert "Traceback" not in second.stderr + second.stdout
    # The first engine goes on, and the refused one recorded nothing.
    wait_for(lambda: first.get(f"/api/v1/runs/{run_id}")["status"] == "succeeded")
    assert [row[1] for row in runs_in_store(first.state_dir)] == ["quick"]
    assert [r["number"] for r in first.get("/api/v1/revisions")["items"]] == [1]


def test_another_state_dir_on_the_same_sqlite_file_is_refused_too(
    tmp_path: Path, servers: list[Server]
) -> None:
    write_catalog(tmp_path, CATALOG.format(sleep=0))
    database = tmp_path / "shared.db"
    first = Server(
        tmp_path,
        state_dir=tmp_path / "a",
        store_url=f"sqlite:///{database}",
        args=("--isolation", "rlimit"),
    )
    servers.append(first)
    first.start()
    assert first.process is not None

    second = second_serve(first, env={"JOBDECK_STATE_DIR": str(tmp_path / "b")})

    assert second.returncode == 1, second.stderr
    assert f"(pid {first.process.pid})" in second.stderr
    assert str(database) in second.stderr


def test_a_killed_engine_never_blocks_the_next_one(tmp_path: Path, servers: list[Server]) -> None:
    write_catalog(tmp_path, CATALOG.format(sleep=0))
    first = Server(tmp_path, args=("--isolation", "rlimit", "--apply"))
    servers.append(first)
    first.start()
    first.kill9()

    again = Server(tmp_path, args=("--isolation", "rlimit"))
    servers.append(again)
    again.start()
    assert again.process is not None
    lock = (tmp_path / ".jobdeck" / "engine.lock").read_text().strip()
    assert lock == str(again.process.pid)
