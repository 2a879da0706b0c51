"""Job output becomes run.output events: split into lines, bounded per line and per run."""

from __future__ import annotations

from scheduler.output import OutputLog


class Recorder:
    """The events logged; more than ``cap`` fails the test at once (output that would be
    logged forever fails by assertion, not by hanging)."""

    def __init__(self, cap: int = 100) -> None:
        self.events: list[tuple[str, dict[str, object]]] = []
        self.cap = cap

    def info(self, event: str, **kw: object) -> object:
        assert len(self.events) < self.cap, f"more than {self.cap} events: {self.events[-3:]}"
        self.events.append((event, kw))
        return None

    def lines(self) -> list[tuple[object, object]]:
        return [(kw["stream"], kw["line"]) for e, kw in self.events if e == "run.output"]


def test_chunks_are_split_into_lines_per_stream() -> None:
    """Lines split across chunks are joined; stdout and stderr are kept apart."""
    rec = Recorder()
    out = OutputLog(rec, max_line=100, max_total=10_000)
    out.feed("stdout", b"hel")
    out.feed("stderr", b"warn")
    out.feed("stdout", b"lo\nwor")
    out.feed("stderr", b"ing\n")
    out.feed("stdout", b"ld\r\n")
    out.close()
    assert rec.lines() == [("stdout", "hello"), ("stderr", "warning"), ("stdout", "world")]


def test_last_line_without_newline_is_kept() -> None:
    """What is left at the end is emitted by close."""
    rec = Recorder()
    out = OutputLog(rec, max_line=100, max_total=10_000)
    out.feed("stdout", b"a\nno newline")
    out.close()
    assert rec.lines() == [("stdout", "a"), ("stdout", "no newline")]


def test_long_lines_are_cut_and_marked() -> None:
    """A line over the bound is cut once; the rest of that line is skipped."""
    rec = Recorder()
    out = OutputLog(rec, max_line=10, max_total=10_000)
    out.feed("stdout", b"x" * 25)
    out.feed("stdout", b"y" * 25 + b"\nnext\n")
    out.feed("stdout", b"0123456789ABC\n")
    out.close()
    assert rec.lines() == [("stdout", "x" * 10), ("stdout", "next"), ("stdout", "0123456789")]
    flags = [kw.get("truncated") for e, kw in rec.events if e == "run.output"]
    assert flags == [True, None, True]


def test_per_run_bound_counts_what_it_drops() -> None:
    """After max_total bytes, lines are counted in one run.output_truncated event."""
    rec = Recorder()
    out = OutputLog(rec, max_line=100, max_total=20)
    for i in range(10):
        out.feed("stdout", f"line {i}\n".encode())
    out.close()
    assert [line for _, line in rec.lines()] == ["line 0", "line 1", "line 2"]
    summary = [kw for e, kw in rec.events if e == "run.output_truncated"]
    assert summary == [{"dropped_lines": 7, "dropped_bytes": 42, "limit_bytes": 20}]
    assert list(out.tail)[-1] == "line 9"


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    """Binary junk in output does not break logging."""
    rec = Recorder()
    out = OutputLog(rec, max_line=100, max_total=1000)
    out.feed("stdout", b"ok \xff\xfe end\n")
    out.close()
    assert rec.lines() == [("stdout", "ok \ufffd\ufffd end")]


def test_a_line_of_exactly_max_line_bytes_is_whole_and_one_more_byte_is_cut() -> None:
    """The bound is inclusive: max_line bytes go whole, max_line + 1 are cut (not marked and
    marked), with or without the newline yet."""
    rec = Recorder()
    out = OutputLog(rec, max_line=10, max_total=10_000)
    out.feed("stdout", b"0123456789\n0123456789A\n0123456789")
    out.close()
    assert rec.lines() == [("stdout", "0123456789")] * 3
    flags = [kw.get("truncated") for e, kw in rec.events if e == "run.output"]
    assert flags == [None, True, None]


def test_the_per_run_bound_is_inclusive() -> None:
    """max_total bytes of lines are all logged; the next byte's line is the first dropped."""
    rec = Recorder()
    out = OutputLog(rec, max_line=100, max_total=12)
    out.feed("stdout", b"abcdef\nghijkl\nm\n")  # 6 + 6 bytes logged, then 1 over
    out.close()
    assert [line for _, line in rec.lines()] == ["abcdef", "ghijkl"]
    summary = [kw for e, kw in rec.events if e == "run.output_truncated"]
    assert summary == [{"dropped_lines": 1, "dropped_bytes": 1, "limit_bytes": 12}]


def test_each_line_of_a_chunk_is_logged_once_at_once_empty_lines_too() -> None:
    """A chunk of several lines gives exactly its lines, in order, before close; an empty
    line is a line; trailing blanks and tabs are output, only the CR of a CRLF goes."""
    rec = Recorder(cap=5)
    out = OutputLog(rec, max_line=100, max_total=10_000)
    out.feed("stdout", b"\nab\ncd  \r\n\tindented\t\n\n")
    assert rec.lines() == [
        ("stdout", ""),
        ("stdout", "ab"),
        ("stdout", "cd  "),
        ("stdout", "\tindented\t"),
        ("stdout", ""),
    ]
    out.close()
    assert len(rec.events) == 5


def test_an_over_long_line_is_logged_before_its_newline_and_the_lines_after_it_at_once() -> None:
    """A line past max_line is logged cut as soon as max_line + 1 bytes are in (a line that
    never ends cannot fill the memory); the chunk that ends it logs its following lines
    at once, not at the next chunk."""
    rec = Recorder()
    out = OutputLog(rec, max_line=10, max_total=10_000)
    out.feed("stdout", b"x" * 11)
    assert rec.lines() == [("stdout", "x" * 10)]
    out.feed("stdout", b"x" * 1000)
    out.feed("stdout", b"x\nnext\nlast\n")
    assert rec.lines() == [("stdout", "x" * 10), ("stdout", "next"), ("stdout", "last")]
    out.close()
    assert len(rec.lines()) == 3


def test_the_tail_is_the_last_20_lines_logged_or_dropped() -> None:
    """The history's output tail (README: "the last 20 output lines"): exactly the last 20,
    lines over the per-run bound included."""
    rec = Recorder()
    out = OutputLog(rec, max_line=100, max_total=30)
    for i in range(25):
        out.feed("stdout", f"line {i:02}\n".encode())
    out.close()
    assert list(out.tail) == [f"line {i:02}" for i in range(5, 25)]
    assert len(rec.lines()) == 4  # 4 lines of 7 bytes fit in 30
