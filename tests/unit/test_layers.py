"""The layout is the architecture: every import of a jobdeck package points down.

The packages (and top-level modules) of ``src/jobdeck`` stand on floors, leaves at the
bottom, the command line at the top; a module may import only what stands on a lower
floor (or its own package). Imports under ``TYPE_CHECKING`` count too: a type is a
dependency. docs/architecture.md draws the same floors.
"""

from __future__ import annotations

import ast
from pathlib import Path

import jobdeck

ROOT = Path(jobdeck.__file__).parent

# Bottom first. A package may import those on lower floors only, never its own floor.
FLOORS: list[set[str]] = [
    {"clock", "units", "cadence", "instance"},  # leaves: time, units, cron and rate maths
    {"catalog", "store"},  # the model of the file, and the store's interface and backends
    {"execute", "notify", "queues", "queue_depth"},  # processes and pools; notices; SQS
    {"workflow", "workers", "control", "cluster"},  # runs, workers, plan/apply, nodes
    {"schedule", "commands", "status", "outbox"},  # the timer, invocations, summary, outbox
    {"app"},  # wires one application object
    {"slack"},  # an adapter: Slack's requests to the invocation path
    {"api", "targets"},  # adapters: HTTP, AWS
    {"cli"},
    {"__main__"},
]


def floor_of(unit: str) -> int:
    for number, names in enumerate(FLOORS):
        if unit in names:
            return number
    raise AssertionError(f"{unit} stands on no floor: add it to FLOORS and the docs")


def unit_of(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return parts[0]


def imported_units(path: Path) -> set[str]:
    units: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "jobdeck":
                units.update(alias.name for alias in node.names)
            elif node.module.startswith("jobdeck."):
                units.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("jobdeck."):
                    units.add(alias.name.split(".")[1])
    return units


def sources() -> list[Path]:
    return [p for p in ROOT.rglob("*.py") if "migrations" not in p.parts]


def test_every_unit_stands_on_a_floor() -> None:
    for path in sources():
        if path.parent != ROOT or path.stem != "__init__":
            floor_of(unit_of(path))


def test_every_import_points_down() -> None:
    upward: list[str] = []
    for path in sources():
        if path.parent == ROOT and path.stem == "__init__":
            continue
        mine = unit_of(path)
        for other in imported_units(path) - {mine}:
            if floor_of(other) >= floor_of(mine):
                upward.append(f"{path.relative_to(ROOT)}: {mine} -> {other}")
    assert not upward, "imports that do not point down:\n" + "\n".join(sorted(upward))


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    """The rule can fail: a catalog module that imports the store is caught."""
    module = tmp_path / "bad.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from jobdeck.store.records import Run\n"
    )
    assert imported_units(module) == {"store"}
    assert floor_of("store") >= floor_of("catalog")


def test_no_sqlalchemy_outside_the_store() -> None:
    outside = [
        str(path.relative_to(ROOT))
        for path in sources()
        if unit_of(path) != "store" and "sqlalchemy" in _top_modules(path)
    ]
    assert not outside


def _top_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
    return found
