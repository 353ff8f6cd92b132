from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

EXAMPLE = Path(__file__).parents[2] / "examples" / "newsroom" / "jobdeck.yaml"


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


Jobdeck = Callable[..., Result]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A project folder holding a copy of the newsroom catalog."""
    shutil.copy(EXAMPLE, tmp_path / "jobdeck.yaml")
    return tmp_path


@pytest.fixture
def jobdeck(workdir: Path) -> Jobdeck:
    """Runs the real `jobdeck` command line in a child process, in ``workdir``."""

    def run(*args: str, stdin: str = "", env: dict[str, str] | None = None) -> Result:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("JOBDECK_")}
        environment.update({"JOBDECK_USER": "alice", **(env or {})})
        done = subprocess.run(
            [sys.executable, "-m", "jobdeck", *args],
            cwd=workdir,
            input=stdin,
            capture_output=True,
            text=True,
            env=environment,
            timeout=60,
            check=False,
        )
        return Result(done.returncode, done.stdout, done.stderr)

    return run
