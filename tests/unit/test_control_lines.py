"""Control lines, exactly: how a tool's stderr is split into control lines and output
wherever its chunks are cut, the bounds of a control line and of a diagnostic, the
reason of every rejection (``run.control_rejected``'s ``reason``) and of every unusable
rotation result (the run's error), and what a tool that says nothing leaves."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import structlog

from jobs.protocol.fields import RequestError
from jobs.protocol.rotate import RotateResult
from scheduler.control import ControlTap, checked_checkpoints
from tests.control import control

if TYPE_CHECKING:
    from collections.abc import MutableMapping

MARK = {"path": "/l/a.log", "dev": 1, "ino": 7, "offset": 10, "fp": "", "fplen": 0}
RESULT = {"result": {"lines": 3}}
SINCE = "2026-11-28T12:00:00+00:00"


class Output:
    """An OutputLog stand-in: every chunk fed, with its stream, and whether it was closed."""

    def __init__(self) -> None:
        self.fed: list[tuple[str, bytes]] = []
        self.closed = False

    def feed(self, stream: str, chunk: bytes) -> None:
        self.fed.append((stream, chunk))

    def close(self) -> None:
        self.closed = True

    def text(self, stream: str = "stderr") -> bytes:
        return b"".join(chunk for s, chunk in self.fed if s == stream)


class Tapped:
    """What came out of a tap fed a list of (stream, chunk), then closed."""

    def __init__(self, tap: ControlTap, output: Output, logs: list[MutableMapping[str, Any]]):
        self.tap, self.output, self.logs = tap, output, logs
        self.checkpoints: list[tuple[dict[str, object], list[str]]] = []

    @property
    def rejected(self) -> list[object]:
        return [e["reason"] for e in self.logs if e["event"] == "run.control_rejected"]


def with_progress_checked(tap: ControlTap) -> None:
    """Every step of the tap reads at least one byte and never goes back: a chunk is read
    once, so no input can keep it busy."""
    for name in ("_start", "_rest"):
        step = getattr(tap, name)

        def checked(chunk: bytes, at: int, step: Any = step) -> int:
            after = int(step(chunk, at))
            assert after > at, f"a step read nothing at {at} of {chunk!r}"
            return after

        setattr(tap, name, checked)


def run_tap(
    chunks: list[bytes] | list[tuple[str, bytes]],
    tool: str = "t",
    *,
    checkpoints: bool = True,
    quiet_stdout: bool | None = None,
) -> Tapped:
    output = Output()
    stored: list[tuple[dict[str, object], list[str]]] = []
    options = {} if quiet_stdout is None else {"quiet_stdout": quiet_stdout}
    tap = ControlTap(
        output,  # type: ignore[arg-type]
        tool,
        (lambda marks, forget: stored.append((marks, forget))) if checkpoints else None,
        **options,
    )
    with_progress_checked(tap)
    with structlog.testing.capture_logs() as logs:
        for item in chunks:
            stream, chunk = item if isinstance(item, tuple) else ("stderr", item)
            tap.feed(stream, chunk)
        tap.close()
    done = Tapped(tap, output, logs)
    done.checkpoints = stored
    return done


def splits(data: bytes) -> list[list[bytes]]:
    """``data`` whole, byte by byte, and cut in two at every offset."""
    return [[data], [bytes([b]) for b in data]] + [
        [data[:n], data[n:]] for n in range(1, len(data))
    ]


# -- splitting a stream -----------------------------------------------------------------


@pytest.mark.parametrize(
    "stream",
    [
        b"ok\n" + control(RESULT),  # a short line, then a control line in the same chunk
        b"\n" + control(RESULT),  # an empty line first
        b"\n\n" + control(RESULT) + b"\n",
        b"t: partial" + b"\n" + control(RESULT),
        b"x" * 30 + b"\n" + control(RESULT),  # a line longer than the mark
        b"@cr\n" + control(RESULT),  # a line that starts like the mark
    ],
)
def test_a_control_line_after_output_is_acted_on_wherever_the_chunks_are_cut(
    stream: bytes,
) -> None:
    """Cut anywhere (whole, byte by byte, in two at every offset): the output is exactly
    the bytes before the control line, and the control line's result is taken."""
    before = stream[: stream.index(b"@crontainer ")]
    for chunks in splits(stream):
        done = run_tap(chunks)
        assert done.tap.result == {"lines": 3}, chunks
        assert done.output.text() == before + stream[len(before) + len(control(RESULT)) :], chunks
        assert done.rejected == [], chunks


def test_a_control_line_split_into_many_chunks_is_read_whole() -> None:
    """A checkpoint arriving a few bytes at a time is stored as sent, once."""
    line = control({"checkpoint": {"file:1:7": MARK}, "forget": ["container:c1:stdout"]})
    for size in (1, 3, 13, 40):
        done = run_tap([line[n : n + size] for n in range(0, len(line), size)])
        assert done.checkpoints == [({"file:1:7": MARK}, ["container:c1:stdout"])], size
        assert done.output.fed == [], size


def test_the_last_line_without_its_newline_is_still_used_at_close() -> None:
    """The stream ends inside a line: a control line is acted on; a line that only starts
    like the mark is output as it is."""
    done = run_tap([control(RESULT).rstrip(b"\n")])
    assert (done.tap.result, done.output.fed, done.rejected) == ({"lines": 3}, [], [])
    done = run_tap([b"a\n@cr"])
    assert done.output.text() == b"a\n@cr"
    assert done.tap.result == {}
    assert done.output.closed


def test_stdout_goes_to_the_output_as_stdout_unless_quiet() -> None:
    """A tool's stdout is output, stream and bytes as they came (control marks included:
    only stderr carries control lines); with quiet_stdout nothing of it is output."""
    chunks: list[tuple[str, bytes]] = [("stdout", control(RESULT)), ("stderr", b"t: hi\n")]
    done = run_tap(chunks)
    assert done.output.fed == [("stdout", control(RESULT)), ("stderr", b"t: hi\n")]
    assert done.tap.result == {}
    assert run_tap(chunks, quiet_stdout=False).output.fed == done.output.fed
    assert run_tap(chunks, quiet_stdout=True).output.fed == [("stderr", b"t: hi\n")]


# -- bounds -----------------------------------------------------------------------------


@pytest.mark.parametrize(("bound", "taken"), [(0, True), (-1, False)])
def test_a_control_line_of_exactly_the_bound_is_read(
    monkeypatch: pytest.MonkeyPatch, bound: int, taken: bool
) -> None:
    """The bound counts the bytes after the mark — in the tap and in the parser alike: a line
    of exactly the bound is used, one byte more is dropped (cut anywhere)."""
    line = control(RESULT)
    monkeypatch.setattr("scheduler.control.MAX_CONTROL_LINE", len(line) - 13 + bound)
    monkeypatch.setattr("jobs.protocol.lines.MAX_CONTROL_LINE", len(line) - 13 + bound)
    for chunks in splits(line):
        done = run_tap([*chunks, control({"result": {"next": 1}})])
        if taken:
            assert (done.tap.result, done.rejected) == ({"next": 1}, []), chunks
            assert run_tap(chunks).tap.result == {"lines": 3}, chunks
        else:
            assert done.rejected == ["a control line longer than the bound"], chunks
            assert done.tap.result == {"next": 1}, chunks
        assert done.output.fed == [], chunks


def test_a_tool_that_says_nothing_leaves_no_error_and_an_empty_result() -> None:
    done = run_tap([b"plain output\n", b"t- not the tool's prefix\n"])
    assert done.tap.last_error is None
    assert done.tap.result == {}


@pytest.mark.parametrize(
    ("said", "error"),
    [
        (b"t: gave up\n", "gave up"),
        (b"t: spaces and tabs stay \t\r\n", "spaces and tabs stay \t"),
        (b"t: ends in XX\n", "ends in XX"),
        (b"t: not utf-8 \xff\xfe\n", "not utf-8 \ufffd\ufffd"),
        (b"t: first\nt: last\nafter\n", "last"),  # the last diagnostic, not the last line
        (b"t: x\ny\nz\n", "x"),  # three lines inside one mark's length
        (b"t: no newline at the end", "no newline at the end"),
    ],
)
def test_the_last_diagnostic_is_the_error_as_written(said: bytes, error: str) -> None:
    """The tool's last ``<tool>: …`` line, only its line end removed, undecodable bytes
    replaced, whatever the chunks."""
    for chunks in splits(said):
        assert run_tap(chunks).tap.last_error == error, chunks


@pytest.mark.parametrize("cut", [1, 12, 4095, 4096, 4097, 5000])
def test_a_diagnostic_is_kept_up_to_4096_bytes(cut: int) -> None:
    """A diagnostic longer than 4096 bytes: its first 4096 bytes (prefix included) make the
    error, the whole line is output."""
    line = b"t: " + bytes(ord("a") + n % 26 for n in range(6000)) + b"\n"
    done = run_tap([line[:cut], line[cut:]])
    assert done.tap.last_error == line[3:4096].decode()
    assert done.output.text() == line


# -- reasons ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"@crontainer {not json\n", "not a JSON object"),
        (b"@crontainer [1]\n", "not a JSON object"),
        (control({"result": [1]}), "result must be a table"),
        (
            control({"warning": {"event": "daemon.stopped"}}),
            "a warning names no event a tool may raise",
        ),
        (
            control({"warning": "backup.future_archive"}),
            "a warning names no event a tool may raise",
        ),
        (control({"hello": 1}), "an unknown message"),
        (control({"checkpoint": []}), "checkpoint must be a table and forget a list"),
        (control({"forget": "file:1:7"}), "checkpoint must be a table and forget a list"),
        (
            control({"checkpoint": {"/l/a.log": MARK}}),
            "a checkpoint names an unknown kind of source",
        ),
        (
            control({"checkpoint": {"container:c1:stdin": {"ns": 1, "skip": 0}}}),
            "a checkpoint names an unknown kind of source",
        ),
        (
            control({"checkpoint": {"file:1:7": {k: v for k, v in MARK.items() if k != "fp"}}}),
            "a checkpoint does not have the fields of its kind of source",
        ),
        (
            control({"checkpoint": {"file:1:7": {**MARK, "fplen": 1025}}}),
            "a checkpoint does not have the fields of its kind of source",
        ),
        (
            control({"checkpoint": {"container:c1:stdout": {"ns": 1}}}),
            "a checkpoint does not have the fields of its kind of source",
        ),
        (
            control({"checkpoint": {"container:c1:stdout": {"ns": 1, "skip": 0, "x": 1}}}),
            "a checkpoint does not have the fields of its kind of source",
        ),
        (
            control({"checkpoint": {"container:c1:stdout": "5"}}),
            "a checkpoint does not have the fields of its kind of source",
        ),
        (
            control({"forget": ["container:c1:stdout", "/l/a.log"]}),
            "forget names something that is not a source",
        ),
        (control({"forget": [["file:1:7"]]}), "forget names something that is not a source"),
    ],
)
def test_each_rejection_gives_its_own_reason_and_nothing_else_happens(
    line: bytes, reason: str
) -> None:
    """``run.control_rejected`` says why with its reason (never the line); nothing is stored,
    no result taken, no output, and the next control line still counts."""
    done = run_tap([line, control(RESULT)])
    assert done.rejected == [reason]
    assert [e["event"] for e in done.logs] == ["run.control_rejected"]
    assert (done.checkpoints, done.output.fed, done.tap.result) == ([], [], {"lines": 3})


def test_a_tool_without_checkpoints_rejects_one_and_goes_on() -> None:
    done = run_tap([control({"forget": []}), control(RESULT)], checkpoints=False)
    assert done.rejected == ["this tool reports no checkpoints"]
    assert done.tap.result == {"lines": 3}


@pytest.mark.parametrize(
    ("message", "marks", "forget"),
    [
        ({"forget": ["container:c1:stdout", "file:3:4"]}, {}, ["container:c1:stdout", "file:3:4"]),
        ({"checkpoint": {"file:1:7": MARK}}, {"file:1:7": MARK}, []),
        (
            {"checkpoint": {"file:1:7": {**MARK, "fplen": 1024, "skipping": False}}},
            {"file:1:7": {**MARK, "fplen": 1024, "skipping": False}},
            [],
        ),
        (
            {"checkpoint": {"container:c1:stderr": {"ns": 0, "skip": 0}}},
            {"container:c1:stderr": {"ns": 0, "skip": 0}},
            [],
        ),
    ],
)
def test_a_good_checkpoint_or_forget_alone_is_stored_as_sent(
    message: dict[str, object], marks: dict[str, object], forget: list[str]
) -> None:
    """A message with only ``forget`` (no checkpoint), a file mark at the fingerprint's
    bound (1024 bytes), a container source: stored once, as sent."""
    assert checked_checkpoints(message) == (marks, forget)
    done = run_tap([control(message)])
    assert (done.checkpoints, done.rejected) == ([(marks, forget)], [])


@pytest.mark.parametrize(
    ("result", "error"),
    [
        ({"rotated": []}, "the rotate tool gave no result"),
        ({"state": {}}, "the rotate tool gave no result"),
        ({"rotated": {}, "state": {}}, "rotated must be a list and state a table"),
        ({"rotated": [], "state": []}, "rotated must be a list and state a table"),
        ({"rotated": [{"path": "/l/a.log"}], "state": {}}, "a rotated entry is not {path, to}"),
        (
            {"rotated": [{"path": "/l/a.log", "to": "/l/b", "n": 1}], "state": {}},
            "a rotated entry is not {path, to}",
        ),
        (
            {"rotated": [], "state": {"l/a.log": {"since": SINCE}}},
            "a rotation state is not {path: {since}}",
        ),
        ({"rotated": [], "state": {"/l/a.log": {}}}, "a rotation state is not {path: {since}}"),
        (
            {"rotated": [], "state": {"/l/a.log": {"since": SINCE, "n": 1}}},
            "a rotation state is not {path: {since}}",
        ),
        (
            {"rotated": [], "state": {"/l/a.log": {"since": "now"}}},
            "a rotation state's since is not a time",
        ),
    ],
)
def test_an_unusable_rotation_result_says_what_is_wrong(
    result: dict[str, object], error: str
) -> None:
    """The run's error (``the rotation's result cannot be used: …``) names the part at fault."""
    with pytest.raises(RequestError) as raised:
        RotateResult.parse(result)
    assert str(raised.value) == error


def test_a_good_rotation_result_is_read_as_sent() -> None:
    result = {
        "rotated": [{"path": "/l/a.log", "to": "/l/a.log.20261128T120000Z"}],
        "state": {"/l/a.log": {"since": SINCE}, "/l/b.log": {"since": SINCE}},
    }
    parsed = RotateResult.parse(result)
    assert (list(parsed.moves), parsed.state) == (
        [("/l/a.log", "/l/a.log.20261128T120000Z")],
        {"/l/a.log": {"since": SINCE}, "/l/b.log": {"since": SINCE}},
    )
