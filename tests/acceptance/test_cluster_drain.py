"""`jobdeck drain` with two real engines on PostgreSQL: the runs in flight finish on the
draining node, no new run starts there, leadership and the workers move, the node
reports safe to stop; `jobdeck undrain` brings it back. And the runs of a killed node:
adopted when it comes back, recorded lost when it does not."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.acceptance.cluster import LEASE, Cluster, alive, living, write_programs
from tests.acceptance.server import wait_for

pytestmark = pytest.mark.postgres

SLOW = """\
import os, sys, time
time.sleep(2.5)
with open(os.path.join(sys.argv[1], "slow.done"), "a") as out:
    out.write(os.environ["JOBDECK_RUN_ID"] + "\\n")
"""


def catalog(workdir: Path) -> str:
    py = sys.executable
    return f"""\
version: 1
project: ha
schedules:
  slow:
    rate: 2s
    command: ["{py}", "{workdir}/slow.py", "{workdir}"]
    overlap: allow
    catchup: latest
workers:
  pair:
    command: ["{py}", "{workdir}/pair.py", "{workdir}"]
    replicas: 2
    stop_grace: 1s
"""


@pytest.fixture
def cluster(tmp_path: Path, pg_url: str) -> Iterator[Cluster]:
    write_programs(tmp_path)
    (tmp_path / "slow.py").write_text(SLOW)
    (tmp_path / "jobdeck.yaml").write_text(catalog(tmp_path))
    made = Cluster(tmp_path, pg_url, 2, ())
    applied = made.cli("apply", "--yes")
    assert applied.returncode == 0, applied.stderr
    yield made
    made.close()


def test_a_drained_leader_finishes_its_runs_hands_over_and_reports_safe(
    cluster: Cluster,
) -> None:
    for server in cluster.servers:
        server.start()
    wait_for(lambda: cluster.leader()[0], timeout=10, what="a leader")
    leader, token = cluster.leader()
    assert leader is not None
    other = next(s for s in cluster.servers if s is not leader)
    mine = cluster.node_id(leader)

    def running_on_leader() -> list[dict[str, object]]:
        return [
            r
            for r in cluster.runs("slow")
            if r["status"] == "running" and str(r["host"]).endswith(mine)
        ]

    in_flight = wait_for(running_on_leader, timeout=15, what="a run on the leader")
    wait_for(lambda: len(living(cluster.workdir, "pair")) == 2, timeout=15, what="the pair")
    asked_at = datetime.now(UTC)
    drained = cluster.cli("drain", mine, "--timeout", "1m", "--wait")
    assert drained.returncode == 0, drained.stderr
    assert f"node {cluster.node_id(leader)}" in drained.stdout or "drained" in drained.stdout
    assert "drained: safe to stop" in drained.stdout
    # The runs it had finished there, not cancelled.
    ended = {r["id"]: r for r in cluster.runs("slow")}
    for run in in_flight:
        assert ended[run["id"]]["status"] == "succeeded", ended[run["id"]]
    # Leadership moved; the schedule goes on on the other node, nothing new on this one.
    new_leader, new_token = cluster.leader()
    assert new_leader is other
    assert new_token > token
    theirs = cluster.node_id(other)
    wait_for(
        lambda: [r for r in cluster.runs("slow") if str(r["host"]).endswith(theirs)],
        timeout=10,
        what="a run on the new leader",
    )
    # The node sees the drain at its next heartbeat (a third of the lease after the drain
    # was recorded, which is later than it was asked for by the command's start-up) and
    # fires nothing from then on (a second of slack for a loaded machine).
    recorded = min(
        datetime.fromisoformat(e["at"])
        for e in json.loads(cluster.cli("audit", "--json").stdout)
        if e["action"] == "drain" and mine in (e["target"] or "")
    )
    assert recorded >= asked_at - timedelta(seconds=1)
    seen = recorded + timedelta(seconds=LEASE / 3 + 1.0)
    with_host = [r for r in cluster.runs("slow") if str(r["host"]).endswith(mine)]
    started_late = [r for r in with_host if r["created_at"] > seen]
    assert not started_late, (seen, started_late)
    # Its workers moved too.
    wait_for(lambda: len(living(cluster.workdir, "pair")) == 2, timeout=15, what="the pair")
    shown = json.loads(cluster.cli("nodes", "--json").stdout)["nodes"]
    roles = {n["id"]: n["role"] for n in shown}
    assert roles[next(n["id"] for n in shown if n["id"].endswith(mine))] == "drained"
    audit = cluster.cli("audit", "--json")
    entries = json.loads(audit.stdout)
    assert any(e["action"] == "drain" and mine in (e["target"] or "") for e in entries)
    # Undrained, it takes part again as a standby.
    back = cluster.cli("undrain", mine)
    assert back.returncode == 0, back.stderr

    def role() -> str:
        listed = json.loads(cluster.cli("nodes", "--json").stdout)["nodes"]
        return str(next(n["role"] for n in listed if n["id"].endswith(mine)))

    wait_for(lambda: role() == "standby", timeout=10, what="the node back as a standby")


def _running_on(cluster: Cluster, node: str) -> list[dict[str, object]]:
    return [
        r
        for r in cluster.runs("slow")
        if r["status"] == "running" and str(r["host"]).endswith(node)
    ]


def test_the_runs_of_a_killed_node_are_adopted_when_it_comes_back(cluster: Cluster) -> None:
    for server in cluster.servers:
        server.start()
    wait_for(lambda: cluster.leader()[0], timeout=10, what="a leader")
    leader, _ = cluster.leader()
    assert leader is not None
    mine = cluster.node_id(leader)
    (run, *_) = wait_for(lambda: _running_on(cluster, mine), timeout=15, what="a run")
    leader.kill9()
    leader.start()  # back within its lost deadline: it adopts what it left running
    done = wait_for(
        lambda: next(
            (r for r in cluster.runs("slow") if r["id"] == run["id"] and r["status"] != "running"),
            None,
        ),
        timeout=20,
        what="the adopted run's end",
    )
    assert done["status"] == "succeeded", done


def test_the_runs_of_a_node_that_does_not_come_back_are_recorded_lost(cluster: Cluster) -> None:
    for server in cluster.servers:
        server.start()
    wait_for(lambda: cluster.leader()[0], timeout=10, what="a leader")
    leader, _ = cluster.leader()
    assert leader is not None
    mine = cluster.node_id(leader)
    (run, *_) = wait_for(lambda: _running_on(cluster, mine), timeout=15, what="a run")
    leader.kill9()
    killed = time.monotonic()
    lost = wait_for(
        lambda: next(
            (r for r in cluster.runs("slow") if r["id"] == run["id"] and r["status"] == "lost"),
            None,
        ),
        timeout=2 * LEASE + LEASE + 5,
        what="the dead node's run recorded lost",
    )
    assert lost["reason"] == "node_lost"
    # Not before the deadline (twice the lease after its last heartbeat).
    assert time.monotonic() - killed >= 2 * LEASE - LEASE / 3 - 0.5


BEAT = """\
import os, sys, time
here = sys.argv[1]
with open(os.path.join(here, "beats"), "a", buffering=1) as out:
    while True:
        out.write(f"{os.getpid()} {time.time():.3f}\\n")
        time.sleep(0.1)
"""


def handover_catalog(workdir: Path) -> str:
    py = sys.executable
    return f"""\
version: 1
project: ha
workers:
  beat:
    command: ["{py}", "{workdir}/beat.py", "{workdir}"]
    replicas: 2
    stop_grace: 1s
  solo:
    command: ["{py}", "{workdir}/solo.py", "{workdir}"]
    singleton: true
    stop_grace: 1s
"""


def _beats(workdir: Path) -> dict[int, tuple[float, float]]:
    """Each process's first and last heartbeat."""
    seen: dict[int, tuple[float, float]] = {}
    path = workdir / "beats"
    text = path.read_text() if path.exists() else ""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 2:
            continue  # a line being written
        pid, at = int(parts[0]), float(parts[1])
        first, last = seen.get(pid, (at, at))
        seen[pid] = (min(first, at), max(last, at))
    return seen


def test_a_drain_starts_the_new_replicas_before_the_old_ones_stop_and_a_singleton_never_twice(
    tmp_path: Path, pg_url: str
) -> None:
    write_programs(tmp_path)
    (tmp_path / "beat.py").write_text(BEAT)
    (tmp_path / "jobdeck.yaml").write_text(handover_catalog(tmp_path))
    cluster = Cluster(tmp_path, pg_url, 2, ())
    try:
        applied = cluster.cli("apply", "--yes")
        assert applied.returncode == 0, applied.stderr
        for server in cluster.servers:
            server.start()
        wait_for(lambda: cluster.leader()[0], timeout=10, what="a leader")
        leader, _ = cluster.leader()
        assert leader is not None
        wait_for(lambda: len(living(tmp_path, "solo")) == 1, timeout=15, what="the singleton")
        wait_for(lambda: len(_beats(tmp_path)) == 2, timeout=15, what="two replicas")
        old = set(_beats(tmp_path))
        asked = time.time()
        drained = cluster.cli("drain", cluster.node_id(leader), "--timeout", "1m", "--wait")
        assert drained.returncode == 0, drained.stderr
        assert "drained: safe to stop" in drained.stdout
        # The new leader's replicas replaced the old ones, which are gone.

        def moved() -> bool:
            beats, now = _beats(tmp_path), time.time()
            return len(set(beats) - old) == 2 and all(now - beats[p][1] > 0.5 for p in old)

        wait_for(moved, timeout=15, what="two new replicas, the old ones gone")
        wait_for(lambda: len(living(tmp_path, "solo")) == 1, timeout=15, what="the singleton")
        time.sleep(0.5)  # a few more heartbeats of the new replicas to sample
        beats = _beats(tmp_path)
        new = set(beats) - old
        assert len(new) == 2, beats
        ended = min(beats[pid][1] for pid in new)  # the new ones beat on after it
        for pid in old:
            assert ended - beats[pid][1] > 0.3, f"old replica {pid} still beats"
        # At every moment from before the drain to then, at least two replicas beat
        # (sampled every 50 ms; a process is alive from its first line to its last).
        moment = asked - 1.0
        short: list[tuple[float, int]] = []
        while moment <= ended:
            count = sum(1 for first, last in beats.values() if first <= moment <= last)
            if count < 2:
                short.append((round(moment - asked, 2), count))
            moment += 0.05
        assert not short, (short, beats)
        # Each old replica stopped after a new one had started.
        first_new = min(beats[pid][0] for pid in new)
        assert all(beats[pid][1] > first_new for pid in old), beats
        # The singleton moved stop-then-start: never two holding its lock.
        assert not (tmp_path / "conflicts").exists(), (tmp_path / "conflicts").read_text()
        assert len((tmp_path / "solo.pids").read_text().split()) == 2
    finally:
        cluster.close()
        for pid in _beats(tmp_path):
            if alive(pid, "beat.py"):
                os.kill(pid, 9)
