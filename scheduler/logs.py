"""Logging: structlog events, one JSON object per line on stdout by default.

The only module that sets up logging. Standard-library loggers (APScheduler,
docker, urllib3) go through the same processors, so every line on stdout has
one shape. Per-run fields (``job``, ``run_id``) are bound with contextvars in
the run's own thread.

Our own events are rendered by structlog and written by the handler straight away
(``_Lines``), under the handler's lock: not wrapped into a standard-library record and
rendered again by its formatter, which cost three times as much per line (124 µs, 10,000
``job.scheduled`` lines at the start of a daemon of 10,000 jobs).
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Literal, TextIO

import structlog

if TYPE_CHECKING:
    from structlog.typing import Processor

Format = Literal["auto", "json", "console"]
Level = Literal["debug", "info", "warning", "error"]

_QUIET_LIBRARIES = ("urllib3", "docker", "apscheduler", "requests")
NOTIFY_THREAD = "notify"
"""The notifier's sender thread: standard-library records logged in it are never written
(urllib3 and requests, under Apprise, log request lines whose paths hold tokens)."""


def silence(name: str) -> None:
    """Never write standard-library logger ``name``'s records (a library whose own lines
    quote secrets: Apprise's quote whole URLs); below WARNING they are not even made.
    Whoever needs what it says adds a handler of its own to that logger."""
    logger = logging.getLogger(name)
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())  # else Python's last resort prints them


def _not_from_notify(record: logging.LogRecord) -> bool:
    return record.threadName != NOTIFY_THREAD


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        structlog.processors.format_exc_info,
    ]


def _rename_foreign(
    logger: object, method_name: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """A standard-library record becomes event ``library.log`` with its text in ``message``."""
    record = event_dict.get("_record")
    if record is not None and event_dict.get("_from_structlog") is not True:
        event_dict["message"] = event_dict.pop("event", "")
        event_dict["event"] = "library.log"
        event_dict["logger"] = record.name
    return event_dict


_FIRST_KEYS = ("event", "level", "timestamp", "job", "run_id")


def _event_first(
    logger: object, method_name: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """Put the keys people scan for at the front of each line."""
    head = {k: event_dict.pop(k) for k in _FIRST_KEYS if k in event_dict}
    return {**head, **event_dict}


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes records, and our events' lines, to ``stream``; without one, to whatever
    ``sys.stdout`` is at that moment: a test runner swaps it per test and closes the old
    one, and a background thread (the notifier's sender) logging after that must not write
    to a closed file."""

    def __init__(self, stream: TextIO | None) -> None:
        super().__init__(stream)
        self._follow = stream is None

    def emit(self, record: logging.LogRecord) -> None:
        if self._follow:
            self.stream = sys.stdout  # under the handler's lock (Handler.handle holds it)
        super().emit(record)

    def write_line(self, line: str) -> None:
        """One rendered line, as ``emit`` writes a record's (a failure is reported as the
        logging module reports one, never raised to the caller)."""
        with self.lock:  # type: ignore[union-attr]  # created by Handler.__init__
            try:
                if self._follow:
                    self.stream = sys.stdout
                self.stream.write(line + self.terminator)
                self.stream.flush()
            except RecursionError:
                raise
            except Exception:
                self.handleError(logging.makeLogRecord({"msg": line}))


class _Lines:
    """Where structlog hands our rendered events: the handler, at the level of the
    standard-library logger ``crontainer`` (what ``filter_by_level`` asks)."""

    def __init__(self, handler: _Handler, logger: logging.Logger) -> None:
        self._handler = handler
        self._logger = logger

    @property
    def disabled(self) -> bool:
        return self._logger.disabled

    def getEffectiveLevel(self) -> int:  # noqa: N802 - the name filter_by_level calls
        return self._logger.getEffectiveLevel()

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 - filter_by_level before 25.4
        return self._logger.isEnabledFor(level)

    def write(self, line: str) -> None:
        self._handler.write_line(line)

    debug = info = warning = warn = error = exception = critical = fatal = msg = write


def configure(fmt: Format = "auto", level: Level = "info", stream: TextIO | None = None) -> None:
    """Route structlog and standard logging to ``stream`` (stdout) in one format."""
    out = sys.stdout if stream is None else stream
    console = fmt == "console" or (fmt == "auto" and out.isatty())
    renderer: Processor = (
        structlog.dev.ConsoleRenderer(colors=out.isatty())
        if console
        else structlog.processors.JSONRenderer(sort_keys=False)
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[
            _rename_foreign,
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _event_first,
            renderer,
        ],
    )
    handler = _Handler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(_not_from_notify)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    numeric = getattr(logging, level.upper())
    root.setLevel(numeric)
    for name in _QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(numeric if level == "debug" else logging.WARNING)
    lines = _Lines(handler, logging.getLogger("crontainer"))
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            _event_first,
            renderer,
        ],
        logger_factory=lambda *_args: lines,
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def get_logger() -> structlog.stdlib.BoundLogger:
    """The daemon's logger; events carry whatever is bound in the current context."""
    logger: structlog.stdlib.BoundLogger = structlog.get_logger("crontainer")
    return logger
