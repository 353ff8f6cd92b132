"""The command line as users run it: validate, schema, plan, apply, revisions, next."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
from ruamel.yaml import YAML

from jobdeck.catalog.load import load_catalog
from tests.acceptance.conftest import EXAMPLE, Jobdeck


def test_validate_counts_what_the_catalog_declares(jobdeck: Jobdeck) -> None:
    result = jobdeck("validate")
    assert result.code == 0, result.err
    counts = load_catalog(EXAMPLE).catalog.counts()
    assert counts["schedules"] >= 4
    assert result.out == (
        f"ok: {counts['schedules']} schedules, {counts['workers']} workers, "
        f"{counts['commands']} commands, {counts['queues']} queues, {counts['pools']} pools\n"
    )


def test_validate_reports_every_error_with_its_position(jobdeck: Jobdeck, workdir: Path) -> None:
    (workdir / "broken.yaml").write_text(
        "version: 1\n"
        "project: demo\n"
        "schedules:\n"
        "  a:\n"
        "    cron: '61 * * * *'\n"
        "    command: [x]\n"
        "    timout: 5m\n"
    )
    result = jobdeck("-f", "broken.yaml", "validate")
    assert result.code == 2
    lines = result.err.splitlines()
    assert lines[0].startswith("broken.yaml:5:11: error: schedules.a.cron: invalid cron")
    assert lines[1] == (
        "broken.yaml:7:5: error: schedules.a: unknown key 'timout'; did you mean 'timeout'?"
    )
    assert lines[2] == "2 errors; nothing was changed."
    assert result.out == ""


def test_missing_catalog_file_is_a_clear_error(jobdeck: Jobdeck) -> None:
    result = jobdeck("-f", "nope.yaml", "validate")
    assert result.code == 2
    assert "nope.yaml:1:1: error: no such file" in result.err


def test_schema_is_a_json_schema_that_accepts_the_example(jobdeck: Jobdeck, workdir: Path) -> None:
    result = jobdeck("schema")
    assert result.code == 0
    schema = result.json()
    jsonschema.Draft202012Validator.check_schema(schema)
    example = YAML(typ="safe").load((workdir / "jobdeck.yaml").read_text())
    jsonschema.validate(example, schema)
    example["schedules"]["ranking-aggregate"]["overlap"] = "sometimes"
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(example))
    assert errors


def test_plan_then_apply_then_nothing_to_do(jobdeck: Jobdeck) -> None:
    plan = jobdeck("plan")
    assert plan.code == 0, plan.err
    assert "Comparing the catalog with nothing applied yet." in plan.out
    assert "  + schedule ranking-aggregate" in plan.out
    items = sum(load_catalog(EXAMPLE).catalog.counts().values())
    assert plan.out.rstrip().endswith(f"Plan: {items} to add, 0 to change, 0 to remove.")

    as_json = jobdeck("plan", "--json").json()
    assert {k: as_json["changes"][0][k] for k in ("action", "kind", "name")} == {
        "action": "add",
        "kind": "pool",
        "name": "batch",
    }
    assert as_json["suspensions"] == []

    applied = jobdeck("apply", "--yes")
    assert applied.code == 0, applied.err
    assert "Applied revision 1" in applied.out

    again = jobdeck("apply", "--yes")
    assert again.code == 0
    assert "No changes." in again.out
    revisions = jobdeck("revisions", "--json").json()
    assert [r["number"] for r in revisions] == [1]
    assert revisions[0]["applied_by"] == "alice"


def test_apply_refuses_without_yes_off_a_terminal_and_changes_nothing(
    jobdeck: Jobdeck, workdir: Path
) -> None:
    result = jobdeck("apply", stdin="yes\n")
    assert result.code == 1
    assert "pass --yes" in result.err
    assert jobdeck("revisions", "--json").json() == []
    assert jobdeck("audit", "--json").json() == []


def test_apply_asks_on_a_terminal(workdir: Path) -> None:
    for answer, expected_code in (("no", 1), ("yes", 0)):
        main, child = pty.openpty()
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOBDECK_")}
        proc = subprocess.Popen(
            [sys.executable, "-m", "jobdeck", "apply"],
            cwd=workdir,
            stdin=child,
            stdout=child,
            stderr=child,
            env={**env, "JOBDECK_USER": "tty-user"},
        )
        os.close(child)
        output = _read_until(main, b"Only 'yes' applies")
        os.write(main, answer.encode() + b"\n")
        output += _read_until(main, None)
        assert proc.wait(timeout=30) == expected_code, output
        os.close(main)
    assert b"Applied revision 1" in output


def _read_until(fd: int, marker: bytes | None, timeout: float = 30) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        data += chunk
        if marker is not None and marker in data:
            return data
    if marker is not None:
        raise AssertionError(f"never saw {marker!r} in {data!r}")
    return data


def test_apply_records_git_describe_in_a_git_tree(jobdeck: Jobdeck, workdir: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=workdir, check=True, capture_output=True)

    git("init", "-q")
    git("-c", "user.email=a@b", "-c", "user.name=a", "add", "jobdeck.yaml")
    git("-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "catalog")
    with (workdir / "jobdeck.yaml").open("a") as handle:
        handle.write("# a local edit\n")
    assert jobdeck("apply", "--yes").code == 0
    (revision,) = jobdeck("revisions", "--json").json()
    assert revision["git_describe"].endswith("-dirty")


def test_next_fire_times_in_zone_and_utc(jobdeck: Jobdeck) -> None:
    result = jobdeck(
        "next", "ranking-aggregate", "--count", "3", "--from", "2026-11-28T23:55:00+09:00", "--json"
    )
    assert result.code == 0, result.err
    assert result.json()["fires"] == [
        # the example's ranking runs every minute, in Asia/Tokyo
        {"local": "2026-11-28T23:56:00+09:00", "utc": "2026-11-28T14:56:00Z"},
        {"local": "2026-11-28T23:57:00+09:00", "utc": "2026-11-28T14:57:00Z"},
        {"local": "2026-11-28T23:58:00+09:00", "utc": "2026-11-28T14:58:00Z"},
    ]
    text = jobdeck("next", "sitemap-rebuild", "--count", "1", "--from", "2026-11-28T00:00:00")
    assert "2026-11-28 03:30:00 JST (+0900)" in text.out
    assert "2026-11-27T18:30:00Z" in text.out
    unknown = jobdeck("next", "nope")
    assert unknown.code == 1
    assert "no schedule named 'nope'" in unknown.err
