"""The run's record: one append-only file of JSON lines, read as far as it is written."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from jobdeck.execute import record
from jobdeck.execute.spec import RunSpec

SPEC = RunSpec(run_id="7", argv=("/bin/true",), env={"A": "line one\nline two"})


def test_the_engine_creates_the_record_with_the_spec_and_only_once(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "7"
    assert not record.exists(run_dir)
    record.create(run_dir, SPEC.to_json())
    assert record.exists(run_dir)
    text = (run_dir / record.RECORD_FILE).read_text()
    assert text.count("\n") == 1, "a newline inside a value is escaped: one line"
    assert RunSpec.from_json(record.read(run_dir).spec or {}) == SPEC
    with pytest.raises(FileExistsError, match="already holds a run"):
        record.create(run_dir, SPEC.to_json())
    assert (run_dir / record.RECORD_FILE).read_text() == text, "nothing was changed"


def test_a_folder_with_an_earlier_versions_spec_is_not_started_again(tmp_path: Path) -> None:
    (tmp_path / "spec.json").write_text(json.dumps(SPEC.to_json()))
    with pytest.raises(FileExistsError):
        record.create(tmp_path, SPEC.to_json())
    assert not (tmp_path / record.RECORD_FILE).exists()


def test_appended_parts_are_read_in_one_record(tmp_path: Path) -> None:
    record.create(tmp_path, SPEC.to_json())
    fd = record.open_for_append(tmp_path)
    try:
        assert not os.get_inheritable(fd), "a run's program never holds the record"
        shim = {"shim_pid": 10, "shim_start": 5, "boot_id": "b", "child_pid": None}
        record.write_line(fd, "shim", shim)
        started = {"child_pid": 11, "child_start": 6, "pgid": 11, "started_at": "t"}
        record.write_line(fd, "started", started)
        record.write_line(fd, "result", {"run_id": "7", "status": "succeeded", "reason": None})
        record.flush(fd, tmp_path)
    finally:
        os.close(fd)
    found = record.read(tmp_path)
    info = found.shim_info()
    assert info is not None
    assert (info.shim_pid, info.child_pid, info.pgid, info.started_at) == (10, 11, 11, "t")
    done = found.run_result()
    assert done is not None
    assert done.status == "succeeded"
    # The engine's reads leave out the spec (the largest line), and only it.
    without = record.read(tmp_path, spec=False)
    assert without.spec is None
    assert (without.shim, without.started, without.result) == (
        found.shim,
        found.started,
        found.result,
    )


def test_an_earlier_versions_files_are_read_with_or_without_the_spec(tmp_path: Path) -> None:
    (tmp_path / "spec.json").write_text(json.dumps(SPEC.to_json()))
    (tmp_path / "shim.json").write_text(json.dumps({"shim_pid": 3, "shim_start": 4}))
    assert RunSpec.from_json(record.read(tmp_path).spec or {}) == SPEC
    without = record.read(tmp_path, spec=False)
    assert without.spec is None
    assert without.shim == {"shim_pid": 3, "shim_start": 4}


def test_a_line_still_being_written_is_not_there_yet(tmp_path: Path) -> None:
    record.create(tmp_path, SPEC.to_json())
    with open(tmp_path / record.RECORD_FILE, "ab") as handle:
        handle.write(b'{"result": {"run_id": "7", "status": "succ')
    found = record.read(tmp_path)
    assert found.spec is not None
    assert found.result is None


def test_a_line_cut_short_is_skipped_and_the_first_of_each_part_counts(tmp_path: Path) -> None:
    """A full disk may cut a line, and the next write is glued to it: that line is
    skipped, the lines after it are read, and the first whole line of a part counts."""
    record.create(tmp_path, SPEC.to_json())
    with open(tmp_path / record.RECORD_FILE, "ab") as handle:
        handle.write(b'{"shim": {"shim_pid": 1, "sh')
        handle.write(b'{"shim": {"shim_pid": 2, "shim_start": 3, "boot_id": "b"}}\n')
        handle.write(b'{"shim": {"shim_pid": 3, "shim_start": 3, "boot_id": "b"}}\n')
        handle.write(b'["not", "a", "part"]\n{"other": {}}\n{"started": 5}\n')
    found = record.read(tmp_path)
    info = found.shim_info()
    assert info is not None
    assert info.shim_pid == 3, "the glued line is skipped; the next whole part counts"
    assert found.started is None


def test_no_record_is_an_empty_one(tmp_path: Path) -> None:
    found = record.read(tmp_path / "missing")
    assert found == record.Record()
    assert found.shim_info() is None
    assert found.run_result() is None


def test_a_reader_never_sees_half_a_line(tmp_path: Path) -> None:
    """Lines of several pages each, appended while another thread reads: every read
    holds whole parts only."""
    big = RunSpec(run_id="7", argv=("/bin/true",), env={f"V{i}": "x" * 900 for i in range(40)})
    record.create(tmp_path, big.to_json())
    done = threading.Event()
    seen: list[int] = []

    def read() -> None:
        while not done.is_set():
            found = record.read(tmp_path)
            assert RunSpec.from_json(found.spec or {}) == big
            if found.result is not None:
                assert len(found.result["filler"]) == 50_000
                seen.append(1)

    reader = threading.Thread(target=read)
    reader.start()
    fd = record.open_for_append(tmp_path)
    try:
        for _ in range(50):
            record.write_line(fd, "shim", {"filler": "y" * 50_000})
        record.write_line(fd, "result", {"filler": "z" * 50_000})
    finally:
        os.close(fd)
        done.set()
        reader.join()
    assert record.read(tmp_path).result is not None
