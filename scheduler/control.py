"""What ops tools tell the daemon: control lines taken out of a container's output,
checked, then acted upon (``jobs.protocol`` is the tools' side).

A control line never reaches the output log (so the output's limits never cut a
result), its length is bounded, and a message is used only after it was checked:
checkpoints must have the shape the daemon stores, a warning must name an event a tool
may raise, a result must be a table. A message that fails a check is dropped with a
``run.control_rejected`` event that says why — never the message itself, which may hold
file names written by the application.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Protocol

from jobs.protocol.lines import CONTROL_MARK, MAX_CONTROL_LINE, WARNING_EVENTS, parse
from scheduler.logs import get_logger

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from datetime import datetime

    from scheduler.output import OutputLog

_FILE_SOURCE = re.compile(r"file:(\d+):(\d+)")
_CONTAINER_SOURCE = re.compile(r"container:[^:\s]+:(stdout|stderr)")
_FILE_MARK = {"path": str, "dev": int, "ino": int, "offset": int, "fp": str, "fplen": int}
_FILE_MARK_OPTIONAL = {"skipping": bool}
_CONTAINER_MARK = {"ns": int, "skip": int}
RESERVED_KEYS = frozenset(
    {"event", "level", "timestamp", "job", "run_id", "attempt", "container_id", "exit_code"}
)
"""Keys of a run's own events that a tool's result never sets."""


class ControlError(ValueError):
    """A control message the daemon does not act on; the text says why (no values)."""


class ToolStateStore(Protocol):
    """Where the state a job's ops tool reports is kept: log shipping's checkpoints, a
    rotation's last rotations."""

    def tool_state(self, job: str) -> dict[str, dict[str, object]]: ...

    def save_tool_state(
        self, job: str, marks: Mapping[str, object], forget: Iterable[str], at: datetime
    ) -> None: ...


def _fields(mark: object, required: Mapping[str, type], optional: Mapping[str, type]) -> bool:
    if not isinstance(mark, dict) or not set(required) <= set(mark):
        return False
    for key, value in mark.items():
        kind = required.get(key) or optional.get(key)
        if kind is None or type(value) is not kind:  # exact: a bool is no offset
            return False
    return all(v >= 0 for v in mark.values() if type(v) is int)


def _check_mark(source: str, mark: object) -> None:
    if (found := _FILE_SOURCE.fullmatch(source)) is not None:
        good = _fields(mark, _FILE_MARK, _FILE_MARK_OPTIONAL)
        good = (
            good
            and isinstance(mark, dict)
            and (mark["dev"], mark["ino"]) == tuple(int(n) for n in found.groups())
        )
        good = good and isinstance(mark, dict) and 0 <= int(str(mark["fplen"])) <= 1024  # noqa: PLR2004
    elif _CONTAINER_SOURCE.fullmatch(source) is not None:
        good = _fields(mark, _CONTAINER_MARK, {})
    else:
        raise ControlError("a checkpoint names an unknown kind of source")
    if not good:
        raise ControlError("a checkpoint does not have the fields of its kind of source")


def checked_checkpoints(message: Mapping[str, object]) -> tuple[dict[str, object], list[str]]:
    """The marks and forgotten sources of a logship checkpoint message, or ControlError."""
    marks, forget = message.get("checkpoint", {}), message.get("forget", [])
    if not isinstance(marks, dict) or not isinstance(forget, list):
        raise ControlError("checkpoint must be a table and forget a list")
    for source, mark in marks.items():
        _check_mark(source, mark)
    for source in forget:
        if not isinstance(source, str) or not (
            _FILE_SOURCE.fullmatch(source) or _CONTAINER_SOURCE.fullmatch(source)
        ):
            raise ControlError("forget names something that is not a source")
    return dict(marks), list(forget)


class ControlTap:
    """Sits in front of a container's output log: takes the control lines out of stderr
    (acting on each at once) and passes everything else on. With ``quiet_stdout`` the
    container's stdout is not output (the stdout sink's records).

    Only a line that starts with the control mark is held back until its newline (at most
    ``MAX_CONTROL_LINE`` bytes); other bytes go straight on, so the output log's own limits
    bound them."""

    def __init__(
        self,
        output: OutputLog,
        tool: str,
        on_checkpoint: Callable[[dict[str, object], list[str]], None] | None = None,
        *,
        quiet_stdout: bool = False,
    ) -> None:
        self._output = output
        self._prefix = f"{tool}: ".encode()
        self._on_checkpoint = on_checkpoint
        self._quiet_stdout = quiet_stdout
        self._mode = "start"  # start of a line | pass (output) | control | drop (too long)
        self._head = bytearray()  # the start of a line, until it is told apart
        self._control = bytearray()  # the control line being read
        self._said = bytearray()  # the first bytes of the diagnostic line being passed on
        self.last_error: str | None = None
        """The tool's last diagnostic (``<tool>: …``), for the run's error."""
        self.result: dict[str, object] = {}
        self._log = get_logger()

    def feed(self, stream: str, chunk: bytes) -> None:
        if stream != "stderr":
            if not self._quiet_stdout:
                self._output.feed(stream, chunk)
            return
        at = 0
        while at < len(chunk):
            at = self._start(chunk, at) if self._mode == "start" else self._rest(chunk, at)

    def _rest(self, chunk: bytes, at: int) -> int:
        """Read on in a line already told apart; return the offset after what was read."""
        newline = chunk.find(b"\n", at)
        end = len(chunk) if newline < 0 else newline
        if self._mode == "pass":
            self._pass(chunk[at : end + 1 if newline >= 0 else end])
            return end + 1 if newline >= 0 else end
        if self._mode == "control":
            self._control += chunk[at:end]
            if len(self._control) > MAX_CONTROL_LINE:
                self._mode, self._control = "drop", bytearray()
        if newline < 0:
            return end
        if self._mode == "control":
            self._message(bytes(self._control))
        else:
            self._reject("a control line longer than the bound")
        self._mode, self._control = "start", bytearray()
        return newline + 1

    def _start(self, chunk: bytes, at: int) -> int:
        """Read the start of a line until it is a control line or not; return the offset
        after what was read."""
        part = chunk[at : at + len(CONTROL_MARK) - len(self._head)]
        newline = part.find(b"\n")
        if newline >= 0:
            part = part[: newline + 1]
        self._head += part
        head = bytes(self._head)
        if head == CONTROL_MARK:
            self._mode, self._head = "control", bytearray()
        elif newline >= 0 or not CONTROL_MARK.startswith(head):
            self._mode, self._head = "pass", bytearray()
            self._pass(head)
        return at + len(part)

    def _pass(self, part: bytes) -> None:
        """Output bytes of a line that is not a control line."""
        self._output.feed("stderr", part)
        if len(self._said) < 4096:  # noqa: PLR2004 - enough of a line for an error
            self._said += part[: 4096 - len(self._said)]
        if part.endswith(b"\n"):
            self._mode = "start"
            self._end_diagnostic()

    def _end_diagnostic(self) -> None:
        line, self._said = bytes(self._said).rstrip(b"\r\n"), bytearray()
        if line.startswith(self._prefix):
            self.last_error = line[len(self._prefix) :].decode("utf-8", "replace")

    def _message(self, line: bytes) -> None:
        message = parse(CONTROL_MARK + line)
        if message is None:
            self._reject("not a JSON object")
            return
        try:
            self._act(message)
        except ControlError as e:
            self._reject(str(e))

    def _act(self, message: dict[str, object]) -> None:
        if "result" in message:
            result = message["result"]
            if not isinstance(result, dict):
                raise ControlError("result must be a table")
            self.result = {k: v for k, v in result.items() if k not in RESERVED_KEYS}
        elif "warning" in message:
            warning = message["warning"]
            if not isinstance(warning, dict) or warning.get("event") not in WARNING_EVENTS:
                raise ControlError("a warning names no event a tool may raise")
            fields = {k: v for k, v in warning.items() if k not in RESERVED_KEYS}
            self._log.warning(str(warning["event"]), **fields)
        elif "checkpoint" in message or "forget" in message:
            if self._on_checkpoint is None:
                raise ControlError("this tool reports no checkpoints")
            self._on_checkpoint(*checked_checkpoints(message))
        else:
            raise ControlError("an unknown message")

    def _reject(self, why: str) -> None:
        self._log.warning("run.control_rejected", reason=why)

    def close(self) -> None:
        """The stream ended: finish a last line without its newline, close the output."""
        if self._head:
            self._pass(bytes(self._head))
        elif self._mode == "control":
            self._message(bytes(self._control))
        if self._said:
            self._end_diagnostic()
        self._mode, self._head, self._control = "start", bytearray(), bytearray()
        self._output.close()
