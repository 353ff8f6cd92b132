"""Pools: one cgroup per pool, one child cgroup per run, or per-process limits.

Layout (``<instance>`` keeps two engines, or two test runs, on one host apart)::

    v2:  <own>/jobdeck/<instance>/<pool>/run-<id>     memory, cpu
         <own>/jobdeck-server                          the server's processes
    v1:  <own memory>/jobdeck/<instance>/<pool>/run-<id>   memory
         <own cpu>/jobdeck/<instance>/<pool>               cpu (runs share the pool's group)

``<own>`` is the server's own cgroup (``/proc/self/cgroup``), so that a limit on the
service (systemd's ``MemoryMax=``, a container's) covers its runs too. Where that cannot
be (v2 with other processes in the server's group), the pools go to the tree's root and
the server says so at start.

A pool's priority becomes the ``oom_score_adj`` of its runs' processes. The numbers
leave room on both sides: -1000 (never kill) stays for the run shims and the system,
1000 (kill first) stays for whatever an operator marks expendable.

Where cgroups cannot be used, :attr:`PoolManager.warning` says so and why, and runs get
RLIMIT_AS and ``oom_score_adj`` instead. RLIMIT_AS limits address space, not resident
memory, so it is a cruder bound; pool-wide memory and CPU totals are not enforced then.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from jobdeck.execute import cgroups
from jobdeck.execute.cgroups import CgroupError, Hierarchy
from jobdeck.execute.proc import can_lower_oom_score_adj
from jobdeck.execute.spec import Isolation

if TYPE_CHECKING:
    from jobdeck.catalog.model import Pool

OOM_SCORE_ADJ: dict[str, int] = {"critical": -900, "high": -500, "normal": 0, "low": 500}
RUN_PREFIX = "run-"
# An empty run group younger than this may belong to a shim that has not joined it yet.
REAP_MIN_AGE = 60.0

Mode = Literal["auto", "cgroups", "rlimit"]
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def run_group_name(run_id: str) -> str:
    return RUN_PREFIX + _SAFE.sub("_", run_id)


@dataclass(frozen=True)
class PoolUsage:
    pool: str
    memory_used: int | None
    memory_limit: int | None


class PoolManager:
    """Creates and removes the pools' cgroups and tells each run where to live.

    ``mode="auto"`` uses cgroups when the host allows it and falls back with a warning;
    ``"cgroups"`` raises :class:`CgroupError` instead of falling back; ``"rlimit"``
    never touches cgroups (with a warning, as it isolates less).
    """

    def __init__(
        self,
        instance: str,
        pools: Mapping[str, Pool],
        *,
        mode: Mode = "auto",
        hierarchy: Hierarchy | None = None,
    ) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", instance):
            raise ValueError(f"invalid instance name {instance!r}")
        self.instance = instance
        self.pools = dict(pools)
        self.warnings: list[str] = []
        self.hierarchy: Hierarchy | None = None
        lowered = [n for n, p in self.pools.items() if OOM_SCORE_ADJ[p.priority] < 0]
        if lowered and not can_lower_oom_score_adj():
            self.warnings.append(
                "pools: without CAP_SYS_RESOURCE the oom_score_adj of critical and high "
                f"pools ({', '.join(sorted(lowered))}) stays at 0; low pools still get "
                f"{OOM_SCORE_ADJ['low']}, so the OOM killer still picks them first"
            )
        if mode == "rlimit":
            self._fall_back("per-process limits were asked for")
            return
        found, why = (hierarchy, "given") if hierarchy else cgroups.detect()
        if found is not None and hierarchy is None:
            found, outside = cgroups.delegated(found)
            if outside is not None:
                self.warnings.append(
                    f"pools: their cgroups are made outside the server's own cgroup "
                    f"({outside}): a limit on the service does not cover its runs"
                )
        if found is None:
            if mode == "cgroups":
                raise CgroupError(why)
            self._fall_back(why)
            return
        try:
            self._setup(found)
        except CgroupError as exc:
            if mode == "cgroups":
                raise
            self._fall_back(str(exc))
            return
        self.hierarchy = found

    @property
    def isolation(self) -> str:
        """``cgroup-v1``, ``cgroup-v2`` or ``rlimit``: for the start-up banner and status."""
        return f"cgroup-v{self.hierarchy.version}" if self.hierarchy else "rlimit"

    @property
    def warning(self) -> str | None:
        """What the engine must print at start, or None when pools isolate fully."""
        return "; ".join(self.warnings) if self.warnings else None

    def _fall_back(self, why: str) -> None:
        self.warnings.append(
            f"pools: cgroups cannot be used ({why}); falling back to per-process limits "
            "(RLIMIT_AS per run, oom_score_adj by priority): pool memory and cpu totals "
            "are NOT enforced and a run's memory limit bounds its address space only"
        )

    # -- layout ---------------------------------------------------------------------

    def memory_group(self, pool: str, hierarchy: Hierarchy | None = None) -> Path:
        h = hierarchy or self._need()
        return h.memory / "jobdeck" / self.instance / pool

    def cpu_group(self, pool: str, hierarchy: Hierarchy | None = None) -> Path | None:
        h = hierarchy or self._need()
        if h.version == 2 or h.cpu is None:
            return None  # v2: one tree; no cpu controller: nothing to join
        return h.cpu / "jobdeck" / self.instance / pool

    def instance_groups(self) -> list[Path]:
        h = self._need()
        trees = [h.memory] + ([h.cpu] if h.cpu is not None and h.version == 1 else [])
        return [tree / "jobdeck" / self.instance for tree in trees]

    def _need(self) -> Hierarchy:
        if self.hierarchy is None:
            raise CgroupError("pools run without cgroups")
        return self.hierarchy

    # -- set-up and tear-down -------------------------------------------------------

    def _setup(self, h: Hierarchy) -> None:
        if h.version == 2:
            # Each level must hand memory and cpu down to the next (no processes live in
            # these inner groups, as v2 requires).
            chain = [h.root, h.root / "jobdeck", h.root / "jobdeck" / self.instance]
            for i, group in enumerate(chain):
                if i:
                    cgroups.make(group)
                missing = cgroups.enable_controllers(group, ["memory", "cpu"])
                if "memory" in missing:
                    raise CgroupError(f"cannot enable the memory controller in {group}")
                if "cpu" in missing:
                    self.warnings.append(f"pools: no cpu controller in {group}: cpus ignored")
        else:
            for tree in [h.memory] + ([h.cpu] if h.cpu else []):
                for group in (tree / "jobdeck", tree / "jobdeck" / self.instance):
                    cgroups.make(group)
            # Pool limits must cover the runs below them: v1 only does so with hierarchy.
            use = (cgroups.read(h.memory / "jobdeck", "memory.use_hierarchy") or "1").strip()
            if use != "1":
                cgroups.write(h.memory / "jobdeck", "memory.use_hierarchy", "1")
            if h.cpu is None:
                self.warnings.append("pools: no cpu cgroup hierarchy: cpus ignored")
        for name, pool in self.pools.items():
            memory = self.memory_group(name, h)
            cgroups.make(memory)
            cgroups.set_memory_limit(h, memory, pool.memory)
            cpu = self.cpu_group(name, h) or memory
            if h.cpu is not None:
                cgroups.make(cpu)
                cgroups.set_cpu_limit(h, cpu, pool.cpus)
            if h.version == 2:
                cgroups.enable_controllers(memory, ["memory"])

    def teardown(self) -> bool:
        """Remove every group of this instance; False when some are still busy."""
        if self.hierarchy is None:
            return True
        ok = True
        for group in self.instance_groups():
            ok = cgroups.remove(group) and ok
            # The shared parent goes with the last instance (never recursively: another
            # engine's empty pool groups are alive).
            with contextlib.suppress(OSError):
                os.rmdir(group.parent)
        return ok

    # -- runs -----------------------------------------------------------------------

    def placement(self, pool: str, run_id: str, memory: int | None = None) -> Isolation:
        """Create the run's cgroup (with ``memory`` as its limit) and say how to join it.

        ``memory`` None: the run is bounded by its pool only.
        """
        if pool not in self.pools:
            raise KeyError(f"unknown pool {pool!r}")
        adj = OOM_SCORE_ADJ[self.pools[pool].priority]
        if self.hierarchy is None:
            limit = memory if memory is not None else self.pools[pool].memory
            return Isolation(memory_limit=limit, oom_score_adj=adj)
        h = self.hierarchy
        pool_memory = self.memory_group(pool)
        run = pool_memory / run_group_name(run_id)
        created = cgroups.make(run)
        try:
            if not (created and memory is None and h.version == 1):
                # A new v1 group has no limit of its own and takes its pool's
                # swappiness (0): nothing to write for a run bounded by its pool only.
                cgroups.set_memory_limit(h, run, memory)
            if h.version == 2:
                # The whole run dies together on OOM: no half-killed process tree.
                cgroups.write(run, "memory.oom.group", "1")
        except CgroupError:
            cgroups.remove(run)
            raise
        join = [str(run)]
        cpu = self.cpu_group(pool)
        if cpu is not None:
            join.append(str(cpu))
        # v1 lets the shim wait in the pool group; v2 forbids processes in inner groups,
        # so there the shim steps out to the root.
        leave = str(pool_memory) if h.version == 1 else str(h.leave_to)
        return Isolation(
            cgroup_version=h.version,
            join=tuple(join),
            run_cgroup=str(run),
            pool_cgroup=str(pool_memory),
            leave_to=(leave,),
            remove=(str(run),),
            memory_limit=memory,
            oom_score_adj=adj,
        )

    def release(self, pool: str, run_id: str) -> bool:
        """Remove a finished run's cgroup; False when busy (left for :meth:`reap`)."""
        if self.hierarchy is None:
            return True
        return cgroups.remove(self.memory_group(pool) / run_group_name(run_id))

    def reap(self, keep: Collection[str] = (), *, min_age: float = REAP_MIN_AGE) -> list[Path]:
        """Remove empty run groups of runs not in ``keep``; returns those removed.

        Runs of an earlier engine whose shims are gone leave empty groups behind; a
        group with processes is a live run (perhaps adopted later) and is never touched.
        """
        if self.hierarchy is None:
            return []
        keep_names = {run_group_name(run_id) for run_id in keep}
        removed = []
        now = time.time()
        base = self.hierarchy.memory / "jobdeck" / self.instance
        for group in sorted(base.glob(f"*/{RUN_PREFIX}*")):
            if group.name in keep_names or cgroups.procs(group):
                continue
            try:
                if now - os.stat(group).st_mtime < min_age:
                    continue
            except FileNotFoundError:
                continue
            if cgroups.remove(group, attempts=1):
                removed.append(group)
        return removed

    def usage(self) -> list[PoolUsage]:
        """Memory used and limit per pool, for ``jobdeck status``."""
        out = []
        for name, pool in self.pools.items():
            if self.hierarchy is None:
                out.append(PoolUsage(name, None, pool.memory))
                continue
            v, group = self.hierarchy.version, self.memory_group(name)
            out.append(PoolUsage(name, cgroups.memory_usage(v, group), pool.memory))
        return out
