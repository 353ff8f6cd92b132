"""Commands through the HTTP API and `jobdeck exec`, against a running server: the same
checks, refusals and audit as chat, with the API's answers and the CLI's exit codes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from jobdeck.control import Control
from tests.integration.test_api_harness import Served, serving, wait_for_end
from tests.integration.test_slack_harness import CATALOG, RECORDER

pytestmark = pytest.mark.anyio


@contextlib.asynccontextmanager
async def served(tmp_path: Path, extra: str = "") -> AsyncIterator[Served]:
    recorder = tmp_path / "record_argv.py"
    recorder.write_text(RECORDER)
    async with serving(tmp_path, CATALOG.format(recorder=recorder) + extra) as server:
        yield server


async def jobdeck(server: Served, *args: str) -> tuple[int, str, str]:
    """Runs the real CLI in a child process against ``server``."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("JOBDECK_")}
    environment["JOBDECK_USER"] = "alice"
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "jobdeck",
        "--server",
        server.url,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environment,
    )
    out, err = await asyncio.wait_for(child.communicate(), 120)
    assert child.returncode is not None
    return child.returncode, out.decode(), err.decode()


def error_of(answer: Any) -> dict[str, Any]:
    error: dict[str, Any] = answer.json()["error"]
    return error


async def test_an_invocation_answers_201_with_the_run(tmp_path: Path) -> None:
    async with served(tmp_path) as server:
        answer = await server.client.post(
            "/api/v1/commands/say/invocations",
            json={"params": {"title": "From the API"}},
            headers={"X-Jobdeck-User": "deploy-bot"},
        )
        assert answer.status_code == 201, answer.text
        body = answer.json()
        assert answer.headers["location"] == f"/api/v1/runs/{body['id']}"
        assert (body["job"], body["kind"], body["trigger"]) == ("say", "command", "api")
        assert body["argv"][-4:] == ["--title", "From the API", "--note", ""]
        assert body["params"] == {"title": "From the API", "note": ""}
        ended = await wait_for_end(server.client, body["id"])
        assert ended["status"] == "succeeded"
        assert ended["requested_by"] == "deploy-bot"
        entry = server.app.store.audit.audit(1)[0]
        assert (entry.actor, entry.via, entry.action, entry.outcome) == (
            "deploy-bot",
            "api",
            "invoke",
            "ok",
        )
        assert entry.detail["run_id"] == body["id"]
        assert entry.detail["decision"] == "operator (api)"


async def test_refusals_answer_400_403_404_409_and_are_audited(tmp_path: Path) -> None:
    disabled = """\
  retired:
    command: ["true"]
    enabled: false
"""
    async with served(tmp_path, disabled) as server:
        post = server.client.post
        bad = await post(
            "/api/v1/commands/push/invocations",
            json={"params": {"url": "ftp://x", "audience": "tv"}},
        )
        assert bad.status_code == 400
        problems = [(p["param"], p["rule"]) for p in error_of(bad)["problems"]]
        assert problems == [("title", "required"), ("url", "type"), ("audience", "choices")]
        assert error_of(bad)["code"] == "invalid_params"

        unknown = await post("/api/v1/commands/nope/invocations", json={})
        assert unknown.status_code == 404
        assert "known: " in error_of(unknown)["message"]

        off = await post("/api/v1/commands/retired/invocations", json={})
        assert (off.status_code, error_of(off)["code"]) == (403, "disabled")

        app = server.app
        Control(app.store, app.clock, "chief", "cli").suspend("say", "maintenance")
        held = await post("/api/v1/commands/say/invocations", json={"params": {"title": "x"}})
        assert (held.status_code, error_of(held)["code"]) == (409, "suspended")
        assert "suspended by chief: maintenance" in error_of(held)["message"]

        shape = await post("/api/v1/commands/say/invocations", json={"params": ["x"]})
        assert shape.status_code == 400

        refused = [e for e in app.store.audit.audit(50) if e.action == "invoke"]
        assert [e.detail["decision"] for e in reversed(refused)] == [
            "invalid",
            "unknown",
            "disabled",
            "suspended",
        ]
        assert all(e.outcome == "refused" for e in refused)
        assert app.store.runs.runs(kind="command") == []


async def test_exec_runs_and_waits(tmp_path: Path) -> None:
    async with served(tmp_path) as server:
        code, out, err = await jobdeck(server, "exec", "say", "title=from the CLI", "--wait")
        assert code == 0, err
        assert err.splitlines()[-1].startswith("run ")
        assert "say succeeded (exit 0)" in err
        (run,) = server.app.store.runs.runs(kind="command")
        assert run.trigger == "manual"
        assert run.requested_by == "alice"
        assert server.app.store.audit.audit(1)[0].via == "cli"

        code, out, err = await jobdeck(server, "exec", "say", "title=as JSON", "--json")
        assert code == 0, err
        started = json.loads(out)
        assert started["argv"][-4:] == ["--title", "as JSON", "--note", ""]
        assert started["status"] in ("pending", "running")
        await wait_for_end(server.client, started["id"])


async def test_exec_exit_codes(tmp_path: Path) -> None:
    async with served(tmp_path) as server:
        code, _, err = await jobdeck(server, "exec", "say")
        assert code == 2
        assert "bad params for say:\n  title: required" in err

        code, _, err = await jobdeck(server, "exec", "push", "title=x", "url=nope")
        assert code == 2
        assert "url: not an http(s) URL: 'nope' (type: url)" in err

        code, _, err = await jobdeck(server, "exec", "say", "title")
        assert code == 2
        assert "expected key=value" in err

        code, out, err = await jobdeck(server, "exec", "failing", "--wait")
        assert code == 1, out + err
        assert "failing failed (exit 3)" in err

        code, out, _ = await jobdeck(server, "exec", "failing")
        assert code == 0  # started; without --wait its outcome is not awaited
        assert "run " in out

        code, _, err = await jobdeck(server, "exec", "nope")
        assert code == 1
        assert "no command named 'nope'" in err

        app = server.app
        Control(app.store, app.clock, "chief", "cli").suspend("say", "maintenance")
        code, _, err = await jobdeck(server, "exec", "say", "title=x")
        assert code == 1
        assert "suspended by chief: maintenance" in err
        for run in app.store.runs.runs(kind="command"):
            await wait_for_end(server.client, run.id)
