"""The warm launcher: a resident process per ``warm: true`` pool that starts run shims by
forking itself, so a critical command does not pay for a fresh Python interpreter.

The cold path (:func:`jobdeck.execute.launch.launch`) starts ``python -m
jobdeck.execute.shim`` for every run: tens of milliseconds of interpreter start and
imports before the program is spawned. The launcher has the shim's code loaded already;
asked over a Unix socket to start ``RUN_DIR`` it forks, and the child *is* the shim for
that run (its own session, the run's cgroups and ``oom_score_adj``, exactly as on the
cold path). The launcher answers ``ok PID``; the shim keeps the connection and writes
``started`` on it once the program runs (or its launch error is recorded), so the
engine learns of the start at once instead of polling the run's files for it. If the
connection closes without that word (the shim died first), the engine looks at the
files as on the cold path.

The launcher itself joins no cgroup: cgroup v2 forbids processes in a pool group that has
run groups below it, and every run joins its own group anyway. It is detached from the
engine (its own session, parent init), survives engine restarts, is found again by its
socket, and is started again on demand if it died. Its shims are its children only until
it exits; they never depend on it.

    python -m jobdeck.execute.warm SOCKET_PATH
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import socket
import struct
import sys
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from jobdeck.execute import record
from jobdeck.execute.launch import RunHandle, wait_started
from jobdeck.execute.proc import set_oom_score_adj
from jobdeck.execute.spec import RunSpec
from jobdeck.execute.sysfiles import read_text

if TYPE_CHECKING:
    from jobdeck.execute.shim import Shim

CONNECT_TIMEOUT = 10.0
REHEARSALS = 10  # CPython 3.11 quickens a function's code after its first few calls
REHEARSAL_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
REPLY_TIMEOUT = 10.0
MAX_REQUEST = 4096
STARTED = b"started\n"
# The launcher's answer to VERSION_REQUEST: the request and record formats it knows.
# An engine replaces a launcher that answers anything else (one of an earlier version,
# left running across an upgrade, which would not find the run's record).
VERSION_REQUEST = "version"
VERSION = b"jobdeck-launcher 2\n"


class WarmLaunchError(Exception):
    """The launcher refused the run or stopped answering after it was asked."""


class LauncherUnreachable(Exception):
    """No launcher answers and none could be started; nothing was written or asked: the
    caller may start the run the cold way."""


# -- the launcher process ------------------------------------------------------------------


def serve(socket_path: Path) -> int:
    """Accept one request per connection: a run directory; reply with the shim's pid."""
    from jobdeck.execute.shim import Shim  # loaded once, before any fork

    # Before the socket exists: whoever started this launcher waits until it listens,
    # and a launcher that listens serves at once.
    _rehearse(Shim, socket_path.parent)
    # Not through a WarmLauncher: that is the engine's side, which imports threading.
    if _answers(socket_path):
        print(f"a warm launcher already serves {socket_path}", flush=True)
        return 0
    with contextlib.suppress(FileNotFoundError):
        socket_path.unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(socket_path))
    os.chmod(socket_path, 0o600)
    listener.listen(64)
    # Shims are reaped by the kernel as they exit: nothing here waits for them.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # Everything loaded so far is shared with every shim forked from here: out of the
    # collector's sight, a shim's collections do not copy those pages for themselves.
    gc.collect()
    gc.freeze()
    print(f"warm launcher ready on {socket_path} (pid {os.getpid()})", flush=True)
    try:
        while True:
            conn, _ = listener.accept()
            with conn:
                _handle(conn, listener, Shim)
    finally:
        with contextlib.suppress(FileNotFoundError):
            socket_path.unlink()


def _rehearse(shim: type[Shim], folder: Path) -> None:
    """Run a trivial program through the shim's code a few times before serving.

    CPython rewrites a function's bytecode in place during its first calls (quickening,
    then specialisation). Left to the shims, every one of them did that rewriting after
    its fork and copied the pages it wrote; done here once, the shims share the result:
    about a tenth fewer page faults and 0.3 ms less CPU per run. What the shim changes in
    its own process (signal handlers, the wake-up pipe, ``oom_score_adj``) is put back,
    and a signal that came meanwhile stops the launcher, as it would have.
    """
    program = next((p for p in ("/bin/true", "/usr/bin/true") if os.access(p, os.X_OK)), None)
    if program is None:
        return
    handlers = {sig: signal.getsignal(sig) for sig in REHEARSAL_SIGNALS}
    adj = read_text("/proc/self/oom_score_adj").strip()
    base = folder / f".rehearsal-{os.getpid()}"
    stop = False
    try:
        for i in range(REHEARSALS):
            run_dir = base / str(i)
            run_dir.mkdir(parents=True)
            spec = RunSpec(run_id="rehearsal", argv=(program,), env={"PATH": os.defpath})
            record.create(run_dir, spec.to_json())
            rehearsal = shim(run_dir)
            rehearsal.run()
            signal.set_wakeup_fd(-1)
            for fd in rehearsal.wake_fds or ():
                os.close(fd)
            if rehearsal.cancel_requested:  # SIGTERM, SIGINT or SIGHUP: meant for us
                stop = True
                break
    except Exception as exc:  # a rehearsal only saves time: serving goes on without it
        print(f"warm launcher: the shim's rehearsal failed: {exc!r}", flush=True)
    finally:
        signal.set_wakeup_fd(-1)
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        set_oom_score_adj(int(adj))
        _remove_tree(base)
    if stop:
        raise SystemExit(0)


def _remove_tree(folder: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    _remove_tree(Path(entry.path))
                else:
                    os.unlink(entry.path)
        os.rmdir(folder)


def _handle(conn: socket.socket, listener: socket.socket, shim: type[Shim]) -> None:
    conn.settimeout(REPLY_TIMEOUT)
    try:
        request = conn.recv(MAX_REQUEST).decode().strip()
    except (OSError, UnicodeDecodeError):
        return
    if not request:
        return  # a liveness probe
    if request == VERSION_REQUEST:
        with contextlib.suppress(OSError):
            conn.sendall(VERSION)
        return
    run_dir = Path(request)
    try:
        if not run_dir.is_absolute():
            raise FileNotFoundError("not an absolute path")
        # Read here, before the fork: the launcher does it at full speed, while in the
        # shim every page the reading touched would be a page fault.
        spec = shim.load_spec(run_dir)
    except OSError as exc:
        _refuse(conn, f"no run spec in {request!r}: {exc}")
        return
    except Exception as exc:  # whatever the spec holds, the launcher serves on
        _refuse(conn, f"bad run spec in {request!r}: {exc!r}")
        return
    pid = os.fork()
    if pid == 0:  # the shim for this run
        code = 70
        try:
            listener.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.setsid()

            def started() -> None:
                try:
                    conn.sendall(STARTED)
                finally:
                    conn.close()

            # Its output goes to the launcher's log (a file of its own per run would
            # cost every run a new file, for what is nearly always nothing).
            code = shim(run_dir, started, spec).run()
        except BaseException:
            print(f"warm launcher: the shim of {run_dir} failed:", file=sys.stderr)
            traceback.print_exc()
        finally:
            with contextlib.suppress(BaseException):
                sys.stderr.flush()
            os._exit(code)
    with contextlib.suppress(OSError):
        conn.sendall(f"ok {pid}\n".encode())


def _answers(socket_path: Path) -> bool:
    """True when something listens on the launcher's socket."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(1.0)
            probe.connect(str(socket_path))
        return True
    except OSError:
        return False


def _refuse(conn: socket.socket, why: str) -> None:
    with contextlib.suppress(OSError):
        conn.sendall(f"error: {why}\n".encode())


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m jobdeck.execute.warm SOCKET_PATH", file=sys.stderr)
        return 2
    return serve(Path(args[0]))


# -- the engine's side ----------------------------------------------------------------------


class WarmLauncher:
    """The engine's handle on one pool's launcher; starts it when it is not running."""

    def __init__(self, socket_path: Path, *, python: str = sys.executable) -> None:
        # Imported here, by the engine: the launcher process imports this module too,
        # and threading's handler would run after every fork of a shim.
        import threading

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
        import subprocess  # the engine's, as threading above

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
        # Imported here: the launcher process imports this module too, and every shim
        # it forks pays for its size (the page tables copied, then torn down).
        import asyncio

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


if __name__ == "__main__":
    sys.exit(main())
