"""How the shim starts a run's program (posix_spawn): what it finds, what it inherits,
and the errors it reports, each as subprocess.Popen did for the shim before."""

from __future__ import annotations

import errno
import os
import signal
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobdeck.execute.spawn import Program, candidates, spawn


@pytest.fixture
def output(tmp_path: Path) -> Iterator[int]:
    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    yield fd
    os.close(fd)


def run(argv: list[str], env: dict[str, str], output: int, where: Path) -> str:
    program = spawn(argv, env, output)
    assert program.wait() == 0
    return (where / "out").read_text()


def script(path: Path, body: str) -> Path:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def test_a_bare_name_is_looked_up_in_the_given_environments_path(
    tmp_path: Path, output: int
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    script(second / "hello", "echo from-second")
    env = {"PATH": f"{tmp_path / 'missing'}:{first}:{second}"}
    assert run(["hello"], env, output, tmp_path) == "from-second\n"
    assert candidates("hello", env) == [
        f"{tmp_path / 'missing'}/hello",
        f"{first}/hello",
        f"{second}/hello",
    ]
    assert candidates("./x.sh", env) == ["./x.sh"]


def test_the_first_error_that_is_not_a_missing_file_is_reported(
    tmp_path: Path, output: int
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "tool").write_text("#!/bin/sh\n")
    (locked / "tool").chmod(stat.S_IRUSR)  # there, but not executable
    with pytest.raises(FileNotFoundError):
        spawn(["no-such-tool"], {"PATH": str(tmp_path)}, output)
    with pytest.raises(PermissionError) as refused:
        spawn(["tool"], {"PATH": f"{tmp_path / 'missing'}:{locked}:/bin"}, output)
    assert refused.value.errno == errno.EACCES


def test_the_program_gets_its_own_session_stdin_and_output(tmp_path: Path, output: int) -> None:
    program = script(
        tmp_path / "probe.sh",
        'echo "sid=$(cut -d" " -f6 /proc/$$/stat) pid=$$"\n'
        "cat\n"  # stdin is /dev/null: cat ends at once
        "echo to-stderr >&2\n"
        'echo "cwd=$(pwd)"',
    )
    work = tmp_path / "work"
    work.mkdir()
    before = os.getcwd()
    os.chdir(work)
    try:
        spawned = spawn([str(program)], {"PATH": "/usr/bin:/bin"}, output)
        assert spawned.wait() == 0
    finally:
        os.chdir(before)
    lines = (tmp_path / "out").read_text().splitlines()
    assert lines[0] == f"sid={spawned.pid} pid={spawned.pid}"
    assert lines[1:] == ["to-stderr", f"cwd={work}"]


def test_ignored_signals_are_back_at_their_defaults(tmp_path: Path, output: int) -> None:
    # Python ignores SIGPIPE; a program that writes to a closed pipe must die of it.
    assert signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN
    shown = run(["/bin/sh", "-c", "grep SigIgn /proc/self/status"], {}, output, tmp_path)
    ignored = int(shown.split()[1], 16)
    assert not ignored & (1 << (signal.SIGPIPE - 1))
    assert not ignored & (1 << (signal.SIGXFSZ - 1))


def test_only_stdin_stdout_and_stderr_are_inherited(tmp_path: Path, output: int) -> None:
    kept = os.open(tmp_path / "inheritable", os.O_WRONLY | os.O_CREAT, 0o600)
    private = os.open(tmp_path / "private", os.O_WRONLY | os.O_CREAT, 0o600)
    os.set_inheritable(kept, True)
    try:
        shown = run(["/bin/sh", "-c", "ls /proc/self/fd"], {}, output, tmp_path)
    finally:
        os.close(kept)
        os.close(private)
    # ls's own descriptor for the listing is the only other one.
    assert sorted(int(fd) for fd in shown.split()) == [0, 1, 2, 3]


def test_an_output_among_the_standard_descriptors_is_kept_open(tmp_path: Path) -> None:
    saved = os.dup(2)
    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 2, inheritable=False)
    os.close(fd)
    try:
        assert spawn(["/bin/sh", "-c", "echo out; echo err >&2"], {}, 2).wait() == 0
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    assert (tmp_path / "out").read_text() == "out\nerr\n"


def test_exit_statuses_and_signals(output: int) -> None:
    assert spawn(["/bin/sh", "-c", "exit 3"], {}, output).wait() == 3
    sleeper = spawn(["/bin/sleep", "30"], {}, output)
    assert sleeper.poll() is None
    sleeper.kill()
    assert sleeper.wait() == -signal.SIGKILL
    assert sleeper.poll() == -signal.SIGKILL
    sleeper.kill()  # over already: nothing to do
    assert Program(sleeper.pid).poll() == 0  # not a child (any more): over, as Popen says


def test_a_program_reaped_by_the_kernel_is_over(output: int) -> None:
    """With SIGCHLD ignored (by whoever started the shim) the kernel reaps the program
    and nothing can wait for it: it is over, with status 0, as Popen has it."""
    before = signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    try:
        program = spawn(["/bin/true"], {}, output)
        deadline = time.monotonic() + 10
        while program.poll() is None:
            assert time.monotonic() < deadline, "the program is never over"
            time.sleep(0.01)
        assert program.poll() == 0
        assert spawn(["/bin/true"], {}, output).wait() == 0
    finally:
        signal.signal(signal.SIGCHLD, before)
