"""Catalog cpus and memory -> Fargate task sizes."""

from __future__ import annotations

import pytest

from jobdeck.targets.aws.sizing import CPU_SIZES, InvalidFargateSize, TaskSize, fargate_size

MIB = 1024 * 1024
GIB = 1024 * MIB


@pytest.mark.parametrize(
    ("cpus", "memory", "expected"),
    [
        (None, None, TaskSize(256, 512)),
        (None, 256 * MIB, TaskSize(256, 512)),
        (None, 512 * MIB, TaskSize(256, 512)),
        (None, 600 * MIB, TaskSize(256, 1024)),
        (0.25, 2 * GIB, TaskSize(256, 2048)),
        (0.5, None, TaskSize(512, 1024)),
        (1.5, None, TaskSize(2048, 4096)),
        (1, 3 * GIB + 1, TaskSize(1024, 4096)),
        (4, 30 * GIB, TaskSize(4096, 30720)),
        (8, 17 * GIB, TaskSize(8192, 20480)),
        (16, 120 * GIB, TaskSize(16384, 122880)),
    ],
)
def test_smallest_size_with_enough(
    cpus: float | None, memory: int | None, expected: TaskSize
) -> None:
    assert fargate_size(cpus, memory) == expected


def test_every_size_is_a_fargate_size() -> None:
    for size in CPU_SIZES:
        for memory in size.memory_mib:
            assert fargate_size(size.vcpus, memory * MIB) == TaskSize(size.units, memory)


@pytest.mark.parametrize(
    ("cpus", "memory", "field", "says"),
    [
        (
            None,
            3 * GIB,
            "memory",
            "3GiB does not fit a 0.25 vCPU Fargate task, which takes "
            "512MiB to 2GiB; raise cpus to 0.5 or lower memory",
        ),
        (1, 9 * GIB, "memory", "raise cpus to 2"),
        (16, 121 * GIB, "memory", "largest task has 120GiB"),
        (17, None, "cpus", "more than Fargate's largest task (16)"),
    ],
)
def test_sizes_fargate_does_not_have(
    cpus: float | None, memory: int | None, field: str, says: str
) -> None:
    with pytest.raises(InvalidFargateSize) as caught:
        fargate_size(cpus, memory)
    assert caught.value.field == field
    assert says in str(caught.value)
