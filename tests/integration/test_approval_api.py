"""``POST /api/v1/runs/{id}/approve|reject`` over real HTTP against a served engine, on
SQLite and PostgreSQL: the requester and strangers get 403, a run that does not wait
for approval 409, an approved run starts and ends, a browser on another origin changes
nothing, and the dashboard shows the approval waiting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from jobdeck.api.openapi import openapi_document
from tests.integration.test_api_harness import serving, wait_for_end, wait_for_status

pytestmark = pytest.mark.anyio

CATALOG = """\
version: 1
project: approvals
commands:
  push:
    command: ["python3", "-c", "import sys; print('pushed', sys.argv[1])", "{title}"]
    params:
      title: {type: string, required: true}
    approve: {users: [bob, carol], usergroups: [S_DESK], expires: 10m}
  plain:
    command: ["true"]
"""


def as_user(name: str) -> dict[str, str]:
    return {"X-Jobdeck-User": name}


async def invoke(client: httpx.AsyncClient, user: str, title: str = "T") -> dict[str, Any]:
    answer = await client.post(
        "/api/v1/commands/push/invocations",
        json={"params": {"title": title}},
        headers=as_user(user),
    )
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


def error_of(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    return str(error["message"])


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest) -> str | None:
    return request.getfixturevalue("pg_url") if request.param == "postgresql" else None


async def test_approve_and_reject_over_http(tmp_path: Path, store_url: str | None) -> None:
    async with serving(tmp_path, CATALOG, store_url=store_url) as served:
        client = served.client
        run = await invoke(client, "alice", "Quake")
        assert (run["status"], run["reason"]) == ("pending", "approval")
        assert run["approval"]["users"] == ["bob", "carol"]
        assert run["approval"]["usergroups"] == ["S_DESK"]
        assert run["requested_by"] == "alice"

        path = f"/api/v1/runs/{run['id']}/approve"
        own = await client.post(path, json={}, headers=as_user("alice"))
        assert "own request" in error_of(own, 403, "forbidden")
        stranger = await client.post(path, json={}, headers=as_user("mallory"))
        assert "not an approver" in error_of(stranger, 403, "forbidden")
        cross = await client.post(
            path, json={}, headers={**as_user("bob"), "origin": "http://evil.example"}
        )
        assert cross.status_code == 403
        bad = await client.post(path, json={"reason": 5}, headers=as_user("bob"))
        error_of(bad, 400, "bad_request")
        still = (await client.get(f"/api/v1/runs/{run['id']}")).json()
        assert (still["status"], still["reason"]) == ("pending", "approval")

        page = await client.get("/")
        assert page.status_code == 200
        assert 'id="approvals"' in page.text
        assert f"#{run['id']}" in page.text
        run_page = (await client.get(f"/runs/{run['id']}")).text
        assert 'id="approval-waiting"' in run_page
        assert "<code>bob</code>" in run_page
        assert "group <code>S_DESK</code>" in run_page

        approved = await client.post(path, json={"reason": "ok"}, headers=as_user("bob"))
        assert approved.status_code == 200, approved.text
        assert approved.json()["approval"]["decided_by"] == "bob"
        ended = await wait_for_end(client, run["id"])
        assert ended["status"] == "succeeded"
        again = await client.post(path, json={}, headers=as_user("carol"))
        assert "already approved by bob" in error_of(again, 409, "conflict")
        events = [
            e["type"] for e in (await client.get(f"/api/v1/runs/{run['id']}")).json()["events"]
        ]
        assert events[:2] == ["created", "approved"]
        assert "started" in events

        second = await invoke(client, "alice")
        reject = f"/api/v1/runs/{second['id']}/reject"
        no_reason = await client.post(reject, json={}, headers=as_user("carol"))
        assert "needs a reason" in error_of(no_reason, 400, "bad_request")
        rejected = await client.post(reject, json={"reason": "dup"}, headers=as_user("carol"))
        assert rejected.status_code == 200, rejected.text
        shown = await wait_for_status(client, second["id"], "cancelled")
        assert shown["reason"] == "rejected"
        assert shown["detail"]["cancelled_by"] == "carol"
        assert "rejected by carol" in (await client.get(f"/runs/{second['id']}")).text

        plain = await client.post("/api/v1/commands/plain/invocations", json={})
        assert plain.status_code == 201
        not_waiting = await client.post(
            f"/api/v1/runs/{plain.json()['id']}/approve", json={}, headers=as_user("bob")
        )
        assert "does not need approval" in error_of(not_waiting, 409, "conflict")
        missing = await client.post("/api/v1/runs/99999/approve", json={}, headers=as_user("bob"))
        error_of(missing, 404, "not_found")

        audit = [
            (e.actor, e.action, e.outcome)
            for e in served.app.store.audit.audit(50)
            if e.action in ("approve", "reject")
        ]
        assert ("bob", "approve", "ok") in audit
        assert ("carol", "reject", "ok") in audit
        assert ("alice", "approve", "refused") in audit
        assert ("mallory", "approve", "refused") in audit


async def test_a_waiting_request_can_be_cancelled_by_its_requester(tmp_path: Path) -> None:
    async with serving(tmp_path, CATALOG) as served:
        run = await invoke(served.client, "alice")
        answer = await served.client.post(
            f"/api/v1/runs/{run['id']}/cancel", json={"reason": "never mind"}
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "cancelled"


def test_the_openapi_document_has_approve_and_reject() -> None:
    paths = openapi_document()["paths"]
    for action in ("approve", "reject"):
        post = paths[f"/api/v1/runs/{{run_id}}/{action}"]["post"]
        assert set(post["responses"]) == {"200", "400", "403", "404", "409"}
