"""The status page's HTML pieces: escaping, times in words, the page frame and its style
sheet (``/ui.css``), and the headers every page is sent with.

Every string that reaches a page goes through ``esc``: job names are checked by the config,
but commands, labels, reasons, errors and output are not the daemon's to trust. ``esc``
escapes ``& < > " '`` and shows control characters (an escape sequence of a terminal, a
NUL) as ``\\xNN`` text, so that the page holds none of them.
"""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from datetime import datetime

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
"""C0 and C1 control characters but tab and line feed; and DEL."""

CSS_PATH = "/ui.css"
ICON_PATH = "/favicon.svg"
ICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
    '<circle cx="8" cy="8" r="7" fill="#1a7f37"/></svg>'
)
"""The page's icon (served by the daemon, as all it needs is: a browser asks for one)."""
SCRIPT_PATH = "/ui.js"
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS: tuple[tuple[str, str], ...] = (
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
)
"""Sent with every page and the style sheet: no script may run but the daemon's own
(``/ui.js``: no inline script, no handler attribute, no ``eval``), it may read only the
daemon's pages, nothing is loaded from elsewhere, a form (``/``'s filter, a GET) goes only
to the daemon, and no other site may frame the page."""

REFRESH_S = 30
"""The page reloads itself this often without script (a meta refresh in ``<noscript>``);
with script, ``/ui.js`` refreshes its live parts in place as often."""

OUTCOMES = ("succeeded", "failed", "timed_out", "cancelled", "skipped", "missed", "running")
"""The statuses a history row can hold, each with its colour in the style sheet."""

CSS = """
:root { color-scheme: light; }
body { font: 14px/1.4 system-ui, sans-serif; margin: 0 1rem 2rem;
  color: #1b1f24; background: #fff; }
header { display: flex; flex-wrap: wrap; gap: .5rem 1.5rem; align-items: baseline;
  border-bottom: 1px solid #d0d7de; padding: .6rem 0; margin-bottom: .8rem; }
header h1 { font-size: 1.2rem; margin: 0; }
header h1 a { color: inherit; text-decoration: none; }
a { color: #0550ae; }
a:focus-visible { outline: 2px solid #0550ae; outline-offset: 1px; }
.state { display: flex; flex-wrap: wrap; gap: .3rem 1rem; }
.badge { padding: 0 .4rem; border-radius: 3px; background: #eaeef2; }
.ok { background: #dafbe1; } .bad { background: #ffebe9; }
.wide { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid #eaeef2;
  vertical-align: top; }
th { font-weight: 600; background: #f6f8fa; white-space: nowrap; }
td.when { white-space: nowrap; }
.muted, .words { color: #57606a; }
.words { display: block; font-size: .9em; min-width: 8rem; max-width: 15rem; }
.strip { display: flex; gap: 2px; min-width: 12rem; }
.strip i { display: inline-block; width: 6px; height: 18px; border-radius: 1px; }
.s-succeeded { background: #1a7f37; fill: #1a7f37; }
.s-failed { background: #cf222e; fill: #cf222e; }
.s-timed_out { background: #bc4c00; fill: #bc4c00; }
.s-cancelled { background: #6e7781; fill: #6e7781; }
.s-skipped { background: #afb8c1; fill: #afb8c1; }
.s-missed { background: #8250df; fill: #8250df; }
.s-running { background: #0969da; fill: #0969da; }
.s-other { background: #57606a; fill: #57606a; }
figure.chart { margin: 1rem 0; max-width: 48rem; }
.chart svg { display: block; width: 100%; height: auto; }
.chart .grid { stroke: #d0d7de; stroke-width: 1; }
.chart .tick { font-size: 11px; fill: #57606a; }
figcaption { color: #57606a; }
.sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
.t-succeeded { color: #1a7f37; } .t-failed, .t-timed_out { color: #cf222e; }
pre { background: #f6f8fa; padding: .6rem; overflow-x: auto; white-space: pre-wrap; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }
dt { font-weight: 600; } dd { margin: 0; }
nav.filter, nav.pager { margin: .5rem 0; display: flex; flex-wrap: wrap; gap: .6rem; }
form.find { display: flex; flex-wrap: wrap; gap: .4rem 1rem; align-items: center; }
input, select, button { font: inherit; }
.counts { display: flex; flex-wrap: wrap; gap: .2rem .8rem; margin: .5rem 0; }
.jobs th.name { font-weight: 600; background: none; }
code, td.when, .name { white-space: nowrap; }
.why { display: -webkit-box; -webkit-line-clamp: 3; -webkit-box-orient: vertical;
  overflow: hidden; max-width: 40rem; }
.timeline th.name { width: 1%; background: none; }
.timeline td.lane { width: 100%; padding: .35rem 0; }
.timeline svg { display: block; width: 100%; height: 12px; background: #f6f8fa; }
.timeline .run { fill: #0969da; } .timeline .band { fill: #0969da; fill-opacity: .35; }
.timeline .grid { stroke: #d0d7de; stroke-width: 1; }
.axis { display: grid; grid-template-columns: repeat(6, 1fr); font-weight: 400; }
@media (max-width: 700px) {
  .jobs thead, .jobs td.opt { display: none; }
  .jobs tr { display: block; border-bottom: 1px solid #d0d7de; padding: .4rem 0; }
  .jobs th.name, .jobs td { display: block; border: 0; padding: .1rem 0; }
  .jobs td::before { content: attr(data-label) ": "; color: #57606a; }
  .strip { min-width: 0; flex-wrap: wrap; }
  .axis { font-size: .85em; } .axis span:nth-child(even) { visibility: hidden; }
}
""".lstrip()


SCRIPT = """
// The status page's refresh (served as /ui.js; the page works without it, reloading
// itself through a <noscript> meta refresh). Every 30 s, while the tab is shown, it reads
// the same address again and puts the new version of each live part (data-live: the
// header's state, the jobs, counts, timeline; a job's facts, charts and runs) in place of
// the old one: the scroll position stays, the filter being typed stays, and a part that
// holds the keyboard focus is left for the next time. It runs no text of the page.
"use strict";
(function () {
  const EVERY_MS = 30000;

  async function refresh() {
    const response = await fetch(location.href, {
      cache: "no-store",
      credentials: "same-origin",
      headers: { Accept: "text/html" },
    });
    if (!response.ok) return false;
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    for (const old of document.querySelectorAll("[data-live]")) {
      if (old.contains(document.activeElement)) continue;
      const next = fresh.getElementById(old.id);
      if (next !== null) old.replaceWith(document.adoptNode(next));
    }
    return true;
  }

  window.crontainerRefresh = refresh;
  setInterval(function () {
    if (!document.hidden) refresh().catch(function () {});
  }, EVERY_MS);
})();
""".lstrip()
"""The page's one script, served as ``/ui.js``: the page works without it, reloading itself
through a ``<noscript>`` meta refresh. Every ``REFRESH_S`` while the tab is shown, it reads
the same address again and puts the new version of each live part (``data-live``:
``live_part``) in place of the old one, so that the scroll position and the filter being
typed stay; a part holding the keyboard focus is left for the next time. It runs no text
of the page (the new parts are parsed by ``DOMParser``, whose scripts never run)."""


def esc(value: object) -> str:
    """``value`` as text safe in an element or a quoted attribute."""
    text = _CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}", str(value))
    return html.escape(text, quote=True)


def job_href(name: str) -> str:
    return "/jobs/" + quote(name, safe="")


def run_href(run_id: str) -> str:
    return "/runs/" + quote(run_id, safe="")


def link(href: str, text: str) -> str:
    """An ``<a>``; ``text`` already HTML."""
    return f'<a href="{esc(href)}">{text}</a>'


def relative(moment: datetime, now: datetime) -> str:
    """``moment`` from ``now`` in words: "in 4 min", "2 h ago", "now"."""
    seconds = (moment - now).total_seconds()
    span = abs(seconds)
    if span < 1:
        return "now"
    if span < 60:  # noqa: PLR2004 - a minute
        words = f"{int(span)} s"
    elif span < 3600:  # noqa: PLR2004 - an hour
        words = f"{int(span // 60)} min"
    elif span < 86400:  # noqa: PLR2004 - a day
        hours, minutes = divmod(int(span // 60), 60)
        words = f"{hours} h {minutes} min" if minutes else f"{hours} h"
    else:
        days, rest = divmod(int(span // 3600), 24)
        words = f"{days} d {rest} h" if rest else f"{days} d"
    return f"in {words}" if seconds > 0 else f"{words} ago"


def clock_time(moment: datetime) -> str:
    """``moment`` in its own zone: ``2026-12-04 10:15:06 CET``."""
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z").rstrip()


def took(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:  # noqa: PLR2004 - a minute
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest} s"


def live_part(key: str, html: str) -> str:
    """``html`` as a part of the page that ``/ui.js`` refreshes in place (id ``key``)."""
    return f'<div id="{key}" data-live>{html}</div>'


def page(title: str, body: str, *, refresh: bool = False) -> bytes:
    """A whole page: ``title`` (text) and ``body`` (HTML); ``refresh``: it refreshes its
    live parts with ``/ui.js``, or reloads itself without script."""
    meta = (
        f'<noscript><meta http-equiv="refresh" content="{REFRESH_S}"></noscript>'
        f'<script src="{SCRIPT_PATH}" defer></script>'
        if refresh
        else ""
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'{meta}<title>{esc(title)}</title><link rel="stylesheet" href="{CSS_PATH}">'
        f'<link rel="icon" href="{ICON_PATH}" type="image/svg+xml">'
        f"</head><body>{body}</body></html>\n"
    ).encode()
