"""A run's record: one append-only file that the engine and the shim both write.

``run.jsonl`` in the run directory holds one JSON object per line, each with one key
that says what it is, each written once, in this order:

``{"spec": ...}``     by the engine, creating the file (exclusively: a run starts once);
``{"shim": ...}``     by the shim before the program starts: who supervises the run;
``{"started": ...}``  by the shim once the program runs: its pid, start time and group;
``{"result": ...}``   by the shim when the run is over, flushed to disk with the folder.

One file instead of one per step, because every new file costs a free inode, and on
ext4 without a journal a new file first passes, one by one, the inodes freed in the
last minutes: with runs being deleted as fast as they are made (retention), that was
most of what the file system cost per run. Each line is one ``write`` to a file opened
for appending, so lines never interleave; a reader takes only lines that end in a
newline (compact JSON escapes every newline inside it), so a line being written is
not there yet.

Run directories of earlier versions hold ``spec.json``, ``shim.json``,
``started.json`` and ``result.json`` instead: :func:`read` falls back to them, so that
an engine adopts the runs an earlier version started.

Imported by the run shim: keep it free of heavy imports.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobdeck.execute.spec import (
    RESULT_FILE,
    SHIM_FILE,
    SPEC_FILE,
    STARTED_FILE,
    RunResult,
    ShimInfo,
    read_json,
)
from jobdeck.execute.sysfiles import read_bytes

RECORD_FILE = "run.jsonl"
KINDS = ("spec", "shim", "started", "result")
# How the spec's line begins (each line is one object with one key, see write_line).
SPEC_LINE = b'{"spec":'


@dataclass(frozen=True)
class Record:
    """What a run's record holds so far; None for a part not written (yet)."""

    spec: dict[str, Any] | None = None
    shim: dict[str, Any] | None = None
    started: dict[str, Any] | None = None
    result: dict[str, Any] | None = None

    def shim_info(self) -> ShimInfo | None:
        """Who supervises the run, with the program once it started."""
        if self.shim is None:
            return None
        return ShimInfo.from_json({**self.shim, **self.started} if self.started else self.shim)

    def run_result(self) -> RunResult | None:
        return RunResult.from_json(self.result) if self.result is not None else None


def exists(run_dir: Path) -> bool:
    """True once the engine wrote the run's spec (also an earlier version's)."""
    return (run_dir / RECORD_FILE).exists() or (run_dir / SPEC_FILE).exists()


def create(run_dir: Path, spec: Mapping[str, Any]) -> None:
    """Make the run's folder and its record with the spec as the first line.

    Raises FileExistsError when the folder holds a run already: a run starts once.
    """
    run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if (run_dir / SPEC_FILE).exists():
        raise FileExistsError(f"{run_dir} already holds a run")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
    try:
        # Only the engine's user reads it: it holds the run's environment.
        fd = os.open(run_dir / RECORD_FILE, flags, 0o600)
    except FileExistsError:
        raise FileExistsError(f"{run_dir} already holds a run") from None
    try:
        write_line(fd, "spec", spec)
    finally:
        os.close(fd)


def claim(fd: int, run_dir: Path, shim: Mapping[str, Any]) -> bool:
    """Take the run for the calling shim by appending its ``shim`` line through ``fd``:
    True for the first shim, ever; False when one took the run already (alive, ended or
    dead). The record's lock makes the look and the write one step between shims."""
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        found = read(run_dir, spec=False)
        if found.shim is not None or found.result is not None:
            return False
        write_line(fd, "shim", shim)
        return True
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def unclaimed(run_dir: Path) -> bool:
    """True when the engine wrote the run's spec but no shim took the run yet: the
    engine died between the two, or the shim is on its way."""
    if not (run_dir / RECORD_FILE).exists():
        return False
    found = read(run_dir, spec=False)
    return found.shim is None and found.result is None


def open_for_append(run_dir: Path) -> int:
    """A descriptor to append the shim's lines with (not inherited by the program)."""
    return os.open(run_dir / RECORD_FILE, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)


def write_line(fd: int, kind: str, data: Mapping[str, Any]) -> None:
    """Append one line. Written in one call when the kernel takes it whole (it does
    for files); a short write (a full disk) is continued, and a line left without
    its newline is never read."""
    line = json.dumps({kind: data}, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    view = memoryview(line)
    while view:
        view = view[os.write(fd, view) :]


def flush(fd: int, run_dir: Path) -> None:
    """Make what was appended, and the record's name in its folder, survive a crash."""
    os.fsync(fd)
    dir_fd = os.open(run_dir, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read(run_dir: Path, *, spec: bool = True) -> Record:
    """The run's record as far as it is written; an empty one when there is none.

    ``spec=False`` leaves the spec out (None): it is the record's largest line (the
    run's whole environment), and the engine, which wrote it, reads the rest of the
    record a few times per run.
    """
    try:
        data = read_bytes(run_dir / RECORD_FILE)
    except FileNotFoundError:
        return _read_legacy(run_dir, spec=spec)
    parts: dict[str, dict[str, Any]] = {}
    # The last piece is empty, or a line still being written.
    for line in data.split(b"\n")[:-1]:
        if not spec and line.startswith(SPEC_LINE):
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a line cut short by a full disk, continued by the next one
        if isinstance(entry, dict) and len(entry) == 1:
            ((kind, value),) = entry.items()
            if kind in KINDS and isinstance(value, dict):
                parts.setdefault(kind, value)
    return Record(**parts)


def _read_legacy(run_dir: Path, *, spec: bool = True) -> Record:
    """The four files of a run directory written by an earlier version."""
    return Record(
        spec=read_json(run_dir / SPEC_FILE) if spec else None,
        shim=read_json(run_dir / SHIM_FILE),
        started=read_json(run_dir / STARTED_FILE),
        result=read_json(run_dir / RESULT_FILE),
    )
