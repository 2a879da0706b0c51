"""Apprise's notification channels (``notify.urls``): a URL checked, a message sent.

The only module importing ``apprise``, and only when a URL is checked or used: a config
without ``urls`` never loads it (it costs about 0.3 s and 20 MiB). Apprise's own log
records never reach the output (``logs.silence``): its debug lines quote whole URLs with
their tokens, its warnings quote topics and addresses. What a failure says is Apprise's
last warning with every part of the URL that may be secret taken out (``ChannelError``).
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import ipaddress
import logging
import re
import threading
import urllib.parse
import warnings
from typing import TYPE_CHECKING, Any

from scheduler.errors import CrontainerError

if TYPE_CHECKING:
    from collections.abc import Iterator

LOGGER = "apprise"
TEXT_MAX = 200
"""What a channel's error says is cut to this many characters."""
PIECE_MIN = 4
"""A URL's path segment or query value this long or longer is taken out of what Apprise
says (shorter ones are words and numbers such as ``yes`` or ``1``, no secrets); its user
and password are taken out whatever their length."""
_SCHEME = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]{0,31})://")
_TYPES = {"failure": "failure", "success": "success", "recovery": "success", "missed": "warning"}
"""Apprise's message type (its icon, its colour) by what is told."""


class ChannelError(CrontainerError):
    """A URL Apprise cannot use, or a message it could not deliver; the text holds no part
    of the URL but its scheme and, when it is a host name, its host."""


def scheme(url: str) -> str:
    """The URL's scheme, lower case (``mailto``): what logs call its channel; ``?`` for
    text that does not start with one (a secret's value may be anything: never shown)."""
    found = _SCHEME.match(url)
    return found.group(1).lower() if found else "?"


def shown(url: str) -> str:
    """``url`` as logs may show it: its scheme, and its host when the host is a host name
    or an address (``slack://T0123/…`` holds a token where a host would be: not shown)."""
    try:
        host = urllib.parse.urlsplit(url).hostname or ""
    except ValueError:
        host = ""
    if scheme(url) == "?":
        return "?"
    return f"{scheme(url)}://{host if _a_host(host) else '…'}"


@functools.lru_cache(maxsize=256)  # [defaults] gives every job the same URLs
def url_problem(url: str) -> str | None:
    """Why Apprise cannot use ``url`` (naming its scheme, never the rest), else None."""
    try:
        _instance(url)
    except ChannelError as e:
        return str(e)
    return None


def send(url: str, kind: str, title: str, body: str) -> None:
    """Tell ``url``'s channel; ChannelError when it was not delivered."""
    plugin = _instance(url)
    box = _apprise().Apprise(asset=_asset())
    box.add(plugin)
    with _captured() as said:
        try:  # through Apprise, which turns the text into what the channel takes (HTML…)
            sent = bool(box.notify(body=body, title=title, body_format="text",
                                   notify_type=_TYPES.get(kind, "info")))  # fmt: skip
        except Exception as e:  # a plugin's bug or an unexpected error: its type only
            said.messages.append(f"{type(e).__name__} while sending")
            sent = False
    if not sent:
        raise ChannelError(_said(url, said, "not delivered"))


def _instance(url: str) -> Any:  # noqa: ANN401 - apprise is untyped
    apprise = _apprise()
    name = scheme(url)
    if name == "?":
        raise ChannelError("not a URL such as 'ntfy://host/topic'")
    if name not in _schemes():
        near = difflib.get_close_matches(name, _schemes(), n=1)
        hint = f"; did you mean {near[0]}://?" if near else ""
        raise ChannelError(f"{name}:// is not a scheme Apprise knows{hint}")
    with _captured() as said:
        plugin = apprise.Apprise.instantiate(url, asset=_asset())
    if plugin is None:
        raise ChannelError(_said(url, said, f"Apprise cannot use this {name}:// URL"))
    return plugin


@functools.cache
def _apprise() -> Any:  # noqa: ANN401 - apprise is untyped
    from scheduler.logs import silence  # noqa: PLC0415 - structlog: not for a validate without urls

    silence(LOGGER)  # before anything of it logs
    with _quiet_imports():
        import apprise  # noqa: PLC0415 - only when a URL is used: a start without urls

    return apprise


@contextlib.contextmanager
def _quiet_imports() -> Iterator[None]:
    """Apprise's plugins' imports warn (``imghdr`` is deprecated): nothing a user can act on."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


@functools.cache
def _schemes() -> frozenset[str]:
    _apprise()
    from apprise.apprise import N_MGR  # noqa: PLC0415 - the plugins' schemes

    with _quiet_imports():  # the plugins are loaded now
        return frozenset(N_MGR.schemas())  # type: ignore[no-untyped-call]


@functools.cache
def _asset() -> Any:  # noqa: ANN401 - apprise is untyped
    """Messages say they come from crontainer; nothing is kept on disk (Apprise's persistent
    store, for plugins' tokens between sends: the daemon's filesystem may be read-only)."""
    return _apprise().AppriseAsset(
        app_id="crontainer",
        app_desc="crontainer",
        app_url="https://github.com/crontainer",
        storage_mode="memory",
    )


class _Capture(logging.Handler):
    """Apprise's warnings and errors logged by this thread while a URL is used."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            try:
                self.messages.append(record.getMessage())
            except Exception:  # a broken record says nothing
                self.messages.append("")

    def last(self) -> str | None:
        """The last thing said that is not Apprise's "Could not load" (which quotes the URL,
        half masked)."""
        useful = [m for m in self.messages if m and not m.startswith("Could not load")]
        return useful[-1] if useful else None


@contextlib.contextmanager
def _captured() -> Iterator[_Capture]:
    capture = _Capture()
    logger = logging.getLogger(LOGGER)
    logger.addHandler(capture)
    try:
        yield capture
    finally:
        logger.removeHandler(capture)


def _said(url: str, said: _Capture, what: str) -> str:
    last = said.last()
    text = what if last is None else f"{what}: {redacted(last, url)}"
    return text[:TEXT_MAX]


def redacted(text: str, url: str) -> str:
    """``text`` without any part of ``url`` that may be secret: user, password, path
    segments and query values (of PIECE_MIN characters or more), and the host unless it is
    a host name or an address — as written and as decoded."""
    return _pattern(url).sub("…", text) if _secrets(url) else text


def _secrets(url: str) -> list[str]:
    """The parts of ``url`` that may be secret, longest first."""
    rest = url.partition("://")[2]
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
    except ValueError:  # not even split: all of it after the scheme
        return [rest] if rest else []
    always = [parts.username or "", parts.password or "", rest]
    found = [parts.fragment, *parts.path.split("/")]
    for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        found += [value, f"{key}={value}"]
    if not _a_host(host):
        always.append(host)
    pieces = {p for p in always if p} | {p for p in found if len(p) >= PIECE_MIN}
    pieces |= {urllib.parse.unquote(p) for p in pieces}
    return sorted(pieces, key=len, reverse=True)


def _pattern(url: str) -> re.Pattern[str]:
    return re.compile("|".join(re.escape(piece) for piece in _secrets(url)))


def _a_host(host: str) -> bool:
    """``host`` is an address, ``localhost`` or a dotted name (tokens and ntfy topics are
    neither)."""
    if host == "localhost":
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return bool(re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)+", host))
    return True
