"""The synthesized templates through cfn-lint, and the state machines through an ASL
validator (the npm package asl-validator, installed by .ci/run into node_modules/)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint

from tests.aws.asl import definitions, flattened_template, placeholders
from tests.aws.conftest import REPO, Assembly

# CDK writes DependsOn for a role's policy that a GetAtt already implies; harmless.
ALLOWED_WARNINGS = {"W3005"}


def _problems(template: dict[str, Any]) -> list[str]:
    matches = lint(json.dumps(template), regions=["us-east-1", "ap-northeast-1"])
    return [
        f"{m.rule.id} {m.message} ({'/'.join(str(p) for p in m.path)})"
        for m in matches
        if m.rule.id not in ALLOWED_WARNINGS and not m.rule.id.startswith("I")
    ]


@pytest.mark.parametrize("name", ["newsroom", "variants"])
def test_cfn_lint_finds_nothing(name: str, request: pytest.FixtureRequest) -> None:
    assembly: Assembly = request.getfixturevalue(name)
    assert _problems(flattened_template(assembly.template)) == []


def test_cfn_lint_does_validate_the_flattened_asl(newsroom: Assembly) -> None:
    """A broken definition is caught: the lint above can fail."""
    broken = flattened_template(newsroom.template)
    machine = next(
        r for r in broken["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine"
    )
    definition = json.loads(machine["Properties"]["DefinitionString"])
    definition["States"]["Bogus"] = {"Type": "Nope"}
    machine["Properties"]["DefinitionString"] = json.dumps(definition)
    assert any(problem.startswith("E") for problem in _problems(broken))


def asl_validator() -> Path:
    """The asl-validator command; missing it is a failure, never a skip."""
    configured = os.environ.get("JOBDECK_ASL_VALIDATOR")
    found = Path(configured) if configured else REPO / "node_modules" / ".bin" / "asl-validator"
    assert found.exists(), (
        f"{found} is missing: run `npm install --no-save --no-package-lock asl-validator` "
        "in the repository (as .ci/run does), or set JOBDECK_ASL_VALIDATOR"
    )
    return found


def _validate(
    definition: dict[str, Any], tmp_path: Path, name: str
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / f"{name}.asl.json"
    path.write_text(json.dumps(definition), encoding="utf-8")
    return subprocess.run(
        [str(asl_validator()), "--json-path", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("name", ["newsroom", "variants"])
def test_state_machines_are_valid_asl(
    name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    assembly: Assembly = request.getfixturevalue(name)
    found = definitions(assembly.template, placeholders(assembly.template))
    assert found
    for logical, definition in found.items():
        done = _validate(definition, tmp_path, logical)
        assert done.returncode == 0, f"{logical}: {done.stdout}{done.stderr}"


def test_asl_validator_rejects_a_broken_definition(newsroom: Assembly, tmp_path: Path) -> None:
    definition = next(
        iter(definitions(newsroom.template, placeholders(newsroom.template)).values())
    )
    definition["States"][definition["StartAt"]]["Next"] = "Nowhere"
    assert _validate(definition, tmp_path, "broken").returncode != 0
