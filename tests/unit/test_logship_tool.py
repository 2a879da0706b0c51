"""The log shipping tool on real files and real local receivers: at least once, in order,
across rotations, failures and the run's byte limit."""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import tracemalloc
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

import pytest

from jobs.tools import logship
from jobs.tools.logship import shipper
from jobs.tools.paths import open_file
from tests.receiver import PostReceiver, garbage_server, serving

from .helpers import Daemon, append, file_sink, lines_of, numbers

if TYPE_CHECKING:
    from collections.abc import Iterator


def test_records_carry_time_source_host_job_and_line(tmp_path: Path, logs: Path) -> None:
    append(logs / "app.log", 1, 3)
    sink, out = file_sink(tmp_path)
    result = Daemon().ship(sink, [str(logs / "*.log")])
    records = lines_of(out)
    assert [r["line"] for r in records] == ["line 1", "line 2", "line 3"]
    assert {r["source"] for r in records} == {str(logs / "app.log")}
    assert {r["host"] for r in records} == {"box"}
    assert {r["job"] for r in records} == {"ship"}
    assert all(str(r["time"]).endswith("Z") for r in records)
    assert result["lines"] == 3
    assert result["backlog"] is False


def test_a_line_without_its_newline_waits_for_it(tmp_path: Path, logs: Path) -> None:
    log = logs / "app.log"
    append(log, 1, 3, newline_at_end=False)
    sink, out = file_sink(tmp_path)
    daemon = Daemon()
    daemon.ship(sink, [str(log)])
    assert numbers(lines_of(out)) == [1, 2]
    with log.open("a") as f:
        f.write("\n")
    append(log, 4, 4)
    daemon.ship(sink, [str(log)])
    assert numbers(lines_of(out)) == [1, 2, 3, 4]


def test_a_second_run_ships_only_new_lines(tmp_path: Path, logs: Path) -> None:
    log = logs / "app.log"
    append(log, 1, 50)
    sink, out = file_sink(tmp_path)
    daemon = Daemon()
    daemon.ship(sink, [str(log)], batch_lines=7)
    daemon.ship(sink, [str(log)], batch_lines=7)
    append(log, 51, 60)
    daemon.ship(sink, [str(log)], batch_lines=7)
    assert numbers(lines_of(out)) == list(range(1, 61))


def test_rename_rotation_ships_the_rest_of_the_old_file_then_the_new_one(
    tmp_path: Path, logs: Path
) -> None:
    log = logs / "app.log"
    append(log, 1, 10)
    sink, out = file_sink(tmp_path)
    daemon = Daemon()
    daemon.ship(sink, [str(logs / "*.log")])
    append(log, 11, 20)  # written before the rotation, not shipped yet
    log.rename(logs / "app.log.1")
    append(log, 21, 30)
    daemon.ship(sink, [str(logs / "*.log")])
    assert numbers(lines_of(out)) == list(range(1, 31))
    daemon.ship(sink, [str(logs / "*.log")])
    assert numbers(lines_of(out)) == list(range(1, 31))


def test_rename_rotation_with_a_glob_that_matches_rotated_files(tmp_path: Path, logs: Path) -> None:
    log = logs / "app.log"
    append(log, 1, 10)
    sink, out = file_sink(tmp_path)
    daemon = Daemon()
    daemon.ship(sink, [str(logs / "app.log*")])
    append(log, 11, 15)
    log.rename(logs / "app.log.1")
    append(log, 16, 20)
    daemon.ship(sink, [str(logs / "app.log*")])
    assert sorted(numbers(lines_of(out))) == list(range(1, 21))


def test_copytruncate_rotation_ships_the_rest_from_the_copy(tmp_path: Path, logs: Path) -> None:
    log = logs / "app.log"
    append(log, 1, 10)
    sink, out = file_sink(tmp_path)
    daemon = Daemon()
    daemon.ship(sink, [str(logs / "*.log")])
    append(log, 11, 20)
    shutil.copyfile(log, logs / "app.log.1")
    with log.open("r+") as f:
        f.truncate(0)
    append(log, 21, 25)
    daemon.ship(sink, [str(logs / "*.log")])
    assert numbers(lines_of(out)) == list(range(1, 26))
    append(log, 26, 30)
    daemon.ship(sink, [str(logs / "*.log")])
    assert numbers(lines_of(out)) == list(range(1, 31))


def test_truncated_and_regrown_file_is_read_from_the_start(tmp_path: Path, logs: Path) -> None:
    """Same inode, more bytes than the offset, but other first bytes: a new content."""
    log = logs / "app.log"
    append(log, 1, 5)
    sink, out = file_sink(tmp_path)
    daemon = Daemon()
    daemon.ship(sink, [str(log)])
    log.write_text("".join(f"other {i}\n" for i in range(100, 120)))
    daemon.ship(sink, [str(log)])
    assert numbers(lines_of(out)) == [1, 2, 3, 4, 5, *range(100, 120)]


def test_a_deleted_file_loses_its_checkpoint(tmp_path: Path, logs: Path) -> None:
    log = logs / "app.log"
    append(log, 1, 5)
    sink, _ = file_sink(tmp_path)
    daemon = Daemon()
    daemon.ship(sink, [str(logs / "*.log")])
    assert len(daemon.checkpoints) == 1
    log.unlink()
    daemon.ship(sink, [str(logs / "*.log")])
    assert daemon.checkpoints == {}


def test_max_bytes_leaves_a_backlog_for_the_next_run(tmp_path: Path, logs: Path) -> None:
    log = logs / "app.log"
    append(log, 1, 1000)
    sink, out = file_sink(tmp_path)
    daemon = Daemon()
    first = daemon.ship(sink, [str(log)], max_bytes=4000, batch_lines=100)
    assert first["backlog"] is True
    assert 0 < len(lines_of(out)) < 1000
    runs = 1
    while daemon.ship(sink, [str(log)], max_bytes=4000, batch_lines=100)["backlog"]:
        runs += 1
    assert numbers(lines_of(out)) == list(range(1, 1001))
    assert runs > 1


class FlakySink:
    """Takes ``good`` batches, then fails like a sink that went down."""

    def __init__(self, out: Path, good: int) -> None:
        self.inner = logship.FileSink(str(out), logship.NdjsonEncoder("box", "ship"))
        self.good = good

    def send(self, records: list[logship.Record]) -> None:
        if self.good == 0:
            raise logship.ShipError("sink down")
        self.good -= 1
        self.inner.send(records)

    def close(self) -> None:
        self.inner.close()


def test_a_failing_sink_keeps_undelivered_lines_for_the_next_run(
    tmp_path: Path, logs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = logs / "app.log"
    append(log, 1, 100)
    sink, out = file_sink(tmp_path)
    daemon = Daemon()
    monkeypatch.setattr(shipper, "make_sink", lambda *_: FlakySink(out, good=2))
    with pytest.raises(logship.ShipError, match="sink down"):
        daemon.ship(sink, [str(log)], batch_lines=10)
    assert numbers(lines_of(out)) == list(range(1, 21))
    assert daemon.checkpoints[next(iter(daemon.checkpoints))]["offset"] == len(
        "".join(f"line {i}\n" for i in range(1, 21))
    )
    monkeypatch.undo()
    daemon.ship(sink, [str(log)], batch_lines=10)
    assert numbers(lines_of(out)) == list(range(1, 101))


def test_a_batch_lost_after_delivery_is_shipped_again_only_once(tmp_path: Path, logs: Path) -> None:
    """The container killed between the sink's ack and the checkpoint's report: the daemon
    never heard of the last batch, so it comes again — one batch of duplicates at most."""
    log = logs / "app.log"
    append(log, 1, 30)
    sink, out = file_sink(tmp_path)
    daemon = Daemon()
    daemon.ship(sink, [str(log)], batch_lines=10)
    daemon.checkpoints = json.loads(json.dumps(daemon.reports[1]["checkpoint"]))  # 2nd batch
    daemon.ship(sink, [str(log)], batch_lines=10)
    shipped = numbers(lines_of(out))
    assert set(shipped) == set(range(1, 31))
    assert len(shipped) - 30 <= 10


def test_container_records_from_stdin_report_the_checkpoint_they_carry(tmp_path: Path) -> None:
    sink, out = file_sink(tmp_path)
    feed = [
        {
            "source": "container:app:stdout",
            "time": f"2026-11-28T12:00:0{i}.000000001Z",
            "stream": "stdout",
            "line": f"line {i}",
            "cp": {"ns": 1000 + i, "skip": 1},
        }
        for i in range(1, 6)
    ]
    daemon = Daemon()
    daemon.ship(sink, [], records=feed, batch_lines=2)
    records = lines_of(out)
    assert numbers(records) == [1, 2, 3, 4, 5]
    assert records[0]["stream"] == "stdout"
    assert records[0]["time"] == "2026-11-28T12:00:01.000000001Z"
    assert daemon.checkpoints == {"container:app:stdout": {"ns": 1005, "skip": 1}}
    assert [r["checkpoint"] for r in daemon.reports] == [
        {"container:app:stdout": {"ns": 1002, "skip": 1}},
        {"container:app:stdout": {"ns": 1004, "skip": 1}},
        {"container:app:stdout": {"ns": 1005, "skip": 1}},
    ]


def test_feed_reads_records_until_the_end_mark_and_notices_the_daemon_going() -> None:
    read_end, write_end = os.pipe()
    with os.fdopen(read_end, "rb") as stream, os.fdopen(write_end, "wb") as daemon_side:
        feed = logship.DaemonFeed(stream)
        daemon_side.write(b'{"source": "s", "line": "a"}\n\n{"end": true}\n')
        daemon_side.flush()
        assert [item["line"] for item in feed] == ["a"]
        assert not feed.gone.wait(0.2)  # the daemon still holds stdin open
    assert feed.gone.wait(5)


def test_once_the_daemon_is_gone_no_further_batch_is_sent(tmp_path: Path, logs: Path) -> None:
    append(logs / "app.log", 1, 100)
    sink, out = file_sink(tmp_path)
    gone = threading.Event()
    daemon = Daemon()

    def report(message: dict[str, Any]) -> None:
        daemon.apply(message)
        gone.set()  # the daemon dies right after recording the first batch

    with pytest.raises(logship.ShipError, match="the daemon went away"):
        logship.run(
            {
                "job": "j",
                "host": "h",
                "sink": sink,
                "paths": [str(logs / "app.log")],
                "batch_lines": 10,
            },
            [],
            report,
            gone,
        )
    assert numbers(lines_of(out)) == list(range(1, 11))


# --- long lines -----------------------------------------------------------------------


def only_checkpoint(daemon: Daemon) -> dict[str, Any]:
    (checkpoint,) = daemon.checkpoints.values()
    return checkpoint


def test_a_line_of_max_line_bytes_goes_whole_and_one_byte_more_is_cut(
    tmp_path: Path, logs: Path
) -> None:
    """max_line counts a line's bytes without its newline: exactly max_line bytes are shipped
    whole, max_line + 1 go cut to max_line, and the dropped byte is counted."""
    log = logs / "app.log"
    log.write_bytes(b"a" * 1024 + b"\n" + b"b" * 1025 + b"\nline 3\n")
    sink, out = file_sink(tmp_path)
    daemon = Daemon()
    result = daemon.ship(sink, [str(log)], max_line=1024)
    assert [r["line"] for r in lines_of(out)] == ["a" * 1024, "b" * 1024, "line 3"]
    assert (result["lines"], result["cut_lines"], result["cut_bytes"]) == (3, 1, 1)
    assert only_checkpoint(daemon)["offset"] == log.stat().st_size
    assert "skipping" not in only_checkpoint(daemon)


def test_an_unterminated_line_waits_up_to_max_line_bytes_and_is_cut_past_them(
    tmp_path: Path, logs: Path
) -> None:
    """A last line without its newline of max_line bytes waits for it; one byte more and it
    is cut at once, its checkpoint after every byte read and skipping the line's rest."""
    log = logs / "app.log"
    log.write_bytes(b"line 1\n" + b"p" * 1024)
    sink, out = file_sink(tmp_path)
    daemon = Daemon()
    first = daemon.ship(sink, [str(log)], max_line=1024)
    assert [r["line"] for r in lines_of(out)] == ["line 1"]
    assert first["cut_lines"] == 0
    assert only_checkpoint(daemon)["offset"] == len(b"line 1\n")
    assert "skipping" not in only_checkpoint(daemon)
    with log.open("ab") as f:
        f.write(b"p")
    second = daemon.ship(sink, [str(log)], max_line=1024)
    assert [r["line"] for r in lines_of(out)] == ["line 1", "p" * 1024]
    assert (second["cut_lines"], second["cut_bytes"]) == (1, 1)
    assert only_checkpoint(daemon)["offset"] == log.stat().st_size
    assert only_checkpoint(daemon)["skipping"] is True


@pytest.mark.parametrize("chunk", [logship.READ_CHUNK, 100])
def test_a_long_unterminated_line_is_cut_once_and_its_rest_skipped_by_the_next_run(
    tmp_path: Path, logs: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    """A line of 20 x max_line without its newline: its first max_line bytes are shipped
    once and the checkpoint (at the end of the file) says skipping; the next run skips the
    rest of that line up to its newline, counts it, and ships only the lines after it."""
    monkeypatch.setattr(shipper, "READ_CHUNK", chunk)
    log = logs / "app.log"
    log.write_bytes(b"x" * (20 * 1024))
    sink, out = file_sink(tmp_path)
    daemon = Daemon()
    first = daemon.ship(sink, [str(log)], max_line=1024)
    assert [r["line"] for r in lines_of(out)] == ["x" * 1024]
    assert (first["lines"], first["cut_lines"], first["cut_bytes"]) == (1, 1, 19 * 1024)
    assert only_checkpoint(daemon)["offset"] == 20 * 1024
    assert only_checkpoint(daemon)["skipping"] is True
    with log.open("ab") as f:
        f.write(b"y" * 5000 + b"\n")
    append(log, 1, 2)
    second = daemon.ship(sink, [str(log)], max_line=1024)
    assert [r["line"] for r in lines_of(out)] == ["x" * 1024, "line 1", "line 2"]
    assert (second["lines"], second["cut_lines"], second["cut_bytes"]) == (2, 0, 5000)
    assert only_checkpoint(daemon)["offset"] == log.stat().st_size
    assert "skipping" not in only_checkpoint(daemon)
    third = daemon.ship(sink, [str(log)], max_line=1024)
    assert (third["lines"], third["cut_bytes"]) == (0, 0)
    assert len(lines_of(out)) == 3


@pytest.mark.parametrize("chunk", [logship.READ_CHUNK, 4096, 1025, 100, 7])
def test_long_lines_among_normal_ones_are_cut_and_every_other_line_arrives_once_in_order(
    tmp_path: Path, logs: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    """Lines of every length around max_line, long ones across reads and batches: each line
    arrives once, in order, cut to max_line bytes when longer; the result counts the cuts."""
    monkeypatch.setattr(shipper, "READ_CHUNK", chunk)
    lengths = [0, 1, 1023, 1024, 1025, 3000, 5, 2049, 2049, 10, 70_000, 1024]
    texts = [f"{n}:".encode() + b"z" * max(0, n - len(f"{n}:")) for n in lengths]
    log = logs / "app.log"
    with log.open("ab") as f:
        for n, text in enumerate(texts):
            f.write(b"line %d\n" % n + text + b"\n")
    sink, out = file_sink(tmp_path)
    daemon = Daemon()
    result = daemon.ship(sink, [str(log)], max_line=1024, batch_lines=3)
    expected = []
    for n, text in enumerate(texts):
        expected += [f"line {n}", text[:1024].decode()]
    assert [r["line"] for r in lines_of(out)] == expected
    long = [len(t) for t in texts if len(t) > 1024]
    assert result["cut_lines"] == len(long)
    assert result["cut_bytes"] == sum(n - 1024 for n in long)
    assert only_checkpoint(daemon)["offset"] == log.stat().st_size
    assert "skipping" not in only_checkpoint(daemon)


def test_a_cut_line_renamed_by_a_rotation_goes_on_skipping_in_the_rotated_file(
    tmp_path: Path, logs: Path
) -> None:
    """A rename rotation while a cut line is being skipped: the rotated file's rest is read
    from the checkpoint, still skipping to the newline; then the new file from its start."""
    log = logs / "app.log"
    log.write_bytes(b"x" * 3000)
    sink, out = file_sink(tmp_path)
    daemon = Daemon()
    daemon.ship(sink, [str(logs / "*.log")], max_line=1024)
    with log.open("ab") as f:
        f.write(b"x" * 500 + b"\n")
    append(log, 1, 2)
    log.rename(logs / "app.log.1")
    append(log, 3, 4)
    result = daemon.ship(sink, [str(logs / "*.log")], max_line=1024)
    assert [r["line"] for r in lines_of(out)] == ["x" * 1024, *(f"line {i}" for i in range(1, 5))]
    assert result["cut_bytes"] == 500


def counting_opener(total: list[int]) -> Any:
    """The tool's file opener, with every byte read from the files it opens added up in
    ``total``."""

    def opened(path: str | Path) -> CountedReads:
        return CountedReads(open_file(path), total)

    return opened


class CountedReads:
    """A binary file whose reads add up their bytes."""

    def __init__(self, f: Any, total: list[int]) -> None:
        self._f, self._total = f, total

    def read(self, size: int = -1) -> bytes:
        data: bytes = self._f.read(size)
        self._total[0] += len(data)
        return data

    def seek(self, offset: int) -> int:
        return int(self._f.seek(offset))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self._f.close()


def test_a_64_mib_unterminated_line_is_read_once_in_a_little_memory(
    tmp_path: Path, logs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 64 MiB line without its newline, max_line 1 MiB: its first MiB is shipped, the tool
    reads each byte of the file once (besides 1 KiB fingerprints) and never holds the line:
    its peak of allocated memory stays far under the line's size."""
    log = logs / "app.log"
    with log.open("wb") as f:
        for _ in range(64):
            f.write(b"w" * (1 << 20))
    sink, out = file_sink(tmp_path)
    daemon = Daemon()
    read = [0]
    monkeypatch.setattr(shipper, "open_file", counting_opener(read))
    tracemalloc.start()
    try:
        result = daemon.ship(sink, [str(log)], max_line=1 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (result["lines"], result["cut_lines"], result["cut_bytes"]) == (1, 1, 63 << 20)
    assert only_checkpoint(daemon)["offset"] == 64 << 20
    assert only_checkpoint(daemon)["skipping"] is True
    assert 64 << 20 <= read[0] <= (64 << 20) + 4 * 1024
    assert peak < 16 << 20, peak
    monkeypatch.undo()
    assert [r["line"] for r in lines_of(out)] == ["w" * (1 << 20)]


# --- http -----------------------------------------------------------------------------


class Receiver(PostReceiver):
    """Answers with the next status of ``script`` (200 when it runs out); keeps bodies."""

    script: ClassVar[list[int]] = []
    bodies: ClassVar[list[bytes]] = []
    headers_seen: ClassVar[list[dict[str, str]]] = []

    def take(self, body: bytes) -> int:
        status = self.script.pop(0) if self.script else 200
        if status == 200:
            self.bodies.append(body)
            self.headers_seen.append(dict(self.headers))
        return status


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.script, Receiver.bodies, Receiver.headers_seen = [], [], []
    with serving(Receiver) as port:
        yield f"http://127.0.0.1:{port}/ingest"


def test_http_batches_with_headers_and_retries_on_5xx(receiver: str, logs: Path) -> None:
    append(logs / "app.log", 1, 25)
    Receiver.script = [503, 500]
    sink = {
        "type": "http",
        "url": receiver,
        "headers": {"Authorization": "Bearer s3cret"},
        "retries": 3,
        "retry_delay": 0.01,
    }
    result = Daemon().ship(sink, [str(logs / "app.log")], batch_lines=10)
    batches = [[json.loads(x) for x in body.splitlines()] for body in Receiver.bodies]
    assert [len(b) for b in batches] == [10, 10, 5]
    assert numbers([r for b in batches for r in b]) == list(range(1, 26))
    assert all(h["Authorization"] == "Bearer s3cret" for h in Receiver.headers_seen)
    assert all(h["Content-Type"] == "application/x-ndjson" for h in Receiver.headers_seen)
    assert result["batches"] == 3


def test_http_gives_up_with_an_error_without_secrets(
    receiver: str, logs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    append(logs / "app.log", 1, 5)
    Receiver.script = [503] * 10
    url = receiver.replace("http://", "http://user:pw@") + "?token=s3cret"
    sink = {"type": "http", "url": url, "retries": 2, "retry_delay": 0.01}
    daemon = Daemon()
    with pytest.raises(logship.ShipError) as caught:
        daemon.ship(sink, [str(logs / "app.log")])
    message = str(caught.value) + capsys.readouterr().err
    assert "status 503" in message
    assert "gave up after 3 attempts" in message
    assert "s3cret" not in message
    assert "pw" not in message
    assert daemon.checkpoints == {}


def test_an_http_receiver_that_is_not_there_fails_after_retries(logs: Path) -> None:
    append(logs / "app.log", 1, 3)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    sink = {"type": "http", "url": f"http://127.0.0.1:{port}/", "retries": 1, "retry_delay": 0.01}
    daemon = Daemon()
    with pytest.raises(logship.ShipError, match=r"gave up after 2 attempts: .*refused"):
        daemon.ship(sink, [str(logs / "app.log")])
    assert daemon.checkpoints == {}


def test_http_ok_status_is_configurable(receiver: str, logs: Path) -> None:
    append(logs / "app.log", 1, 3)
    Receiver.script = [200]
    sink = {"type": "http", "url": receiver, "ok_status": [202], "retries": 0}
    with pytest.raises(logship.ShipError, match="status 200"):
        Daemon().ship(sink, [str(logs / "app.log")])


# --- syslog ---------------------------------------------------------------------------


def test_syslog_udp_sends_rfc5424_messages(logs: Path) -> None:
    append(logs / "app.log", 1, 3)
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.settimeout(5)
    port = server.getsockname()[1]
    sink = {
        "type": "syslog",
        "address": f"udp://127.0.0.1:{port}",
        "facility": "local3",
        "app_name": "shipper",
    }
    Daemon().ship(sink, [str(logs / "app.log")])
    messages = [server.recv(65535).decode() for _ in range(3)]
    server.close()
    pri = 19 * 8 + 6  # local3.info
    for i, message in enumerate(messages, start=1):
        head, _, rest = message.partition(" [")
        assert head.startswith(f"<{pri}>1 ")
        _pri, stamp, host, app, procid, msgid = head.split(" ")
        assert stamp.endswith("Z")
        assert (host, app, procid, msgid) == ("box", "shipper", "-", "-")
        assert rest == (f'crontainer@32473 source="{logs / "app.log"}" job="ship"] line {i}')


def test_syslog_tcp_frames_by_octet_counting(logs: Path) -> None:
    append(logs / "app.log", 1, 20)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    received = bytearray()

    def accept() -> None:
        conn, _ = server.accept()
        with conn:
            while chunk := conn.recv(65536):
                received.extend(chunk)

    thread = threading.Thread(target=accept)
    thread.start()
    Daemon().ship(
        {"type": "syslog", "address": f"tcp://127.0.0.1:{port}"},
        [str(logs / "app.log")],
        batch_lines=7,
    )
    thread.join(5)
    server.close()
    frames, data = [], bytes(received)
    while data:
        length, _, data = data.partition(b" ")
        frames.append(data[: int(length)].decode())
        data = data[int(length) :]
    assert [int(f.rsplit(" ", 1)[1]) for f in frames] == list(range(1, 21))
    assert all(f.startswith("<14>1 ") for f in frames)  # user.info


def test_a_syslog_receiver_that_is_down_fails_the_run(logs: Path) -> None:
    append(logs / "app.log", 1, 2)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    sink = {"type": "syslog", "address": f"tcp://127.0.0.1:{port}", "retry_delay": 0.01}
    with pytest.raises(logship.ShipError, match="gave up after 4 attempts"):
        Daemon().ship(sink, [str(logs / "app.log")])


def test_stdout_sink_prints_records(logs: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    append(logs / "app.log", 1, 2)
    Daemon().ship({"type": "stdout"}, [str(logs / "app.log")])
    printed = [json.loads(x) for x in capsysbinary.readouterr().out.splitlines()]
    assert [r["line"] for r in printed] == ["line 1", "line 2"]


def test_a_glob_never_follows_a_directory_symlink_out_of_the_volumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """'/logs/*/app.log' with '/logs/evil -> /elsewhere': only the volume's own file is
    shipped; the other is named in a diagnostic and no checkpoint is kept for it."""
    volume, elsewhere = tmp_path / "volume", tmp_path / "elsewhere"
    (volume / "app").mkdir(parents=True)
    elsewhere.mkdir()
    append(volume / "app" / "app.log", 1, 2)
    append(elsewhere / "app.log", 100, 101)
    (volume / "evil").symlink_to(elsewhere)
    states, changes = logship.plan_files([str(volume / "*" / "app.log")], {}, [volume])
    assert [s.path for s in states] == [str(volume / "app" / "app.log")]
    assert changes == {}
    assert "evil/app.log leads out of the mounted volumes" in capsys.readouterr().err


def test_an_answer_that_is_not_http_fails_the_batch_clearly(logs: Path) -> None:
    """A receiver that answers garbage: the batch fails after its retries with the kind of
    failure (never a traceback, never the URL's query), and nothing is checkpointed."""
    append(logs / "app.log", 1, 3)
    daemon = Daemon()
    with garbage_server() as base:
        sink = {"type": "http", "url": f"{base}/in?token=s3cret", "retries": 1, "retry_delay": 0}
        with pytest.raises(logship.ShipError) as caught:
            daemon.ship(sink, [str(logs / "*.log")])
    message = str(caught.value)
    assert message.endswith(
        "gave up after 2 attempts: not an HTTP answer, or a request that cannot be sent "
        "(BadStatusLine)"
    )
    assert "s3cret" not in message
    assert daemon.checkpoints == {}
