"""What keeps a large catalog small in memory, a server without Slack free of Bolt, and
the warm launcher (every shim is a fork of it) and the scheduler's timer free of what
only the engine needs."""

from __future__ import annotations

import ast
import subprocess
import sys

from jobdeck.catalog.load import load_catalog_text

CATALOG = """\
version: 1
project: footprint
timezone: Europe/Paris
defaults:
  timeout: 5m
schedules:
  a: {rate: 1m, command: [/bin/true]}
  b: {rate: 2m, command: [/bin/true]}
  c: {cron: "0 * * * *", command: [/bin/true]}
  d: {cron: "5 * * * *", command: [/bin/true]}
  e: {rate: 3m, command: [/bin/true], description: other fields given}
"""


def test_schedules_given_the_same_fields_share_one_set_of_their_names() -> None:
    first = load_catalog_text(CATALOG).catalog.schedules
    second = load_catalog_text(CATALOG).catalog.schedules
    # Validated models (a, b) and copies made by the defaults (c, d) alike.
    assert first["a"].model_fields_set is first["b"].model_fields_set
    assert first["a"].model_fields_set is second["a"].model_fields_set
    assert first["c"].model_fields_set is first["d"].model_fields_set
    assert first["c"].model_fields_set is second["d"].model_fields_set
    # ...but never with a model given other fields.
    assert "timezone" in first["c"].model_fields_set
    assert "timezone" not in first["a"].model_fields_set
    assert "description" in first["e"].model_fields_set
    assert "description" not in first["a"].model_fields_set


def test_a_copy_with_changes_leaves_the_shared_set_alone() -> None:
    schedules = load_catalog_text(CATALOG).catalog.schedules
    before = set(schedules["a"].model_fields_set)
    changed = schedules["a"].model_copy(update={"description": "changed"})
    assert "description" in changed.model_fields_set
    assert schedules["a"].model_fields_set == before
    assert schedules["b"].model_fields_set == before


def _loaded(imports: str, packages: tuple[str, ...]) -> list[str]:
    """The modules of ``packages`` that a fresh interpreter holds after ``imports``."""
    probe = (
        f"import sys\n{imports}\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {packages!r}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return list(ast.literal_eval(done.stdout.strip()))


def test_the_server_imports_slack_bolt_only_when_slack_is_configured() -> None:
    imports = (
        "from jobdeck.app import Application\n"
        "import jobdeck.api.service, jobdeck.cli.serve_cmds\n"
        "from jobdeck.slack import SlackSettings\n"
        "assert SlackSettings.from_env({}) is None"
    )
    assert _loaded(imports, ("slack_bolt", "slack_sdk")) == []


def test_the_warm_launcher_holds_only_what_its_shims_need() -> None:
    """Every shim is a fork of the launcher and pays for its size: the page tables
    copied at the fork and torn down at the exit. asyncio (with ssl and logging) is the
    engine's, imported where the engine uses it; so are subprocess and threading, whose
    handler would run in every shim after its fork (the shim spawns with posix_spawn)."""
    heavy = (
        "asyncio",
        "ssl",
        "logging",
        "concurrent",
        "pydantic",
        "sqlalchemy",
        "subprocess",
        "threading",
    )
    assert _loaded("import jobdeck.execute.warm, jobdeck.execute.shim", heavy) == []


def test_the_schedulers_timer_holds_only_the_fire_queue() -> None:
    """The timer is a process of the server's that lives as long as it: it holds the
    schedules' cadences, not the catalog's models, the store or an event loop."""
    heavy = ("asyncio", "ssl", "logging", "pydantic", "sqlalchemy", "ruamel")
    assert _loaded("import jobdeck.schedule.timer", heavy) == []
    ours = _loaded("import jobdeck.schedule.timer", ("jobdeck",))
    assert {m.rsplit(".", 1)[0] for m in ours} == {"jobdeck", "jobdeck.schedule"}
