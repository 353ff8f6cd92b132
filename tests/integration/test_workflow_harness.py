"""Shared helpers for the run workflow tests: a real store, real shims, a job that
leaves start and end marks, polling with deadlines, and strict clean-up."""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from jobdeck.catalog.load import load_catalog_text
from jobdeck.catalog.model import Catalog
from jobdeck.clock import Clock, SystemClock
from jobdeck.execute.executor import Executor
from jobdeck.execute.pools import Mode
from jobdeck.execute.proc import is_alive
from jobdeck.store import Store, open_store
from jobdeck.store.records import Run, RunEvent
from jobdeck.workflow.driver import Applied, RunDriver
from tests.integration.test_execute_harness import Harness

PY = sys.executable
ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
HOST = "test-host"
T0 = datetime(2026, 3, 8, 10, 0, tzinfo=UTC)

# The job: marks its start, then holds, sleeps or spins a grandchild, marks its end.
# Marks are files named after the run id holding time.time(), so a test can prove
# what ran when, also for runs that were killed (no end mark, a "term" mark maybe).
JOB = textwrap.dedent(
    """
    import os, signal, subprocess, sys, time
    from pathlib import Path

    marks = Path(sys.argv[1])
    args = sys.argv[2:]
    run = os.environ["JOBDECK_RUN_ID"]

    def mark(what):
        # Written aside and renamed: a reader sees a whole mark or none.
        aside = marks / f".{run}.{what}"
        aside.write_text(repr(time.time()))
        aside.rename(marks / f"{run}.{what}")

    def on_term(signum, frame):
        mark("term")
        sys.exit(143)

    if "--ignore-term" in args:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, on_term)
    mark("start")
    print(f"run {run} started", flush=True)
    if "--echo" in args:
        print("echo:", args[args.index("--echo") + 1], flush=True)
    if "--grandchild" in args:
        child = subprocess.Popen(["sleep", "300"])
        (marks / f".{run}.grandchild").write_text(str(child.pid))
        (marks / f".{run}.grandchild").rename(marks / f"{run}.grandchild")
    if "--hold" in args:
        gate = Path(args[args.index("--hold") + 1])
        while not gate.exists():
            time.sleep(0.02)
    if "--sleep" in args:
        time.sleep(float(args[args.index("--sleep") + 1]))
    code = int(args[args.index("--exit") + 1]) if "--exit" in args else 0
    print(f"run {run} ending with {code}", flush=True)
    mark("end")
    sys.exit(code)
    """
)


async def until(check: Callable[[], bool], what: str, within: float = 30.0) -> None:
    """Poll ``check`` (letting the event loop run the driver) until true or the deadline."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.02)


@dataclass
class Notice:
    targets: list[str]
    run: Run
    tail: str


class Deck:
    """The run side of one engine on a state dir: a store, an executor, a driver."""

    def __init__(
        self,
        root: Path,
        catalog_yaml: str,
        harness: Harness,
        *,
        load: bool = True,
        store_url: str | None = None,
        mode: Mode = "auto",
        clock: Clock | None = None,
        notify: Callable[[list[str], Run, str], None] | None = None,
    ) -> None:
        self.root = root
        self.state = root / "state"
        self.marks = root / "marks"
        self.marks.mkdir(exist_ok=True)
        self.job = root / "job.py"
        self.job.write_text(JOB)
        self.harness = harness
        self.catalog = self.parse(catalog_yaml)
        self.notices: list[Notice] = []
        self.errors: list[BaseException] = []
        self.store: Store = open_store(store_url, state_dir=self.state)
        self.executor = Executor(
            self.state, harness.instance, self.catalog.pools, base_env=ENV, mode=mode
        )
        harness.managers.append(self.executor.pools)
        self.driver = RunDriver(
            self.store,
            clock or SystemClock(),
            self.executor,
            host=HOST,
            notify=notify or self._notify,
            on_error=self.errors.append,
        )
        self.applied = Applied(1, self.catalog, root)
        if load:
            self.driver.load(self.applied)

    def parse(self, catalog_yaml: str) -> Catalog:
        """The catalog of ``catalog_yaml``, where ``JOB`` opens an argv of the test job."""
        text = catalog_yaml.replace("JOB", f"[{PY!r}, {str(self.job)!r}, {str(self.marks)!r}")
        return load_catalog_text(textwrap.dedent(text)).catalog

    def _notify(self, targets: list[str], run: Run, tail: str) -> None:
        self.notices.append(Notice(targets, run, tail))

    # -- reading what happened ------------------------------------------------------

    def run(self, run_id: int) -> Run:
        found = self.store.runs.run(run_id)
        assert found is not None
        return found

    def runs(self, job: str) -> list[Run]:
        """The job's runs, oldest first."""
        return list(reversed(self.store.runs.runs(job=job, limit=1000)))

    def events(self, run_id: int) -> list[RunEvent]:
        return self.store.runs.events(run_id)

    def event_types(self, run_id: int) -> list[str]:
        return [event.type for event in self.events(run_id)]

    def mark(self, run_id: int, what: str) -> float | None:
        path = self.marks / f"{run_id}.{what}"
        return float(path.read_text()) if path.exists() else None

    def started(self, run_id: int) -> bool:
        return self.mark(run_id, "start") is not None

    def ended(self, run_id: int) -> bool:
        return not self.run(run_id).active

    async def wait_running(self, run_id: int) -> None:
        """Until the program has started and the driver has recorded it running."""
        await until(lambda: self.started(run_id), f"run {run_id}'s program to start")
        await until(lambda: self.run(run_id).status == "running", f"run {run_id} to run")

    async def wait_ended(self, run_id: int, within: float = 30.0) -> Run:
        await until(lambda: self.ended(run_id), f"run {run_id} to end", within)
        return self.run(run_id)

    def log(self, run_id: int) -> str:
        path = self.executor.run_dir(run_id) / "log"
        return path.read_text() if path.exists() else ""

    def gate(self, name: str = "gate") -> Path:
        return self.root / name

    async def close(self) -> None:
        """Stop watching (as at shutdown); the runs themselves are not touched."""
        await self.driver.aclose()
        self.store.close()
        assert not self.errors, self.errors


def finish(harness: Harness, decks: list[Deck]) -> None:
    """After a test: every shim and program must be gone, every run cgroup removed."""
    for deck in decks:
        runs_dir = deck.state / "runs"
        if runs_dir.exists():
            harness.run_dirs.extend(sorted(runs_dir.iterdir()))
    harness.cleanup()


def ended_at(run: Run) -> datetime:
    assert run.ended_at is not None
    return run.ended_at


def seconds(delta: timedelta) -> float:
    return delta.total_seconds()


def detail(run: Run, key: str) -> Any:
    return run.detail.get(key)


class Decks:
    """Makes the decks of one test and cleans up after it, whatever happened."""

    def __init__(self, root: Path, store_url: str | None = None) -> None:
        self.root = root
        self.store_url = store_url  # None: SQLite in the state dir
        self.harness = Harness(root)
        self.made: list[Deck] = []

    def __call__(
        self,
        catalog_yaml: str,
        *,
        load: bool = True,
        mode: Mode = "auto",
        clock: Clock | None = None,
        notify: Callable[[list[str], Run, str], None] | None = None,
    ) -> Deck:
        deck = Deck(
            self.root,
            catalog_yaml,
            self.harness,
            load=load,
            store_url=self.store_url,
            mode=mode,
            clock=clock,
            notify=notify,
        )
        self.made.append(deck)
        return deck

    def cleanup(self) -> None:
        for deck in self.made:
            deck.store.close()
        launchers = [pid for deck in self.made for pid in deck.executor.stop_launchers()]
        deadline = time.monotonic() + 15
        while any(is_alive(pid, None) for pid in launchers) and time.monotonic() < deadline:
            time.sleep(0.02)
        left = [pid for pid in launchers if is_alive(pid, None)]
        finish(self.harness, self.made)
        assert not left, f"warm launchers still alive: {left}"
