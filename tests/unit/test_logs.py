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
