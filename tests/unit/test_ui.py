"""The status page ([daemon] ui): what /, /jobs/<job> and /runs/<run_id> show, their
headers, escaping of hostile text, and the listener's routes with the page on and off."""

from __future__ import annotations

import html
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from scheduler.history import History
from scheduler.metrics import Metrics, package_version
from scheduler.run_files import OutputDirs
from scheduler.runs import Status
from scheduler.settings import load_config
from scheduler.status import Health, StatusServer
from scheduler.ui import Page, PageSource, StatusPages
from scheduler.ui_html import CSP, REFRESH_S, esc, relative
from scheduler.ui_index import PAGE_JOBS

from .test_metrics import make_metrics

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from scheduler.settings import Config

NOW = datetime(2026, 12, 4, 10, 2, 0, tzinfo=UTC)
HOSTILE = "<script>alert(1)</script> \"quoted\" 'single' </style><img src=x onerror=alert(2)>"
CONTROL = "bell\x07 esc\x1b[31m nul\x00 c1\x9b end"


def make_config(tmp_path: Path, daemon: str = "") -> Config:
    path = tmp_path / "c.toml"
    path.write_text(
        f'[daemon]\nname = "d1"\nstate_dir = "{tmp_path}/state"\nui = true\n{daemon}\n'
        '[jobs.good]\nkind = "run"\nimage = "i"\nschedule = "*/5 * * * *"\n'
        'timezone = "Europe/Paris"\n'
        '[jobs.spread]\nkind = "run"\nimage = "i"\nschedule = "30 2 * * mon-fri"\n'
        'jitter = "5m"\n'
        '[jobs.bad]\nkind = "run"\nimage = "i"\nschedule = "@hourly"\n'
        'output = { volume = "out" }\n'
        '[jobs.off]\nkind = "run"\nimage = "i"\nschedule = "@daily"\nenabled = false\n'
        '[jobs.man]\nkind = "run"\nimage = "i"\nschedule = "@manual"\n'
        '[jobs.once]\nkind = "run"\nimage = "i"\nschedule = "@at 2026-12-04T09:00:00Z"\n'
    )
    return load_config(path, {})


def finished(
    history: History,
    run_id: str,
    job: str,
    status: Status,
    at: datetime,
    **details: object,
) -> None:
    """An attempt that began at ``at`` and took 2 s."""
    parent = details.pop("parent_run_id", None)
    history.begin(
        run_id,
        1,
        job,
        trigger="chain" if parent else "schedule",
        scheduled_at=at,
        started_at=at,
        parent_run_id=str(parent) if parent else None,
    )
    history.set_container(run_id, 1, "c0ffee" + run_id)
    history.finish(run_id, 1, status=status, finished_at=at + timedelta(seconds=2), **details)  # type: ignore[arg-type]


@dataclass
class Site:
    base: str
    history: History
    config: Config
    sources: dict[str, str] = field(default_factory=dict)


def serve(
    tmp_path: Path, config: Config, history: History, sources: Mapping[str, str]
) -> Iterator[str]:
    loop = threading.Event()
    loop.set()
    health = Health(loop.is_set, lambda: None)
    health.ready.set()
    settings = config.daemon
    outdir = tmp_path / "outdir"
    (outdir / "out").mkdir(parents=True, exist_ok=True)
    pages = StatusPages(
        PageSource(
            jobs=lambda: config.jobs,
            sources=lambda: sources,
            history=history,
            health=health,
            now=lambda: NOW,
            daemon=settings.name,
            output_dirs=OutputDirs(str(outdir), None) if settings.ui_output else None,
        )
    )
    metrics: Metrics = make_metrics(tmp_path)
    status = StatusServer("127.0.0.1", 0, metrics, health, pages=pages if settings.ui else None)
    status.start()
    try:
        yield f"http://127.0.0.1:{status.port}"
    finally:
        status.stop()


def fill(history: History) -> None:
    """good: two successes; bad: a success then a failure with hostile text (a chained run
    after it); once: done."""
    finished(history, "g1", "good", Status.SUCCEEDED, NOW - timedelta(minutes=7), exit_code=0)
    finished(history, "g2", "good", Status.SUCCEEDED, NOW - timedelta(minutes=2), exit_code=0)
    finished(history, "b1", "bad", Status.SUCCEEDED, NOW - timedelta(hours=2), exit_code=0)
    finished(
        history,
        "b2",
        "bad",
        Status.FAILED,
        NOW - timedelta(hours=1),
        exit_code=3,
        reason="exit_code",
        error=HOSTILE + CONTROL,
        output=["line one", HOSTILE, CONTROL],
    )
    finished(
        history,
        "m1",
        "man",
        Status.SUCCEEDED,
        NOW - timedelta(minutes=59),
        exit_code=0,
        parent_run_id="b2",
    )
    at = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
    history.claim_one_shot("once", at, at)
    history.finish_one_shot("once", at, outcome="succeeded", at_time=at, run_id="o1")


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    config = make_config(tmp_path)
    history = History.open(tmp_path / "state")
    fill(history)
    sources = {"bad": "label:" + HOSTILE}
    for base in serve(tmp_path, config, history, sources):
        yield Site(base, history, config, sources)
    history.close()


def fetch(url: str, method: str = "GET") -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(url, method=method)  # noqa: S310 - local
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - local
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parsed(body: str) -> Tags:
    tags = Tags()
    tags.feed(body)
    tags.close()
    return tags


def assert_inert(body: str) -> Tags:
    """No script, no image, no event handler attribute, no control character in ``body``."""
    tags = parsed(body)
    names = {t for t, _ in tags.tags}
    scripts = [attrs for t, attrs in tags.tags if t == "script"]
    assert scripts in ([], [{"src": "/ui.js", "defer": None}])  # the daemon's own, no inline
    assert "</script>" not in body.replace('<script src="/ui.js" defer></script>', "", 1)
    assert "img" not in names
    assert "style" not in names
    handlers = [a for _, attrs in tags.tags for a in attrs if a.lower().startswith("on")]
    assert handlers == []
    assert not any((ord(c) < 0x20 and c not in "\n\t") or 0x7F <= ord(c) <= 0x9F for c in body)
    return tags


def test_index_shows_every_job_with_its_next_run_outcome_and_strip(site: Site) -> None:
    """Each job: schedule as written, next run in words and in its zone, last outcome with
    its reason, state, source and one strip cell per run, the strip saying in words how
    its runs ended."""
    status, headers, body = fetch(site.base + "/")
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    tags = assert_inert(body)
    text = " ".join(tags.text)
    rows = [a.get("href") for t, a in tags.tags if t == "a"]
    for job in ("good", "bad", "off", "man", "once"):
        assert f"/jobs/{job}" in rows
    # good: */5 in Paris, 10:02 UTC now: next at 10:05 UTC, 11:05 in Paris
    assert "in 3 min" in text
    assert "2026-12-04 11:05:00 CET" in text
    assert "*/5 * * * *" in text
    # the schedule in words, beside the schedule as written
    assert "every 5 minutes, Europe/Paris time" in text
    assert "at minute 0 of every hour" in text
    assert "never on its own: only when chained or triggered" in text
    assert "once, at 2026-12-04 09:00:00 UTC" in text
    assert "at 02:30, on Monday through Friday, each run up to 5 minutes later" in text
    assert "manual" in text
    assert "done: succeeded" in text
    assert "disabled" in text
    assert "exit_code" in text  # bad's last outcome's reason
    cells = [a for t, a in tags.tags if t == "i" and (a.get("class") or "").startswith("s-")]
    assert len(cells) == 5
    by_title = {c["title"]: c for c in cells}
    # bad: in UTC, oldest first; its failed run with its outcome in words on hover
    assert by_title["2026-12-04 09:02:00 UTC, 2.0 s, failed"]["class"] == "s-failed"
    # good: in its zone (Paris)
    assert by_title["2026-12-04 11:00:00 CET, 2.0 s, succeeded"]["class"] == "s-succeeded"
    labels = {a["aria-label"] for t, a in tags.tags if a.get("class") == "strip"}
    assert labels == {
        "last 2 runs: 1 succeeded, 1 failed",
        "last 2 runs: 2 succeeded",
        "last 1 run: 1 succeeded",
    }
    assert all(a["role"] == "img" for t, a in tags.tags if a.get("class") == "strip")
    strips = body.split('<div class="strip"')[1:]
    bad_strip = next(x for x in strips if "09:02:00 UTC" in x)
    assert bad_strip.index("s-succeeded") < bad_strip.index("s-failed")  # oldest first
    assert "label:" + HOSTILE in text  # the source, as text


def test_index_has_the_timeline_of_the_jobs_with_runs_ahead(site: Site) -> None:
    """Below the jobs, the next 24 h: a row for each shown job with runs ahead (not the
    disabled, manual or done one-shot ones, nor spread: weekdays only, and it is Friday
    after 02:30), its first mark at its next run."""
    _, _, body = fetch(site.base + "/")
    timeline = body.partition('<section class="timeline"')[2]
    assert timeline
    rows = re.findall(r'<th scope="row" class="name"><a href="/jobs/([^"]+)"', timeline)
    assert rows == ["bad", "good"]
    # good: */5 from 10:02: too many runs, a band; bad: @hourly, 24 marks, the first
    # in 58 minutes
    assert 'aria-label="good: runs too close together to mark each (every 5 minutes' in timeline
    assert (
        'aria-label="bad: 24 runs in the next 24 h, the first at 2026-12-04 11:00 UTC"' in timeline
    )
    assert '<rect class="run" x="58.0"' in timeline


def test_every_page_has_a_strict_policy(site: Site) -> None:
    """Pages, the style sheet and the 404 page carry the CSP, nosniff and no-referrer; no
    inline style or script is needed: the style sheet is the daemon's own."""
    for path in ("/", "/jobs/good", "/runs/b2", "/ui.css", "/jobs/nope", "/runs/nope"):
        _, headers, _ = fetch(site.base + path)
        assert headers["Content-Security-Policy"] == CSP, path
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "no-referrer"
    assert "script-src 'self';" in CSP
    assert "connect-src 'self';" in CSP
    assert "unsafe" not in CSP
    assert "default-src 'none'" in CSP
    status, headers, css = fetch(site.base + "/ui.css")
    assert status == 200
    assert headers["Content-Type"] == "text/css; charset=utf-8"
    assert ".s-failed" in css


def test_hostile_text_is_shown_escaped_never_run(site: Site) -> None:
    """A reason, error, output or source holding tags, quotes and control characters is
    text on every page: no element or handler comes of it, control characters are shown
    as \\xNN."""
    for path in ("/", "/jobs/bad", "/runs/b2", "/jobs/bad?outcome=failed"):
        status, _, body = fetch(site.base + path)
        assert status == 200, path
        tags = assert_inert(body)
        assert HOSTILE in "".join(tags.text) or path == "/", path
    _, _, body = fetch(site.base + "/runs/b2")
    text = "".join(parsed(body).text)
    assert "bell\\x07 esc\\x1b[31m nul\\x00 c1\\x9b end" in text
    assert "line one" in text


def test_job_page_lists_its_runs_and_filters_by_outcome(site: Site) -> None:
    """/jobs/<job>: its runs newest first, each linking its run page; ?outcome=failed only
    the failed ones; an unknown outcome is refused naming the known ones."""
    _, _, body = fetch(site.base + "/jobs/bad")
    links = [
        a["href"]
        for t, a in parsed(body).tags
        if t == "a" and (a.get("href") or "").startswith("/runs/")
    ]
    assert links == ["/runs/b2", "/runs/b1"]
    _, _, body = fetch(site.base + "/jobs/bad?outcome=failed")
    links = [
        a["href"]
        for t, a in parsed(body).tags
        if t == "a" and (a.get("href") or "").startswith("/runs/")
    ]
    assert links == ["/runs/b2"]
    status, _, body = fetch(site.base + "/jobs/bad?outcome=nope")
    assert status == 400
    assert "succeeded, failed, timed_out" in body


def test_run_page_shows_the_attempt_and_the_output(site: Site) -> None:
    """/runs/<id>: status, exit code, container, trigger, parent run (a chain) and error; the
    output from the kept file when the job keeps one, else the history's tail."""
    kept = site.base  # bad keeps its output: its file is read
    _, _, body = fetch(kept + "/runs/m1")
    tags = parsed(body)
    text = " ".join(tags.text)
    assert "chain" in text
    assert ("a", {"href": "/runs/b2"}) in tags.tags
    assert "c0ffeem1" in text
    _, _, body = fetch(site.base + "/runs/b2")
    text = " ".join(parsed(body).text)
    assert "failed" in text
    assert "3" in text
    assert "c0ffeeb2" in text
    assert "Output (last lines)" in text  # no kept file yet: the history's tail
    path = Path(site.config.daemon.state_dir).parent / "outdir" / "out" / "bad" / "b2.log"
    path.parent.mkdir()
    path.write_text("2026-12-04T09:02:00Z stdout from the kept file\n")
    _, _, body = fetch(site.base + "/runs/b2")
    text = " ".join(parsed(body).text)
    assert "from the kept file" in text
    assert "Output (kept file b2.log" in text


def test_unknown_job_and_run_are_404_pages(site: Site) -> None:
    """An unknown job or run: a 404 page naming it."""
    status, headers, body = fetch(site.base + "/jobs/nope")
    assert status == 404
    assert headers["Content-Type"].startswith("text/html")
    assert "no job &#x27;nope&#x27;" in body
    status, _, body = fetch(site.base + "/runs/%3Cscript%3E")
    assert status == 404
    assert_inert(body)
    assert "no run &#x27;&lt;script&gt;&#x27;" in body


def test_head_answers_headers_only_and_writes_are_refused(site: Site) -> None:
    """HEAD: the status and headers of GET, no body; POST: 405 naming GET and HEAD."""
    status, headers, body = fetch(site.base + "/", "HEAD")
    assert status == 200
    assert int(headers["Content-Length"]) > 0
    assert body == ""
    status, headers, _ = fetch(site.base + "/", "POST")
    assert status == 405
    assert headers["Allow"] == "GET, HEAD"


def test_ui_output_false_hides_output(tmp_path: Path) -> None:
    """[daemon] ui_output = false: a run's page says its output is hidden, shows none."""
    config = make_config(tmp_path, "ui_output = false")
    history = History.open(tmp_path / "state")
    fill(history)
    try:
        for base in serve(tmp_path, config, history, {}):
            _, _, body = fetch(base + "/runs/b2")
            assert "ui_output = false" in body
            assert "line one" not in body
    finally:
        history.close()


def test_the_page_is_off_by_default(tmp_path: Path) -> None:
    """Without [daemon] ui: / and /jobs/… are the listener's JSON 404; /healthz answers."""
    path = tmp_path / "c.toml"
    path.write_text(f'[daemon]\nstate_dir = "{tmp_path}/state"\n')
    config = load_config(path, {})
    assert config.daemon.ui is False
    assert config.daemon.ui_output is True
    history = History.open(tmp_path / "state")
    try:
        for base in serve(tmp_path, config, history, {}):
            status, headers, body = fetch(base + "/")
            assert status == 404
            assert headers["Content-Type"] == "application/json"
            assert "/healthz" in body
            assert fetch(base + "/healthz")[0] == 200
    finally:
        history.close()


def test_the_page_refreshes_with_its_own_script_or_without_script(site: Site) -> None:
    """/ and a job's page load /ui.js (served with the CSP, as JavaScript) and keep a meta
    refresh for a browser without script (in <noscript>); their live parts have ids that
    the script finds; a run's page does not refresh."""
    status, headers, script = fetch(site.base + "/ui.js")
    assert status == 200
    assert headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert headers["Content-Security-Policy"] == CSP
    assert f"const EVERY_MS = {REFRESH_S * 1000};" in script
    assert 'querySelectorAll("[data-live]")' in script
    for path, parts in (
        ("/", ["live-state", "live-index"]),
        ("/jobs/good", ["live-state", "live-job"]),
    ):
        _, _, body = fetch(site.base + path)
        head = body[: body.index("</head>")]
        assert f'<noscript><meta http-equiv="refresh" content="{REFRESH_S}"></noscript>' in head
        assert '<script src="/ui.js" defer></script>' in head
        live = [a["id"] for _, a in parsed(body).tags if "data-live" in a]
        assert live == parts, path
        if path == "/":  # the filter being typed is no live part
            assert body.index('<form class="find"') < body.index('id="live-index"')
    _, _, body = fetch(site.base + "/runs/b2")
    assert "<script" not in body
    assert "refresh" not in body


def test_times_in_words() -> None:
    """Relative times: seconds, minutes, hours and days, ahead or ago."""
    assert relative(NOW, NOW) == "now"
    assert relative(NOW + timedelta(seconds=20), NOW) == "in 20 s"
    assert relative(NOW + timedelta(minutes=4, seconds=10), NOW) == "in 4 min"
    assert relative(NOW - timedelta(hours=2, minutes=5), NOW) == "2 h 5 min ago"
    assert relative(NOW + timedelta(days=3), NOW) == "in 3 d"


def test_esc_shows_control_characters() -> None:
    """esc: markup characters escaped, control characters as \\xNN text."""
    assert esc('<a href="x">\x1b') == "&lt;a href=&quot;x&quot;&gt;\\x1b"


def test_a_new_run_shows_in_the_strip_at_the_next_request(site: Site) -> None:
    """The strips kept between requests: a run that ends after one is on the next one, a
    run under way shows as running and then as its outcome."""
    fetch(site.base + "/")
    site.history.begin("g3", 1, "good", trigger="schedule", scheduled_at=NOW, started_at=NOW)
    _, _, body = fetch(site.base + "/")
    assert body.count('<i class="s-running"') == 1
    site.history.finish("g3", 1, status=Status.TIMED_OUT, finished_at=NOW + timedelta(seconds=5))
    _, _, body = fetch(site.base + "/")
    assert body.count('<i class="s-running"') == 0
    assert body.count('<i class="s-timed_out"') == 1
    assert body.count('<i class="s-') == 6


def many_jobs(tmp_path: Path, count: int) -> tuple[StatusPages, History]:
    """``count`` jobs job-000.. (every third one's last run failed), pages asked directly."""
    path = tmp_path / "many.toml"
    path.write_text(
        f'[daemon]\nstate_dir = "{tmp_path}/state"\nui = true\n'
        + "".join(
            f'[jobs.job-{i:03d}]\nkind = "run"\nimage = "i"\nschedule = "@hourly"\n'
            for i in range(count)
        )
    )
    config = load_config(path, {})
    history = History.open(tmp_path / "state")
    for i in range(0, count, 3):
        finished(history, f"r{i}", f"job-{i:03d}", Status.FAILED, NOW, exit_code=1)
    health = Health(lambda: True, lambda: None)
    source = PageSource(
        jobs=lambda: config.jobs,
        sources=dict,
        history=history,
        health=health,
        now=lambda: NOW,
        daemon="d",
        output_dirs=None,
    )
    return StatusPages(source), history


def names_on(answer: object) -> list[str]:
    assert isinstance(answer, Page)
    assert answer.status == 200
    tags = parsed(answer.body.decode().partition('<section class="timeline"')[0])
    return [
        (a.get("href") or "").removeprefix("/jobs/")
        for t, a in tags.tags
        if t == "a" and (a.get("href") or "").startswith("/jobs/")
    ]


def test_index_pages_and_filters_a_wall_of_jobs(tmp_path: Path) -> None:
    """/ shows PAGE_JOBS jobs by name a page, ?page=2 the next ones, ?outcome= the jobs whose
    last run ended so (never: no run), ?q= those whose name holds the text (any case),
    filters combined; the counts link to each filter and the pager to each page."""
    pages, history = many_jobs(tmp_path, PAGE_JOBS + 10)
    first = names_on(pages.answer("/"))
    assert first == [f"job-{i:03d}" for i in range(PAGE_JOBS)]
    assert names_on(pages.answer("/?page=2")) == [f"job-{i:03d}" for i in range(PAGE_JOBS, 210)]
    failed = names_on(pages.answer("/?outcome=failed"))
    assert failed == [f"job-{i:03d}" for i in range(0, 210, 3)]
    assert "job-001" in names_on(pages.answer("/?outcome=never"))
    assert names_on(pages.answer("/?q=JOB-01")) == [f"job-{i:03d}" for i in range(10, 20)]
    assert names_on(pages.answer("/?q=job-01&outcome=failed")) == ["job-012", "job-015", "job-018"]
    answer = pages.answer("/")
    assert answer is not None
    text = answer.body.decode()
    assert '<a href="/?outcome=failed">70 failed</a>' in text
    assert '<a href="/?outcome=never">140 never</a>' in text
    assert "showing jobs 1-200 of 210" in text
    assert '<a href="/?page=2">next</a>' in text
    assert 'form class="find" method="get" action="/"' in text
    assert "No job matches." in (pages.answer("/?q=nothing") or Page(0, b"")).body.decode()
    history.close()


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("page=0", "page must be a whole number from 1, not '0'"),
        ("page=x", "page must be a whole number from 1, not 'x'"),
        ("page=3", "page 3 is past the last one (2)"),
        ("outcome=ok", "outcome must be one of succeeded, failed"),
        ("q=" + "x" * 201, "q is 201 characters long, at most 200"),
    ],
)
def test_index_refuses_a_bad_filter_naming_it(tmp_path: Path, query: str, words: str) -> None:
    """A page number that is not one or past the last, an unknown outcome or too long a
    text: 400, saying what is wrong."""
    pages, history = many_jobs(tmp_path, PAGE_JOBS + 1)
    answer = pages.answer("/?" + query)
    assert answer is not None
    assert answer.status == 400
    assert words in html.unescape(answer.body.decode())
    history.close()


def test_hostile_filter_text_is_escaped(tmp_path: Path) -> None:
    """?q= is shown back in the form as text: quotes and tags escaped, nothing injected."""
    pages, history = many_jobs(tmp_path, 3)
    answer = pages.answer("/?q=" + urllib.parse.quote(HOSTILE))
    assert answer is not None
    body = answer.body.decode()
    assert_inert(body)
    inputs = [a for t, a in parsed(body).tags if t == "input"]
    assert inputs[0]["value"] == HOSTILE
    history.close()


def test_header_says_health_settling_reloads_and_version(tmp_path: Path) -> None:
    """The header: /healthz's facts (ok, or why not), /readyz's (settled, or starting and
    why), the reloads since the start (refused ones too) and the version."""
    config = make_config(tmp_path)
    history = History.open(tmp_path / "state")
    metrics = make_metrics(tmp_path)
    engine_down: list[str] = []
    health = Health(lambda: True, lambda: engine_down[0] if engine_down else None)
    pages = StatusPages(
        PageSource(
            jobs=lambda: config.jobs,
            sources=dict,
            history=history,
            health=health,
            now=lambda: NOW,
            daemon="d1",
            output_dirs=None,
            reloads=metrics.reloads,
        )
    )

    def header() -> str:
        answer = pages.answer("/")
        assert answer is not None
        body = answer.body.decode()
        return " ".join(parsed(body[body.index("<header>") : body.index("</header>")]).text)

    text = header()
    assert "health: ok" in text
    assert "daemon: starting: settling what an earlier daemon left" in text
    assert "reloads: 0" in text
    assert f"version {package_version()}" in text
    health.ready.set()
    metrics.reloaded(applied=True)
    metrics.reloaded(applied=True)
    metrics.reloaded(applied=False)
    engine_down.append("<connection refused>")
    text = header()
    assert "health: the engine does not answer: <connection refused>" in text
    assert "daemon: settled, ready" in text
    assert "reloads: 2, 1 refused" in text
    history.close()
