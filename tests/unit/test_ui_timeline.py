"""The status page's timeline: the next 24 h of planned runs per job, from the scheduler's
own next times; marks as wide as the median run; bands, not thousands of marks, for a job
that fires often; escaped names."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from scheduler.schedule import parse_schedule
from scheduler.ui_timeline import (
    MARKS_MAX,
    ROWS_MAX,
    Lane,
    Timeline,
    median_duration,
    plan,
)

from .test_ui import HOSTILE, assert_inert

NOW = datetime(2026, 12, 4, 10, 2, 0, tzinfo=UTC)  # a Friday


def rects(html: str, kind: str) -> list[tuple[float, float]]:
    """(x, width) of each mark or band, in minutes from now."""
    return [
        (float(x), float(w))
        for x, w in re.findall(rf'<rect class="{kind}" x="([\d.]+)" y="1" width="([\d.]+)"', html)
    ]


def test_marks_are_the_schedulers_next_times() -> None:
    """A job's marks are its schedule's next fire times in the next 24 h (the first one is
    the "Next run" of the page and of crontainer jobs), in its zone on hover."""
    schedule = parse_schedule("15 */6 * * *", "Europe/Berlin")
    found = plan(schedule, NOW, NOW + timedelta(hours=24))
    assert found.dense is None
    assert list(found.times) == [t.astimezone(UTC) for t in schedule.next_times(NOW, 4)]
    html = Timeline().render([Lane("sync", schedule, None)], NOW)
    marks = rects(html, "run")
    expected = [(t.astimezone(UTC) - NOW).total_seconds() / 60 for t in found.times]
    assert [x for x, _ in marks] == [round(x, 1) for x in expected]
    assert "<title>2026-12-04 12:15:00 CET</title>" in html
    assert 'aria-label="sync: 4 runs in the next 24 h, the first at 2026-12-04 12:15 CET"' in html


def test_a_mark_is_as_wide_as_the_median_run() -> None:
    """Width in minutes: the median duration of the last runs; at least 4 minutes."""
    schedule = parse_schedule("0 3 * * *")
    rows = [
        ("r1", "succeeded", "t", "2026-12-04T03:00:00+00:00", "2026-12-04T03:20:00+00:00", None),
        ("r2", "failed", "t", "2026-12-03T03:00:00+00:00", "2026-12-03T03:30:00+00:00", None),
        ("r3", "succeeded", "t", "2026-12-02T03:00:00+00:00", "2026-12-02T04:00:00+00:00", None),
        ("r4", "running", "t", "2026-12-01T03:00:00+00:00", None, None),
    ]
    median = median_duration(rows)
    assert median == 1800
    html = Timeline().render([Lane("backup", schedule, median)], NOW)
    assert rects(html, "run") == [((17 * 60 - 2), 30.0)]
    assert "median 30 min 0 s" in html
    short = Timeline().render([Lane("ping", schedule, 2.0)], NOW)
    assert rects(short, "run")[0][1] == 4.0


def test_a_job_firing_every_second_is_bands_not_marks() -> None:
    """@every 1s: no mark per run (86,400 of them), one band over the whole window, and
    few elements; its words on hover."""
    html = Timeline().render([Lane("tick", parse_schedule("@every 1s"), 0.5)], NOW)
    assert rects(html, "run") == []
    bands = rects(html, "band")
    assert len(bands) == 1
    assert bands[0] == (0.0, 1440.0)
    assert html.count("<rect") <= MARKS_MAX
    assert "every second: too many runs to mark each" in html


def test_bands_cover_only_the_half_hours_a_dense_job_runs_in() -> None:
    """*/5 9-17 on weekdays, from Friday 10:02 UTC: one band from now to 18:00 UTC, and
    nothing on Saturday morning."""
    schedule = parse_schedule("*/5 9-17 * * mon-fri")
    html = Timeline().render([Lane("report", schedule, None)], NOW)
    bands = rects(html, "band")
    assert bands == [(0.0, 18 * 60 - (10 * 60 + 2))]


def test_runs_crowded_in_half_an_hour_are_a_band() -> None:
    """12 runs in one hour (fewer than MARKS_MAX a day, but 4 within half an hour): a band
    over that hour, not 12 touching marks."""
    html = Timeline().render([Lane("burst", parse_schedule("*/5 13 * * *"), None)], NOW)
    assert rects(html, "run") == []
    assert rects(html, "band") == [(178.0, 60.0)]


def test_no_row_for_a_job_without_runs_in_the_window() -> None:
    """A weekly job not due in the next 24 h has no row; with no row at all, no timeline."""
    assert Timeline().render([Lane("weekly", parse_schedule("0 0 * * wed"), None)], NOW) == ""


def test_plans_are_kept_for_an_hour_and_shared_by_schedule() -> None:
    """A refresh within the hour reuses the plan (same object), later ones plan again."""
    timeline = Timeline()
    schedule = parse_schedule("@hourly")
    first = timeline.plan_of(schedule, NOW)
    assert timeline.plan_of(schedule, NOW + timedelta(minutes=59)) is first
    assert timeline.plan_of(parse_schedule("@hourly"), NOW) is first
    later = timeline.plan_of(schedule, NOW + timedelta(minutes=61))
    assert later is not first
    assert later.times[0] == datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def test_hostile_names_are_text() -> None:
    """A name with markup and quotes (a label's job, say) is escaped in the row and its
    label."""
    html = Timeline().render([Lane(HOSTILE, parse_schedule("@hourly"), None)], NOW)
    assert_inert(html)
    assert "&lt;script&gt;" in html


def test_at_most_rows_max_rows() -> None:
    """Past ROWS_MAX jobs with runs ahead, the rest are not planned nor drawn, and the text
    says so."""
    schedule = parse_schedule("@hourly")
    lanes = [Lane(f"job-{i:03d}", schedule, None) for i in range(ROWS_MAX + 7)]
    html = Timeline().render(lanes, NOW)
    assert html.count('<tr><th scope="row"') == ROWS_MAX
    assert f"job-{ROWS_MAX - 1:03d}" in html
    assert f"job-{ROWS_MAX:03d}" not in html
    assert f"Only the first {ROWS_MAX} are drawn (7 more jobs on this page" in html
    assert "Only the first" not in Timeline().render(lanes[:ROWS_MAX], NOW)
