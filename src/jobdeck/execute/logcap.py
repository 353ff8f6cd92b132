"""A run's log with a size cap that keeps the head and the tail.

The first half of the cap is written as it comes, so a live reader sees a run's output
at once; the whole output is written while it fits. Past the cap the file is cut back to
the head, the last half of the cap is kept in memory, and on close the log gets a line
that says how much was dropped, then the tail. The beginning (what was started, with
which settings) and the end (why it failed) are what a reader of a failed run needs.
"""

from __future__ import annotations

import os
from pathlib import Path


class CappedLog:
    def __init__(self, path: Path, cap: int) -> None:
        self.cap = cap
        self.head = cap // 2
        self.tail_cap = cap - self.head
        self.total = 0
        self._tail = bytearray()
        self._overflowed = False
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)

    def write(self, data: bytes) -> None:
        written = self.total  # all of it is in the file until the first overflow
        self.total += len(data)
        self._tail += data
        if len(self._tail) > self.tail_cap:
            del self._tail[: len(self._tail) - self.tail_cap]
        if self._overflowed:
            return
        if self.total <= self.cap:
            os.write(self._fd, data)
            return
        self._overflowed = True
        if written < self.head:
            os.write(self._fd, data[: self.head - written])
        os.ftruncate(self._fd, self.head)

    @property
    def dropped(self) -> int:
        return self.total - self.head - len(self._tail) if self._overflowed else 0

    def close(self) -> None:
        if self._overflowed:
            os.write(
                self._fd,
                f"\n[jobdeck: {self.dropped} bytes of output dropped here; the log keeps "
                f"the first {self.head} and the last {len(self._tail)} of "
                f"{self.total} bytes]\n".encode(),
            )
            os.write(self._fd, bytes(self._tail))
        os.fsync(self._fd)
        os.close(self._fd)
