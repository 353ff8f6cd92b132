"""`jobdeck drain` of the one engine on SQLite: its workers stop (a singleton once, not
restarted while it stops), it reports safe to stop, and `undrain` starts them again."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.acceptance.cluster import catalog, living, write_programs
from tests.acceptance.server import Server, wait_for
from tests.acceptance.test_serve import cli


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    write_programs(tmp_path)
    (tmp_path / "jobdeck.yaml").write_text(catalog(tmp_path))
    made = Server(tmp_path, args=("--isolation", "rlimit"))
    yield made
    made.close()
    for name in ("solo", "pair"):
        for pid in living(tmp_path, name):
            os.kill(pid, 9)


def test_a_drained_single_engine_stops_its_workers_once_and_undrain_starts_them(
    server: Server, tmp_path: Path
) -> None:
    assert cli(server, "apply", "--yes").returncode == 0
    server.start()
    wait_for(lambda: len(living(tmp_path, "solo")) == 1, timeout=15, what="the singleton")
    wait_for(lambda: len(living(tmp_path, "pair")) == 2, timeout=15, what="the pair")
    begun = time.monotonic()
    drained = cli(server, "drain", "--timeout", "1m", "--wait")
    assert drained.returncode == 0, drained.stderr
    assert "drained: safe to stop" in drained.stdout
    assert time.monotonic() - begun < 20  # not held up by a singleton started again
    assert living(tmp_path, "solo") == []
    assert living(tmp_path, "pair") == []
    # The singleton was stopped, not restarted while the drain waited for it.
    assert len((tmp_path / "solo.pids").read_text().split()) == 1
    assert cli(server, "undrain").returncode == 0
    wait_for(lambda: len(living(tmp_path, "solo")) == 1, timeout=15, what="the singleton back")
    wait_for(lambda: len(living(tmp_path, "pair")) == 2, timeout=15, what="the pair back")
