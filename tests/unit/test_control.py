"""Control lines from the ops tools: never forged by what a tool prints about hostile file
names, never cut by the output's limits, checked before the daemon acts on them."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import structlog

from jobs.protocol.lines import CONTROL_MARK, emit, escape, say
from jobs.tools import logship
from scheduler.control import ControlTap
from scheduler.output import OutputLog
from scheduler.runs import Status
from tests.control import control

from .fakes import FakeClock, FakeEngine
from .test_logship_kind import MARK_A, Store
from .test_rotate_kind import run_rotation

if TYPE_CHECKING:
    from collections.abc import MutableMapping

ROTATE = [sys.executable, "-m", "jobs.tools.rotate"]
FORGED = {"file:66:66": {**MARK_A, "dev": 66, "ino": 66, "offset": 10**12}}


class Events:
    """The structlog calls of an OutputLog, kept."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, event: str, **kw: object) -> object:
        if event == "run.output":
            self.lines.append(str(kw["line"]))
        return None


def tapped(
    chunks: list[bytes], tool: str = "logship", max_line: int = 16 * 1024
) -> tuple[ControlTap, Store, Events, list[MutableMapping[str, Any]]]:
    """Feed stderr ``chunks`` through a tap that stores checkpoints; return what came out."""
    store, events = Store({}), Events()
    tap = ControlTap(
        OutputLog(events, max_line, 1 << 20),
        tool,
        lambda marks, forget: store.save_tool_state("s", marks, forget, None),  # type: ignore[arg-type]
    )
    with structlog.testing.capture_logs() as logs:
        for chunk in chunks:
            tap.feed("stderr", chunk)
        tap.close()
    return tap, store, events, logs


def test_a_file_name_cannot_forge_a_checkpoint(tmp_path: Path) -> None:
    """A log file named 'x\\n@crontainer {checkpoint…}\\n.log' that cannot be opened: the
    tool's diagnostic names it on one escaped line, and the daemon stores nothing."""
    name = "x\n" + (CONTROL_MARK + json.dumps({"checkpoint": FORGED}).encode()).decode() + "\n.log"
    state = logship.FileState(str(tmp_path / name), dev=1, ino=2)
    shipper = logship.Shipper(logship.StdoutSink(logship.NdjsonEncoder("h", "j")), 10, 100, 1000)
    captured = io.StringIO()
    sys.stderr, saved = captured, sys.stderr
    try:
        logship.ship_file(state, shipper)  # the file does not exist: open fails
    finally:
        sys.stderr = saved
    printed = captured.getvalue()
    assert printed.count("\n") == 1
    assert printed.startswith("logship: ")
    _, store, events, logs = tapped([printed.encode()])
    assert store.writes == []
    assert events.lines == [printed.rstrip("\n")]  # shown, as a diagnostic
    assert "\\x0a@crontainer " in events.lines[0]
    assert not [e for e in logs if e["event"] == "run.control_rejected"]


def test_diagnostics_are_one_line_and_never_start_with_the_mark() -> None:
    """Whatever a diagnostic holds, it is printed as one line starting with the tool."""
    out = io.StringIO()
    say("rotate", "a\r\nb\x00c\x1b[31m\u2028" + CONTROL_MARK.decode() + "{}", out)
    text = out.getvalue()
    assert text.count("\n") == 1
    assert text == "rotate: " + escape("a\r\nb\x00c\x1b[31m\u2028@crontainer {}") + "\n"
    assert "\\x0d\\x0ab\\x00c\\x1b[31m\\x2028@crontainer" in text


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ({"checkpoint": "x"}, "checkpoint must be a table and forget a list"),
        ({"checkpoint": {"file:1:7": {**MARK_A, "offset": -1}}}, "does not have the fields"),
        ({"checkpoint": {"file:1:7": {**MARK_A, "offset": True}}}, "does not have the fields"),
        ({"checkpoint": {"file:1:7": {**MARK_A, "ino": 8}}}, "does not have the fields"),
        ({"checkpoint": {"file:1:7": {**MARK_A, "extra": 1}}}, "does not have the fields"),
        ({"checkpoint": {"file:1:7": {**MARK_A, "skipping": 1}}}, "does not have the fields"),
        ({"checkpoint": {"/etc/passwd": {"since": "now"}}}, "unknown kind of source"),
        ({"checkpoint": {}, "forget": [3]}, "forget names something that is not a source"),
        ({"checkpoint": {"container:a:stdout": {"ns": "1", "skip": 0}}}, "does not have"),
        ({"warning": {"event": "daemon.stopped"}}, "names no event a tool may raise"),
        ({"result": [1]}, "result must be a table"),
        ({"hello": 1}, "an unknown message"),
    ],
)
def test_a_malformed_message_is_rejected_and_later_ones_still_count(
    message: dict[str, object], reason: str
) -> None:
    """A bad payload is dropped with the reason (never its content); the output goes on and
    the next good checkpoint is stored."""
    good = {"checkpoint": {"file:1:7": MARK_A}}
    _, store, events, logs = tapped(
        [control(message) + b"logship: after\n", control(good)[:9], control(good)[9:]]
    )
    rejected = [e["reason"] for e in logs if e["event"] == "run.control_rejected"]
    assert len(rejected) == 1
    assert reason in rejected[0]
    assert store.writes == [({"file:1:7": MARK_A}, [])]
    assert events.lines == ["logship: after"]


def test_the_tools_checkpoint_of_a_cut_line_is_stored_with_skipping(tmp_path: Path) -> None:
    """A line past max_line without its newline: the tool's checkpoint (offset after the
    line read so far, skipping: true) is accepted by the daemon and stored as it came."""
    log = tmp_path / "app.log"
    log.write_bytes(b"line 1\n" + b"x" * 5000)
    stderr = io.StringIO()
    request = {
        "job": "j",
        "host": "h",
        "sink": {"type": "file", "path": str(tmp_path / "out.ndjson")},
        "paths": [str(log)],
        "max_line": 1024,
    }
    logship.run(request, [], lambda message: emit(message, stderr))
    _, store, _, logs = tapped([stderr.getvalue().encode()])
    assert not [e for e in logs if e["event"] == "run.control_rejected"]
    info = log.stat()
    stored = store.saved[f"file:{info.st_dev}:{info.st_ino}"]
    assert (stored["offset"], stored["skipping"]) == (info.st_size, True)


def test_a_control_line_over_the_bound_is_dropped_and_the_stream_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A control line longer than the bound is not held in memory: it is dropped whole."""
    monkeypatch.setattr("scheduler.control.MAX_CONTROL_LINE", 100)
    huge = control({"checkpoint": {"file:1:7": {**MARK_A, "path": "/" + "p" * 500}}})
    tap, store, events, logs = tapped([huge[:50], huge[50:], control({"result": {"lines": 1}})])
    assert [e["reason"] for e in logs if e["event"] == "run.control_rejected"] == [
        "a control line longer than the bound"
    ]
    assert store.writes == []
    assert tap.result == {"lines": 1}
    assert events.lines == []


def test_output_lines_pass_byte_by_byte_and_the_last_diagnostic_is_the_error() -> None:
    """Lines that are not control lines go on as they come, split anywhere; the tool's last
    diagnostic is kept for a failed run's error."""
    text = b"@cron\nlogship: first\n@crontainerX\nlogship: gave up\npartial"
    tap, store, events, _ = tapped([bytes([b]) for b in text])
    assert events.lines == [
        "@cron",
        "logship: first",
        "@crontainerX",
        "logship: gave up",
        "partial",
    ]
    assert tap.last_error == "gave up"
    assert store.writes == []


def test_a_tool_result_cannot_rename_the_runs_own_fields() -> None:
    """A result's keys go into run.succeeded, but never over job, run_id or exit_code."""
    tap, _, _, _ = tapped([control({"result": {"job": "other", "run_id": "x", "lines": 3}})])
    assert tap.result == {"lines": 3}


def test_a_tool_may_raise_only_its_own_warnings() -> None:
    """backup.future_archive is logged as asked; other events are not a tool's to raise."""
    warning = {"warning": {"event": "backup.future_archive", "archives": ["db-2099.tar"]}}
    _, _, _, logs = tapped([control(warning)], tool="backup")
    assert [(e["event"], e["archives"]) for e in logs] == [
        ("backup.future_archive", ["db-2099.tar"])
    ]


def test_a_rotate_result_longer_than_an_output_line_is_read_whole(tmp_path: Path) -> None:
    """120 files rotated at once: the real tool's result is far longer than max_output_line
    (16 KiB), yet every rotated file is reported, the app is signalled and the new state of
    all 120 files is stored."""
    logs = tmp_path / ("a-long-directory-name-" * 5)
    logs.mkdir()
    for n in range(120):
        (logs / f"app-{n:03}.log").write_text("a line\n")
    done = subprocess.run(
        [*ROTATE, "rotate", "--state-stdin", "--max-size", "1", "--", str(logs / "*.log")],
        input=b"{}\n",
        capture_output=True,
        check=True,
    )
    assert len(done.stderr) > 16 * 1024
    engine = FakeEngine(FakeClock())
    engine.output_chunks = [("stdout", done.stdout), ("stderr", done.stderr)]
    store = Store({}, job="r")
    outcome, _ = run_rotation(tmp_path, engine, store)
    assert outcome.status is Status.SUCCEEDED, outcome
    assert len(outcome.details["rotated"]) == 120  # type: ignore[arg-type]
    assert "kill" in engine.names()
    assert sorted(store.saved) == sorted(str(p) for p in logs.glob("*.log"))


def test_a_rotation_without_a_usable_result_still_tells_the_app_and_fails(
    tmp_path: Path,
) -> None:
    """The rotation may have renamed files: with no result to read, the app is signalled
    anyway and the run fails saying why; no state is stored."""
    engine = FakeEngine(FakeClock())
    engine.output_chunks = [("stderr", control({"result": {"rotated": [{"path": 1}]}}))]
    store = Store({}, job="r")
    outcome, _ = run_rotation(tmp_path, engine, store)
    assert outcome.status is Status.FAILED
    assert outcome.error == (
        "the rotation's result cannot be used: the rotate tool gave no result "
        "(the app was told: succeeded)"
    )
    assert "kill" in engine.names()
    assert store.writes == []
