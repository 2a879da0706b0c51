"""Background work on daemon threads: a small pool (``Background``) whose threads never hold
up the daemon's exit.

``concurrent.futures.ThreadPoolExecutor`` joins its workers at the interpreter's exit,
whatever its ``shutdown(wait=False)`` said: one engine call that hangs in a preparation (a
pull, an engine that stopped answering) would keep the daemon from ever exiting, long
after its stop gave up waiting. Here a stop waits as long as it says (``shutdown``'s
``wait_s``); work still under way then ends with the process (what it leaves on the engine
is the orphan logic's at the next start, as after a kill).
"""

from __future__ import annotations

import concurrent.futures
import queue
import threading
import time
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

T = TypeVar("T")
_Work = tuple["concurrent.futures.Future[Any]", "Callable[..., Any]", tuple[Any, ...]]


class Background:
    """Up to ``workers`` daemon threads named ``<name>_<n>``, started as work comes, taking
    work in the order it was submitted; each piece's outcome is its ``Future``'s."""

    def __init__(self, workers: int, name: str) -> None:
        self._workers = workers
        self._name = name
        self._queue: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = threading.Semaphore(0)
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, fn: Callable[..., T], /, *args: Any) -> concurrent.futures.Future[T]:  # noqa: ANN401 - fn's own arguments
        """Run ``fn(*args)`` in a thread of the pool; RuntimeError once it is shut down, or
        when no thread can be started for it."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._lock:
            if self._closed:
                raise RuntimeError(f"the {self._name} pool is shut down")
            if not self._idle.acquire(timeout=0) and len(self._threads) < self._workers:
                thread = threading.Thread(
                    target=self._work, name=f"{self._name}_{len(self._threads)}", daemon=True
                )
                try:
                    thread.start()
                except RuntimeError:  # the process's thread limit
                    if not self._threads:
                        raise  # no thread would ever take it
                else:
                    self._threads.append(thread)
            self._queue.put((future, fn, args))
        return future

    def shutdown(self, *, wait_s: float = 0.0, cancel_futures: bool = False) -> bool:
        """Take no more work; with ``cancel_futures``, cancel what has not begun. Wait up to
        ``wait_s`` seconds for the threads to end; whether they all did."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
            if cancel_futures:
                while True:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is not None:
                        item[0].cancel()
            for _ in threads:
                self._queue.put(None)  # one end for each thread, after the work queued
        deadline = time.monotonic() + wait_s
        for thread in threads:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            thread.join(remaining)
        return not any(thread.is_alive() for thread in threads)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            future, fn, args = item
            if future.set_running_or_notify_cancel():
                try:
                    result = fn(*args)
                except BaseException as e:  # the future carries it to its owner
                    future.set_exception(e)
                else:
                    future.set_result(result)
            del item, future, fn, args
            self._idle.release()
