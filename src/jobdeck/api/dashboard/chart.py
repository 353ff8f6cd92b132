"""A small bar chart of recent run durations, as inline SVG written on the server.

Pure: runs in, markup out. One bar per run, oldest on the left, coloured by status and
linked to the run; the tallest bar is the longest run shown, labelled on the axis.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape

from markupsafe import Markup

from jobdeck.api.dashboard.present import duration_seconds, span, status_class
from jobdeck.queue_depth import SAMPLE_SECONDS, Sample
from jobdeck.store.records import Run

WIDTH = 640
HEIGHT = 120
AXIS = 46  # room on the left for the longest duration's label
GAP = 2


def duration_chart(runs: list[Run], now: datetime) -> Markup:
    """``runs`` newest first (as the store lists them); runs that never started are left out."""
    shown = [(run, duration_seconds(run, now)) for run in reversed(runs)]
    bars = [(run, seconds) for run, seconds in shown if seconds is not None]
    if not bars:
        return Markup('<p class="muted">No durations yet.</p>')
    longest = max(seconds for _, seconds in bars) or 1.0
    plot = WIDTH - AXIS
    step = plot / max(len(bars), 12)
    width = max(2.0, step - GAP)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT + 18}" role="img" '
        f'aria-label="Durations of the last {len(bars)} runs">',
        f'<text class="axis" x="{AXIS - 6}" y="12" text-anchor="end">'
        f"{escape(span(longest))}</text>",
        f'<text class="axis" x="{AXIS - 6}" y="{HEIGHT}" text-anchor="end">0</text>',
        f'<line class="base" x1="{AXIS}" y1="{HEIGHT + 0.5}" x2="{WIDTH}" y2="{HEIGHT + 0.5}"/>',
    ]
    for index, (run, seconds) in enumerate(bars):
        height = max(1.5, HEIGHT * seconds / longest)
        x = AXIS + index * step
        label = f"#{run.id} {run.status} · {span(seconds)}"
        parts.append(
            f'<a href="runs/{run.id}"><rect class="bar {status_class(run.status)}" '
            f'x="{x:.1f}" y="{HEIGHT - height:.1f}" width="{width:.1f}" height="{height:.1f}">'
            f"<title>{escape(label)}</title></rect></a>"
        )
    first, last = bars[0][0], bars[-1][0]
    parts.append(f'<text class="axis" x="{AXIS}" y="{HEIGHT + 15}">#{first.id}</text>')
    if last is not first:
        end = AXIS + (len(bars) - 1) * step + width
        parts.append(
            f'<text class="axis" x="{end:.1f}" y="{HEIGHT + 15}" text-anchor="end">'
            f"#{last.id}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def depth_chart(samples: Sequence[Sample]) -> Markup:
    """A queue's visible and in-flight messages over the samples the engine kept, as two
    lines (oldest on the left); the axis is labelled with the highest count."""
    if len(samples) < 2:
        return Markup(
            '<p class="muted">Not enough samples yet: the engine samples the depth every '
            f"{SAMPLE_SECONDS:g} s.</p>"
        )
    highest = max(max(s.visible, s.in_flight) for s in samples) or 1
    plot = WIDTH - AXIS
    step = plot / (len(samples) - 1)

    def line(values: list[int], kind: str) -> str:
        points = " ".join(
            f"{AXIS + i * step:.1f},{HEIGHT - HEIGHT * v / highest:.1f}"
            for i, v in enumerate(values)
        )
        return f'<polyline class="depth {kind}" points="{points}"/>'

    first, last = samples[0].at, samples[-1].at
    return Markup(
        "".join(
            [
                f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT + 18}" role="img" '
                f'aria-label="Queue depth over the last {len(samples)} samples">',
                f'<text class="axis" x="{AXIS - 6}" y="12" text-anchor="end">{highest}</text>',
                f'<text class="axis" x="{AXIS - 6}" y="{HEIGHT}" text-anchor="end">0</text>',
                f'<line class="base" x1="{AXIS}" y1="{HEIGHT + 0.5}" x2="{WIDTH}" '
                f'y2="{HEIGHT + 0.5}"/>',
                line([s.visible for s in samples], "visible"),
                line([s.in_flight for s in samples], "in-flight"),
                f'<text class="axis" x="{AXIS}" y="{HEIGHT + 15}">'
                f"{escape(first.strftime('%H:%M:%S'))}</text>",
                f'<text class="axis" x="{WIDTH}" y="{HEIGHT + 15}" text-anchor="end">'
                f"{escape(last.strftime('%H:%M:%S'))} UTC</text>",
                "</svg>",
            ]
        )
    )
