"""Facts about processes from ``/proc``, robust against pid reuse and reboots."""

from __future__ import annotations

import contextlib
import ctypes
import os

from jobdeck.execute.sysfiles import read_text, write_text

_BOOT_ID = "/proc/sys/kernel/random/boot_id"
_boot_id: str | None = None


def boot_id() -> str:
    """The kernel's id of this boot: a record from another boot names no live process.

    Read once per process (no process outlives its boot); a warm launcher reads it
    before it forks, so its shims do not read it at all.
    """
    global _boot_id
    if _boot_id is None:
        try:
            _boot_id = read_text(_BOOT_ID).strip()
        except OSError:
            return "unknown"
    return _boot_id


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = read_text(f"/proc/{pid}/stat")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) is in parentheses and may itself contain spaces or
    # parentheses: split after the last ')'.
    end = raw.rfind(")")
    return raw[end + 2 :].split()


def start_time(pid: int) -> int | None:
    """Field 22 of ``/proc/PID/stat``: when the process started, in ticks since boot."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def is_alive(pid: int | None, started: int | None) -> bool:
    """True when ``pid`` runs and is the same process that started at ``started``.

    A zombie counts as gone: it runs nothing, and its parent may never reap it.
    """
    if pid is None or pid <= 0:
        return False
    fields = _stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return False
    return started is None or int(fields[19]) == started


def group_alive(pgid: int) -> bool:
    """True when some process (zombies included) is still in process group ``pgid``."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def signal_pids(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def set_oom_score_adj(value: int, pid: int | str = "self") -> str | None:
    """Set the OOM killer's bias; returns why it could not, or None.

    Lowering it below what the process had needs CAP_SYS_RESOURCE; raising it never
    does, so a ``low`` pool is always honoured and a ``critical`` one needs root.
    """
    try:
        write_text(f"/proc/{pid}/oom_score_adj", f"{value}\n")
    except OSError as exc:
        return f"cannot set oom_score_adj {value}: {exc.strerror or exc}"
    return None


CAP_SYS_RESOURCE = 24


def can_lower_oom_score_adj() -> bool:
    """Whether this process holds CAP_SYS_RESOURCE (root in a container may not)."""
    try:
        status = read_text("/proc/self/status")
    except OSError:
        return False
    for line in status.splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> CAP_SYS_RESOURCE & 1)
    return False


PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> str | None:
    """Make this process the child subreaper of its descendants: one whose parent dies
    (a daemon that double-forks, a ``setsid cmd &``) is re-parented to it, not to init,
    so it stays in reach. Returns why it could not, or None."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            errno = ctypes.get_errno()
            return f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(errno)}"
    except (OSError, AttributeError) as exc:
        return f"prctl(PR_SET_CHILD_SUBREAPER): {exc}"
    return None


def has_children() -> bool:
    """Whether this process has a child, alive or ended and not yet reaped; asked of the
    kernel (``waitid`` with ``WNOWAIT``, which reaps nothing), without reading ``/proc``."""
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


def descendants(root: int) -> list[tuple[int, bool]]:
    """Every process below ``root`` in the process tree, as (pid, is a zombie), parents
    before their children. Read from ``/proc``: a process that ends meanwhile is left
    out, one that starts meanwhile may be."""
    children: dict[int, list[tuple[int, bool]]] = {}
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            fields = _stat_fields(int(entry.name))
            if fields is None:
                continue
            zombie = fields[0] in ("Z", "X")
            children.setdefault(int(fields[1]), []).append((int(entry.name), zombie))
    found: list[tuple[int, bool]] = []
    queue = [root]
    while queue:
        for child in children.get(queue.pop(0), []):
            found.append(child)
            queue.append(child[0])
    return found
