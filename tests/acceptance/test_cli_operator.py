"""The command line as an operator meets it: version, global options anywhere, ``--json``
on every verb with a result, completion, a quick start, names that say what they are,
colour on a terminal only, and ``--wait`` that follows the run's output."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.acceptance.conftest import Jobdeck, Result
from tests.acceptance.test_cli_runs import LiveServer, serve_in_a_thread

CATALOG = """\
version: 1
project: operator
pools:
  small: {memory: 128M, max_concurrency: 4}
schedules:
  stale-cache-sweep:
    rate: 1m
    enabled: false
    command: ["python3", "-c", "print('swept')"]
    timeout: 60s
  chatty:
    cron: "0 0 1 1 *"
    command:
      - python3
      - -c
      - |
        import os, time
        print("first line", flush=True)
        while not os.path.exists(os.environ["GATE"]):
            time.sleep(0.05)
        print("second line", flush=True)
    env: {GATE: "@GATE@"}
    timeout: 60s
  broken:
    cron: "0 0 1 1 *"
    command: ["python3", "-c", "import sys; print('it broke'); sys.exit(5)"]
    timeout: 60s
commands:
  breaking-push:
    command: ["python3", "-c", "import sys; print('pushed', sys.argv[1:])", "{title}"]
    params:
      title: {type: string, required: true}
    timeout: 60s
"""

HEAVY = ("sqlalchemy", "alembic", "starlette", "jobdeck.store", "jobdeck.app", "httpx", "rich")


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    yield from serve_in_a_thread(tmp_path, CATALOG)


def on(jobdeck: Jobdeck, live: LiveServer, *args: str, **env: str) -> Result:
    """The CLI against ``live``, with its global options given after the verb."""
    return jobdeck(*args, "--server", live.url, f"--state-dir={live.state_dir}", env=env)


def test_version_and_version_verb(jobdeck: Jobdeck) -> None:
    shown = jobdeck("--version")
    assert shown.code == 0, shown.err
    assert shown.out.startswith("jobdeck ")
    verb = jobdeck("version", "--json")
    assert verb.code == 0
    assert set(verb.json()) == {"jobdeck", "python"}
    assert verb.json()["jobdeck"] == shown.out.split()[1]


def test_help_starts_without_the_engine(jobdeck: Jobdeck) -> None:
    """Importing the CLI pulls neither the store, the engine, nor the web stack."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "jobdeck", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines()}
    assert "jobdeck.cli" in imported
    pulled = sorted(m for m in imported if any(m == h or m.startswith(h + ".") for h in HEAVY))
    assert pulled == []


def test_shell_completion_completes_verbs(jobdeck: Jobdeck) -> None:
    done = jobdeck(
        env={"_JOBDECK_COMPLETE": "complete_bash", "COMP_WORDS": "jobdeck sta", "COMP_CWORD": "1"}
    )
    assert done.code == 0, done.err
    assert done.out.split() == ["status"]
    assert "--install-completion" in jobdeck("--help").out


def test_global_options_anywhere_and_json_on_validate_and_apply(
    jobdeck: Jobdeck, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere.yaml"
    elsewhere.write_text(CATALOG.replace("@GATE@", "/nonexistent"))
    state = tmp_path / "state-anywhere"
    valid = jobdeck("validate", "--json", "-f", str(elsewhere))
    assert valid.code == 0, valid.err
    assert valid.json()["counts"]["schedules"] == 3
    assert valid.json()["valid"] is True

    applied = jobdeck(
        "apply", "--yes", f"--catalog={elsewhere}", "--state-dir", str(state), "--json"
    )
    assert applied.code == 0, applied.err
    document = applied.json()
    assert document["applied"]["number"] == 1
    assert {c["name"] for c in document["plan"]["changes"]} >= {"chatty", "breaking-push"}
    again = jobdeck("apply", "--json", "--yes", "--state-dir", str(state), "-f", str(elsewhere))
    assert again.json()["applied"] is None

    # Without --yes, --json never asks: it refuses.
    fresh = str(tmp_path / "fresh")
    asked = jobdeck("apply", "--json", "--state-dir", fresh, "-f", str(elsewhere))
    assert asked.code == 1
    assert "pass --yes" in asked.err


def test_names_say_what_they_are(jobdeck: Jobdeck, live: LiveServer) -> None:
    command = on(jobdeck, live, "run", "breaking-push")
    assert command.code == 1
    assert "'breaking-push' is a command" in command.err
    assert "jobdeck exec breaking-push" in command.err

    unknown = on(jobdeck, live, "resume", "nosuch")
    assert unknown.code == 1
    assert "no schedule, worker, command or monitor named 'nosuch'" in unknown.err
    not_suspended = on(jobdeck, live, "resume", "chatty")
    assert "schedule chatty is not suspended" in not_suspended.err

    typo = on(jobdeck, live, "suspend", "stale-cache-swep", "--reason", "x")
    assert typo.code == 1
    assert "did you mean 'stale-cache-sweep'?" in typo.err
    assert "chatty" not in typo.err  # the close name, not every name

    nosuch = on(jobdeck, live, "runs", "nosuch")
    assert nosuch.code == 1
    assert "no schedule, worker, command or monitor named 'nosuch'" in nosuch.err
    assert on(jobdeck, live, "runs", "chatty").out == "No runs of chatty yet.\n"

    failed = on(jobdeck, live, "run", "broken", "--wait")
    assert failed.code == 1
    filtered = on(jobdeck, live, "runs", "--status", "timed_out")
    assert filtered.code == 0
    assert filtered.out.startswith("No timed_out runs")


def test_run_wait_streams_the_output_live_and_ends_with_one_summary(
    jobdeck: Jobdeck, live: LiveServer
) -> None:
    """The first line shows up while the run still waits at its gate."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBDECK_")}
    env["JOBDECK_USER"] = "alice"
    follower = subprocess.Popen(
        [sys.executable, "-m", "jobdeck", "run", "chatty", "--wait", "--server", live.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        assert follower.stdout is not None
        seen = b""
        deadline = time.monotonic() + 30
        while b"first line" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([follower.stdout], [], [], 0.5)
            if ready:
                seen += os.read(follower.stdout.fileno(), 4096)
        assert b"first line" in seen
        assert follower.poll() is None  # still following: the run waits at its gate
        live.gate.touch()
        out, err = follower.communicate(timeout=30)
    finally:
        follower.kill()
        follower.wait()
    assert follower.returncode == 0, err
    lines = (seen + out).decode().splitlines()
    run_id = int(lines[0])
    assert lines[1:] == ["first line", "second line"]
    summary = err.decode().splitlines()[-1]
    assert summary.startswith(f"run {run_id}: chatty succeeded (exit 0) after ")


def test_wait_on_failure_points_at_the_logs_in_the_same_format(
    jobdeck: Jobdeck, live: LiveServer
) -> None:
    failed = on(jobdeck, live, "run", "broken", "--wait")
    assert failed.code == 1
    run_id = int(failed.out.splitlines()[0])
    assert failed.out.splitlines()[1:] == ["it broke"]
    err = failed.err.splitlines()
    assert err[-2].startswith(f"run {run_id}: broken failed (exit 5) after ")
    assert err[-1] == f"see its output with: jobdeck logs {run_id}"

    pushed = on(jobdeck, live, "exec", "breaking-push", "title=Hello there", "--wait")
    assert pushed.code == 0, pushed.err
    assert "pushed ['Hello there']" in pushed.out
    command_id = int(pushed.err.splitlines()[0].split()[1].rstrip(":"))
    assert pushed.err.splitlines()[-1].startswith(
        f"run {command_id}: breaking-push succeeded (exit 0) after "
    )

    as_json = on(jobdeck, live, "run", "broken", "--wait", "--json")
    assert as_json.code == 1
    assert as_json.json()["status"] == "failed"
    started = on(jobdeck, live, "run", "broken", "--json")
    assert started.json()["job"] == "broken"


def test_audit_reads_as_key_values_and_run_is_via_cli(jobdeck: Jobdeck, live: LiveServer) -> None:
    assert on(jobdeck, live, "exec", "breaking-push", "title=Big news", "--wait").code == 0
    assert on(jobdeck, live, "run", "broken").code == 0
    entries = on(jobdeck, live, "audit", "--json").json()
    assert [e["via"] for e in entries[:2]] == ["cli", "cli"]
    shown = on(jobdeck, live, "audit").out
    assert 'params.title="Big news"' in shown
    assert "{'" not in shown
    assert "':" not in shown


def test_next_on_a_rate_and_plan_sizes_as_written(jobdeck: Jobdeck, tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(CATALOG)
    shown = jobdeck("next", "stale-cache-sweep", "-f", str(catalog), "--count", "1")
    assert shown.code == 0, shown.err
    assert shown.out.splitlines()[0] == "stale-cache-sweep: every 1m in UTC"
    planned = jobdeck("plan", "-f", str(catalog), "--state-dir", str(tmp_path / "s"))
    assert planned.code == 0, planned.err
    assert 'memory: "128M"' in planned.out
    assert "KiB" not in planned.out
    missing = jobdeck("next", "stale-cache-swep", "-f", str(catalog))
    assert "did you mean 'stale-cache-sweep'?" in missing.err


def test_colour_on_a_terminal_only(jobdeck: Jobdeck, tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(CATALOG)
    args = ("plan", "-f", str(catalog), "--state-dir", str(tmp_path / "s"))
    piped = jobdeck(*args)
    assert "\x1b[" not in piped.out
    forced = jobdeck(*args, env={"FORCE_COLOR": "1"})
    assert "\x1b[32m" in forced.out  # the + lines in green
    both = jobdeck(*args, env={"FORCE_COLOR": "1", "NO_COLOR": "1"})
    assert "\x1b[32m" not in both.out
    plain = [line.rstrip() for line in piped.out.splitlines()]
    assert plain == [line.rstrip() for line in strip_ansi(both.out).splitlines()]


def test_apply_prompt_on_a_terminal_has_no_stray_default(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(CATALOG)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBDECK_", "FORCE_COLOR"))}
    env.update(JOBDECK_USER="alice", NO_COLOR="1", COLUMNS="120")
    main, child = pty.openpty()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jobdeck",
            "apply",
            "-f",
            str(catalog),
            "--state-dir",
            str(tmp_path / "s"),
        ],
        stdin=child,
        stdout=child,
        stderr=child,
        env=env,
    )
    os.close(child)
    seen = b""
    try:
        deadline = time.monotonic() + 30
        while b"applies" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 0.5)
            if ready:
                seen += os.read(main, 4096)
        os.write(main, b"no\n")
        assert process.wait(timeout=30) == 1
    finally:
        process.kill()
        process.wait()
        os.close(main)
    prompt = [line for line in seen.decode().splitlines() if "Apply these changes?" in line]
    assert [line.rstrip() for line in prompt] == ["Apply these changes? Only 'yes' applies:"]
    assert b"[]" not in seen


def strip_ansi(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_json_is_plain_even_when_forced(jobdeck: Jobdeck) -> None:
    done = jobdeck("version", "--json", env={"FORCE_COLOR": "1"})
    assert json.loads(done.out)["jobdeck"]


def test_status_shows_last_runs_pools_and_suspensions_as_the_dashboard_does(
    jobdeck: Jobdeck, live: LiveServer
) -> None:
    assert on(jobdeck, live, "run", "broken", "--wait").code == 1
    held = on(jobdeck, live, "suspend", "chatty", "--reason", "noisy", "--until", "2h")
    assert held.code == 0, held.err
    report = on(jobdeck, live, "status", "--json").json()
    schedules = {s["name"]: s for s in report["schedules"]}
    last = schedules["broken"]["last_run"]
    assert (last["status"], last["trigger"]) == ("failed", "manual")
    assert last["at"].endswith("Z")
    assert "." not in last["at"]  # to the second
    assert schedules["chatty"]["next_fire"] is None
    assert schedules["chatty"]["suspension"]["reason"] == "noisy"
    assert schedules["chatty"]["last_run"] is None
    (pool,) = report["pools"]
    assert (pool["name"], pool["memory_limit"], pool["running"]) == ("small", 128_000_000, 0)
    assert "memory_used" in pool
    assert "." not in report["revision"]["applied_at"]

    text = on(jobdeck, live, "status").out
    rows = {line.split()[0]: line for line in text.splitlines() if line.strip()}
    assert " failed 20" in rows["broken"]
    assert "suspended until " in rows["chatty"]
    assert "SUSPENDED by alice until " in rows["chatty"]
    assert ": noisy" in rows["chatty"]
    assert "never" in rows["stale-cache-sweep"]
    assert "/ 128M" in rows["small"]
    assert re.search(r"\d\d:\d\d:\d\d\.\d", text) is None  # no microseconds
    assert "True" not in text
    assert "False" not in text
    assert " no" in rows["small"]  # warm: a word
