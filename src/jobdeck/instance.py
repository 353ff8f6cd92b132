"""One engine's instance: its name, and the locks that keep a second engine off its state
dir and its SQLite store. Light, for the CLI as well as the engine."""

from __future__ import annotations

import fcntl
import hashlib
import os
from pathlib import Path
from typing import IO


def instance_name(state_dir: Path, store_url: str | None) -> str:
    """Keeps the cgroups and run ownership of two engines on one host apart."""
    key = f"{state_dir.resolve()}|{store_url or ''}"
    return "e" + hashlib.sha256(key.encode()).hexdigest()[:11]


class EngineBusy(Exception):
    """Another engine holds a lock that this one needs: the message says which (its
    pid) and what to do instead."""


class EngineLock:
    """Exclusive ``flock`` locks held for an engine's whole life.

    The kernel releases them when the process ends, ``kill -9`` included, so a stale lock
    never blocks a restart. Each file holds the pid of the engine that has it, for the
    message of the one that is refused.
    """

    def __init__(self) -> None:
        self._files: list[IO[str]] = []

    def take(self, path: Path, refusal: str) -> None:
        """Locks ``path``, or raises :class:`EngineBusy` with ``refusal`` formatted with
        ``pid`` (the holder's, or "unknown")."""
        handle = path.open("a+", encoding="ascii")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise EngineBusy(refusal.format(pid=holder)) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._files.append(handle)

    def release(self) -> None:
        for handle in self._files:
            handle.close()
        self._files.clear()


def lock_engine(state_dir: Path, sqlite_file: Path | None) -> EngineLock:
    """The locks of one ``jobdeck serve``: its state dir (its runs, logs and cgroups are
    its own), and an SQLite store's file, which takes one engine."""
    lock = EngineLock()
    try:
        if sqlite_file is not None:
            lock.take(
                sqlite_file.with_name(sqlite_file.name + ".engine.lock"),
                f"another jobdeck serve (pid {{pid}}) is running on the SQLite store "
                f"{sqlite_file}; an SQLite store takes one engine. To run several engines, "
                "give them one PostgreSQL store (--store postgresql://...), each with its "
                "own --state-dir (see docs/ha.md)",
            )
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock.take(
            state_dir / "engine.lock",
            f"another jobdeck serve (pid {{pid}}) is using the state dir {state_dir}; "
            "each engine needs a state dir of its own (--state-dir)",
        )
    except BaseException:
        lock.release()
        raise
    return lock
