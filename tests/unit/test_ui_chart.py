"""The job page's charts: duration over the last runs (and a backup's bytes and
throughput), as accessible SVG bar charts coloured by outcome."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from scheduler.history import History, RunRecord
from scheduler.runs import Status
from scheduler.settings import load_config
from scheduler.status import Health
from scheduler.ui import PageSource, StatusPages
from scheduler.ui_chart import rate_words, run_charts, size_words

from .test_ui import HOSTILE, assert_inert, finished, parsed

NOW = datetime(2026, 12, 4, 10, 2, 0, tzinfo=UTC)


def record(n: int, status: str, seconds: float | None, stored: int | None = None) -> RunRecord:
    at = NOW - timedelta(hours=n)
    return RunRecord(
        run_id=f"r{n}",
        attempt=1,
        job="j",
        trigger="schedule",
        scheduled_at=at,
        started_at=at,
        finished_at=None if seconds is None else at + timedelta(seconds=seconds),
        status=status,
        exit_code=0,
        reason=None,
        error=None,
        container_id=None,
        output_tail=None,
        stored_bytes=stored,
        read_bytes=None if stored is None else stored * 2,
    )


def bars(svg: str) -> list[tuple[str, float, str]]:
    """(class, height, hover) of each bar, left to right."""
    return [
        (c, float(h), t)
        for c, h, t in re.findall(
            r'<rect class="([^"]+)" x="[\d.]+" y="[\d.]+" width="[\d.]+" height="([\d.]+)">'
            r"<title>([^<]*)</title>",
            svg,
        )
    ]


def test_duration_chart_bars_oldest_first_coloured_by_outcome() -> None:
    """One bar per run, oldest left, its height to scale, its class its outcome; a run
    without a duration is a low bar; title, desc and axis labels say what it shows."""
    runs = [record(0, "running", None), record(1, "failed", 10.0), record(2, "succeeded", 20.0)]
    html = run_charts(runs, None, backup=False)
    assert html.count("<svg") == 1
    found = bars(html)
    assert [(c, t) for c, _, t in found] == [
        ("s-succeeded", "2026-12-04 08:02 UTC, 20.0 s, succeeded"),
        ("s-failed", "2026-12-04 09:02 UTC, 10.0 s, failed"),
        ("s-running", "2026-12-04 10:02 UTC, -, running"),
    ]
    assert found[0][1] == 2 * found[1][1]
    assert found[2][1] == 2.0
    assert '<title id="duration-t">Duration of the last 3 runs</title>' in html
    assert (
        '<desc id="duration-d">3 runs, oldest first, from 2026-12-04 08:02 UTC to '
        "2026-12-04 10:02 UTC; 2 with a value: median 15.0 s, highest 20.0 s." in html
    )
    assert 'role="img" aria-labelledby="duration-t duration-d"' in html
    ticks = re.findall(r'<text class="tick"[^>]*>([^<]*)</text>', html)
    assert ticks == ["0.0 s", "10.0 s", "20.0 s", "2026-12-04 08:02 UTC", "2026-12-04 10:02 UTC"]


def test_a_backup_has_bytes_and_throughput_charts() -> None:
    """A backup job with sizes recorded: bytes stored and data read per second too; a run
    of another kind, or a backup without sizes, has the duration chart only."""
    runs = [record(0, "succeeded", 4.0, stored=4 * 1024 * 1024), record(1, "failed", 2.0)]
    html = run_charts(runs, None, backup=True)
    assert html.count("<svg") == 3
    assert "Bytes stored by the last 2 runs" in html
    assert "2026-12-04 10:02 UTC, 4.0 MiB stored, succeeded" in html
    assert "2026-12-04 10:02 UTC, 2.0 MiB/s, succeeded" in html  # 8 MiB read in 4 s
    assert run_charts(runs, None, backup=False).count("<svg") == 1
    assert run_charts([record(0, "succeeded", 1.0)], None, backup=True).count("<svg") == 1
    assert size_words(1536) == "1.5 KiB"
    assert size_words(12) == "12 B"
    assert rate_words(3 * 1024 * 1024) == "3.0 MiB/s"
    assert rate_words(0) == "0 B/s"


def test_no_chart_without_runs_or_values() -> None:
    assert run_charts([], None, backup=True) == ""
    assert run_charts([record(0, "running", None)], None, backup=False) == ""


def test_a_hostile_status_is_text_in_the_chart() -> None:
    """A status the daemon does not know (a tampered database) is escaped and coloured as
    other."""
    html = run_charts([record(0, HOSTILE, 1.0)], None, backup=False)
    assert_inert(html)
    assert bars(html)[0][0] == "s-other"


def test_job_page_shows_the_charts_of_all_its_last_runs(tmp_path: Path) -> None:
    """/jobs/<backup job>: duration, bytes and throughput charts of its last runs, the
    stored sizes from the history; with ?outcome= the history is filtered, the charts not."""
    path = tmp_path / "c.toml"
    path.write_text(
        f'[daemon]\nstate_dir = "{tmp_path}/state"\nui = true\n'
        '[jobs.bk]\nkind = "backup"\nschedule = "@daily"\nvolumes_from = "db"\ntarget = "t"\n'
    )
    config = load_config(path, {})
    history = History.open(tmp_path / "state")
    finished(history, "b1", "bk", Status.SUCCEEDED, NOW - timedelta(days=1), sizes=(100, 300))
    finished(history, "b2", "bk", Status.FAILED, NOW - timedelta(hours=1), exit_code=1)
    pages = StatusPages(
        PageSource(
            jobs=lambda: config.jobs,
            sources=dict,
            history=history,
            health=Health(lambda: True, lambda: None),
            now=lambda: NOW,
            daemon="d",
            output_dirs=None,
        )
    )
    for target in ("/jobs/bk", "/jobs/bk?outcome=failed"):
        answer = pages.answer(target)
        assert answer is not None
        body = answer.body.decode()
        assert_inert(body)
        assert [a["id"] for t, a in parsed(body).tags if t == "title" and a.get("id")] == [
            "duration-t",
            "stored-t",
            "rate-t",
        ], target
        assert "Duration of the last 2 runs" in body
        assert "100 B stored, succeeded" in body
        assert "150 B/s, succeeded" in body  # 300 B read in 2 s
    history.close()
