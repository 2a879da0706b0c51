"""``stream``: a new archive piped straight to one destination, never whole on this host.

tar (then the compressor, then age: the backup tool's ``Pipeline``) writes into a pipe this
process reads; each chunk goes on to ``rclone rcat`` of ``<archive>.partial`` and to the
hashing threads (sha256 for the ``.sha256``, and the backend's own hash when it has one).
The upload is checked by its size and that hash while its ``.sha256`` goes up under a
temporary name too; the checksum is renamed first, the archive last (its rename is the
commit); then the job's stale partial uploads are removed and its retention applies there.
A failure before the archive's rename leaves nothing under a final name: the partial
uploads are deleted (or, after a kill, by the next run).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.protocol.remote import Copied
from jobs.retention import archive_name
from jobs.tools.backup.archive import member_name, throughput_mib_s
from jobs.tools.backup.pipeline import Pipeline, pipe
from jobs.tools.backup.processes import CHUNK, tail
from jobs.tools.remote.copying import (
    HASHES,
    PARTIAL,
    SIDECAR,
    check_upload,
    clear_partials,
    policy,
    prune,
)
from jobs.tools.remote.rclone import GONE, RemoteError, listed

if TYPE_CHECKING:
    import subprocess

    from jobs.protocol.remote import RemoteRequest
    from jobs.tools.remote.rclone import Pending, Rclone

QUEUED = 8
"""Chunks a hashing thread may lag behind the upload (8 MiB): a slow hash holds the
upload back only by that much, a fast one never."""


class _Hashing:
    """One hash of the stream, computed in a thread of its own (hashlib lets go of the
    interpreter while it hashes a chunk): the upload does not wait for it, the hashes of
    one stream run side by side."""

    def __init__(self, kind: str) -> None:
        self.kind, self._digest = kind, hashlib.new(kind)
        self._chunks: queue.Queue[bytes | None] = queue.Queue(QUEUED)
        self._thread = threading.Thread(target=self._run, name=f"hash-{kind}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._chunks.get()) is not None:
            self._digest.update(chunk)

    def feed(self, chunk: bytes) -> None:
        self._chunks.put(chunk)

    def result(self) -> str:
        """The hex digest, once every chunk fed is hashed."""
        self._chunks.put(None)
        self._thread.join()
        return self._digest.hexdigest()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def pump(source: int, sink: int, kinds: list[str]) -> tuple[int, dict[str, str]]:
    """Every byte of ``source`` written into ``sink``, hashed on the way; the bytes and the
    hashes. A ``sink`` closed by its reader raises BrokenPipeError."""
    hashing = [_Hashing(kind) for kind in kinds]
    size = 0
    try:
        while chunk := os.read(source, CHUNK):
            for hasher in hashing:
                hasher.feed(chunk)
            _write_all(sink, chunk)
            size += len(chunk)
    finally:
        digests = {hasher.kind: hasher.result() for hasher in hashing}
    return size, digests


@dataclass(frozen=True, slots=True)
class Streamed:
    """The archive as it left: its size, hashes, members and the bytes of its tar stream."""

    size: int
    digests: dict[str, str]
    members: int
    data_bytes: int | None


def _abort(writer: subprocess.Popen[bytes]) -> None:
    """Kill rclone rcat: what it read is not an archive to complete."""
    writer.kill()
    if writer.stdin is not None:
        writer.stdin.close()
    writer.wait()


def _send(
    rclone: Rclone, partial: str, pipeline: Pipeline, read_fd: int, kinds: list[str]
) -> Streamed:
    """Pump the pipeline's output into ``rclone rcat`` of ``partial``; how it went. A failing
    program raises: the pipeline's (ToolError) when it failed first, else rclone's."""
    with tempfile.TemporaryFile() as said:
        try:
            writer: subprocess.Popen[bytes] = rclone.writer(partial, said.fileno())
        except BaseException:
            pipeline.kill()
            raise
        assert writer.stdin is not None  # noqa: S101 - Popen's contract with stdin=PIPE
        try:
            size, digests = pump(read_fd, writer.stdin.fileno(), kinds)
        except BrokenPipeError:
            pipeline.kill()
            writer.stdin.close()
            raise rclone.failure("rcat", writer.wait(), tail(said.fileno())) from None
        except BaseException:
            pipeline.kill()
            _abort(writer)
            raise
        try:
            members, data_bytes = pipeline.check()
        except BaseException:
            _abort(writer)  # an incomplete archive must not be completed by rcat's end
            raise
        writer.stdin.close()
        code = writer.wait()
        if code != 0:
            raise rclone.failure("rcat", code, tail(said.fileno()))
    return Streamed(size, digests, members, data_bytes)


def _forget(rclone: Rclone, *names: str) -> None:
    """Delete what a failed run put on the destination, if it is there and the destination
    answers (else the next run's clean-up does): the failure, not this, is the run's error."""
    for name in names:
        with contextlib.suppress(Exception):
            rclone.run("deletefile", rclone.path(name), allow=GONE)


def _archive(
    rclone: Rclone, request: RemoteRequest, sources: list[Path], passphrase: bytes | None, name: str
) -> tuple[Streamed, str]:
    """The archive streamed under its temporary name and checked, its ``.sha256`` uploaded
    under its own meanwhile; how the archive was checked. A failure deletes both uploads."""
    offered = rclone.streamed_hashes()
    kinds = ["sha256", *[k for k in HASHES if k in offered and k != "sha256"][:1]]
    partial, sidecar = name + PARTIAL, name + SIDECAR + PARTIAL
    read_fd, write_fd = pipe()
    try:
        with tempfile.TemporaryDirectory(prefix="crontainer-stream-") as scratch:
            try:
                pipeline = Pipeline(
                    [member_name(s) for s in sources],
                    request.compression,
                    write_fd,
                    Path(scratch),
                    recipients=list(request.recipients),
                    passphrase=passphrase,
                )
            finally:
                os.close(write_fd)  # the pipeline's last program holds the only writing end
            try:
                sent = _send(rclone, partial, pipeline, read_fd, kinds)
            except BaseException:
                _forget(rclone, partial)
                raise
            finally:
                pipeline.close()
    finally:
        os.close(read_fd)
    checksum = f"{sent.digests['sha256']}  {name}\n"
    putting = rclone.begin("rcat", rclone.path(sidecar), given=checksum)
    try:
        place = rclone.path(partial)
        verified = check_upload(
            rclone, name, place, size=sent.size, offered=offered, digest=sent.digests.get
        )
        putting.result()
    except BaseException:
        putting.cancel()
        _forget(rclone, partial, sidecar)
        raise
    return sent, verified


def _land(rclone: Rclone, name: str) -> None:
    """The checked archive and its checksum renamed to their names: the checksum first, the
    archive last — its rename is the moment the archive exists, complete; a failure before
    it leaves neither under its name."""
    sidecar = name + SIDECAR
    try:
        rclone.run("moveto", rclone.path(sidecar + PARTIAL), rclone.path(sidecar))
        rclone.run("moveto", rclone.path(name + PARTIAL), rclone.path(name))
    except BaseException:
        _forget(rclone, name + PARTIAL, sidecar + PARTIAL, sidecar)
        raise


def _tidy(
    rclone: Rclone, request: RemoteRequest, name: str, listing: Pending, size: int
) -> tuple[list[str], str | None]:
    """After the archive landed: the job's stale partial uploads removed and its retention
    applied on the destination; the archives deleted, and what failed (the archive stays)."""
    try:
        present = {n: bytes_ for n, bytes_ in listed(listing).items() if not n.startswith(name)}
        clear_partials(rclone, request.job, present)
        present |= {name: size, name + SIDECAR: 0}
        return prune(rclone, request.job, policy(request), present, [name]), None
    except RemoteError as e:
        return [], f"the archive {name} is there, but its clean-up failed: {e}"


def stream(
    rclone: Rclone,
    request: RemoteRequest,
    sources: list[Path],
    passphrase: bytes | None,
) -> dict[str, object]:
    """A new archive of ``sources`` on the destination (encrypted to the request's
    recipients, or with ``passphrase``), then the job's retention there; what the run
    reports: the archive's fields (as the target's backup gives them) and its ``copies``
    (the destination's ``error`` when its clean-up failed after the archive landed).
    The folder is listed while the archive streams (for the clean-up and the retention
    after it), the checksum uploaded while the archive is checked: fewer rclone round
    trips on the run's way."""
    encrypted = bool(request.recipients) or passphrase is not None
    name = archive_name(request.job, datetime.now(UTC), request.compression, encrypted=encrypted)
    began = time.monotonic()
    listing = rclone.listing()
    try:
        sent, verified = _archive(rclone, request, sources, passphrase, name)
        _land(rclone, name)
    except BaseException:
        listing.cancel()
        raise
    seconds = round(time.monotonic() - began, 3)
    deleted, problem = _tidy(rclone, request, name, listing, sent.size)
    copy = Copied(rclone.dest.name, (name,), sent.size, verified, tuple(deleted), problem)
    return {
        "archive": name,
        "encrypted": encrypted,
        "bytes": sent.size,
        "files": sent.members,
        "data_bytes": sent.data_bytes,
        "sha256": sent.digests["sha256"],
        "archive_s": seconds,
        "deleted": list(deleted),
        "sources": [str(s) for s in sources],
        "throughput_mib_s": throughput_mib_s(sent.data_bytes, sent.size, seconds),
        "copies": [copy.to_json()],
    }
