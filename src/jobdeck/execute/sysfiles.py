"""Small files read and written whole with plain system calls.

The files of ``/proc`` and of the cgroup file systems, and a run's JSON files, are a
few hundred bytes. ``Path.read_text`` spends nine system calls and a text-file object
on each (fstat, ioctl, seeks); a run shim touches about twenty such files per run, and
every run has one. Here it is open, read until the end, close.

This module is imported by the run shim: keep it free of imports beyond ``os``.
"""

from __future__ import annotations

import os

StrPath = str | os.PathLike[str]
CHUNK = 65536


def read_bytes(path: StrPath) -> bytes:
    """The whole file; raises OSError like ``open`` does."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, CHUNK):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def read_text(path: StrPath) -> str:
    return read_bytes(path).decode()


def write_text(path: StrPath, text: str) -> None:
    """Replace the file's content with ``text`` (created if missing, as ``open(path,
    "w")`` would); a kernel file takes it in one write or refuses it."""
    data = text.encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
