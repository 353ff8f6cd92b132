"""Pools live under the server's own cgroup, so a limit on the service covers its runs;
where they cannot, the server says why at start."""

from __future__ import annotations

import os
from pathlib import Path

from jobdeck.execute import cgroups
from jobdeck.execute.pools import PoolManager
from jobdeck.execute.spec import LOG_FILE
from tests.integration.test_execute_harness import PY, Harness, needs_cgroups, pool

V1 = """\
12:memory:/system.slice/jobdeck.service
11:cpu,cpuacct:/system.slice/jobdeck.service
1:name=systemd:/system.slice/jobdeck.service
0::/system.slice/jobdeck.service
"""


def test_proc_cgroup_is_read_per_controller() -> None:
    paths = cgroups.own_paths(V1)
    assert paths["memory"] == "/system.slice/jobdeck.service"
    assert paths["cpuacct"] == "/system.slice/jobdeck.service"
    assert paths[""] == "/system.slice/jobdeck.service"


def test_v1_pools_go_under_the_servers_own_groups(tmp_path: Path) -> None:
    memory, cpu = tmp_path / "memory", tmp_path / "cpu,cpuacct"
    for tree in (memory, cpu):
        (tree / "system.slice" / "jobdeck.service").mkdir(parents=True)
    found, why = cgroups.delegated(cgroups.Hierarchy(1, memory, cpu), V1)
    assert why is None
    assert found.memory == memory / "system.slice" / "jobdeck.service"
    assert found.cpu == cpu / "system.slice" / "jobdeck.service"
    # A tree mounted from a deeper group (a container without its own namespace).
    elsewhere, why = cgroups.delegated(cgroups.Hierarchy(1, tmp_path / "other", None), V1)
    assert elsewhere.memory == tmp_path / "other"
    assert why is not None
    assert "not inside the mounted tree" in why


def test_v2_delegation_needs_a_group_of_the_servers_own(tmp_path: Path) -> None:
    root = tmp_path / "unified"
    own = root / "system.slice" / "jobdeck.service"
    own.mkdir(parents=True)
    hierarchy = cgroups.Hierarchy(2, root, root)
    # Other processes share the group: v2 cannot hand controllers down from it.
    (own / "cgroup.procs").write_text(f"{os.getpid()}\n1\n")
    found, why = cgroups.delegated(hierarchy, V1)
    assert found == hierarchy
    assert why is not None
    assert "Delegate=yes" in why
    # At the tree's root (a container's own namespace) there is nothing to move.
    assert cgroups.delegated(hierarchy, "0::/\n") == (hierarchy, None)
    # A server already in its leaf keeps using its group.
    leaf = own / cgroups.SERVER_LEAF
    leaf.mkdir()
    found, why = cgroups.delegated(hierarchy, f"0::/system.slice/jobdeck.service/{leaf.name}\n")
    assert why is None
    assert found == cgroups.Hierarchy(2, own, own, leaf)
    assert found.leave_to == leaf


@needs_cgroups
def test_a_runs_cgroup_is_inside_the_servers_own(harness: Harness) -> None:
    paths = cgroups.own_paths(Path("/proc/self/cgroup").read_text())
    mounts, _ = cgroups.detect()
    assert mounts is not None
    own = cgroups.delegated(mounts)[0].memory
    assert own == mounts.memory / paths.get("memory" if mounts.version == 1 else "", "/").lstrip(
        "/"
    )
    pools: PoolManager = harness.pools(mode="cgroups", batch=pool(memory="128MiB"))
    assert pools.memory_group("batch").is_relative_to(own)
    assert pools.memory_group("batch").is_dir()
    handle = harness.start(
        pools,
        "batch",
        "inside",
        argv=[PY, "-c", "print(open('/proc/self/cgroup').read())"],
    )
    result = harness.wait(handle.run_dir)
    assert result.status == "succeeded", result
    seen = cgroups.own_paths((handle.run_dir / LOG_FILE).read_text())
    inside = seen["memory" if mounts.version == 1 else ""]
    expected = "/" + str(pools.memory_group("batch").relative_to(mounts.memory))
    assert inside.startswith(expected + "/run-"), (inside, expected)
    assert pools.teardown()
    assert not (own / "jobdeck" / pools.instance).exists()
