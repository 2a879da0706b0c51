"""Which jobs ``/`` shows: a page of them (``?page=``, ``PAGE_JOBS`` a page, by name), those
whose name holds a text (``?q=``) or whose last run ended a way (``?outcome=``); with the
form that asks for them, the counts of last outcomes over every job (each a link to its
filter), and the links to the other pages. A wall of 1,000 jobs is read a page or a
filter at a time: the page's cost grows with the jobs it shows, not with the jobs in
force."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from scheduler.ui_html import OUTCOMES, esc, link

if TYPE_CHECKING:
    from collections.abc import Mapping

    from scheduler.history import JobMarks

PAGE_JOBS = 200
"""Jobs on one page of ``/``."""
NEVER = "never"
"""``?outcome=never``: the jobs with no run in the history."""
LAST_OUTCOMES = (*OUTCOMES, NEVER)
QUERY_MAX = 200
"""The longest ``?q=`` (characters)."""


@dataclass(frozen=True, slots=True)
class Chosen:
    """The jobs to show, in order, and the HTML around them."""

    names: list[str]
    form: str
    """The filter form (above the table)."""
    counts: str
    """The counts of last outcomes and which jobs are shown (above the table)."""
    pager: str
    """The links to the other pages (below it); empty when all fit on one."""


def _one(query: Mapping[str, list[str]], key: str) -> str:
    return query.get(key, [""])[-1].strip()


def last_outcome(mark: JobMarks | None) -> str:
    return mark.last_status if mark is not None and mark.last_status else NEVER


def choose_jobs(
    jobs: Mapping[str, object], marks: Mapping[str, JobMarks], query: Mapping[str, list[str]]
) -> Chosen:
    """The jobs of ``/?<query>``; ValueError naming a bad ``page``, ``outcome`` or ``q``."""
    text, outcome, number = _one(query, "q"), _one(query, "outcome"), _one(query, "page") or "1"
    if outcome and outcome not in LAST_OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(LAST_OUTCOMES)}, not {outcome!r}")
    if len(text) > QUERY_MAX:
        raise ValueError(f"q is {len(text)} characters long, at most {QUERY_MAX}")
    if not number.isdigit() or int(number) < 1:
        raise ValueError(f"page must be a whole number from 1, not {number!r}")
    outcomes = {name: last_outcome(marks.get(name)) for name in jobs}
    needle = text.casefold()
    matching = [
        name
        for name in sorted(jobs)
        if needle in name.casefold() and (not outcome or outcomes[name] == outcome)
    ]
    pages = max(1, -(-len(matching) // PAGE_JOBS))
    page_number = int(number)
    if page_number > pages:
        raise ValueError(f"page {page_number} is past the last one ({pages})")
    start = (page_number - 1) * PAGE_JOBS
    shown = matching[start : start + PAGE_JOBS]
    counts = _counts(outcomes, text, outcome, matching=len(matching), shown=shown, start=start)
    return Chosen(shown, _form(text, outcome), counts, _pager(text, outcome, page_number, pages))


def index_href(text: str = "", outcome: str = "", page_number: int = 1) -> str:
    """``/`` with these filters (the ones given)."""
    given = {"q": text, "outcome": outcome, "page": str(page_number) if page_number > 1 else ""}
    query = urlencode({k: v for k, v in given.items() if v})
    return f"/?{query}" if query else "/"


def _form(text: str, outcome: str) -> str:
    options = "".join(
        f'<option value="{value}"{" selected" if value == outcome else ""}>'
        f"{value or 'any'}</option>"
        for value in ("", *LAST_OUTCOMES)
    )
    return (
        '<form class="find" method="get" action="/" role="search">'
        '<label>Job name has <input name="q" type="search" maxlength="200" '
        f'value="{esc(text)}"></label>'
        f'<label>last outcome <select name="outcome">{options}</select></label>'
        '<button type="submit">Show</button></form>'
    )


def _counts(
    outcomes: Mapping[str, str],
    text: str,
    outcome: str,
    *,
    matching: int,
    shown: list[str],
    start: int,
) -> str:
    """Every job's last outcome counted, each count a link to its filter; which are shown."""
    counts: dict[str, int] = {}
    for value in outcomes.values():
        counts[value] = counts.get(value, 0) + 1
    parts = [
        link(index_href(outcome=value), f"{counts[value]} {value}")
        if value != outcome or text
        else f'<span aria-current="page">{counts[value]} {value}</span>'
        for value in LAST_OUTCOMES
        if counts.get(value)
    ]
    if text or outcome:
        parts.append(link("/", "all"))
    filtered = " matching" if text or outcome else ""
    what = (
        f"jobs {start + 1}-{start + len(shown)} of {matching}{filtered}"
        if shown and len(shown) < matching
        else f"{matching} job{'' if matching == 1 else 's'}{filtered}"
    )
    return (
        f'<p class="counts"><span>{len(outcomes)} jobs, last outcome:</span> '
        f'{" ".join(parts)} <span class="muted">· showing {what}</span></p>'
    )


def _pager(text: str, outcome: str, page_number: int, pages: int) -> str:
    if pages == 1:
        return ""
    links = []
    if page_number > 1:
        links.append(link(index_href(text, outcome, page_number - 1), "previous"))
    for n in range(1, pages + 1):
        if n == page_number:
            links.append(f'<span aria-current="page">{n}</span>')
        else:
            links.append(link(index_href(text, outcome, n), str(n)))
    if page_number < pages:
        links.append(link(index_href(text, outcome, page_number + 1), "next"))
    return f'<nav class="pager" aria-label="Pages of jobs">{"".join(links)}</nav>'
