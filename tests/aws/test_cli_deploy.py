"""`jobdeck deploy aws synth -o DIR` as a user runs it: a child process of the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.aws.conftest import NEWSROOM


def _jobdeck(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # Without JSII_SILENCE_...: the command must quiet jsii's Node.js banner itself.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBDECK_", "JSII_SILENCE"))}
    return subprocess.run(
        [sys.executable, "-m", "jobdeck", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_synth_writes_a_cloud_assembly(tmp_path: Path) -> None:
    done = _jobdeck("-f", str(NEWSROOM), "deploy", "aws", "synth", "-o", "out", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "wrote out (stack jobdeck-newsroom)",
        "deploy it with: cdk deploy --app out",
    ]
    assert "end-of-life" not in done.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["artifacts"]["jobdeck-newsroom"]["type"] == "aws:cloudformation:stack"
    template = json.loads((tmp_path / "out" / "jobdeck-newsroom.template.json").read_text())
    kinds = {r["Type"] for r in template["Resources"].values()}
    assert {"AWS::Scheduler::Schedule", "AWS::ECS::Service", "AWS::SQS::Queue"} <= kinds


def test_what_aws_cannot_run_exits_2_with_lines(tmp_path: Path) -> None:
    catalog = tmp_path / "jobdeck.yaml"
    catalog.write_text(
        "version: 1\nproject: demo\nschedules:\n  fast:\n    rate: 30s\n    command: [x]\n",
        encoding="utf-8",
    )
    done = _jobdeck("deploy", "aws", "synth", "-o", "out", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "jobdeck.yaml:4:3: error: schedules.fast: has no 'image', which the AWS target needs "
        "to run it on Fargate; add 'image: REPOSITORY:TAG' (or 'defaults.image'), or put it "
        "in a warm pool to run it on the tools host",
        "jobdeck.yaml:5:5: error: schedules.fast.rate: shorter than 1m, the shortest rate "
        "EventBridge Scheduler runs; raise it to 1m or more, or run it as a worker that loops",
        "2 errors: the catalog cannot run on AWS as is; nothing was written.",
    ]
    assert not (tmp_path / "out").exists()
    # The local engine takes it: only AWS refuses.
    assert _jobdeck("validate", cwd=tmp_path).returncode == 0


def test_an_invalid_catalog_is_reported_as_by_validate(tmp_path: Path) -> None:
    (tmp_path / "jobdeck.yaml").write_text("version: 1\nproject: demo\ntimout: 1h\n")
    done = _jobdeck("deploy", "aws", "synth", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("jobdeck.yaml:3:1: error: top level: unknown key 'timout'")
