"""The warm launcher: runs started by forking a resident process, with the same shim,
the same cgroups, logs and results as the cold path; it survives and is replaced."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from jobdeck.execute import record
from jobdeck.execute.launch import RunHandle, shim_info
from jobdeck.execute.pools import PoolManager
from jobdeck.execute.spec import RunSpec
from jobdeck.execute.warm import VERSION
from jobdeck.execute.warm_client import LauncherUnreachable, WarmLauncher, WarmLaunchError
from tests.integration.test_execute_harness import (
    ENV,
    PY,
    Harness,
    needs_cgroups,
    pool,
    wait_for,
)

pytestmark = needs_cgroups


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[WarmLauncher]:
    # Unix socket paths are short (108 bytes): keep it near the root of the test's dir.
    warm = WarmLauncher(tmp_path / "tools.sock")
    yield warm
    pid = warm._pid()
    warm.stop()
    if pid is not None:
        wait_for(lambda: not _running(pid), 10, "the launcher to exit")


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def spec_for(harness: Harness, manager: PoolManager, run_id: str, argv: list[str]) -> RunSpec:
    harness.run_dirs.append(harness.tmp_path / run_id)
    return RunSpec(
        run_id=run_id,
        argv=tuple(argv),
        env=dict(ENV),
        workdir=str(harness.tmp_path),
        timeout=60,
        kill_grace=2,
        isolation=manager.placement("tools", run_id, None),
    )


def start(
    harness: Harness, manager: PoolManager, warm: WarmLauncher, run_id: str, argv: list[str]
) -> RunHandle:
    return warm.launch(harness.tmp_path / run_id, spec_for(harness, manager, run_id, argv))


def test_a_warm_run_has_the_cold_runs_result_log_and_cgroup(
    harness: Harness, launcher: WarmLauncher
) -> None:
    manager = harness.pools(tools=pool(memory="256MiB", priority="critical", warm=True))
    launcher.ensure()
    assert launcher.alive()
    handle = start(
        harness,
        manager,
        launcher,
        "w1",
        [
            PY,
            "-c",
            "import sys; print('warm', sys.argv[1:]); print(open('/proc/self/cgroup').read())",
            "a b",
            "$(x)",
        ],
    )
    assert handle.info is not None
    assert handle.result is None
    found = harness.wait(handle.run_dir)
    assert (found.status, found.exit_code) == ("succeeded", 0)
    log = (handle.run_dir / "log").read_text()
    assert "warm ['a b', '$(x)']" in log
    assert "run-w1" in log  # the program was born in the run's own cgroup
    # the shim is the launcher's child, in its own session
    info = shim_info(handle.run_dir)
    assert info is not None
    assert info.pgid == info.child_pid
    # Two new files per run beside its folder: the record and the log (the shim's own
    # output goes to the launcher's log).
    assert sorted(p.name for p in handle.run_dir.iterdir()) == ["log", "run.jsonl"]


# What a launcher of the previous version did with a request: it knew no version
# request, and looked for ``spec.json``. It exits on SIGTERM and removes its socket.
OLD_LAUNCHER = """
import os, signal, socket, sys
path = sys.argv[1]
listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
listener.bind(path)
listener.listen(8)
def stop(*_):
    os.unlink(path)
    os._exit(0)
signal.signal(signal.SIGTERM, stop)
while True:
    conn, _ = listener.accept()
    request = conn.recv(4096).decode().strip()
    if request:
        conn.sendall(f"error: no run spec in {request!r}\\n".encode())
    conn.close()
"""


def test_a_launcher_of_an_earlier_version_is_replaced(
    harness: Harness, launcher: WarmLauncher
) -> None:
    """Left running across an upgrade, it would refuse every run (it cannot read the
    run's record): the engine stops it at its first run and starts its own."""
    manager = harness.pools(tools=pool(memory="256MiB", priority="critical", warm=True))
    old = subprocess.Popen([PY, "-c", OLD_LAUNCHER, str(launcher.socket_path)])
    try:
        wait_for(launcher.alive, 10, "the old launcher to listen")
        handle = asyncio.run(
            launcher.launch_async(
                harness.tmp_path / "up", spec_for(harness, manager, "up", ["/bin/true"])
            )
        )
        assert handle.result is None or handle.result.status == "succeeded"
        assert old.wait(timeout=10) == 0, "the old launcher was asked to stop"
        assert harness.wait(handle.run_dir).status == "succeeded"
        assert launcher._version() == VERSION
        assert launcher._pid() not in (None, old.pid)
    finally:
        if old.poll() is None:
            old.kill()
            old.wait()


def test_a_shim_that_fails_says_so_in_the_launchers_log(
    tmp_path: Path, launcher: WarmLauncher
) -> None:
    launcher.ensure()
    run_dir = tmp_path / "bad"
    record.create(run_dir, {"run_id": "bad", "argv": ["/bin/true"]})
    (run_dir / "log").mkdir()  # the shim cannot open the run's log
    launcher._request(run_dir)
    log = launcher.socket_path.with_suffix(".log")
    wait_for(lambda: "IsADirectoryError" in log.read_text(), 10, "the log")
    assert f"the shim of {run_dir} failed" in log.read_text()
    assert record.read(run_dir).result is None
    assert launcher.alive()


SERVING_PROBE = """
import os, signal, sys
from pathlib import Path
from jobdeck.execute import warm

def report(*_):
    held = [m for m in ("threading", "subprocess", "asyncio", "logging") if m in sys.modules]
    print("held:", ",".join(held) or "nothing", flush=True)
    os._exit(0)

signal.signal(signal.SIGUSR1, report)
warm.serve(Path(sys.argv[1]))
"""


def test_a_serving_launcher_holds_only_what_its_shims_need(tmp_path: Path) -> None:
    """Every shim is forked from the launcher as it serves: what it imported while it
    started (not only its modules' imports) is in every shim, and threading's handler
    would run after every fork."""
    socket_path = tmp_path / "probe.sock"
    process = subprocess.Popen(
        [sys.executable, "-c", SERVING_PROBE, str(socket_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("warm launcher ready"):
                break
        process.send_signal(signal.SIGUSR1)
        shown, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert shown.strip().splitlines()[-1] == "held: nothing"


def test_a_spec_the_launcher_cannot_use_is_refused_before_any_fork(
    tmp_path: Path, launcher: WarmLauncher
) -> None:
    launcher.ensure()
    run_dir = tmp_path / "bad"
    record.create(run_dir, {"run_id": "bad"})  # neither argv nor shell
    with pytest.raises(WarmLaunchError, match=r"bad run spec.*give exactly one of argv and shell"):
        launcher._request(run_dir)
    assert record.read(run_dir).shim is None
    # Whatever the spec holds, the launcher serves on.
    odd = tmp_path / "odd"
    record.create(odd, {"run_id": "odd", "argv": ["/bin/true"], "isolation": [1, 2]})
    with pytest.raises(WarmLaunchError, match="bad run spec"):
        launcher._request(odd)
    assert launcher.alive()


def test_a_run_outlives_its_launcher_and_a_new_launcher_is_started_on_demand(
    harness: Harness, launcher: WarmLauncher
) -> None:
    manager = harness.pools(tools=pool(memory="256MiB", priority="critical", warm=True))
    launcher.ensure()
    first = launcher._pid()
    assert first is not None
    handle = start(
        harness, manager, launcher, "w2", [PY, "-c", "import time; time.sleep(1.5); print('done')"]
    )
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: not launcher.alive(), 10, "the launcher to go")
    found = harness.wait(handle.run_dir)
    assert found.status == "succeeded"
    assert "done" in (handle.run_dir / "log").read_text()
    launcher.ensure()
    second = launcher._pid()
    assert second is not None
    assert second != first
    handle = start(harness, manager, launcher, "w3", ["/bin/true"])
    assert harness.wait(handle.run_dir).status == "succeeded"


def test_a_missing_executable_is_a_launch_error_not_a_dead_launcher(
    harness: Harness, launcher: WarmLauncher
) -> None:
    manager = harness.pools(tools=pool(memory="256MiB", priority="critical", warm=True))
    launcher.ensure()
    handle = start(harness, manager, launcher, "w4", ["/no/such/program"])
    found = handle.result or harness.wait(handle.run_dir)
    assert (found.status, found.reason) == ("failed", "launch_error")
    assert launcher.alive()


def test_an_unreachable_launcher_is_reported(tmp_path: Path) -> None:
    warm = WarmLauncher(tmp_path / "none.sock")
    assert not warm.alive()
    (tmp_path / "r").mkdir()
    with pytest.raises(WarmLaunchError):
        warm._request(tmp_path / "r")
    assert not warm.alive(), "asking a launcher that is not there starts none"


def test_the_launcher_refuses_a_directory_without_a_spec(
    tmp_path: Path, launcher: WarmLauncher
) -> None:
    launcher.ensure()
    (tmp_path / "empty").mkdir()
    with pytest.raises(WarmLaunchError, match="no run spec"):
        launcher._request(tmp_path / "empty")
    # A record without a usable spec is refused the same way, before any fork.
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / record.RECORD_FILE).write_text('{"spec": 5}\n{"spec": {"argv"\n')
    with pytest.raises(WarmLaunchError, match="no run spec"):
        launcher._request(tmp_path / "cut")
    assert launcher.alive()
    pid = launcher._pid()
    assert pid is not None
    assert _running(pid)


def test_concurrent_ensures_start_one_launcher(tmp_path: Path, launcher: WarmLauncher) -> None:
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: launcher.ensure(), range(8)))
    # a second handle on the same socket (another engine) does not start another either
    WarmLauncher(launcher.socket_path).ensure()
    pid = launcher._pid()
    assert pid is not None
    serving = [
        p
        for p in Path("/proc").iterdir()
        if p.name.isdigit() and _cmdline(p).endswith(str(launcher.socket_path))
    ]
    assert [int(p.name) for p in serving if _running(int(p.name))] == [pid]


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def test_the_answer_comes_once_the_program_runs(harness: Harness, launcher: WarmLauncher) -> None:
    """The shim says ``started`` on the request's connection: when the request returns,
    the run's files already show the program, with no polling for them."""
    manager = harness.pools(tools=pool(memory="256MiB", priority="critical", warm=True))
    launcher.ensure()
    run_dir = harness.tmp_path / "w5"
    harness.run_dirs.append(run_dir)
    run_dir.mkdir()
    spec = RunSpec(
        run_id="w5",
        argv=(PY, "-c", "import time; time.sleep(2)"),
        env=dict(ENV),
        workdir=str(harness.tmp_path),
        timeout=30,
        kill_grace=2,
        isolation=manager.placement("tools", "w5", None),
    )
    record.create(run_dir, spec.to_json())
    shim_pid = launcher._request(run_dir.resolve())
    info = shim_info(run_dir)
    assert info is not None
    assert info.shim_pid == shim_pid
    assert info.child_pid is not None
    assert record.read(run_dir).result is None, "answered at the start, not at the end"
    assert harness.wait(run_dir).status == "succeeded"


def test_no_launcher_to_reach_or_start_writes_nothing(tmp_path: Path) -> None:
    """The caller then starts the run the cold way: no spec may be left behind."""
    warm = WarmLauncher(tmp_path / "none.sock", python="/nonexistent/python")
    run_dir = tmp_path / "r"
    spec = RunSpec(run_id="r", argv=("/bin/true",), env=dict(ENV), workdir=str(tmp_path))
    with pytest.raises(LauncherUnreachable):
        warm.launch(run_dir, spec)
    assert not record.exists(run_dir)


def test_the_event_loop_launches_like_the_thread_and_starts_a_missing_launcher(
    harness: Harness, launcher: WarmLauncher
) -> None:
    """The engine's way: no launcher runs yet (one is started, off the loop), then one
    answers (the request is made from the loop itself); both runs start as above."""
    manager = harness.pools(tools=pool(memory="256MiB", priority="critical", warm=True))
    assert not launcher.alive()
    argv = [PY, "-c", "print(open('/proc/self/cgroup').read())"]

    async def both() -> list[RunHandle]:
        return [
            await launcher.launch_async(
                harness.tmp_path / name, spec_for(harness, manager, name, argv)
            )
            for name in ("a1", "a2")
        ]

    for handle in asyncio.run(both()):
        assert handle.result is None
        assert handle.info is not None
        assert handle.info.child_pid is not None
        assert harness.wait(handle.run_dir).status == "succeeded"
        assert f"run-{handle.run_dir.name}" in (handle.run_dir / "log").read_text()
    assert launcher.alive()


def test_the_event_loop_launch_without_a_launcher_writes_nothing(tmp_path: Path) -> None:
    warm = WarmLauncher(tmp_path / "none.sock", python="/nonexistent/python")
    run_dir = tmp_path / "r"
    spec = RunSpec(run_id="r", argv=("/bin/true",), env=dict(ENV), workdir=str(tmp_path))
    with pytest.raises(LauncherUnreachable):
        asyncio.run(warm.launch_async(run_dir, spec))
    assert not record.exists(run_dir)


def test_the_launchers_rehearsal_leaves_nothing_behind(
    tmp_path: Path, launcher: WarmLauncher
) -> None:
    """Before it serves, the launcher runs a trivial program through the shim's code (so
    that its shims share the rewritten bytecode); what that changed in the launcher is
    put back: no files, no pipes, its own oom_score_adj, SIGTERM still stops it."""
    launcher.ensure()
    pid = launcher._pid()
    assert pid is not None
    assert not list(launcher.socket_path.parent.glob(".rehearsal-*"))
    fds = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    assert not [fd for fd in fds if fd.startswith("pipe:")]
    ours = Path("/proc/self/oom_score_adj").read_text()
    assert Path(f"/proc/{pid}/oom_score_adj").read_text() == ours
    log = launcher.socket_path.with_suffix(".log").read_text()
    assert "rehearsal failed" not in log
    launcher.stop()
    wait_for(lambda: not _running(pid), 10, "the launcher to exit on SIGTERM")
