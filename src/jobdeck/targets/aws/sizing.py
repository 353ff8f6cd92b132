"""Catalog cpus and memory -> a Fargate task size. Pure.

Fargate takes fixed CPU sizes, each with its own range of memory. The catalog's ``cpus``
is rounded up to the next CPU size (0.25 vCPU when unset) and ``memory`` up to the next
memory step of that size (its smallest when unset): a run gets at least what it asked for.
Memory that the CPU size cannot hold is an error rather than a silent larger CPU, since
that would multiply the bill.
"""

from __future__ import annotations

from dataclasses import dataclass

from jobdeck.units import format_size

MIB = 1024 * 1024


@dataclass(frozen=True)
class CpuSize:
    units: int  # 1024 units = 1 vCPU
    memory_mib: tuple[int, ...]  # the memory sizes this CPU size takes, ascending

    @property
    def vcpus(self) -> float:
        return self.units / 1024


def _steps(low_gib: int, high_gib: int, step_gib: int) -> tuple[int, ...]:
    return tuple(gib * 1024 for gib in range(low_gib, high_gib + 1, step_gib))


# The Linux task sizes of Fargate (AWS ECS developer guide, "Task CPU and memory").
CPU_SIZES: tuple[CpuSize, ...] = (
    CpuSize(256, (512, 1024, 2048)),
    CpuSize(512, _steps(1, 4, 1)),
    CpuSize(1024, _steps(2, 8, 1)),
    CpuSize(2048, _steps(4, 16, 1)),
    CpuSize(4096, _steps(8, 30, 1)),
    CpuSize(8192, _steps(16, 60, 4)),
    CpuSize(16384, _steps(32, 120, 8)),
)


@dataclass(frozen=True)
class TaskSize:
    cpu: int  # CPU units, as the task definition's "Cpu"
    memory_mib: int


class InvalidFargateSize(ValueError):
    """``field`` ("cpus" or "memory") names the catalog key to fix."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def fargate_size(cpus: float | None, memory: int | None) -> TaskSize:
    """The smallest Fargate size with at least ``cpus`` vCPUs and ``memory`` bytes."""
    wanted_units = 256 if cpus is None else cpus * 1024
    size = next((s for s in CPU_SIZES if s.units >= wanted_units), None)
    if size is None:
        raise InvalidFargateSize(
            "cpus", f"{cpus:g} vCPUs is more than Fargate's largest task (16); lower it"
        )
    if memory is None:
        return TaskSize(size.units, size.memory_mib[0])
    wanted_mib = -(-memory // MIB)
    fitting = next((m for m in size.memory_mib if m >= wanted_mib), None)
    if fitting is None:
        roomy = next((s for s in CPU_SIZES if s.memory_mib[-1] >= wanted_mib), None)
        fix = (
            f"raise cpus to {roomy.vcpus:g} or lower memory"
            if roomy is not None
            else "lower it (Fargate's largest task has 120GiB)"
        )
        raise InvalidFargateSize(
            "memory",
            f"{format_size(memory)} does not fit a {size.vcpus:g} vCPU Fargate task, which "
            f"takes {format_size(size.memory_mib[0] * MIB)} to "
            f"{format_size(size.memory_mib[-1] * MIB)}; {fix}",
        )
    return TaskSize(size.units, fitting)
