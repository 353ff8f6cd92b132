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

This module is the launcher process's; the engine's handle on a launcher is
:mod:`jobdeck.execute.warm_client`, which the launcher never imports (every shim is a
fork of it, and pays for what it holds).
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import socket
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from jobdeck.execute import record
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


if __name__ == "__main__":
    sys.exit(main())
