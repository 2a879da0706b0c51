"""The status page (``[daemon] ui``) on the HTTP listener: ``/`` (a page or a filter of the
jobs, ``ui_index``: each one's schedule, next run, last outcome, last runs; the next 24 h,
``ui_timeline``), ``/jobs/<job>`` (its charts, ``ui_chart``, and history),
``/runs/<run_id>`` (one run), ``/ui.css``, ``/ui.js`` and ``/favicon.svg``.
Server-rendered and read-only, working without script (``/ui.js`` only refreshes parts in
place): what is shown is read from the jobs in force, the state database and ``Health`` at
each request. HTML pieces: ``ui_html``.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote

from scheduler.errors import CrontainerError
from scheduler.metrics import package_version
from scheduler.reports import next_run_word
from scheduler.run_files import run_path
from scheduler.schedule_words import duration_words, schedule_words
from scheduler.ui_chart import run_charts
from scheduler.ui_html import (
    CSS,
    CSS_PATH,
    ICON,
    ICON_PATH,
    OUTCOMES,
    SCRIPT,
    SCRIPT_PATH,
    clock_time,
    esc,
    job_href,
    link,
    live_part,
    page,
    relative,
    run_href,
    took,
)
from scheduler.ui_index import choose_jobs
from scheduler.ui_timeline import Lane, Timeline, median_duration

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from datetime import tzinfo

    from scheduler.history import (
        GlanceRow,
        History,
        JobMarks,
        OneShotRecord,
        RunRecord,
    )
    from scheduler.run_files import OutputDirs
    from scheduler.settings import JobEntry
    from scheduler.status import Health

STRIP_RUNS = 30
"""Runs in each job's strip on ``/``."""
JOB_RUNS = 100
"""Runs on a job's page."""
OUTPUT_TAIL_BYTES = 16 * 1024
"""The end of a kept output file a run's page shows."""


_STATIC = {
    CSS_PATH: (CSS, "text/css; charset=utf-8"),
    SCRIPT_PATH: (SCRIPT, "text/javascript; charset=utf-8"),
    ICON_PATH: (ICON, "image/svg+xml"),
}
"""The files the pages need, by path: the style sheet, the script, the icon."""


@dataclass(frozen=True, slots=True)
class Page:
    """An answer: its HTTP status, body and type."""

    status: int
    body: bytes
    content_type: str = "text/html; charset=utf-8"


@dataclass(frozen=True)
class PageSource:
    """What the pages read, each time one is asked for."""

    jobs: Callable[[], Mapping[str, JobEntry]]
    sources: Callable[[], Mapping[str, str]]
    """By job, where it comes from (default ``config``)."""
    history: History
    health: Health
    now: Callable[[], datetime]
    daemon: str
    """``[daemon] name``."""
    output_dirs: OutputDirs | None
    """Where kept output files are; None: ``ui_output = false``, no output is shown."""
    reloads: Callable[[], Mapping[str, int]] = dict
    """The config reloads since the start, by result (``applied``, ``invalid``)."""


class StatusPages:
    """The pages, by path."""

    def __init__(self, source: PageSource) -> None:
        self._source = source
        self._version = package_version()
        self._lock = threading.Lock()
        self._timeline = Timeline()
        self._strips: dict[str, tuple[list[GlanceRow], tzinfo, str]] = {}
        """By job: the rows its strip was made of, in which zone, the strip
        (kept between requests; the jobs no longer in force are dropped at each ``/``)."""

    def answer(self, target: str) -> Page | None:
        """The page at ``target`` (path and query); None when the path is not the UI's."""
        path, _, query = target.partition("?")
        if path == "/":
            return self._index(parse_qs(query))
        if path in _STATIC:
            text, kind = _STATIC[path]
            return Page(200, text.encode(), kind)
        if path.startswith("/jobs/"):
            return self._job(unquote(path.removeprefix("/jobs/")), parse_qs(query))
        if path.startswith("/runs/"):
            return self._run(unquote(path.removeprefix("/runs/")))
        return None

    # --- the frame ---------------------------------------------------------------------

    def _header(self) -> str:
        """The daemon's state, the facts of ``/healthz`` and ``/readyz``: the scheduling
        loop, engine and state database (health), whether it has settled what an earlier
        daemon left (ready), the reloads since the start, the version and the time."""
        healthy, body = self._source.health.healthy()
        ready, readiness = self._source.health.readiness()
        engine = "ok" if healthy else str(body.get("reason", "unhealthy"))
        state = "settled, ready" if ready else f"starting: {readiness.get('reason', '')}"
        reloads = self._source.reloads()
        applied, refused = reloads.get("applied", 0), reloads.get("invalid", 0)
        reloaded = f"reloads: {applied}" + (f", {refused} refused" if refused else "")
        return (
            f"<header><h1>{link('/', 'crontainer ' + esc(self._source.daemon))}</h1>"
            '<div class="state" id="live-state" data-live>'
            f'<span class="badge {"ok" if healthy else "bad"}">health: {esc(engine)}</span>'
            f'<span class="badge {"ok" if ready else "bad"}">daemon: {esc(state)}</span>'
            f'<span class="badge {"bad" if refused else ""}">{reloaded}</span>'
            f'<span class="muted">version {esc(self._version)}</span>'
            f'<span class="muted">{esc(clock_time(self._source.now()))}</span>'
            "</div></header>"
        )

    def _not_found(self, what: str) -> Page:
        body = f"{self._header()}<main><h2>Not found</h2><p>{esc(what)}</p></main>"
        return Page(404, page("Not found", body))

    # --- / -----------------------------------------------------------------------------

    def _index(self, query: dict[str, list[str]]) -> Page:
        source = self._source
        jobs, sources, now = source.jobs(), source.sources(), source.now()
        marks = source.history.marks()
        with self._lock:
            for gone in self._strips.keys() - jobs.keys():
                del self._strips[gone]
        try:
            chosen = choose_jobs(jobs, marks, query)
        except ValueError as e:
            body = f"{self._header()}<main><h2>Bad request</h2><p>{esc(e)}</p></main>"
            return Page(400, page("Bad request", body))
        one_shots = source.history.one_shots()
        rows, lanes = [], []
        for name in chosen.names:
            entry = jobs[name]
            recent, strip = self._strip_of(name, entry)
            rows.append(
                self._job_row(
                    name,
                    entry,
                    recent=recent,
                    strip=strip,
                    source=sources.get(name, "config"),
                    mark=marks.get(name),
                    next_run=_next_run(name, entry, one_shots, now),
                    now=now,
                )
            )
            if next_run_word(name, entry, one_shots) is None:
                lanes.append(Lane(name, entry.schedule, median_duration(recent)))
        self._timeline.forget_except(entry.schedule for entry in jobs.values())
        timeline = self._timeline.render(lanes, now)
        table = (
            '<div class="wide"><table class="jobs"><caption class="sr">Jobs</caption><thead><tr>'
            '<th scope="col">Job</th><th scope="col" class="opt">Kind</th>'
            '<th scope="col">Schedule</th><th scope="col">Next run</th>'
            '<th scope="col">Last outcome</th><th scope="col" class="opt">Last success</th>'
            '<th scope="col" class="opt">State</th><th scope="col" class="opt">Source</th>'
            f'<th scope="col">Last {STRIP_RUNS} runs</th></tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>"
        )
        if not jobs:
            table = "<p>No jobs are configured.</p>"
        elif not rows:
            table = "<p>No job matches.</p>"
        live = live_part("live-index", f"{chosen.counts}{table}{chosen.pager}{timeline}")
        body = f"{self._header()}<main>{chosen.form}{live}</main>"
        return Page(200, page(f"crontainer {source.daemon}", body, refresh=True))

    def _job_row(
        self,
        name: str,
        entry: JobEntry,
        *,
        recent: list[GlanceRow],
        strip: str,
        source: str,
        mark: JobMarks | None,
        next_run: str,
        now: datetime,
    ) -> str:
        last = next((r for r in recent if r[1] != "running"), None)
        if last is not None:
            outcome = _status(last[1])
            if last[5]:
                outcome += f'<span class="why muted">{esc(last[5])}</span>'
        elif mark is not None and mark.last_status:
            outcome = _status(mark.last_status)
        else:
            outcome = '<span class="muted">never ran</span>'
        success = mark.last_success_at if mark else None
        enabled = "enabled" if entry.job.enabled else "disabled"
        return (
            f'<tr><th scope="row" class="name">{link(job_href(name), esc(name))}</th>'
            f'<td class="opt" data-label="Kind">{esc(entry.job.kind)}</td>'
            f'<td data-label="Schedule">{_schedule(entry)}</td>'
            f'<td class="when" data-label="Next run">{next_run}</td>'
            f'<td data-label="Last outcome">{outcome}</td>'
            f'<td class="opt when" data-label="Last success">{_moment(success, now, entry)}</td>'
            f'<td class="opt" data-label="State">{enabled}</td>'
            f'<td class="opt" data-label="Source">{esc(source)}</td>'
            f'<td data-label="Last runs">{strip}</td></tr>'
        )

    def _strip_of(self, name: str, entry: JobEntry) -> tuple[list[GlanceRow], str]:
        """The job's last runs and their strip: made again only when the rows read now differ
        from the ones it was made of (or the job's zone does)."""
        rows = self._source.history.glance_rows(name, STRIP_RUNS)
        zone = entry.schedule.zone
        with self._lock:
            kept = self._strips.get(name)
        if kept is not None and kept[0] == rows and kept[1] is zone:
            return rows, kept[2]
        strip = _strip(rows, zone)
        with self._lock:
            self._strips[name] = (rows, zone, strip)
        return rows, strip

    # --- /jobs/<job> ---------------------------------------------------------------------

    def _job(self, name: str, query: dict[str, list[str]]) -> Page:
        source = self._source
        entry = source.jobs().get(name)
        wanted = query.get("outcome", [None])[-1]
        if wanted is not None and wanted not in OUTCOMES:
            known = ", ".join(OUTCOMES)
            body = (
                f"{self._header()}<main><h2>Bad request</h2><p>outcome must be one of "
                f"{esc(known)}, not {esc(repr(wanted))}</p></main>"
            )
            return Page(400, page("Bad request", body))
        runs = source.history.job_runs(name, JOB_RUNS, status=wanted, output=False)
        if entry is None and not runs and not source.history.job_runs(name, 1, output=False):
            return self._not_found(f"no job {name!r}: not configured and not in the history")
        now = source.now()
        facts = _job_facts(name, entry, source, now)
        filters = [
            link(job_href(name), "all") if wanted else '<span aria-current="page">all</span>'
        ]
        for outcome in OUTCOMES:
            if outcome == wanted:
                filters.append(f'<span aria-current="page">{outcome}</span>')
            else:
                filters.append(link(f"{job_href(name)}?outcome={outcome}", outcome))
        shown = f"last {JOB_RUNS} runs" + (f", {wanted} only" if wanted else "")
        charted = runs if wanted is None else source.history.job_runs(name, JOB_RUNS, output=False)
        charts = run_charts(
            charted,
            entry.schedule.zone if entry is not None else None,
            backup=entry is None or entry.job.kind == "backup",
        )
        live = live_part(
            "live-job",
            f'{facts}{charts}<h3>History ({esc(shown)})</h3><nav class="filter" '
            f'aria-label="Filter by outcome">{"".join(filters)}</nav>'
            f"{_runs_table(runs, now, entry)}",
        )
        body = f"{self._header()}<main><h2>Job {esc(name)}</h2>{live}</main>"
        return Page(200, page(f"{name} - crontainer", body, refresh=True))

    # --- /runs/<run_id> ------------------------------------------------------------------

    def _run(self, run_id: str) -> Page:
        attempts = self._source.history.run_attempts(run_id)
        if not attempts:
            return self._not_found(f"no run {run_id!r} in the history")
        job = attempts[0].job
        entry = self._source.jobs().get(job)
        now = self._source.now()
        head = (
            f"{self._header()}<main><h2>Run {esc(run_id)}</h2>"
            f"<p>of job {link(job_href(job), esc(job))}</p>"
        )
        parts = [head, *(_attempt(r, now, entry) for r in attempts)]
        parts += [self._output(attempts[0], entry), "</main>"]
        return Page(200, page(f"run {run_id} - crontainer", "".join(parts)))

    def _output(self, record: RunRecord, entry: JobEntry | None) -> str:
        """The run's output: its kept file's end, else the history's tail (latest attempt)."""
        if self._source.output_dirs is None:
            return '<h3>Output</h3><p class="muted">Hidden ([daemon] ui_output = false).</p>'
        spec = entry.job.output if entry is not None else None
        if spec is not None:
            try:
                directory = self._source.output_dirs.of(spec.volume)
                path = run_path(directory, record.job, record.run_id)
                if path is not None:
                    text = _file_end(path, OUTPUT_TAIL_BYTES)
                    return (
                        f"<h3>Output (kept file {esc(path.name)}, last "
                        f"{OUTPUT_TAIL_BYTES // 1024} KiB)</h3><pre>{esc(text)}</pre>"
                    )
            except (CrontainerError, OSError) as e:
                why = f"The kept output cannot be read: {e}"
                return f'<h3>Output</h3><p class="t-failed">{esc(why)}</p>'
        if record.output_tail:
            return f"<h3>Output (last lines)</h3><pre>{esc(record.output_tail)}</pre>"
        return '<h3>Output</h3><p class="muted">None kept.</p>'


# --- pieces ----------------------------------------------------------------------------


def _schedule(entry: JobEntry) -> str:
    """The schedule as written, and in words below it (its jitter too)."""
    schedule = entry.schedule
    words = schedule_words(schedule.expression, schedule.zone)
    if entry.job.jitter:
        words += f", each run up to {duration_words(entry.job.jitter)} later at random (jitter)"
    return f'<code>{esc(schedule.expression)}</code><span class="words">{esc(words)}</span>'


def _status(status: str) -> str:
    known = status if status in OUTCOMES else "other"
    return f'<span class="t-{known}">{esc(status)}</span>'


def _zone(moment: datetime, entry: JobEntry | None) -> datetime:
    return moment.astimezone(entry.schedule.zone) if entry is not None else moment


def _moment(moment: datetime | None, now: datetime, entry: JobEntry | None) -> str:
    """``moment`` relative to ``now``, and in the job's zone (the history's UTC without a job)."""
    if moment is None:
        return '<span class="muted">-</span>'
    shown = clock_time(_zone(moment, entry))
    return f'{esc(relative(moment, now))}<br><span class="muted">{esc(shown)}</span>'


def _next_run(
    name: str,
    entry: JobEntry,
    one_shots: Mapping[tuple[str, datetime], OneShotRecord],
    now: datetime,
) -> str:
    word = next_run_word(name, entry, one_shots)
    if word == "disabled":
        return '<span class="muted">disabled</span>'
    if word is not None:
        return esc(word)
    return _moment(entry.schedule.next_after(now), now, entry)


def _strip(rows: list[GlanceRow], zone: tzinfo) -> str:
    """One small cell per run (``rows``: newest first), oldest first, coloured by outcome,
    its time in ``zone``, duration and status on hover (``title``); the strip as a whole
    is an image whose text says how many runs ended how (a screen reader reads one
    sentence, not 30 cells). Only the daemon's own words are in it (statuses, times), and
    only the known statuses are written unescaped."""
    read = datetime.fromisoformat
    cells = []
    counts: dict[str, int] = {}
    for _, status, at_text, started, finished, _why in reversed(rows):
        known = status in OUTCOMES
        shown = status if known else esc(status)
        counts[shown] = counts.get(shown, 0) + 1
        at = read(at_text).astimezone(zone)
        spent = (read(finished) - read(started)).total_seconds() if started and finished else None
        cells.append(
            f'<i class="s-{status if known else "other"}" '
            f'title="{at:%Y-%m-%d %H:%M:%S} {at.tzname()}, {took(spent)}, {shown}"></i>'
        )
    if not cells:
        return '<span class="muted">no runs yet</span>'
    said = ", ".join(f"{n} {status}" for status, n in counts.items())
    label = f"last {len(cells)} run{'s' if len(cells) > 1 else ''}: {said}"
    return f'<div class="strip" role="img" aria-label="{label}">{"".join(cells)}</div>'


def _job_facts(name: str, entry: JobEntry | None, source: PageSource, now: datetime) -> str:
    if entry is None:
        return '<p class="muted">Not in force now: its history only.</p>'
    one_shots = source.history.one_shots(name)
    facts = {
        "Kind": esc(entry.job.kind),
        "Schedule": _schedule(entry),
        "Time zone": esc(entry.job.timezone),
        "Next run": _next_run(name, entry, one_shots, now),
        "State": "enabled" if entry.job.enabled else "disabled",
        "Source": esc(source.sources().get(name, "config")),
    }
    return "<dl>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts.items()) + "</dl>"


def _runs_table(runs: list[RunRecord], now: datetime, entry: JobEntry | None) -> str:
    if not runs:
        return "<p>No runs.</p>"
    rows = [
        f'<tr><td class="when">{_moment(r.started_at or r.scheduled_at, now, entry)}</td>'
        f"<td>{link(run_href(r.run_id), esc(r.run_id))}</td><td>{r.attempt}</td>"
        f"<td>{esc(r.trigger)}</td><td>{_status(r.status)}</td>"
        f"<td>{'-' if r.exit_code is None else r.exit_code}</td><td>{took(r.duration_s)}</td>"
        f"<td>{esc(r.reason or r.error or '')}</td></tr>"
        for r in runs
    ]
    return (
        '<div class="wide"><table><thead><tr><th scope="col">Started</th>'
        '<th scope="col">Run</th><th scope="col">Try</th><th scope="col">Trigger</th>'
        '<th scope="col">Status</th><th scope="col">Exit</th><th scope="col">Took</th>'
        f'<th scope="col">Reason</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
    )


def _attempt(record: RunRecord, now: datetime, entry: JobEntry | None) -> str:
    parent = (
        link(run_href(record.parent_run_id), esc(record.parent_run_id))
        if record.parent_run_id
        else "-"
    )
    facts = {
        "Status": _status(record.status),
        "Exit code": "-" if record.exit_code is None else str(record.exit_code),
        "Trigger": esc(record.trigger),
        "Parent run": parent,
        "Scheduled": _moment(record.scheduled_at, now, entry),
        "Started": _moment(record.started_at, now, entry),
        "Finished": _moment(record.finished_at, now, entry),
        "Took": took(record.duration_s),
        "Container": esc(record.container_id or "-"),
        "Reason": esc(record.reason or "-"),
        "Error": esc(record.error or "-"),
    }
    items = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts.items())
    return f"<section><h3>Attempt {record.attempt}</h3><dl>{items}</dl></section>"


def _file_end(path: os.PathLike[str], size: int) -> str:
    """The last ``size`` bytes of the file at ``path``, from its first whole line."""
    with open(path, "rb") as f:  # noqa: PTH123 - a seek on the handle
        end = f.seek(0, os.SEEK_END)
        f.seek(max(0, end - size))
        data = f.read()
    if end > size:
        data = data.partition(b"\n")[2]
    return data.decode("utf-8", "replace")
