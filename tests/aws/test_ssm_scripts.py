"""The SSM documents' scripts, run by a real shell: a param reaches the command as (part
of) one argv element, whatever it contains, exactly as the local engine substitutes it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jobdeck.catalog.load import load_catalog_text
from jobdeck.targets.aws.ssm import argv_script, command_document, schedule_document

PRINT_ARGV = [
    sys.executable,
    "-c",
    "import json, os, sys; print(json.dumps([os.getcwd(), sys.argv[1:]]))",
]


def _run(lines: list[str], env: dict[str, str]) -> tuple[str, list[str]]:
    done = subprocess.run(
        ["/bin/bash", "-c", "\n".join(lines)],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    cwd, argv = json.loads(done.stdout)
    return cwd, argv


@pytest.mark.parametrize(
    "hostile",
    [
        "Big news",
        "'; touch /tmp/jobdeck-pwned #",
        '"$(id)" `id` $HOME ${PATH}',
        "line one\nline two",
        "*",
        "-rf",
        "",
    ],
)
def test_a_param_is_one_argv_element_whatever_it_holds(hostile: str, tmp_path: Path) -> None:
    lines = argv_script(
        [*PRINT_ARGV, "--title", "{title}", "x={title}-{url}", "{{literal}}"],
        str(tmp_path),
        {"MODE": "it's live"},
    )
    cwd, argv = _run(lines, {"SSM_title": hostile, "SSM_url": "https://e.x/a?b=c&d"})
    assert cwd == str(tmp_path)
    assert argv == ["--title", hostile, f"x={hostile}-https://e.x/a?b=c&d", "{literal}"]
    assert not Path("/tmp/jobdeck-pwned").exists()


def test_env_is_exported_quoted(tmp_path: Path) -> None:
    lines = argv_script(
        [sys.executable, "-c", "import os; print(os.environ['MODE'])"], ".", {"MODE": "it's $live"}
    )
    done = subprocess.run(
        ["/bin/bash", "-c", "\n".join(lines)], capture_output=True, text=True, check=True
    )
    assert done.stdout == "it's $live\n"


CATALOG = """\
version: 1
project: p
pools:
  tools: {warm: true}
schedules:
  tidy: {cron: "0 * * * *", shell: "echo a | tr a b", pool: tools, timeout: 5m}
commands:
  flag:
    command: [flag, "{on}", "{ratio}", "{mode}"]
    params:
      on: {type: bool, default: true}
      ratio: {type: float, required: true}
      mode: {type: choice, choices: [a, b]}
"""


def test_documents() -> None:
    catalog = load_catalog_text(CATALOG, "c.yaml").catalog
    params = command_document("flag", catalog.commands["flag"])["parameters"]
    assert params["on"]["default"] == "true"
    assert params["on"]["allowedPattern"].startswith("^(?i:true|false")
    assert "default" not in params["ratio"]
    assert params["ratio"]["allowedPattern"].startswith("^[+-]?")
    assert params["mode"] == {
        "type": "String",
        "description": "a choice value",
        "interpolationType": "ENV_VAR",
        "allowedValues": ["a", "b", ""],
        "default": "",
    }
    tidy = schedule_document("tidy", catalog.schedules["tidy"])["mainSteps"][0]["inputs"]
    assert tidy == {
        "runCommand": ["set -eu", "exec /bin/sh -c 'echo a | tr a b'"],
        "timeoutSeconds": "300",
    }
    done = subprocess.run(
        ["/bin/bash", "-c", "\n".join(tidy["runCommand"])],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == "b\n"
