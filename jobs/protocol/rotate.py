"""The rotate tool's requests and results (stdlib only). A request is the tool's command
line: the plan (``jobs.rotate``) builds it and writes it with ``argv()``, the tool
(``jobs.tools.rotate``) reads it back with ``parse_command``. The state of earlier runs
goes in on the tool's stdin (``state_line``, ``read_state``); the results go out as the
tool's control line (``to_json``) and the daemon (``scheduler.steps.rotate``) reads them
with ``parse``, a bad field raising RequestError that names it."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from jobs.protocol.fields import Fields, RequestError, json_object

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

PROG = "python -m jobs.tools.rotate"
MODES = ("rename", "copytruncate")
COMPRESSIONS = ("zstd", "gzip", "none")

State = dict[str, dict[str, str]]
"""When each live file was last rotated (or first seen): ``{path: {"since": ISO time}}``."""


def _option(name: str, value: object) -> tuple[str, ...]:
    return () if value is None else (name, str(value))


def _flag(name: str, given: bool) -> tuple[str, ...]:
    return (name,) if given else ()


@dataclass(frozen=True, slots=True)
class RotateRequest:
    """Phase one: rotate the live files matching ``paths`` that are due — at ``max_size``
    bytes, or ``max_age`` seconds after the last rotation if they hold ``min_size`` bytes."""

    COMMAND: ClassVar[str] = "rotate"
    paths: tuple[str, ...]
    mode: str = "rename"
    max_size: int | None = None
    max_age: float | None = None
    min_size: int = 0
    confine: bool = False
    """Act only inside the volumes mounted into the container (the plan's always do)."""
    state: str | None = "{}"
    """The state of earlier runs as JSON (``--state``); None: on stdin's first line
    (``--state-stdin``, how the daemon passes it: the state grows with the number of
    files, and one argument may hold at most 128 KiB)."""

    def argv(self) -> tuple[str, ...]:
        """The tool's command line after ``python -m jobs.tools.rotate``."""
        state = ("--state-stdin",) if self.state is None else ("--state", self.state)
        return (
            self.COMMAND,
            *state,
            *("--mode", self.mode, "--min-size", str(self.min_size)),
            *_option("--max-size", self.max_size),
            *_option("--max-age", self.max_age),
            *_flag("--confine", self.confine),
            "--",
            *self.paths,
        )


@dataclass(frozen=True, slots=True)
class FinishRequest:
    """Phase two: compress the rotated files of the live files matching ``paths`` (with
    ``delay_compression``, all but the newest of each), then delete those beyond
    ``keep_last`` (newest kept) or older than ``keep_age`` seconds."""

    COMMAND: ClassVar[str] = "finish"
    paths: tuple[str, ...]
    compression: str = "zstd"
    delay_compression: bool = False
    keep_last: int | None = None
    keep_age: float | None = None
    confine: bool = False
    """Act only inside the volumes mounted into the container (the plan's always do)."""

    def argv(self) -> tuple[str, ...]:
        """The tool's command line after ``python -m jobs.tools.rotate``."""
        return (
            self.COMMAND,
            *("--compression", self.compression),
            *_flag("--delay-compression", self.delay_compression),
            *_option("--keep-last", self.keep_last),
            *_option("--keep-age", self.keep_age),
            *_flag("--confine", self.confine),
            "--",
            *self.paths,
        )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG)
    commands = parser.add_subparsers(dest="command", required=True)
    first = commands.add_parser(RotateRequest.COMMAND)
    first.add_argument("--state", default="{}", help="JSON: {path: {since}}")
    first.add_argument(
        "--state-stdin", action="store_true", help="read the state from stdin's first line"
    )
    first.add_argument("--max-size", type=int)
    first.add_argument("--max-age", type=float, help="seconds")
    first.add_argument("--min-size", type=int, default=0)
    first.add_argument("--mode", choices=MODES, default="rename")
    second = commands.add_parser(FinishRequest.COMMAND)
    second.add_argument("--compression", choices=COMPRESSIONS, default="zstd")
    second.add_argument("--delay-compression", action="store_true")
    second.add_argument("--keep-last", type=int)
    second.add_argument("--keep-age", type=float, help="seconds")
    for command in (first, second):
        command.add_argument(
            "--confine",
            action="store_true",
            help="act only inside the volumes mounted here (the daemon always asks for it)",
        )
        command.add_argument("patterns", nargs="+")
    return parser


def parse_command(argv: Sequence[str] | None = None) -> RotateRequest | FinishRequest:
    """The request on the tool's command line (``sys.argv`` without None); a wrong one is
    argparse's usage error (exit 2)."""
    args = _parser().parse_args(argv)
    paths = tuple(args.patterns)
    if args.command == RotateRequest.COMMAND:
        state = None if args.state_stdin else args.state
        rules = (args.mode, args.max_size, args.max_age, args.min_size)
        return RotateRequest(paths, *rules, confine=args.confine, state=state)
    rules = (args.compression, args.delay_compression, args.keep_last, args.keep_age)
    return FinishRequest(paths, *rules, confine=args.confine)


def state_line(state: Mapping[str, Mapping[str, object]]) -> bytes:
    """The state as the daemon writes it on the tool's stdin: one line of JSON."""
    return json.dumps(state).encode() + b"\n"


def read_state(text: str) -> State:
    """The state from its JSON (``--state``, or stdin's first line); a ValueError says what
    is wrong."""
    return parse_state(json.loads(text))


def parse_state(value: object) -> State:
    """``{path: {since}}`` with absolute paths and ISO times, or RequestError."""
    if not isinstance(value, dict):
        raise RequestError("the state is not a table")
    for path, mark in value.items():
        if not path.startswith("/") or not _strings(mark, "since"):
            raise RequestError("a rotation state is not {path: {since}}")
        try:
            datetime.fromisoformat(mark["since"])
        except ValueError:
            raise RequestError("a rotation state's since is not a time") from None
    return {path: dict(mark) for path, mark in value.items()}


def _strings(value: object, *keys: str) -> bool:
    """Whether ``value`` is an object of exactly ``keys``, each a string."""
    return (
        isinstance(value, dict)
        and set(value) == set(keys)
        and all(isinstance(v, str) for v in value.values())
    )


@dataclass(frozen=True, slots=True)
class RotateResult:
    """What a rotation did: the files it moved, ``(path, to)``, and the new state."""

    moves: tuple[tuple[str, str], ...]
    state: State

    def to_json(self) -> dict[str, object]:
        """The result as the tool emits it: ``rotated`` ([{path, to}]) and ``state``."""
        rotated = [{"path": path, "to": to} for path, to in self.moves]
        return {"rotated": rotated, "state": self.state}

    @classmethod
    def parse(cls, value: Mapping[str, object]) -> RotateResult:
        """The result the tool reported (its control line's ``result``), or RequestError
        saying which part is wrong."""
        if "rotated" not in value or "state" not in value:
            raise RequestError("the rotate tool gave no result")
        rotated, state = value["rotated"], value["state"]
        if not isinstance(rotated, list) or not isinstance(state, dict):
            raise RequestError("rotated must be a list and state a table")
        moves: list[tuple[str, str]] = []
        for entry in rotated:
            if not _strings(entry, "path", "to"):
                raise RequestError("a rotated entry is not {path, to}")
            moves.append((entry["path"], entry["to"]))
        return cls(tuple(moves), parse_state(state))


@dataclass(frozen=True, slots=True)
class FinishResult:
    """What compressing and pruning did: the files compressed (their new names) and the
    files deleted."""

    compressed: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        """The result as the tool emits it (and the run's details take it)."""
        return json_object(self)

    @classmethod
    def parse(cls, value: Mapping[str, object]) -> FinishResult:
        """The result the tool reported; a key left out is empty, a bad one raises
        RequestError naming it."""
        fields = Fields(dict(value), "")
        return cls(**fields.given({"compressed": fields.texts, "deleted": fields.texts}))
