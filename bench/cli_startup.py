"""How long the command line takes to start: ``jobdeck --help`` (the CLI alone) and
``jobdeck status`` (the CLI, the store and the catalog's model, on a SQLite store with
the newsroom example applied), each run as a fresh process as a user runs it.

    python bench/cli_startup.py [--runs N]

Prints {"help_ms": {...}, "status_ms": {...}, "help_imports": [...]} as JSON: the
median, the fastest and the slowest of N runs (default 20), and any heavy module that
``--help`` imported (none is the goal: the store, the engine and the web stack are
imported only by the verbs that use them). The goal for ``--help`` is under 200 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "newsroom" / "jobdeck.yaml"
HEAVY = ("sqlalchemy", "alembic", "starlette", "uvicorn", "jobdeck.store", "jobdeck.app")


def timed(args: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "jobdeck", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
    )
    return (time.perf_counter() - started) * 1000


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(samples), 1),
        "min": round(min(samples), 1),
        "max": round(max(samples), 1),
    }


def heavy_imports(env: dict[str, str], cwd: Path) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "jobdeck", "--help"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    modules = {line.split("|")[-1].strip() for line in done.stderr.splitlines()}
    return sorted(h for h in HEAVY if any(m == h or m.startswith(h + ".") for m in modules))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="jobdeck-cli-bench-"))
    try:
        shutil.copy(EXAMPLE, workdir / "jobdeck.yaml")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBDECK_", "FORCE_"))}
        env["JOBDECK_STATE_DIR"] = str(workdir / "state")
        subprocess.run(
            [sys.executable, "-m", "jobdeck", "apply", "--yes"],
            cwd=workdir,
            env=env,
            stdout=subprocess.DEVNULL,
            check=True,
        )
        timed(["--help"], env, workdir)  # warm the page cache and the bytecode
        timed(["status"], env, workdir)
        help_ms = [timed(["--help"], env, workdir) for _ in range(args.runs)]
        status_ms = [timed(["status"], env, workdir) for _ in range(args.runs)]
        result = {
            "runs": args.runs,
            "help_ms": summary(help_ms),
            "status_ms": summary(status_ms),
            "help_imports": heavy_imports(env, workdir),
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
