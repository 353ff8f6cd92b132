"""Notices on a cluster: a notice decided by a leader that dies before its target
answered is sent by the next leader, once, with the same id (two real `jobdeck serve`
on one PostgreSQL store, `kill -9`, a webhook receiver on a real local HTTP server)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobdeck.outbox import SWEEP_INTERVAL
from tests.acceptance.cluster import LEASE, Cluster
from tests.acceptance.server import wait_for
from tests.acceptance.test_serve_notice_outbox import _Hook, hook

__all__ = ["hook"]

pytestmark = pytest.mark.postgres


@pytest.fixture
def pair(tmp_path: Path, pg_url: str, hook: str) -> Iterator[Cluster]:
    (tmp_path / "jobdeck.yaml").write_text(
        "version: 1\nproject: outbox\nschedules:\n  long:\n"
        '    cron: "0 0 1 1 *"\n'
        '    command: ["python3", "-c", "import time; time.sleep(30)"]\n'
        "    timeout: 5m\n"
        "    alerts: {slow: 2s}\n"
        f'    notify: ["webhook:{hook}"]\n'
    )
    made = Cluster(tmp_path, pg_url, 2, ())
    applied = made.cli("apply", "--yes")
    assert applied.returncode == 0, applied.stderr
    yield made
    made.close()


def slow_notices(cluster: Cluster) -> list[dict[str, Any]]:
    shown = cluster.cli("notices", "--json")
    assert shown.returncode == 0, shown.stderr
    return [n for n in json.loads(shown.stdout) if n["event"] == "run.slow"]


def test_the_next_leader_sends_the_notice_its_dead_predecessor_was_sending(
    pair: Cluster,
) -> None:
    for server in pair.servers:
        server.start()
    wait_for(lambda: pair.leader()[0], timeout=10, what="a leader")
    leader, token = pair.leader()
    assert leader is not None
    started = leader.post("/api/v1/schedules/long/runs")
    assert started.status_code in (200, 201, 202), started.text

    wait_for(lambda: _Hook.hung, timeout=60, what="the slow notice to reach the receiver")
    [(hung_id, _)] = _Hook.hung
    [due] = slow_notices(pair)
    assert (str(due["id"]), due["delivery"]) == (hung_id, "due")
    leader.kill9()
    _Hook.hang.clear()  # the receiver answers from now on

    wait_for(lambda: pair.leader()[1] > token, timeout=LEASE + 10, what="a new leader")
    wait_for(
        lambda: [n for n in _Hook.answered if n[1]["type"] == "run.slow"],
        timeout=60,
        what="the slow notice sent by the new leader",
    )
    wait_for(
        lambda: slow_notices(pair)[0]["delivery"] == "delivered",
        timeout=30,
        what="the notice recorded delivered",
    )
    time.sleep(3 * SWEEP_INTERVAL)  # a second delivery would be under way by now
    slow = [(i, body) for i, body in _Hook.answered if body["type"] == "run.slow"]
    assert [i for i, _ in slow] == [hung_id]
    assert slow[0][1]["delivery_id"] == f"notice-{hung_id}"
