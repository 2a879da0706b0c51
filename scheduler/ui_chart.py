"""The charts of a job's page: its runs' duration over the last 100 runs, and for a backup
the bytes each run stored and its throughput (data read per second). Server-rendered SVG
bar charts, oldest run left: each bar coloured by the run's outcome, with its time, value
and outcome on hover (``<title>``); the chart an image with a ``<title>`` and a
``<desc>`` saying what it shows in words (how many runs, median, longest) for a screen
reader, and its axes labelled (value at 0, half and top; the first and last run's time)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scheduler.ui_html import OUTCOMES, esc, took

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import tzinfo

    from scheduler.history import RunRecord

_W, _H = 640, 180
"""The chart's size in its own units (it scales to the page's width, text with it)."""
_LEFT, _BOTTOM, _TOP = 90, 22, 8
"""Room for the value labels (left), the time labels (below), the top label's half."""


@dataclass(frozen=True, slots=True)
class Point:
    """One run's bar: its value (None: none, e.g. a run under way), its outcome, its hover."""

    value: float | None
    status: str
    hover: str


def size_words(count: float) -> str:
    """Bytes in binary units: ``1.5 MiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":  # noqa: PLR2004 - a binary unit
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"  # pragma: no cover - the loop returns


def rate_words(per_second: float) -> str:
    """Bytes a second in binary units: ``2.0 MiB/s``."""
    return f"{size_words(per_second)}/s"


def bar_chart(
    key: str, title: str, points: Sequence[Point], say: Callable[[float], str], span: str
) -> str:
    """An SVG bar chart of ``points`` (oldest first): ``key`` names its ids, ``title`` what
    it shows, ``say`` a value in words, ``span`` the first and last run's times."""
    values = [p.value for p in points if p.value is not None]
    if not values:
        return ""
    top = max(values) or 1.0
    plot_w, plot_h = _W - _LEFT - 4, _H - _BOTTOM - _TOP
    step = plot_w / max(len(points), 1)
    bar = max(1.0, step * 0.8)
    bars = []
    for i, point in enumerate(points):
        known = point.status if point.status in OUTCOMES else "other"
        height = 2.0 if point.value is None else max(1.0, point.value / top * plot_h)
        x = _LEFT + i * step + (step - bar) / 2
        y = _TOP + plot_h - height
        bars.append(
            f'<rect class="s-{known}" x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" '
            f'height="{height:.1f}"><title>{esc(point.hover)}</title></rect>'
        )
    axis = []
    for fraction in (0.0, 0.5, 1.0):
        y = _TOP + plot_h * (1 - fraction)
        axis.append(
            f'<line class="grid" x1="{_LEFT}" x2="{_W - 4}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{esc(say(top * fraction))}</text>"
        )
    first, _, last = span.partition("|")
    axis.append(
        f'<text class="tick" x="{_LEFT}" y="{_H - 5}">{esc(first)}</text>'
        f'<text class="tick" x="{_W - 4}" y="{_H - 5}" text-anchor="end">{esc(last)}</text>'
    )
    median, most = statistics.median(values), max(values)
    desc = (
        f"{len(points)} runs, oldest first, from {first} to {last}; {len(values)} with a "
        f"value: median {say(median)}, highest {say(most)}. Bars coloured by outcome."
    )
    return (
        f'<figure class="chart"><svg viewBox="0 0 {_W} {_H}" role="img" '
        f'aria-labelledby="{key}-t {key}-d"><title id="{key}-t">{esc(title)}</title>'
        f'<desc id="{key}-d">{esc(desc)}</desc>{"".join(axis)}{"".join(bars)}</svg>'
        f"<figcaption>{esc(title)}: median {esc(say(median))}, highest {esc(say(most))}"
        "</figcaption></figure>"
    )


def run_charts(runs: Sequence[RunRecord], zone: tzinfo | None, *, backup: bool) -> str:
    """The charts of ``runs`` (newest first, as the history reads them): duration, and for
    a ``backup`` job with sizes recorded, bytes stored and throughput."""
    if not runs:
        return ""
    oldest_first = list(reversed(runs))

    def when(record: RunRecord) -> str:
        moment = record.started_at or record.scheduled_at
        moment = moment.astimezone(zone) if zone is not None else moment
        return f"{moment:%Y-%m-%d %H:%M} {moment.tzname()}"

    span = f"{when(oldest_first[0])}|{when(oldest_first[-1])}"
    count = len(runs)
    charts = [
        bar_chart(
            "duration",
            f"Duration of the last {count} runs",
            [
                Point(r.duration_s, r.status, f"{when(r)}, {took(r.duration_s)}, {r.status}")
                for r in oldest_first
            ],
            _seconds,
            span,
        )
    ]
    if backup and any(r.stored_bytes is not None for r in runs):
        charts.append(
            bar_chart(
                "stored",
                f"Bytes stored by the last {count} runs",
                [
                    Point(
                        None if r.stored_bytes is None else float(r.stored_bytes),
                        r.status,
                        f"{when(r)}, {_maybe(r.stored_bytes, size_words)} stored, {r.status}",
                    )
                    for r in oldest_first
                ],
                size_words,
                span,
            )
        )
        rates = [_rate(r) for r in oldest_first]
        charts.append(
            bar_chart(
                "rate",
                f"Throughput of the last {count} runs (data read per second of the run)",
                [
                    Point(rate, r.status, f"{when(r)}, {_maybe(rate, rate_words)}, {r.status}")
                    for r, rate in zip(oldest_first, rates, strict=True)
                ],
                rate_words,
                span,
            )
        )
    return "".join(charts)


def _seconds(value: float) -> str:
    return took(value)


def _maybe(value: float | None, say: Callable[[float], str]) -> str:
    return "-" if value is None else say(value)


def _rate(record: RunRecord) -> float | None:
    """Bytes read (else stored) per second of the run; None without both."""
    count = record.read_bytes if record.read_bytes is not None else record.stored_bytes
    spent = record.duration_s
    if count is None or not spent:
        return None
    return count / spent
