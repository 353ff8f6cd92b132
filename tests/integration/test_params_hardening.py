"""Hostile params through the real API: refused with a clear error, the audit entry
bounded; a command line the kernel refuses ends ``launch_error``, never ``lost``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.test_api_harness import serving, wait_for_end

pytestmark = pytest.mark.anyio

CATALOG = f"""\
version: 1
project: paramtest
commands:
  say:
    command: ["echo", "{{text}}"]
    params:
      text: {{type: string, required: true}}
schedules:
  huge-arg:
    cron: "0 0 1 1 *"
    command: ["echo", "{"x" * 150_000}"]
    timeout: 60s
    retry: {{launch: 0}}
  nul-env:
    cron: "0 0 1 1 *"
    command: ["echo", "hi"]
    env: {{BAD: "a\\0b"}}
    timeout: 60s
    retry: {{launch: 0}}
"""


async def test_control_characters_and_huge_params_are_refused_and_audited_small(
    tmp_path: Path,
) -> None:
    async with serving(tmp_path, CATALOG) as served:
        client = served.client
        for text in ("a\x00b", "\x1b]0;title\x07", "x" * 900_000):
            answer = await client.post(
                "/api/v1/commands/say/invocations", json={"params": {"text": text}}
            )
            assert answer.status_code == 400, answer.text
            error = answer.json()["error"]
            assert error["code"] == "invalid_params"
            assert "text:" in error["message"]
            assert len(answer.content) < 2_000
        assert served.app.store.runs.runs(limit=10) == []
        entries = [e for e in served.app.store.audit.audit(limit=10) if e.target == "command say"]
        assert len(entries) == 3
        for entry in entries:
            assert entry.outcome == "refused"
            assert len(json.dumps(entry.detail)) < 20_000
        audit_page = await client.get("/audit")
        assert len(audit_page.content) < 200_000
        fine = await client.post(
            "/api/v1/commands/say/invocations", json={"params": {"text": "tab\there"}}
        )
        assert fine.status_code == 201, fine.text
        assert (await wait_for_end(client, fine.json()["id"]))["status"] == "succeeded"


async def test_a_command_line_the_kernel_refuses_is_a_launch_error(tmp_path: Path) -> None:
    async with serving(tmp_path, CATALOG) as served:
        for name in ("huge-arg", "nul-env"):
            started = await served.client.post(f"/api/v1/schedules/{name}/runs", json={})
            assert started.status_code == 201, started.text
            ended = await wait_for_end(served.client, started.json()["id"])
            assert ended["status"] == "failed", (name, ended)
            assert ended["reason"] == "launch_error", (name, ended)
