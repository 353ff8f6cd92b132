"""A run gets an allow-list of the engine's environment, never its secrets; the state
dir and what it holds are the engine's user's alone."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from jobdeck.execute.environment import PassEnvError, inherited, pass_env_patterns
from tests.integration.test_api_harness import base_environ, serving, wait_for_end

pytestmark = pytest.mark.anyio

SECRETS = {
    "JOBDECK_WEBHOOK_SECRET": "webhook-secret-value-1",
    "JOBDECK_STORE": "postgresql://jobdeck:db-password-value-2@db/jobdeck",
    "JOBDECK_API_TOKEN": "api-token-value-3",
    "SLACK_BOT_TOKEN": "xoxb-bot-token-value-4",
    "SLACK_SIGNING_SECRET": "signing-secret-value-5",
    "SLACK_APP_TOKEN": "xapp-app-token-value-6",
    "AWS_SECRET_ACCESS_KEY": "engine-aws-secret-value-7",
    "AWS_ACCESS_KEY_ID": "AKIAENGINEVALUE8",
    "DATABASE_PASSWORD": "unnamed-variable-value-9",
}

CATALOG = """\
version: 1
project: envtest
schedules:
  dump:
    cron: "0 0 1 1 *"
    command: ["python3", "-c", "import os, json; print(json.dumps(dict(os.environ)))"]
    env: {FROM_CATALOG: "yes"}
    timeout: 60s
"""


def test_the_allow_list() -> None:
    environ = {**SECRETS, "PATH": "/bin", "LC_ALL": "C", "HOME": "/h", "PYTHONPATH": "/p"}
    assert inherited(environ) == {"PATH": "/bin", "LC_ALL": "C", "HOME": "/h"}
    patterns = pass_env_patterns({"JOBDECK_PASS_ENV": "PYTHON*, SLACK_*"}, ["JOBDECK_STORE"])
    passed = inherited(environ, patterns)
    assert passed["PYTHONPATH"] == "/p"
    assert not set(passed) & {"JOBDECK_STORE", "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET"}
    # The operator may hand the engine's cloud credentials to runs, by name only.
    assert "AWS_ACCESS_KEY_ID" in inherited(environ, ["AWS_*"])
    with pytest.raises(PassEnvError, match="not a variable name"):
        pass_env_patterns({"JOBDECK_PASS_ENV": "A=B"})


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_a_run_gets_no_secret_and_its_files_are_private(tmp_path: Path) -> None:
    environ = base_environ(
        **SECRETS, LANG="C.UTF-8", PASSED_ONE="passed", JOBDECK_PASS_ENV="PASSED_*"
    )
    async with serving(tmp_path, CATALOG, environ=environ) as served:
        started = await served.client.post("/api/v1/schedules/dump/runs", json={})
        assert started.status_code == 201, started.text
        run_id = started.json()["id"]
        assert (await wait_for_end(served.client, run_id))["status"] == "succeeded"
        log = await served.client.get(f"/api/v1/runs/{run_id}/log")
        seen: dict[str, str] = json.loads(log.text.strip().splitlines()[-1])
        state = served.app.state_dir
        run_dir = served.app.executor.run_dir(run_id)
        assert _mode(state) == 0o700
        files = [p for p in state.rglob("*") if p.is_file() and not p.is_socket()]
        assert run_dir / "run.jsonl" in files
        for path in files:
            if path.suffix != ".sock":
                assert _mode(path) & 0o077 == 0, f"{path} is {oct(_mode(path))}"
            for value in SECRETS.values():
                assert value.encode() not in path.read_bytes(), f"{path} holds a secret"
    assert not set(seen) & set(SECRETS)
    assert seen["FROM_CATALOG"] == "yes"
    assert seen["PASSED_ONE"] == "passed"
    assert seen["LANG"] == "C.UTF-8"
    assert seen["JOBDECK_RUN_ID"] == str(run_id)
    assert "PATH" in seen
