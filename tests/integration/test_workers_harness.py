"""Shared helpers for the worker tests: real engines (Applications) on one store and
state dir, a worker program that logs its lifetime, polling with deadlines, and a
clean-up that proves no worker process is left behind."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import textwrap
import time
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

from jobdeck.app import Application, Options
from jobdeck.catalog.load import load_catalog_text
from jobdeck.control import Control
from jobdeck.execute.launch import shim_info
from jobdeck.execute.proc import is_alive
from jobdeck.status import collect_status
from jobdeck.store import Store
from jobdeck.store.records import Run
from jobdeck.workers.supervisor import Backoff

PY = sys.executable
ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}

# The worker: appends "start PID T" when it begins and "end PID T" when it ends (also on
# SIGTERM, after its optional --term-delay), so a test can prove which processes were
# alive when. --exit-after S CODE ends it by itself; --ignore-term makes it wait for
# SIGKILL; --sqs consumes JOBDECK_QUEUE_URL with plain boto3 (see SQS below).
PROGRAM = textwrap.dedent(
    """
    import os, signal, sys, time
    from pathlib import Path

    args = sys.argv[1:]
    life = Path(args[0])
    pid = os.getpid()

    def note(what):
        with open(life, "a") as out:
            out.write(f"{what} {pid} {time.time()!r} {os.environ.get('JOBDECK_RUN_ID')}\\n")

    def option(name, default=None):
        return args[args.index(name) + 1] if name in args else default

    def on_term(signum, frame):
        note("term")
        time.sleep(float(option("--term-delay", "0")))
        note("end")
        sys.exit(143)

    if "--ignore-term" in args:
        signal.signal(signal.SIGTERM, lambda s, f: note("term"))
    else:
        signal.signal(signal.SIGTERM, on_term)
    note("start")
    print("worker", pid, "started", flush=True)
    if "--sqs" in args:
        import sqs_loop
        sqs_loop.main(Path(option("--sqs")), note)
    if "--exit-after" in args:
        time.sleep(float(option("--exit-after")))
        note("end")
        sys.exit(int(option("--code", "0")))
    while True:
        time.sleep(0.05)
    """
)

# What the --sqs worker does with each message, with plain boto3 as on AWS: it holds
# while the file "hold" exists in its folder; with "hang-once" it takes one message and
# hangs (the test kills it mid-message); otherwise it records the body and deletes it.
SQS = textwrap.dedent(
    """
    import json, os, time
    import boto3

    def main(folder, note):
        sqs = boto3.client("sqs")
        url = os.environ["JOBDECK_QUEUE_URL"]
        while True:
            if (folder / "hold").exists():
                time.sleep(0.05)
                continue
            got = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=1,
                AttributeNames=["ApproximateReceiveCount"],
            )
            for message in got.get("Messages", []):
                count = message["Attributes"]["ApproximateReceiveCount"]
                record = {"body": message["Body"], "count": int(count), "at": time.time(),
                          "pid": os.getpid()}
                with open(folder / "received", "a") as out:
                    out.write(json.dumps(record) + "\\n")
                if (folder / "hang-once").exists():
                    (folder / "hang-once").unlink()
                    note("hanging")
                    while True:
                        time.sleep(1)
                time.sleep(float(os.environ.get("WORK_SECONDS", "0")))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                with open(folder / "done", "a") as out:
                    out.write(json.dumps(record) + "\\n")
    """
)


async def until(check: Callable[[], Any], what: str, within: float = 30.0) -> Any:
    """Poll ``check`` (letting the event loop run the engine) until truthy or the deadline."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.05)


def _gone(pid: int | None, started: int | None) -> bool:
    return not is_alive(pid, started)


class Lifetimes:
    """The lifetime log that every worker process appends to."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def entries(self) -> list[tuple[str, int, float, str]]:
        if not self.path.exists():
            return []
        found = []
        for line in self.path.read_text().splitlines():
            what, pid, at, run = line.split()
            found.append((what, int(pid), float(at), run))
        return found

    def starts(self) -> list[tuple[int, float, str]]:
        return [(pid, at, run) for what, pid, at, run in self.entries() if what == "start"]

    def alive(self) -> set[int]:
        """Processes that started and have not logged their end."""
        living: set[int] = set()
        for what, pid, _, _ in self.entries():
            if what == "start":
                living.add(pid)
            elif what == "end":
                living.discard(pid)
        return living

    def max_overlap(self) -> int:
        """The most processes alive at once, by the log (a start while another process
        has not ended counts both)."""
        living: set[int] = set()
        most = 0
        for what, pid, _, _ in sorted(self.entries(), key=lambda e: e[2]):
            if what == "start":
                living.add(pid)
                most = max(most, len(living))
            elif what == "end":
                living.discard(pid)
        return most


class Engine:
    """One engine: an Application on the test's state dir and store, running its loops."""

    def __init__(
        self,
        root: Path,
        store_url: str | None,
        *,
        sqs_url: str | None = None,
        backoff: Backoff | None = None,
        cooldown: timedelta | None = None,
        environ: dict[str, str] | None = None,
    ) -> None:
        self.app = Application(
            Options(
                state_dir=root / "state",
                store_url=store_url,
                sqs_url=sqs_url,
                isolation="rlimit",
                environ={
                    **ENV,
                    "PYTHONPATH": str(root),
                    "JOBDECK_PASS_ENV": "PYTHONPATH",
                    **(environ or {}),
                },
            )
        )
        supervisor = self.app.supervisor
        supervisor.tick = timedelta(milliseconds=200)
        supervisor.backoff = backoff or Backoff(base=timedelta(milliseconds=200))
        supervisor.cooldown = cooldown
        self.errors: list[BaseException] = []
        self.task: asyncio.Task[None] | None = None

    @property
    def store(self) -> Store:
        return self.app.store

    async def start(self) -> Engine:
        await self.app.start()
        self.task = asyncio.create_task(self.app.run())
        return self

    async def drop(self) -> None:
        """Stop the engine as a crash or restart would leave things: processes go on."""
        if self.task is not None:
            self.app.stop()
            await self.task
            self.task = None
        await self.app.aclose()

    def workers(self) -> dict[str, dict[str, Any]]:
        return self.app.supervisor.overview()

    def runs(self, job: str) -> list[Run]:
        """The job's runs, oldest first."""
        return list(reversed(self.store.runs.runs(job=job, kind="worker", limit=1000)))

    def running(self, job: str) -> list[Run]:
        return [
            r for r in self.store.runs.active_runs(job=job, kind="worker") if r.status == "running"
        ]

    def status(self) -> dict[str, Any]:
        """``jobdeck status``'s document, from the store alone."""
        from datetime import UTC, datetime

        now = datetime.now(UTC)
        with self.store.reading() as tx:
            depth = tx.queues.queue_counts(int(now.timestamp() * 1000))
            live = tx.workers.worker_overview()
        return collect_status(
            self.store.revisions.latest_revision(),
            self.store.suspensions.suspensions(now),
            now,
            depth,
            live,
        )

    def worker_status(self, name: str) -> dict[str, Any]:
        found: list[dict[str, Any]] = [w for w in self.status()["workers"] if w["name"] == name]
        assert found, f"no worker {name} in status"
        return found[0]


class Deck:
    """The engines of one test on one state dir and store, and the clean-up after it."""

    def __init__(self, root: Path, store_url: str | None) -> None:
        self.root = root
        self.store_url = store_url
        self.program = root / "worker.py"
        self.program.write_text(PROGRAM)
        (root / "sqs_loop.py").write_text(SQS)
        self.life = Lifetimes(root / "lifetimes")
        self.engines: list[Engine] = []
        self.catalog_path = root / "jobdeck.yaml"

    def argv(self, *args: str) -> str:
        """A YAML flow list: the worker program with ``args``."""
        parts = [PY, str(self.program), str(self.life.path), *args]
        return "[" + ", ".join(repr(p) for p in parts) + "]"

    async def engine(self, **options: Any) -> Engine:
        made = Engine(self.root, self.store_url, **options)
        self.engines.append(made)
        return await made.start()

    def apply(self, engine: Engine, catalog: str) -> None:
        text = textwrap.dedent(catalog)
        self.catalog_path.write_text(text)
        loaded = load_catalog_text(text, str(self.catalog_path))
        Control(engine.store, engine.app.clock, "tester@test", "cli").apply(loaded)

    async def suspend(self, engine: Engine, name: str) -> None:
        ctl = Control(engine.store, engine.app.clock, "tester@test", "cli")
        ctl.suspend(name, "testing a suspension")

    async def cleanup(self) -> None:
        """Stop every worker through the last live engine, then prove nothing is left
        (killing what is, so that one failure does not leak into other tests)."""
        live = [e for e in self.engines if e.task is not None]
        problems: list[str] = []
        for engine in live[-1:]:
            with contextlib.suppress(Exception):
                await engine.app.supervisor.stop_all(within=60)
        for engine in live:
            await engine.drop()
            problems += [repr(e) for e in engine.errors]
        runs_dir = self.root / "state" / "runs"
        for run_dir in sorted(runs_dir.iterdir()) if runs_dir.exists() else []:
            info = shim_info(run_dir)
            if info is None:
                continue
            for pid, started in (
                (info.shim_pid, info.shim_start),
                (info.child_pid, info.child_start),
            ):
                with contextlib.suppress(AssertionError):
                    await until(partial(_gone, pid, started), f"pid {pid} to exit", 15)
                if is_alive(pid, started):
                    problems.append(f"run {run_dir.name}: pid {pid} still alive")
                    assert pid is not None
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
        for engine in self.engines:
            engine.store.close()
        assert not problems, problems
