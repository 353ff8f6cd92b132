"""Cgroup v1 and v2 primitives: find the hierarchy, create, limit, inspect, kill, remove.

Only what pools and the run shim need. v2 (the unified hierarchy) is used when it has
the memory controller; otherwise v1's separate ``memory`` and ``cpu`` hierarchies. A
"hybrid" host mounts a cgroup2 tree without controllers beside v1: that tree is ignored.

This module is imported by the run shim: keep it free of heavy imports.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from jobdeck.execute.proc import signal_pids
from jobdeck.execute.sysfiles import read_text, write_text

CFS_PERIOD_US = 100_000
# v2: the leaf of the server's own group that its processes move to.
SERVER_LEAF = "jobdeck-server"


class CgroupError(Exception):
    """A cgroup could not be created, limited or joined."""


@dataclass(frozen=True)
class Hierarchy:
    """Where pools go: the controllers' mount points (from :func:`detect`), or the
    server's own groups in them (from :func:`delegated`). On v2, ``memory`` and ``cpu``
    are the same tree."""

    version: int
    memory: Path
    cpu: Path | None  # None: no cpu controller, CPU limits are not enforced
    # v2 under the server's own group: the leaf the server's processes moved to (inner
    # groups hold no processes), where a run's shim steps out to at its end.
    leaf: Path | None = None

    @property
    def root(self) -> Path:
        return self.memory

    @property
    def leave_to(self) -> Path:
        return self.leaf or self.memory


def own_paths(proc_cgroup: str) -> dict[str, str]:
    """``/proc/PID/cgroup`` as controller -> path; v2's line is under ``""``."""
    found: dict[str, str] = {}
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _id, controllers, path = parts
        for controller in controllers.split(",") if controllers else [""]:
            found[controller] = path
    return found


def _below(mount: Path, path: str | None) -> Path | None:
    """The group ``path`` (as /proc/PID/cgroup names it) inside the tree at ``mount``;
    None when it is not there (the tree is mounted from a deeper group)."""
    if path is None:
        return None
    group = mount / path.lstrip("/")
    return group if group.is_dir() else None


def delegated(h: Hierarchy, proc_cgroup: str | None = None) -> tuple[Hierarchy, str | None]:
    """``h`` moved to the server's own groups, so that pools count against the limits of
    the service (a systemd ``MemoryMax=``, a container's limit); and None, or why pools
    stay where ``h`` is (said at start)."""
    if proc_cgroup is None:
        try:
            proc_cgroup = Path("/proc/self/cgroup").read_text()
        except OSError as exc:
            return h, f"cannot read /proc/self/cgroup ({exc})"
    paths = own_paths(proc_cgroup)
    if h.version == 1:
        memory = _below(h.memory, paths.get("memory"))
        if memory is None:
            return h, "the server's memory cgroup is not inside the mounted tree"
        cpu = _below(h.cpu, paths.get("cpu")) if h.cpu is not None else None
        return Hierarchy(1, memory, cpu if cpu is not None else h.cpu), None
    own = _below(h.memory, paths.get(""))
    if own is None:
        return h, "the server's cgroup is not inside the mounted tree"
    if own == h.memory:
        return h, None
    if own.name == SERVER_LEAF:
        return Hierarchy(2, own.parent, own.parent if h.cpu is not None else None, own), None
    return _delegate_v2(h, own)


def _delegate_v2(h: Hierarchy, own: Path) -> tuple[Hierarchy, str | None]:
    """v2 forbids processes in a group that hands controllers down: the server moves
    itself into a leaf of its own group (as systemd's ``Delegate=yes`` expects), which
    it can only do when it is the group's only process."""
    others = [pid for pid in procs(own) if pid != os.getpid()]
    if others:
        return h, (
            f"the server's cgroup {own} holds other processes ({len(others)}); run the "
            "server in a cgroup of its own (systemd: Delegate=yes) to put pools in it"
        )
    leaf = own / SERVER_LEAF
    try:
        make(leaf)
        join(leaf, os.getpid())
    except CgroupError as exc:
        return h, f"cannot move the server into {leaf}: {exc}"
    cpu = own if h.cpu is not None else None
    return Hierarchy(2, own, cpu, leaf=leaf), None


def _mounts(mountinfo: str) -> list[tuple[Path, str, set[str]]]:
    """(mount point, file system type, super options) of each cgroup mount."""
    found = []
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fstype, _source, superopts = [*right.split(), "", "", ""][:3]
        if fstype not in ("cgroup", "cgroup2"):
            continue
        mount_point = left.split()[4].replace("\\040", " ")
        found.append((Path(mount_point), fstype, set(superopts.split(","))))
    return found


def detect(mountinfo: str | None = None) -> tuple[Hierarchy | None, str]:
    """The hierarchy to use, or None and why there is none."""
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError as exc:
            return None, f"cannot read /proc/self/mountinfo: {exc}"
    mounts = _mounts(mountinfo)
    for point, fstype, _opts in mounts:
        if fstype != "cgroup2":
            continue
        try:
            controllers = set((point / "cgroup.controllers").read_text().split())
        except OSError:
            continue
        if "memory" in controllers:
            cpu = point if "cpu" in controllers else None
            return Hierarchy(2, point, cpu), "cgroup v2"
    memory = next((p for p, t, o in mounts if t == "cgroup" and "memory" in o), None)
    cpu = next((p for p, t, o in mounts if t == "cgroup" and "cpu" in o), None)
    if memory is not None:
        return Hierarchy(1, memory, cpu), "cgroup v1"
    if mounts:
        return None, "no cgroup hierarchy with the memory controller is mounted"
    return None, "cgroups are not mounted"


def write(group: Path, name: str, value: str) -> None:
    try:
        write_text(group / name, value)
    except OSError as exc:
        raise CgroupError(f"cannot write {value.strip()!r} to {group / name}: {exc}") from exc


def read(group: Path, name: str) -> str | None:
    try:
        return read_text(group / name)
    except OSError:
        return None


def make(group: Path) -> bool:
    """Create ``group`` (not its parents); True when it was created now."""
    try:
        group.mkdir()
    except FileExistsError:
        return False
    except OSError as exc:
        raise CgroupError(f"cannot create cgroup {group}: {exc}") from exc
    return True


def enable_controllers(group: Path, controllers: list[str]) -> list[str]:
    """v2: let ``group``'s children use ``controllers``; returns those it could not."""
    present = set((read(group, "cgroup.controllers") or "").split())
    enabled = set((read(group, "cgroup.subtree_control") or "").split())
    missing = []
    for name in controllers:
        if name in enabled:
            continue
        if name not in present:
            missing.append(name)
            continue
        try:
            write(group, "cgroup.subtree_control", f"+{name}")
        except CgroupError:
            missing.append(name)
    return missing


def set_memory_limit(hierarchy: Hierarchy, group: Path, limit: int | None) -> None:
    """The memory limit, with swap excluded so that reaching it means an OOM kill.

    v1 counts swap separately: a group with only ``limit_in_bytes`` may swap instead of
    being killed, so ``memsw`` (memory + swap) gets the same limit, or, when the kernel
    does not account swap, swappiness 0. ``memsw`` must never be below
    ``limit_in_bytes``, hence the order of the writes.
    """
    if hierarchy.version == 2:
        write(group, "memory.max", "max" if limit is None else str(limit))
        with contextlib.suppress(CgroupError):
            write(group, "memory.swap.max", "0")
        return
    value = "-1" if limit is None else str(limit)
    has_memsw = (group / "memory.memsw.limit_in_bytes").exists()
    try:
        write(group, "memory.limit_in_bytes", value)
        if has_memsw:
            write(group, "memory.memsw.limit_in_bytes", value)
    except CgroupError:
        # Raising a limit: memsw first, it must stay >= limit_in_bytes.
        if not has_memsw:
            raise
        write(group, "memory.memsw.limit_in_bytes", value)
        write(group, "memory.limit_in_bytes", value)
    # Older kernels refuse swappiness on a group with children; memsw covers those.
    with contextlib.suppress(CgroupError):
        write(group, "memory.swappiness", "0")


def set_cpu_limit(hierarchy: Hierarchy, group: Path, cpus: float | None) -> None:
    quota = None if cpus is None else max(1000, int(cpus * CFS_PERIOD_US))
    if hierarchy.version == 2:
        write(group, "cpu.max", f"{'max' if quota is None else quota} {CFS_PERIOD_US}")
        return
    write(group, "cpu.cfs_period_us", str(CFS_PERIOD_US))
    write(group, "cpu.cfs_quota_us", "-1" if quota is None else str(quota))


def procs(group: Path) -> list[int]:
    text = read(group, "cgroup.procs")
    return [int(line) for line in text.split()] if text else []


def join(group: Path, pid: int) -> None:
    write(group, "cgroup.procs", f"{pid}\n")


def oom_kills(version: int, group: Path) -> int:
    """How many processes the OOM killer killed because of this group's limit."""
    if version == 2:
        text = read(group, "memory.events") or ""
    else:
        text = read(group, "memory.oom_control") or ""
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill":
            return int(value)
    if version == 1:
        # Kernels before 4.13 have no oom_kill counter: a hit limit is the best hint.
        return int((read(group, "memory.failcnt") or "0").strip() or 0)
    return 0


def peak_memory(version: int, group: Path) -> int | None:
    text = read(group, "memory.peak" if version == 2 else "memory.max_usage_in_bytes")
    return int(text) if text and text.strip().isdigit() else None


def memory_usage(version: int, group: Path) -> int | None:
    text = read(group, "memory.current" if version == 2 else "memory.usage_in_bytes")
    return int(text) if text and text.strip().isdigit() else None


def memory_limit(version: int, group: Path) -> int | None:
    text = (read(group, "memory.max" if version == 2 else "memory.limit_in_bytes") or "").strip()
    if not text.isdigit():
        return None
    value = int(text)
    return None if value >= 2**62 else value  # v1 writes "unlimited" as a huge number


def kill_all(group: Path, sig: int = signal.SIGKILL, *, spare: int | None = None) -> int:
    """Send ``sig`` to every process of ``group`` but ``spare``; returns how many got it.

    A process can fork while we read the list, so SIGKILL is repeated until the group is
    empty. (v2's ``cgroup.kill`` would also kill ``spare``, the shim that lives inside.)
    """
    sent = 0
    for _ in range(50):
        pids = [pid for pid in procs(group) if pid != spare]
        if not pids:
            break
        signal_pids(pids, sig)
        sent += len(pids)
        if sig != signal.SIGKILL:
            break
        time.sleep(0.01)
    return sent


def remove(group: Path, attempts: int = 5, delay: float = 0.05) -> bool:
    """Remove an empty group (and its empty children); False when it is still busy.

    A group whose last process has just exited may stay busy for a moment while the
    kernel finishes the exit, hence the retries.
    """
    # The run's shim removes its own group too: the group may vanish at any point here,
    # which is what was wanted, never an error.
    # scandir, not iterdir and is_dir: a v1 memory group holds about thirty files, and
    # the directory entries tell which are groups without a stat of each.
    try:
        with os.scandir(group) as entries:
            children = sorted(
                (Path(e.path) for e in entries if e.is_dir(follow_symlinks=False)), reverse=True
            )
    except FileNotFoundError:
        return True
    for child in children:
        remove(child, attempts, delay)
    for attempt in range(attempts):
        try:
            os.rmdir(group)
            return True
        except FileNotFoundError:
            return True
        except OSError as exc:
            if exc.errno not in (errno.EBUSY, errno.ENOTEMPTY) or attempt == attempts - 1:
                return False
            time.sleep(delay)
    return False
