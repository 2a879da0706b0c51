"""The ``ShipLogs`` step: the shipping tool's container, fed its request and containers' log
lines on stdin; each checkpoint it reports is stored at once — and, for a container a dead
daemon left, taken from the container's own log."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from jobs.plan import ShipLogs
from jobs.protocol.lines import parse
from jobs.protocol.ship import HttpSinkSpec
from scheduler.control import ControlError, checked_checkpoints
from scheduler.errors import EngineError
from scheduler.logs import get_logger
from scheduler.runs import Outcome, Status
from scheduler.secrets import SecretError, header_value, read_secret
from scheduler.selection import SelectionError, matches, named
from scheduler.steps.base import StepHandler
from scheduler.steps.containers import OUTPUT_DRAIN_S, in_run_context

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable, Iterator
    from datetime import datetime

    from jobs.plan import SecretRef
    from scheduler.control import ToolStateStore
    from scheduler.engine import Engine, StdinStream
    from scheduler.runs import Attempt

STDIN_CHUNK = 64 * 1024
"""The feed of containers' log lines is written to the tool's stdin in chunks this big."""


def recover_checkpoints(
    engine: Engine, store: ToolStateStore, job: str, container_id: str, at: datetime
) -> int:
    """Store the checkpoints a shipping container reported while no daemon read its output
    (the daemon died): they are in the container's own log. Replayed in order, so the last
    one of each source wins; each is checked as a live one is. Returns how many reports
    were applied; a log that cannot be read (a log driver without reading) applies none —
    those lines go out again."""
    applied = 0
    try:
        for _ns, _stamp, line in engine.logs(container_id, "stderr", 0, time.time_ns()):
            message = parse(line)
            if message is None or ("checkpoint" not in message and "forget" not in message):
                continue
            try:
                marks, forget = checked_checkpoints(message)
            except ControlError as e:
                get_logger().warning("run.control_rejected", reason=str(e))
                continue
            store.save_tool_state(job, marks, forget, at)
            applied += 1
    except EngineError as e:
        get_logger().warning("run.checkpoints_unrecovered", container_id=container_id, error=str(e))
        return applied
    if applied:
        get_logger().info("run.checkpoints_recovered", container_id=container_id, reports=applied)
    return applied


def _new_log_records(
    engine: Engine,
    container: str,
    stream: str,
    saved: dict[str, dict[str, object]],
    until_ns: int,
) -> Iterator[bytes]:
    """NDJSON records of the container's log lines after its checkpoint, each with the
    checkpoint that holds once it is delivered: (time in ns, lines at that ns shipped)."""
    source = f"container:{container}:{stream}"
    checkpoint = saved.get(source, {})
    since = int(str(checkpoint.get("ns", 0)))
    skip = int(str(checkpoint.get("skip", 0)))
    last, count = since, skip
    for ns, stamp, line in engine.logs(container, stream, since, until_ns):
        if ns == since and skip > 0:
            skip -= 1  # delivered by an earlier run (same nanosecond as the checkpoint)
            continue
        count = count + 1 if ns == last else 1
        last = ns
        record = {
            "source": source,
            "time": stamp,
            "stream": stream,
            "line": line.rstrip(b"\r").decode("utf-8", "replace"),
            "cp": {"ns": ns, "skip": count},
        }
        yield json.dumps(record, ensure_ascii=False).encode() + b"\n"


def _secret_value(secret: SecretRef) -> str:
    what = f"sink header {secret.name}"
    return header_value(read_secret(env=secret.env, file=secret.file, what=what), what)


class ShipHandler(StepHandler[ShipLogs]):
    """Ship a job's new log lines; its checkpoints are stored as the sink acknowledges."""

    step = ShipLogs

    def run(self, attempt: Attempt, step: ShipLogs) -> Outcome:
        store, job, clock = self.context.checkpoints, attempt.job_name, self.context.clock
        if store is None:
            return Outcome(Status.FAILED, error="no state database for checkpoints")
        saved = store.tool_state(job)
        until_ns = time.time_ns()  # a run ships what exists when it starts
        try:
            request = self._request(step, saved)
            containers = self._log_sources(step.containers)
        except (EngineError, SecretError) as e:
            return Outcome(Status.FAILED, error=str(e))

        def on_checkpoint(marks: dict[str, object], forget: list[str]) -> None:
            store.save_tool_state(job, marks, forget, clock.now())

        def before_start(container_id: str) -> Callable[[], None]:
            stdin = self.engine.attach_stdin(container_id)
            writer = self._feed(stdin, request, containers, saved, until_ns)

            def after() -> None:
                stdin.close()  # EOF for the tool; it has read the end mark by now
                writer.join(OUTPUT_DRAIN_S)

            return after

        return self.context.containers.run_tool(
            attempt,
            step.spec,
            "logship",
            on_checkpoint,
            before_start,
            quiet_stdout=step.quiet_stdout,
        )

    def recover(self, job: str, step: ShipLogs, container_id: str) -> None:  # noqa: ARG002
        store = self.context.checkpoints
        if store is not None:
            recover_checkpoints(self.engine, store, job, container_id, self.context.clock.now())

    def _request(self, step: ShipLogs, saved: dict[str, dict[str, object]]) -> bytes:
        """The tool's first stdin line: the job's request, its file checkpoints, the host
        name and the secret headers' values (read now; never logged)."""
        request = replace(
            step.request,
            checkpoints={k: v for k, v in saved.items() if k.startswith("file:")},
            host=self.engine.host_name(),
        )
        secrets = {secret.name: _secret_value(secret) for secret in step.secrets}
        if secrets and isinstance(request.sink, HttpSinkSpec):  # only an http sink has them
            headers = {**request.sink.headers, **secrets}
            request = replace(request, sink=replace(request.sink, headers=headers))
        return request.to_json().encode() + b"\n"

    def _log_sources(self, selectors: tuple[str, ...]) -> list[str]:
        """The containers whose logs are shipped: each one named (SelectionError if there
        is none), and every container (any state) a label or compose selector matches
        (none is fine)."""
        names: list[str] = []
        for selector in selectors:
            found = matches(self.engine, selector)
            if not found and named(selector):
                raise SelectionError(f"logship containers {selector!r} matched no container")
            for container in found:
                if container.name not in names:
                    names.append(container.name)
        return names

    def _feed(
        self,
        stdin: StdinStream,
        request: bytes,
        containers: list[str],
        saved: dict[str, dict[str, object]],
        until_ns: int,
    ) -> threading.Thread:
        """Write the request, then each container's new log lines, then the end mark, in a
        thread; stdin stays open until the container has ended."""

        def write() -> None:
            buffer = bytearray(request)
            try:
                for name in containers:
                    for stream in ("stdout", "stderr"):
                        for record in _new_log_records(self.engine, name, stream, saved, until_ns):
                            buffer += record
                            if len(buffer) >= STDIN_CHUNK:
                                stdin.write(bytes(buffer))
                                buffer.clear()
                buffer += b'{"end": true}\n'
                stdin.write(bytes(buffer))
            except EngineError as e:
                # The tool stopped reading (its byte limit, or it failed): its result says.
                self.log.debug("run.feed_stopped", error=str(e))
            except Exception:  # a bug: end the feed (EOF stops the tool), never the daemon
                self.log.exception("run.feed_failed")
                stdin.close()

        return in_run_context(write, "feed")
