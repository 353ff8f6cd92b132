"""The newsroom demo's `breaking-push`, as its catalog declares it: invoked through the
API, it fans a push out to the simulated devices over HTTP and reports its timing."""

from __future__ import annotations

import io
import os
import shutil
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from tests.integration.test_api_harness import base_environ, serving, wait_for_end

pytestmark = pytest.mark.anyio

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "newsroom"


def commands_only(text: str) -> str:
    """The example's pools and commands (its schedules and workers would run too)."""
    yaml = YAML()
    document = yaml.load(text)
    for section in ("schedules", "workers", "queues", "defaults"):
        document.pop(section, None)
    out = io.StringIO()
    yaml.dump(document, out)
    return out.getvalue()


async def test_breaking_push_fans_out_and_reports_its_timing(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLE / "newsroom", tmp_path / "newsroom")
    catalog = commands_only((EXAMPLE / "jobdeck.yaml").read_text())
    # The interpreter running the tests has httpx; the tool runs as `python3` from PATH.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    environ = base_environ(PATH=path, NEWSROOM_DEVICES="300", JOBDECK_PASS_ENV="NEWSROOM_*")
    async with serving(tmp_path, catalog, environ=environ) as server:
        answer = await server.client.post(
            "/api/v1/commands/breaking-push/invocations",
            json={"params": {"title": "速報: M6 quake", "url": "https://news.example/q"}},
        )
        assert answer.status_code == 201, answer.text
        run = answer.json()
        assert run["argv"] == [
            "python3",
            "-m",
            "newsroom.tools.push",
            "--title",
            "速報: M6 quake",
            "--url",
            "https://news.example/q",
            "--audience",
            "all",
        ]
        assert run["pool"] == "tools"
        ended = await wait_for_end(server.client, run["id"])
        log = (await server.client.get(f"/api/v1/runs/{run['id']}/log")).text
        assert ended["status"] == "succeeded", log
        assert "for all: 300 devices" in log
        assert "298 delivered, 2 unregistered, 0 failed in" in log
        assert "per request)" in log
