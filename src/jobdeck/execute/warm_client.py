"""The engine's handle on a pool's warm launcher (:mod:`jobdeck.execute.warm`): start it
when none answers, replace one of an earlier version, ask it for a run's shim and wait
for the program's start.

A module of its own so that the launcher process, every shim's parent, holds none of
this (nor ``threading``, which it imports).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

from jobdeck.execute import record
from jobdeck.execute.launch import RunHandle, wait_started
from jobdeck.execute.spec import RunSpec
from jobdeck.execute.warm import (
    CONNECT_TIMEOUT,
    REPLY_TIMEOUT,
    STARTED,
    VERSION,
    VERSION_REQUEST,
    _answers,
)


class WarmLaunchError(Exception):
    """The launcher refused the run or stopped answering after it was asked."""


class LauncherUnreachable(Exception):
    """No launcher answers and none could be started; nothing was written or asked: the
    caller may start the run the cold way."""


class WarmLauncher:
    """The engine's handle on one pool's launcher; starts it when it is not running."""

    def __init__(self, socket_path: Path, *, python: str = sys.executable) -> None:
        self.socket_path = socket_path
        self.python = python
        # Launches run in worker threads: two of them must not both start a launcher.
        self._starting = threading.Lock()
        # Launchers this engine started are its children while it lives: reaped here
        # once they exit, so that replacing one leaves no zombie behind.
        self._started: list[int] = []
        # The launcher that answers was asked its version (or started here): the
        # connections after that need no question first.
        self._checked = False

    def _reap(self, wait: float = 0.0) -> None:
        deadline = time.monotonic() + wait
        left = []
        for pid in self._started:
            while True:
                try:
                    done, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    break  # reaped already, or not ours
                if done or time.monotonic() >= deadline:
                    if not done:
                        left.append(pid)
                    break
                time.sleep(0.01)
        self._started = left

    def alive(self) -> bool:
        return _answers(self.socket_path)

    def ensure(self) -> None:
        """Start the launcher unless one of this version answers; wait until it listens.

        One of another version (left running across an upgrade) is stopped first.
        """
        self._reap()
        if self._current():
            return
        with self._starting:
            if not self._current():
                self._start()
                self._checked = True

    def _current(self) -> bool:
        """True when a launcher of this version answers. One that answers with another
        version is stopped (its shims go on), and this waits until it is gone."""
        if not self.alive():
            return False
        if self._checked:
            return True
        answer = self._version()
        if answer == VERSION:
            self._checked = True
            return True
        if answer is None:
            return False  # it went away meanwhile
        self.stop()
        deadline = time.monotonic() + CONNECT_TIMEOUT
        while self.alive():
            if time.monotonic() > deadline:
                raise WarmLaunchError(
                    f"the warm launcher on {self.socket_path} is of another version "
                    f"({answer.decode(errors='replace').strip()!r}) and does not stop"
                )
            time.sleep(0.01)
        return False

    def _version(self) -> bytes | None:
        """The running launcher's answer to the version request; None when none answers."""
        try:
            with self._dial() as conn:
                conn.settimeout(REPLY_TIMEOUT)
                conn.sendall(f"{VERSION_REQUEST}\n".encode())
                received = b""
                while not received.endswith(b"\n"):
                    chunk = conn.recv(256)
                    if not chunk:
                        break
                    received += chunk
        except OSError:
            return None
        return received

    def _start(self) -> None:
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        log_path = self.socket_path.with_suffix(".log")
        with open(log_path, "ab") as log:
            starter = subprocess.Popen(
                [self.python, "-m", "jobdeck.execute.warm", str(self.socket_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd="/",
                start_new_session=True,
            )
        deadline = time.monotonic() + CONNECT_TIMEOUT
        while not self.alive():
            if starter.poll() is not None:
                raise WarmLaunchError(
                    f"the warm launcher exited ({starter.returncode}); see {log_path}"
                )
            if time.monotonic() > deadline:
                raise WarmLaunchError(f"the warm launcher did not listen on {self.socket_path}")
            time.sleep(0.01)
        # It lives on (parent init) when the engine restarts; until then it is reaped
        # by _reap once it has exited. Popen must not wait for it, nor warn about it.
        starter.returncode = 0
        self._started.append(starter.pid)

    def launch(self, run_dir: Path, spec: RunSpec, start_timeout: float = 30.0) -> RunHandle:
        """Reach the launcher (starting it if none answers), write the run's spec and
        have the launcher fork its shim; return once the program runs (or its launch
        failed), exactly as the cold path does.

        Raises :class:`LauncherUnreachable` before anything is written when no launcher
        can be reached, and :class:`WarmLaunchError` when it failed after the request.
        """
        conn = self._connect()
        with conn:
            self._ask(conn, _write_spec(run_dir, spec), start_timeout)
        return wait_started(run_dir, start_timeout)

    async def launch_async(
        self, run_dir: Path, spec: RunSpec, start_timeout: float = 30.0
    ) -> RunHandle:
        """:meth:`launch` for an event loop, without a thread while the launcher answers.

        The engine launches every run of a warm pool: handing each to a worker thread
        and back cost more of its time than the request itself. What may block (starting
        a launcher that does not answer, waiting for a shim that died before it said
        ``started``) still runs in a thread.
        """
        if not self._checked:
            # The first launch asks the launcher's version (or starts one) in a thread.
            return await asyncio.to_thread(self.launch, run_dir, spec, start_timeout)
        loop = asyncio.get_running_loop()
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.setblocking(False)
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await loop.sock_connect(conn, str(self.socket_path))
        except (OSError, TimeoutError):
            conn.close()
            return await asyncio.to_thread(self.launch, run_dir, spec, start_timeout)
        received = b""
        with conn:
            # The run's few small files are written in the loop, as the store's are.
            where = _write_spec(run_dir, spec)
            deadline = loop.time() + start_timeout
            try:
                await loop.sock_sendall(conn, f"{where}\n".encode())
                async with asyncio.timeout_at(deadline):
                    while not _answered(received):
                        chunk = await loop.sock_recv(conn, 256)
                        if not chunk:
                            break
                        received += chunk
            except TimeoutError:
                pass  # the wait for the start below reports it
            except OSError as exc:
                raise WarmLaunchError(f"the warm launcher did not answer: {exc}") from exc
            _reply_pid(received)
        if STARTED in received:
            return wait_started(run_dir, start_timeout)  # the files say so already
        return await asyncio.to_thread(wait_started, run_dir, max(0.0, deadline - loop.time()))

    def _connect(self, *, start: bool = True) -> socket.socket:
        """A connection to the launcher; with ``start``, one of this version is started
        if none answers (the first time, the one that answers is asked its version)."""
        if self._checked or not start:
            try:
                return self._dial()
            except OSError as exc:
                if not start:
                    raise LauncherUnreachable(f"the warm launcher does not answer: {exc}") from exc
        try:
            self.ensure()
            return self._dial()
        except (WarmLaunchError, OSError) as exc:
            raise LauncherUnreachable(f"no warm launcher could be started: {exc}") from exc

    def _dial(self) -> socket.socket:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(CONNECT_TIMEOUT)
        try:
            conn.connect(str(self.socket_path))
        except OSError:
            conn.close()
            raise
        return conn

    def _request(self, run_dir: Path, start_timeout: float = 30.0) -> int:
        """Ask the running launcher for ``run_dir``'s shim; returns its pid."""
        try:
            conn = self._connect(start=False)
        except LauncherUnreachable as exc:
            raise WarmLaunchError(str(exc)) from exc
        with conn:
            return self._ask(conn, run_dir, start_timeout)

    def _ask(self, conn: socket.socket, run_dir: Path, start_timeout: float) -> int:
        """Send the request; wait for the launcher's ``ok PID`` and then for the shim's
        ``started`` (or for the connection to close, or ``start_timeout``)."""
        deadline = time.monotonic() + start_timeout
        received = b""
        try:
            conn.settimeout(REPLY_TIMEOUT)
            conn.sendall(f"{run_dir}\n".encode())
            while not _answered(received):
                chunk = conn.recv(256)
                if not chunk:
                    break
                received += chunk
                conn.settimeout(max(0.001, deadline - time.monotonic()))
        except TimeoutError:
            pass  # the caller's wait for the start reports it
        except OSError as exc:
            raise WarmLaunchError(f"the warm launcher did not answer: {exc}") from exc
        return _reply_pid(received)

    def stop(self) -> None:
        """Ask the launcher to exit (a pool that is no longer warm, or removed)."""
        pid = self._pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        self._reap(wait=5.0)

    def _pid(self) -> int | None:
        """The launcher's pid, from the kernel's credentials of the socket's peer."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.settimeout(1.0)
                probe.connect(str(self.socket_path))
                creds = probe.getsockopt(
                    socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")
                )
        except OSError:
            return None
        pid, _uid, _gid = struct.unpack("3i", creds)
        return int(pid)


def _write_spec(run_dir: Path, spec: RunSpec) -> Path:
    """Write the run's record (its spec); returns the run directory's absolute path, for
    the request."""
    record.create(run_dir, spec.to_json())
    # Absolute is all the launcher needs; resolving symlinks costs a stat per component.
    return Path(os.path.abspath(run_dir))


def _reply_pid(received: bytes) -> int:
    """The shim's pid from the launcher's ``ok PID``; raises when it refused the run."""
    replies = [line for line in received.split(b"\n")[:-1] if line != STARTED.strip()]
    reply = replies[0].decode(errors="replace") if replies else ""
    if not reply.startswith("ok "):
        raise WarmLaunchError(f"the warm launcher refused the run: {reply or 'no reply'}")
    return int(reply.split()[1])


def _answered(received: bytes) -> bool:
    """The launcher refused, or both its ``ok PID`` and the shim's ``started`` came (in
    either order: they are written by two processes)."""
    lines = received.split(b"\n")[:-1]
    replies = [line for line in lines if line != STARTED.strip()]
    if any(not line.startswith(b"ok ") for line in replies):
        return True
    return bool(replies) and len(replies) < len(lines)
