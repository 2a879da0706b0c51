"""The tool's command: the request and the daemon's records from stdin, the result out.

``python -m jobs.tools.logship`` runs ``main``: the first stdin line is the request, the
rest the feed of containers' records; the result is a control line on stderr."""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
from typing import TYPE_CHECKING, Any

from jobs.protocol.fields import RequestError
from jobs.protocol.lines import emit, say
from jobs.tools.logship.shipper import READ_CHUNK, run
from jobs.tools.logship.sinks import TOOL, ShipError

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

FEED_QUEUE = 1000
"""Container records read ahead from the daemon's stdin."""


class DaemonFeed:
    """Reads the daemon's stdin after the request, in a thread: container records until
    the end mark, then nothing until EOF. EOF means the daemon is gone (it keeps stdin open
    while the run lasts): ``gone`` is set, and the shipper stops before its next batch —
    nobody would record its checkpoint."""

    def __init__(self, stream: Iterable[bytes]) -> None:
        self.gone = threading.Event()
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=FEED_QUEUE)
        self._stream = stream
        threading.Thread(target=self._read, name="feed", daemon=True).start()

    def _read(self) -> None:
        ended = False
        try:
            for raw in self._stream:
                if ended or not raw.strip():
                    continue
                item = json.loads(raw)
                if item.get("end"):
                    ended = True
                    self._queue.put(None)
                else:
                    self._queue.put(item)
        finally:
            if not ended:
                self._queue.put(None)
            self.gone.set()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while (item := self._queue.get()) is not None:
            yield item


def read_lines(fd: int) -> Iterator[bytes]:
    """Lines of a file descriptor, read with os.read: a thread blocked here holds no lock of
    Python's buffered stdin, so the interpreter can exit while it waits."""
    rest = b""
    while chunk := os.read(fd, READ_CHUNK):
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        yield from lines
    if rest:
        yield rest


def main() -> int:
    """Read the request from stdin, ship, report; exit 1 with the error on failure."""
    stdin = read_lines(sys.stdin.fileno())
    first = next(stdin, b"")
    try:
        request = json.loads(first)
    except ValueError:
        say(TOOL, "the first line of stdin is not the JSON request")
        return 2
    feed = DaemonFeed(stdin)
    try:
        result = run(request, feed, gone=feed.gone)
    except (ShipError, RequestError) as e:
        say(TOOL, str(e))
        return 1
    emit({"result": result})
    return 0
