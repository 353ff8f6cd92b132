"""Starting a run's program from its shim with ``posix_spawn``, and waiting for it.

The shim is a fork of the warm launcher, and every page of the launcher that the shim
touches after the fork costs it a page fault (a copy of the page, or a mapping of the
interpreter's code). ``subprocess.Popen`` runs a few hundred lines of Python to start a
program and imports ``threading``, whose handler runs after every fork: together about
230 of a shim's 720 page faults, a third of its CPU. ``os.posix_spawn`` starts the
program with the C library's ``vfork`` and ``execve``, as ``Popen`` does, in one call.

What ``Popen`` did for the shim is done here the same way: the program's file is looked
up in the ``PATH`` of the environment it is given, trying each directory in turn and
reporting the first error that is not "no such file"; it gets its own session,
``/dev/null`` as stdin and the log as stdout and stderr, the signals Python ignores
back at their defaults, and no descriptor of the shim but those three (Python's own are
never inherited; any other is closed for it).

Imported by the run shim: keep it free of heavy imports.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
from collections.abc import Mapping, Sequence

# Python ignores SIGPIPE and SIGXFSZ; an ignored signal stays ignored across exec, and
# programs expect the defaults (Popen's restore_signals).
RESTORED_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ)
STD_FDS = 3


class Program:
    """A spawned program: its pid and, once it has been reaped, its exit status."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """The exit status once the program is over (``-N`` when signal N ended it),
        None while it runs. Reaps it.

        A program that cannot be waited for (SIGCHLD ignored by whoever started the
        shim: the kernel reaped it) is over with status 0, as ``Popen`` has it.
        """
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.returncode = 0
                return self.returncode
            if pid == self.pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self) -> int:
        while self.returncode is None:
            try:
                _, status = os.waitpid(self.pid, 0)
            except ChildProcessError:
                self.returncode = 0  # as in poll
                break
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)


def candidates(program: str, env: Mapping[str, str]) -> list[str]:
    """Where to look for ``program``: itself when it names a path, else each directory
    of the ``PATH`` in ``env`` (the system's default path without one)."""
    if os.path.dirname(program):
        return [program]
    return [os.path.join(folder, program) for folder in os.get_exec_path(dict(env))]


def spawn(argv: Sequence[str], env: Mapping[str, str], output: int) -> Program:
    """Start ``argv`` in its own session, in the current directory, with ``env``,
    ``/dev/null`` as stdin and ``output`` as stdout and stderr.

    Raises OSError as ``Popen`` did: the first error of the candidates that is not "no
    such file or directory", else that one.
    """
    if output < STD_FDS:  # dup2 onto itself would leave the descriptor close-on-exec
        output = os.dup(output)
        try:
            return spawn(argv, env, output)
        finally:
            os.close(output)
    actions: list[tuple[int, ...] | tuple[int, int, str, int, int]] = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_DUP2, output, 1),
        (os.POSIX_SPAWN_DUP2, output, 2),
    ]
    actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in _inheritable()]
    first: OSError | None = None
    last: OSError | None = None
    for path in candidates(argv[0], env):
        if not os.path.exists(path):
            # Where execve would say "no such file": no spawn for it (a bare name found
            # late in the PATH would cost a spawn per directory before it).
            last = FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
            continue
        try:
            pid = os.posix_spawn(
                path,
                list(argv),
                env,
                file_actions=actions,
                setsid=True,
                setsigdef=RESTORED_SIGNALS,
            )
        except OSError as exc:
            last = exc
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR) and first is None:
                first = exc
            continue
        return Program(pid)
    error = first or last
    if error is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), argv[0])
    raise error


def _inheritable() -> list[int]:
    """Descriptors above stdin, stdout and stderr that an exec would keep (Python makes
    its own close-on-exec; one inherited from whoever started the shim is not)."""
    found = []
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return []
    for name in names:
        fd = int(name)
        if fd < STD_FDS:
            continue
        try:
            if os.get_inheritable(fd):
                found.append(fd)
        except OSError:
            continue  # the listing's own descriptor, closed meanwhile
    return found
