"""Three real `jobdeck serve` on one PostgreSQL store: one leader, fenced singletons,
cluster-wide replicas, failover within the lease and 5 s, every slot recorded once."""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from itertools import pairwise
from pathlib import Path

import httpx
import pytest

from tests.acceptance.cluster import LEASE, Cluster, living, write_programs
from tests.acceptance.cluster import catalog as cluster_catalog
from tests.acceptance.server import wait_for

pytestmark = pytest.mark.postgres

KILLS = 5


@pytest.fixture
def cluster(tmp_path: Path, pg_url: str) -> Iterator[Cluster]:
    write_programs(tmp_path)
    (tmp_path / "jobdeck.yaml").write_text(cluster_catalog(tmp_path))
    made = Cluster(tmp_path, pg_url, 3, ())
    applied = made.cli("apply", "--yes")
    assert applied.returncode == 0, applied.stderr
    yield made
    made.close()


def settled(cluster: Cluster) -> bool:
    return len(living(cluster.workdir, "pair")) == 2 and len(living(cluster.workdir, "solo")) == 1


def test_kill_9_of_the_leader_five_times(cluster: Cluster) -> None:
    for server in cluster.servers:
        server.start()
    wait_for(lambda: cluster.leader()[0], timeout=10, what="a leader")
    wait_for(lambda: settled(cluster), timeout=20, what="the workers at their replicas")
    failovers: list[float] = []
    for _ in range(KILLS):
        old, token = cluster.leader()
        assert old is not None
        time.sleep(1.0)  # a slot or so under this leader
        old.kill9()
        killed = time.monotonic()

        def new_leader(token: int = token) -> bool:
            server, now_token = cluster.leader()
            return server is not None and now_token > token

        wait_for(new_leader, timeout=LEASE + 5, interval=0.05, what="a new leader")
        failovers.append(time.monotonic() - killed)
        # Never more than one singleton, never more than two of the pair, meanwhile.
        while time.monotonic() - killed < 20 and not settled(cluster):
            assert len(living(cluster.workdir, "solo")) <= 1
            assert len(living(cluster.workdir, "pair")) <= 2
            time.sleep(0.05)
        assert settled(cluster), (
            f"replicas not back within 20 s: solo {living(cluster.workdir, 'solo')}, "
            f"pair {living(cluster.workdir, 'pair')}"
        )
        old.start()  # it comes back as a standby
    assert max(failovers) <= LEASE + 5, failovers
    time.sleep(LEASE * 3)  # the last node's runs adopted or lost, the last slots fired
    conflicts = cluster.workdir / "conflicts"
    assert not conflicts.exists(), conflicts.read_text()
    # Every slot ran at most once...
    ticks = Counter((cluster.workdir / "ticks").read_text().split())
    assert ticks, "no slot ran"
    assert max(ticks.values()) == 1, [slot for slot, n in ticks.items() if n > 1]
    # ... and every slot from the first to the last has exactly one record.
    runs = [r for r in cluster.runs("tick") if r["scheduled_for"] is not None]
    slots = Counter(r["scheduled_for"] for r in runs)
    assert max(slots.values()) == 1, [s for s, n in slots.items() if n > 1]
    ordered = sorted(slots)
    gaps = [(a, b) for a, b in pairwise(ordered) if b - a != timedelta(seconds=2)]
    assert not gaps, gaps
    assert len(ordered) >= 10


def test_a_paused_leader_that_resumes_after_its_lease_starts_nothing(cluster: Cluster) -> None:
    for server in cluster.servers[:2]:
        server.start()
    wait_for(lambda: cluster.leader()[0], timeout=10, what="a leader")
    wait_for(lambda: settled(cluster), timeout=20, what="the workers at their replicas")
    old, token = cluster.leader()
    assert old is not None
    assert old.process is not None
    paused_workers = set(living(cluster.workdir, "pair")) | set(living(cluster.workdir, "solo"))
    old.process.send_signal(signal.SIGSTOP)
    try:
        wait_for(lambda: cluster.leader()[1] > token, timeout=LEASE + 5, what="a new leader")
        # The old leader's workers stopped by their fence, before the new one started.
        wait_for(
            lambda: (
                not (set(living(cluster.workdir, "pair")) & paused_workers)
                and not (set(living(cluster.workdir, "solo")) & paused_workers)
            ),
            timeout=LEASE + 2,
            what="the paused leader's workers to stop",
        )
        wait_for(lambda: settled(cluster), timeout=20, what="replicas on the new leader")
    finally:
        old.process.send_signal(signal.SIGCONT)
    before_runs = {r["id"] for r in cluster.runs("tick")}
    before_pids = set(living(cluster.workdir, "pair")) | set(living(cluster.workdir, "solo"))
    time.sleep(LEASE * 2)  # the old leader runs again: it must start nothing
    fired = [r for r in cluster.runs("tick") if r["id"] not in before_runs]
    assert fired, "the new leader fires the schedule"
    assert not [r for r in fired if r["host"].endswith(cluster.node_id(old))], fired
    after_pids = set(living(cluster.workdir, "pair")) | set(living(cluster.workdir, "solo"))
    assert after_pids == before_pids
    assert not (cluster.workdir / "conflicts").exists()
    assert "no longer leads" in old.output() or "could not renew" in old.output()


def test_nodes_shows_the_leader_the_standby_and_a_lost_node(cluster: Cluster) -> None:
    first, second = cluster.servers[:2]
    for server in (first, second):
        server.start()
    wait_for(lambda: cluster.leader()[0], timeout=10, what="a leader")
    leader, _ = cluster.leader()
    assert leader is not None
    standby = second if leader is first else first

    def roles() -> dict[str, str]:
        shown = cluster.cli("nodes", "--json")
        assert shown.returncode == 0, shown.stderr
        return {n["id"].rsplit(":", 1)[1]: n["role"] for n in json.loads(shown.stdout)["nodes"]}

    assert roles() == {cluster.node_id(leader): "leader", cluster.node_id(standby): "standby"}
    table = cluster.cli("nodes")
    assert "leader" in table.stdout
    assert "standby" in table.stdout
    # The API of a standby and its dashboard show the same.
    items = standby.get("/api/v1/nodes")["items"]
    assert sorted(n["role"] for n in items) == ["leader", "standby"]
    page = httpx.get(f"{standby.url}/", timeout=10).text
    assert 'id="nodes"' in page
    assert "<strong>leader</strong>" in page
    standby.kill9()
    wait_for(
        lambda: roles().get(cluster.node_id(standby)) == "lost",
        timeout=2 * LEASE + 5,
        what="the killed standby shown lost",
    )
