"""Control lines: how an ops tool under ``jobs.tools`` talks to the daemon (stdlib only).

A tool talks to the daemon on its **stderr**, one *control line* per message::

    @crontainer {"result": {...}}          the tool's result (once, at the end)
    @crontainer {"checkpoint": {...}, "forget": [...]}   logship: a delivered batch
    @crontainer {"warning": {"event": "backup.future_archive", ...}}

Everything else a tool prints on stderr is a diagnostic, and every diagnostic goes
through ``say``, which escapes control characters: a file name holding a newline
(``x\\n@crontainer {...}``) is printed as ``x\\x0a@crontainer {...}`` inside one line
that starts with the tool's name, so no diagnostic can ever begin a line with the
control mark. ``guarded`` routes uncaught exceptions (the main thread's and other
threads') through ``say`` too. The daemon takes control lines out of the output
before the output's limits apply (a result is never cut), bounds their length, and
checks what each message holds before it acts on it (``scheduler.control``).
"""

from __future__ import annotations

import json
import re
import sys
import threading
import traceback
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

CONTROL = "@crontainer "
"""The start of a control line."""
CONTROL_MARK = CONTROL.encode()
MAX_CONTROL_LINE = 64 * 1024 * 1024
"""The longest control message the daemon accepts, in bytes after the mark (a result
listing 100,000 rotated files fits many times over); the output's own limits never apply
to control lines."""
WARNING_EVENTS = frozenset({"backup.future_archive"})
"""The events a tool may ask the daemon to log (``{"warning": {"event": …}}``)."""

_UNPRINTABLE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\u2028\u2029]")


def escape(text: str) -> str:
    """``text`` on one line: control characters (newlines included) as ``\\xNN``."""
    return _UNPRINTABLE.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def emit(message: dict[str, object], stream: IO[str] | None = None) -> None:
    """Write one control line (flushed: the daemon acts on it at once)."""
    out = stream or sys.stderr
    out.write(CONTROL + json.dumps(message, separators=(",", ":")) + "\n")
    out.flush()


def say(tool: str, text: str, stream: IO[str] | None = None) -> None:
    """Write one diagnostic line ``<tool>: <text>``, escaped (never a control line)."""
    out = stream or sys.stderr
    out.write(f"{tool}: {escape(text)}\n")
    out.flush()


def parse(line: bytes) -> dict[str, object] | None:
    """The message of a control line (without its newline), else None."""
    if not line.startswith(CONTROL_MARK) or len(line) - len(CONTROL_MARK) > MAX_CONTROL_LINE:
        return None
    try:
        message = json.loads(line[len(CONTROL_MARK) :])
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


def guarded(tool: str, main: Callable[[], int]) -> int:
    """Run a tool's ``main``: an uncaught exception anywhere (other threads included) is
    printed through ``say`` — escaped — and ends the tool with exit code 3."""

    def in_thread(args: threading.ExceptHookArgs) -> None:
        text = "".join(traceback.format_exception(args.exc_type, args.exc_value))
        say(tool, f"internal error in thread {args.thread.name if args.thread else '?'}: {text}")

    threading.excepthook = in_thread
    try:
        return main()
    except Exception as e:  # the tool's last resort: say it, escaped
        say(tool, "internal error: " + "".join(traceback.format_exception(e)))
        return 3
