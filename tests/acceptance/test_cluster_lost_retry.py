"""Two real `jobdeck serve` on one PostgreSQL store: the runs of a leader that died with
its runs (kill -9 of the engine, its run's shim and program) are recorded lost by the
new leader, which retries the one whose schedule says `retry: {lost: 1}`, once."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobdeck.execute.launch import shim_info
from jobdeck.store import open_store
from tests.acceptance.cluster import Cluster
from tests.acceptance.server import wait_for

pytestmark = pytest.mark.postgres

# Writes its pid to `<run id>.pid`, then waits.
HOLD = """\
import os, sys, time
with open(os.path.join(sys.argv[1], os.environ["JOBDECK_RUN_ID"] + ".pid"), "w") as out:
    out.write(str(os.getpid()))
while True:
    time.sleep(0.1)
"""


def catalog(workdir: Path) -> str:
    py = sys.executable
    return f"""\
version: 1
project: lostretry
schedules:
  again:
    cron: "0 0 1 1 *"
    command: ["{py}", "{workdir}/hold.py", "{workdir}"]
    retry: {{lost: 1, backoff: 1s}}
  once:
    cron: "0 0 1 1 *"
    command: ["{py}", "{workdir}/hold.py", "{workdir}"]
"""


@pytest.fixture
def cluster(tmp_path: Path, pg_url: str) -> Iterator[Cluster]:
    (tmp_path / "hold.py").write_text(HOLD)
    (tmp_path / "jobdeck.yaml").write_text(catalog(tmp_path))
    made = Cluster(tmp_path, pg_url, 2, ("--lost-after", "3s"))
    applied = made.cli("apply", "--yes")
    assert applied.returncode == 0, applied.stderr
    yield made
    made.close()
    for pid_file in tmp_path.glob("*.pid"):  # the programs outlive their engines
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def runs_of(cluster: Cluster, job: str) -> list[Any]:
    with open_store(cluster.store_url) as store:
        return sorted(store.runs.runs(job=job, limit=100), key=lambda r: r.id)


def test_a_lost_run_is_retried_once_by_the_new_leader_where_the_policy_says_so(
    cluster: Cluster,
) -> None:
    leader, standby = cluster.servers
    leader.start()
    wait_for(lambda: cluster.leader()[0] is leader, timeout=10, what="the first node leads")
    standby.start()
    ids = {}
    for job in ("again", "once"):
        started = cluster.cli("run", job)  # through the leader's API: it runs there
        assert started.returncode == 0, started.stderr
        ids[job] = int(started.stdout.split()[0])
    wait_for(
        lambda: all(r.status == "running" for job in ids for r in runs_of(cluster, job)),
        what="both runs running",
    )
    infos = []
    for job in ids:
        run_dir = Path(str(runs_of(cluster, job)[0].detail["run_dir"]))
        info = shim_info(run_dir)
        assert info is not None
        assert info.child_pid is not None
        infos.append(info)
    # The leader's machine goes down: its engine, and its runs' shims and programs.
    leader.kill9()
    for info in infos:
        os.kill(info.shim_pid, signal.SIGKILL)
        os.kill(info.child_pid or 0, signal.SIGKILL)
    killed = time.monotonic()

    def retried() -> list[Any]:
        found = runs_of(cluster, "again")
        return found if len(found) == 2 and found[1].status == "running" else []

    first, retry = wait_for(retried, timeout=30, what="the lost run retried on the new leader")
    assert (first.id, first.status, first.reason) == (ids["again"], "lost", "node_lost")
    assert (retry.trigger, retry.attempt, retry.retry_of) == ("retry", 2, first.id)
    assert retry.host.endswith(cluster.node_id(standby))
    assert retry.plan.retries is not None
    assert retry.plan.retries.lost == 1
    assert (Path(cluster.workdir) / f"{retry.id}.pid").exists(), "the retry's program runs"
    assert time.monotonic() - killed < 30

    (once,) = runs_of(cluster, "once")  # retry.lost is 0 by default: not retried
    assert (once.status, once.reason) == ("lost", "node_lost")
    # Once: the sweeps that follow retry nothing more.
    time.sleep(3)
    assert [r.id for r in runs_of(cluster, "again")] == [first.id, retry.id]
    assert [r.id for r in runs_of(cluster, "once")] == [once.id]
