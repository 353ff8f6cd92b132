"""The dashboard's pure parts: how it writes times and sizes, the duration chart, the log
pieces the live view asks for."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jobdeck.api.dashboard.chart import duration_chart
from jobdeck.api.dashboard.present import event_facts, in_zone, reason_text, relative, size, span
from jobdeck.api.dashboard.views import LOG_PIECE_BYTES, read_log
from jobdeck.store.records import Run

NOW = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)


def run(run_id: int, seconds: float | None, status: str = "succeeded", **more: object) -> Run:
    started = NOW - timedelta(minutes=10)
    ended = None if seconds is None else started + timedelta(seconds=seconds)
    return Run(
        id=run_id,
        job="report",
        kind="schedule",
        trigger="schedule",
        status=status,  # type: ignore[arg-type]
        created_at=started,
        started_at=started if seconds is not None or status == "running" else None,
        ended_at=ended,
        **more,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.42, "0.4 s"), (12, "12 s"), (185, "3 min 5 s"), (1500, "25 min"), (7800, "2 h 10 min")],
)
def test_spans_read_as_people_say_them(seconds: float, text: str) -> None:
    assert span(seconds) == text


@pytest.mark.parametrize(
    ("value", "text"), [(0, "0 B"), (812 * 1024, "812 KiB"), (3 * 1024**3 // 2, "1.5 GiB")]
)
def test_sizes_in_binary_units(value: int, text: str) -> None:
    assert size(value) == text


def test_times_in_the_schedules_zone_follow_its_daylight_saving() -> None:
    # 00:30 UTC on the last Sunday of March: Paris has just moved to summer time.
    assert in_zone(NOW, "Europe/Paris") == "2026-03-29 01:30:00 CET"
    assert in_zone(NOW + timedelta(hours=1), "Europe/Paris") == "2026-03-29 03:30:00 CEST"
    assert relative(NOW + timedelta(minutes=4), NOW) == "in 4 min"
    assert relative(NOW - timedelta(seconds=12), NOW) == "12 s ago"


def test_reasons_name_the_exit_code() -> None:
    assert reason_text(run(1, 2.0, "failed", reason="exit_code", exit_code=3)) == "exit 3"
    assert reason_text(run(2, 2.0, "failed", reason="oom_killed")) == "oom killed"


def test_event_details_are_flattened_without_host_paths() -> None:
    facts = event_facts(
        {
            "status": "running",
            "detail": {"pid": 41, "run_dir": "/var/lib/jobdeck/runs/4"},
            "started_at": "2026-03-29T00:30:00+00:00",
        }
    )
    assert facts == [("started at", "2026-03-29 00:30:00 UTC"), ("pid", "41")]


def test_the_chart_has_one_bar_per_started_run_oldest_first_linked_and_scaled() -> None:
    runs = [run(4, 30.0, "failed"), run(3, None, "skipped"), run(2, 10.0), run(1, 15.0)]
    svg = str(duration_chart(runs, NOW))
    bars = re.findall(r'<a href="runs/(\d+)"><rect class="bar (\w+)"[^>]*height="([\d.]+)"', svg)
    assert [(int(i), kind) for i, kind, _ in bars] == [(1, "good"), (2, "good"), (4, "bad")]
    heights = [float(h) for *_, h in bars]
    assert heights[2] == max(heights)
    assert heights[1] == pytest.approx(heights[2] / 3, abs=0.1)
    assert "30 s" in svg  # the axis names the longest duration


def test_a_running_run_is_drawn_up_to_now_and_no_runs_say_so() -> None:
    svg = str(duration_chart([run(9, None, "running")], NOW))
    assert "#9 running · 10 min" in svg
    assert "No durations yet" in str(duration_chart([run(3, None, "skipped")], NOW))


def test_log_pieces_follow_offsets_and_never_split_a_character(tmp_path: Path) -> None:
    log = tmp_path / "log"
    assert read_log(log, 0).missing
    log.write_bytes(b"one\n")
    first = read_log(log, None)
    assert (first.text, first.start, first.end) == ("one\n", 0, 4)
    with log.open("ab") as handle:
        handle.write("café".encode()[:-1])  # half of the é so far
    piece = read_log(log, first.end)
    assert (piece.text, piece.end) == ("caf", 7)
    with log.open("ab") as handle:
        handle.write("é".encode()[1:] + b"\n")
    assert read_log(log, piece.end).text == "é\n"
    # A shorter file was replaced: start again from its beginning.
    log.write_bytes(b"new\n")
    again = read_log(log, 9)
    assert (again.text, again.start) == ("new\n", 0)


def test_big_logs_come_in_pieces(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_bytes(b"x" * (LOG_PIECE_BYTES + 10))
    piece = read_log(log, 0)
    assert (len(piece.text), piece.end) == (LOG_PIECE_BYTES, LOG_PIECE_BYTES)
    assert read_log(log, piece.end).text == "x" * 10
