"""Log routing: standard logging and structlog end up on the current stdout, as JSON."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest

from scheduler import logs


def test_records_follow_stdout_when_it_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    """A handler bound to the stdout of configure() time wrote to a closed file once a
    test runner had swapped stdout; records go to the stdout of the moment instead."""
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", first)
    logs.configure(fmt="json")
    logs.get_logger().info("run.started", job="a")
    first.close()
    monkeypatch.setattr(sys, "stdout", second)
    logging.getLogger("somelib").warning("after the swap")
    logs.get_logger().info("run.succeeded", job="a")
    lines = [json.loads(line) for line in second.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["library.log", "run.succeeded"]
    assert (lines[0]["logger"], lines[0]["message"]) == ("somelib", "after the swap")
    assert lines[1]["job"] == "a"


def test_an_explicit_stream_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """configure(stream=…) writes there whatever stdout becomes."""
    target = io.StringIO()
    logs.configure(fmt="json", stream=target)
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    logs.get_logger().info("run.started", job="b")
    assert json.loads(target.getvalue())["event"] == "run.started"


def test_the_level_filters_our_events_and_the_libraries_records() -> None:
    """At ``warning``, an info event and an info record are dropped; a warning of each is
    written, in the order they were logged, each line one JSON object."""
    target = io.StringIO()
    logs.configure(fmt="json", level="warning", stream=target)
    log = logs.get_logger()
    log.info("run.started", job="a")
    logging.getLogger("somelib").info("dropped")
    log.warning("run.queued", job="a")
    logging.getLogger("somelib").warning("kept")
    lines = [json.loads(line) for line in target.getvalue().splitlines()]
    assert [(line["event"], line["level"]) for line in lines] == [
        ("run.queued", "warning"),
        ("library.log", "warning"),
    ]
    assert list(lines[0])[:3] == ["event", "level", "timestamp"]


def test_an_event_with_an_exception_carries_its_traceback() -> None:
    """``log.exception`` writes level error and the traceback in ``exception``."""
    target = io.StringIO()
    logs.configure(fmt="json", stream=target)
    try:
        raise ValueError("boom")  # noqa: TRY301 - the exception the test logs
    except ValueError:
        logs.get_logger().exception("job.fire_failed", job="a")
    (line,) = [json.loads(line) for line in target.getvalue().splitlines()]
    assert (line["event"], line["level"], line["job"]) == ("job.fire_failed", "error", "a")
    assert "ValueError: boom" in line["exception"]


def test_a_stream_that_cannot_be_written_never_raises_to_the_caller() -> None:
    """A closed stream: the failure is reported as the logging module reports one (on
    stderr), and the code that logged goes on."""
    target = io.StringIO()
    logs.configure(fmt="json", stream=target)
    target.close()
    logs.get_logger().info("run.started", job="a")
    logging.getLogger("somelib").warning("after the close")


def test_console_format_writes_the_event_and_its_fields() -> None:
    """``console``: one readable line per event, without JSON."""
    target = io.StringIO()
    logs.configure(fmt="console", stream=target)
    logs.get_logger().info("job.scheduled", job="a")
    text = target.getvalue()
    assert "job.scheduled" in text
    assert "job=a" in text
    assert not text.startswith("{")
