"""Where runs asked for by a person execute in a cluster of real engines on PostgreSQL:
on the leader, whichever node took the request (a standby, a draining node), under the
leader's pool and overlap decisions; a run handed over survives a kill -9 of the leader
and runs once, on the new leader."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.acceptance.cluster import Cluster, write_programs
from tests.acceptance.server import Server, wait_for

pytestmark = pytest.mark.postgres

# Holds an exclusive lock while it runs: a second copy running at the same time (on any
# node, the lock file being shared) writes a line to "overlaps".
GUARDED = """\
import fcntl, os, sys, time
here = sys.argv[1]
lock = open(os.path.join(here, "guarded.lock"), "a")
try:
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
except OSError:
    with open(os.path.join(here, "overlaps"), "a") as out:
        out.write(os.environ["JOBDECK_RUN_ID"] + "\\n")
    fcntl.flock(lock, fcntl.LOCK_EX)
print("guarded run", os.environ["JOBDECK_RUN_ID"], flush=True)
time.sleep(float(sys.argv[2]))
with open(os.path.join(here, "guarded.done"), "a") as out:
    out.write(os.environ["JOBDECK_RUN_ID"] + "\\n")
"""


def catalog(workdir: Path) -> str:
    py = sys.executable
    return f"""\
version: 1
project: ha
pools:
  one: {{max_concurrency: 1}}
commands:
  guarded:
    command: ["{py}", "{workdir}/guarded.py", "{workdir}", "0.4"]
    pool: one
  long:
    command: ["{py}", "{workdir}/guarded.py", "{workdir}", "2.5"]
    pool: one
  checked:
    command: ["{py}", "{workdir}/guarded.py", "{workdir}", "0.1"]
    approve: {{users: [bob], expires: 1h}}
schedules:
  once:
    cron: "0 0 1 1 *"
    command: ["{py}", "{workdir}/guarded.py", "{workdir}", "1.5"]
    overlap: skip
"""


@pytest.fixture
def cluster(tmp_path: Path, pg_url: str) -> Iterator[Cluster]:
    write_programs(tmp_path)
    (tmp_path / "guarded.py").write_text(GUARDED)
    (tmp_path / "jobdeck.yaml").write_text(catalog(tmp_path))
    made = Cluster(tmp_path, pg_url, 2, ())
    applied = made.cli("apply", "--yes")
    assert applied.returncode == 0, applied.stderr
    yield made
    made.close()


def leader_and_standby(cluster: Cluster) -> tuple[Server, Server]:
    for server in cluster.servers:
        server.start()
    leader = wait_for(lambda: cluster.leader()[0], timeout=15, what="a leader")
    standby = next(s for s in cluster.servers if s is not leader)
    return leader, standby


def invoke(server: Server, name: str) -> dict[str, Any]:
    response = server.post(f"/api/v1/commands/{name}/invocations", {"params": {}})
    assert response.status_code == 201, response.text
    run: dict[str, Any] = response.json()["run"] if "run" in response.json() else response.json()
    return run


def ended(server: Server, run_id: int) -> dict[str, Any] | None:
    found: dict[str, Any] = server.get(f"/api/v1/runs/{run_id}")
    return found if found["status"] not in ("pending", "running") else None


def finished(server: Server, run_id: int) -> dict[str, Any]:
    found: dict[str, Any] = wait_for(lambda: ended(server, run_id), timeout=60, what="its end")
    return found


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def test_runs_asked_through_the_standby_and_the_leader_run_on_the_leader_one_at_a_time(
    cluster: Cluster,
) -> None:
    leader, standby = leader_and_standby(cluster)
    with ThreadPoolExecutor(6) as pool:
        asked = list(pool.map(lambda s: invoke(s, "guarded"), [standby, leader] * 3))
    # The caller's answer is as on one engine: the run, pending.
    assert all(run["status"] == "pending" for run in asked)
    done = [finished(leader, run["id"]) for run in asked]
    assert [run["status"] for run in done] == ["succeeded"] * 6
    assert lines(cluster.workdir / "overlaps") == []  # never two at once, on any node
    assert sorted(lines(cluster.workdir / "guarded.done")) == sorted(str(r["id"]) for r in asked)
    host = f"{cluster.node_id(leader)}"
    assert all(str(run["host"]).endswith(host) for run in done), [r["host"] for r in done]
    # Asked through the standby: handed over to the leader, which took it.
    through_standby = asked[0]["id"]
    with cluster_store(cluster) as store:
        taken = [e for e in store.runs.events(through_standby) if e.type == "taken"]
    assert [e.detail["from"] for e in taken] == ["leader"]
    # Its log lives on the leader, and is read through the standby as well.
    log = httpx.get(f"{standby.url}/api/v1/runs/{through_standby}/log", timeout=10)
    assert log.status_code == 200, log.text
    assert f"guarded run {through_standby}" in log.text
    board = httpx.get(f"{standby.url}/runs/{through_standby}/log?offset=0", timeout=10)
    assert f"guarded run {through_standby}" in board.json()["text"]
    page = httpx.get(f"{standby.url}/runs/{through_standby}", timeout=10).text
    assert "Run by node " in page
    assert f"{cluster.node_id(leader)}: its log is read from there" in page
    assert 'data-active="true"' in page  # the page reads it through the log piece above
    # `jobdeck logs` where the run's folder is not: from the node that ran it.
    shown = cluster.cli("logs", str(through_standby))
    assert shown.returncode == 0, shown.stderr
    assert f"guarded run {through_standby}" in shown.stdout
    nodes = json.loads(cluster.cli("nodes", "--json").stdout)["nodes"]
    assert sorted(node["url"] for node in nodes) == sorted([leader.url, standby.url])


def test_overlap_skip_holds_for_manual_runs_asked_through_both_nodes(cluster: Cluster) -> None:
    leader, standby = leader_and_standby(cluster)
    with ThreadPoolExecutor(8) as pool:
        asked = list(
            pool.map(lambda s: s.post("/api/v1/schedules/once/runs").json(), [standby, leader] * 4)
        )
    done = [finished(leader, run["id"]) for run in asked]
    statuses = sorted(run["status"] for run in done)
    assert statuses == ["skipped"] * 7 + ["succeeded"], done
    assert lines(cluster.workdir / "overlaps") == []


def test_a_draining_node_hands_new_runs_to_the_leader(cluster: Cluster) -> None:
    leader, standby = leader_and_standby(cluster)
    drained = cluster.cli("drain", cluster.node_id(standby), "--wait", "--timeout", "1m")
    assert drained.returncode == 0, drained.stderr
    run = invoke(standby, "guarded")
    done = wait_for(lambda: ended(standby, run["id"]), timeout=60)
    assert done["status"] == "succeeded"
    assert str(done["host"]).endswith(cluster.node_id(leader))


def test_a_handed_over_run_survives_a_kill_9_of_the_leader_and_runs_once(
    cluster: Cluster,
) -> None:
    leader, standby = leader_and_standby(cluster)
    # The leader's pool is busy with a long run, so the next one waits there (pending)...
    first = invoke(leader, "long")
    wait_for(lambda: leader.get(f"/api/v1/runs/{first['id']}")["status"] == "running")
    waiting = invoke(standby, "guarded")
    wait_for(
        lambda: str(leader.get(f"/api/v1/runs/{waiting['id']}")["host"]).endswith(
            cluster.node_id(leader)
        ),
        what="the leader to take the run",
    )
    leader.kill9()  # ... when the leader dies: the run never launched there
    done = wait_for(lambda: ended(standby, waiting["id"]), timeout=60, what="the run's end")
    assert done["status"] == "succeeded", done
    assert str(done["host"]).endswith(cluster.node_id(standby))
    assert lines(cluster.workdir / "guarded.done").count(str(waiting["id"])) == 1
    assert lines(cluster.workdir / "overlaps") == []


def cluster_store(cluster: Cluster) -> Any:
    from jobdeck.store import open_store

    return open_store(cluster.store_url)


def test_a_run_asked_while_no_node_leads_waits_can_be_cancelled_and_runs_once_one_leads(
    cluster: Cluster,
) -> None:
    first, second = leader_and_standby(cluster)
    for server in (first, second):
        drained = cluster.cli("drain", cluster.node_id(server), "--wait", "--timeout", "1m")
        assert drained.returncode == 0, drained.stderr
    wait_for(lambda: cluster.leader()[0] is None, timeout=15, what="no leader")
    dropped = invoke(second, "guarded")
    kept = invoke(second, "guarded")
    placed = [second.get(f"/api/v1/runs/{run['id']}")["host"] for run in (dropped, kept)]
    assert placed == ["leader", "leader"]  # placed on the leader, not run here
    cancelled = second.post(f"/api/v1/runs/{dropped['id']}/cancel", {"reason": "not now"})
    assert cancelled.status_code == 200, cancelled.text
    assert second.get(f"/api/v1/runs/{dropped['id']}")["status"] == "cancelled"
    undrained = cluster.cli("undrain", cluster.node_id(first))
    assert undrained.returncode == 0, undrained.stderr
    done = finished(second, kept["id"])
    assert done["status"] == "succeeded"
    assert str(done["host"]).endswith(cluster.node_id(first))
    assert lines(cluster.workdir / "guarded.done") == [str(kept["id"])]
    assert second.get(f"/api/v1/runs/{dropped['id']}")["started_at"] is None


def test_a_drained_leader_hands_its_queue_over_and_its_running_run_holds_the_pool(
    cluster: Cluster,
) -> None:
    leader, standby = leader_and_standby(cluster)
    long = invoke(leader, "long")
    wait_for(lambda: leader.get(f"/api/v1/runs/{long['id']}")["status"] == "running")
    queued = invoke(leader, "guarded")  # waits for the pool (max_concurrency 1) there
    drained = cluster.cli("drain", cluster.node_id(leader), "--timeout", "1m")
    assert drained.returncode == 0, drained.stderr
    done = finished(standby, queued["id"])
    assert done["status"] == "succeeded"
    assert str(done["host"]).endswith(cluster.node_id(standby))  # moved, never launched
    ran_long = finished(standby, long["id"])
    assert ran_long["status"] == "succeeded"
    assert str(ran_long["host"]).endswith(cluster.node_id(leader))  # finished where it ran
    # The pool's one place held across the nodes: the moved run waited for the long one.
    assert lines(cluster.workdir / "overlaps") == []
    assert lines(cluster.workdir / "guarded.done") == [str(long["id"]), str(queued["id"])]


def test_a_run_asked_and_approved_through_the_standby_runs_on_the_leader(
    cluster: Cluster,
) -> None:
    leader, standby = leader_and_standby(cluster)
    asked = httpx.post(
        f"{standby.url}/api/v1/commands/checked/invocations",
        json={"params": {}},
        headers={"X-Jobdeck-User": "alice"},
        timeout=10,
    )
    assert asked.status_code == 201, asked.text
    run_id = asked.json()["id"]
    approved = httpx.post(
        f"{standby.url}/api/v1/runs/{run_id}/approve",
        json={},
        headers={"X-Jobdeck-User": "bob"},
        timeout=10,
    )
    assert approved.status_code == 200, approved.text
    done = finished(standby, run_id)
    assert done["status"] == "succeeded"
    assert str(done["host"]).endswith(cluster.node_id(leader))
    assert lines(cluster.workdir / "guarded.done") == [str(run_id)]


def outside_address() -> str | None:
    """An address of this machine other than loopback, when it has one."""
    import socket

    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.254", 9))  # no packet is sent: it picks the route
            address: str = probe.getsockname()[0]
    except OSError:
        return None
    return None if address.startswith("127.") else address


def test_a_log_read_through_another_node_needs_and_forwards_the_callers_token(
    tmp_path: Path, pg_url: str
) -> None:
    address = outside_address()
    if address is None:
        pytest.skip("this machine has no address but loopback")
    write_programs(tmp_path)
    (tmp_path / "guarded.py").write_text(GUARDED)
    (tmp_path / "jobdeck.yaml").write_text(catalog(tmp_path))
    cluster = Cluster(tmp_path, pg_url, 2, ("--host", address))
    token = "t0ken-for-the-cluster-test"
    for server in cluster.servers:
        server.url = f"http://{address}:{server.port}"
        server.env["JOBDECK_API_TOKEN"] = token
    try:
        applied = cluster.cli("apply", "--yes")
        assert applied.returncode == 0, applied.stderr
        leader, standby = leader_and_standby(cluster)
        signed = {"Authorization": f"Bearer {token}"}
        asked = httpx.post(
            f"{standby.url}/api/v1/commands/guarded/invocations",
            json={"params": {}},
            headers=signed,
            timeout=10,
        )
        assert asked.status_code == 201, asked.text
        run_id = asked.json()["id"]

        def done() -> Any:
            found = httpx.get(f"{standby.url}/api/v1/runs/{run_id}", headers=signed, timeout=10)
            return found.json()["status"] == "succeeded" and found.json()

        ran = wait_for(done, timeout=60, what="the run's end")
        assert str(ran["host"]).endswith(cluster.node_id(leader))
        log = f"{standby.url}/api/v1/runs/{run_id}/log"
        read = httpx.get(log, headers=signed, timeout=10)
        assert read.status_code == 200, read.text
        assert f"guarded run {run_id}" in read.text
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            assert httpx.get(log, headers=headers, timeout=10).status_code == 401
        # A forwarded request is answered by the leader only with the caller's token.
        forwarded = {"X-Jobdeck-Forwarded": "1"}
        assert httpx.get(log, headers=forwarded, timeout=10).status_code == 401
    finally:
        cluster.close()
