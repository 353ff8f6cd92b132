"""The README's demo line installs everything the bundled example's programs import:
a module that no dependency of jobdeck's, nor an extra the line asks for, provides
makes the demo's runs fail at their first import."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "src" / "jobdeck" / "examples" / "newsroom"


def _name(text: str) -> str:
    return re.sub(r"[-_.]+", "-", text).lower()


def _demo_line() -> str:
    lines = [
        line for line in (ROOT / "README.md").read_text().splitlines() if "jobdeck demo" in line
    ]
    assert len(lines) == 1, "the README has one line that installs and runs the demo"
    return lines[0]


def _installed_by(line: str) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for extras in re.findall(r"\.\[([\w,-]+)\]", line):
        for extra in extras.split(","):
            wanted += project["optional-dependencies"][extra]
    return {_name(Requirement(text).name) for text in wanted}


def _imported_by_the_example() -> set[str]:
    own = {path.name for path in EXAMPLE.iterdir() if path.is_dir()} | {"jobdeck"}
    found: set[str] = set()
    for source in EXAMPLE.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m not in own}


def test_the_demo_line_installs_what_the_example_imports() -> None:
    installed = _installed_by(_demo_line())
    providers = packages_distributions()
    imported = _imported_by_the_example()
    assert "boto3" in imported, "the example's queue workers use boto3"
    missing = {
        module
        for module in imported
        if not {_name(d) for d in providers.get(module, [])} & installed
    }
    assert not missing, f"the README's demo line does not install {sorted(missing)}"
