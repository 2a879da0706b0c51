"""Helpers shared by the unit tests (test modules import these, never each other)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import stat
import tarfile
import threading
import time
import weakref
from collections.abc import Callable, Iterator, MutableMapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
import structlog

from jobs.protocol.rotate import FinishRequest
from jobs.tools import logship, rotate
from jobs.tools.staging import STAGING_PREFIX
from scheduler.history import History, RunRecord
from scheduler.runner import Runner
from scheduler.runs import RunListener
from scheduler.settings import Config, load_config

if TYPE_CHECKING:
    from pathlib import Path

    from jobs.base import NotifySpec
    from scheduler.clock import Clock
    from scheduler.engine_health import EngineHealth
    from scheduler.notify import RunReport

    from .fakes import FakeEngine


def _zone_changed() -> None:
    time.tzset()
    try:
        import tzlocal  # noqa: PLC0415 - only where the project has it
    except ImportError:  # pragma: no cover - tzlocal comes with APScheduler
        return
    tzlocal.reload_localzone()


@contextlib.contextmanager
def local_zone(zone: str) -> Iterator[None]:
    """The process's local zone is ``zone`` (TZ, libc's and tzlocal's view) inside; the
    previous one afterwards. Its own MonkeyPatch: it never undoes a test's other patches."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TZ", zone)
        _zone_changed()
        try:
            yield
        finally:
            patch.undo()
            _zone_changed()


def events(logs: list[MutableMapping[str, Any]], *names: str) -> list[MutableMapping[str, Any]]:
    """The captured log entries whose event is one of ``names``, in order."""
    return [e for e in logs if e["event"] in names]


def wait_for(condition: Callable[[], bool]) -> None:
    """Wait (bounded, 10 s) for a condition another thread makes true."""
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.01)


# --- runners ----------------------------------------------------------------------------

SCHEDULED = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
CAPTURE = [structlog.contextvars.merge_contextvars]
Logs = list[MutableMapping[str, Any]]


def make_config(tmp_path: Path, job: str = "", daemon: str = "", jobs: str = "") -> Config:
    path = tmp_path / "c.toml"
    path.write_text(
        f'[daemon]\nname = "d1"\nstate_dir = "{tmp_path}/state"\n{daemon}\n'
        '[jobs.j]\nkind = "run"\nimage = "img:1"\nschedule = "@daily"\n'
        f'timeout = "10m"\nstop_grace = "3s"\n{job}\n{jobs}'
    )
    return load_config(path, {})


class Heard:
    """What the metrics hook (on_ended) and the notifications hook (on_report) heard."""

    def __init__(self) -> None:
        self.ended: list[tuple[str, str, datetime, float | None]] = []
        self.reports: list[tuple[NotifySpec | None, RunReport]] = []

    def on_ended(self, job: str, status: str, at: datetime, duration: float | None) -> None:
        self.ended.append((job, status, at, duration))

    def on_report(self, spec: NotifySpec | None, report: RunReport) -> None:
        self.reports.append((spec, report))


class Hooks(RunListener):
    """A run listener made of callables (either may be left out)."""

    def __init__(
        self,
        ended: Callable[[str, str, datetime, float | None], None] | None = None,
        report: Callable[[NotifySpec | None, RunReport], None] | None = None,
    ) -> None:
        self._ended, self._report = ended, report

    def ended(self, job: str, status: str, at: datetime, duration: float | None) -> None:
        if self._ended is not None:
            self._ended(job, status, at, duration)

    def report(self, spec: NotifySpec | None, report: RunReport) -> None:
        if self._report is not None:
            self._report(spec, report)


_opened: list[History] = []
_history_of: weakref.WeakKeyDictionary[Runner, History] = weakref.WeakKeyDictionary()


def open_history(config: Config) -> History:
    """The daemon's history in ``config``'s state_dir; closed after the test (the
    ``close_histories`` fixture in conftest.py)."""
    history = History.open(config.daemon.state_dir)
    _opened.append(history)
    return history


def close_histories() -> None:
    """Close every history open_history opened."""
    while _opened:
        _opened.pop().close()


def make_runner(
    config: Config,
    engine: FakeEngine,
    heard: Heard,
    clock: Clock | None = None,
    history: History | None = None,
    engine_health: EngineHealth | None = None,
) -> Runner:
    """A runner on ``engine``'s clock (or ``clock``) and a history of its own (or
    ``history``), its hooks telling ``heard``; ``history_of`` gives the history back."""
    if history is None:
        history = open_history(config)
    runner = Runner(
        engine,
        config.daemon,
        engine.clock if clock is None else clock,
        "ops:1",
        history,
        listeners=[Hooks(heard.on_ended, heard.on_report)],
        engine_health=engine_health,
    )
    _history_of[runner] = history
    return runner


def history_of(runner: Runner) -> History:
    """The history make_runner gave ``runner``."""
    return _history_of[runner]


def ended(runner: Runner) -> None:
    """Every run has left the runner (checked on real time: join's own clock may be a fake
    one that never moves), and join agrees."""
    wait_for(lambda: runner.active() == 0)
    assert runner.join(10)


def row(runner: Runner, run_id: str) -> RunRecord:
    rows = [r for r in history_of(runner).runs("j") if r.run_id == run_id]
    assert len(rows) == 1, rows
    return rows[0]


# --- the rotate tool --------------------------------------------------------------------

ROTATE_NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
ROTATE_STAMP = "20261128T120000Z"
"""ROTATE_NOW as a rotated file's stamp."""


def finish_now(
    logs: Path,
    roots: list[Path] | None = None,
    now: datetime = ROTATE_NOW,
    **rules: object,
) -> dict[str, object]:
    """The rotate tool's finish on ``logs/*.log`` at ``now`` (gzip, nothing delayed or
    pruned unless ``rules`` say so; confined to ``roots`` when given)."""
    options: dict[str, object] = {
        "compression": "gzip",
        "delay_compression": False,
        "keep_last": None,
        "keep_age": None,
    }
    options.update(rules)
    request = FinishRequest((str(logs / "*.log"),), **options)  # type: ignore[arg-type]
    return rotate.finish(request, now=now, roots=roots)


def quiet(path: Path, content: str | None = None) -> Path:
    """Write ``path`` (its name, or ``content``) and date it 1970: quiet for long, no wait."""
    path.write_text(path.name if content is None else content)
    os.utime(path, (0, 0))
    return path


# --- the backup tool --------------------------------------------------------------------


def build_tree(root: Path) -> Path:
    """Every case a backup must keep: owners, modes, links, empty dirs, odd names."""
    data = root / "data"
    (data / "sub" / "deeper").mkdir(parents=True)
    (data / "empty").mkdir()
    big = data / "file.txt"
    big.write_bytes(b"hello backup\n" * 50_000)
    big.chmod(0o640)
    os.chown(big, 1234, 5678)
    os.chown(data / "sub", 42, 43)
    (data / "sub").chmod(0o750)
    script = data / "sub" / "run.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o4755)  # setuid bit too
    (data / "link").symlink_to("file.txt")
    (data / "dangling").symlink_to("/nowhere/at/all")
    os.link(big, data / "hard")
    (data / "café ☃ naïve.txt").write_text("ünïcödé\n")
    (data / "two\nlines \\ back.txt").write_text("a name with a newline and a backslash\n")
    (data / "sub" / "deeper" / ("long-" * 45 + ".dat")).write_bytes(os.urandom(4096))
    (data / os.fsdecode(b"not utf-8 \xff, ctl \x01, [*].txt")).write_text("odd bytes\n")
    # a relative link whose target reads like the archive's own member names
    (data / "like-a-member").symlink_to(str(data).lstrip("/") + "/file.txt")
    return data


def snapshot(top: Path) -> dict[str, tuple[object, ...]]:
    """Path → (type, mode, uid, gid, content or link target, hard-link group, mtime in
    seconds: what archives keep)."""
    seen_inodes: dict[int, str] = {}
    result: dict[str, tuple[object, ...]] = {}
    for path in sorted([top, *top.rglob("*")]):
        info = path.lstat()
        rel = str(path.relative_to(top))
        if stat.S_ISLNK(info.st_mode):
            body: object = str(path.readlink())
        elif stat.S_ISREG(info.st_mode):
            body = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            body = None
        group = seen_inodes.setdefault(info.st_ino, rel) if stat.S_ISREG(info.st_mode) else None
        result[rel] = (
            stat.S_IFMT(info.st_mode),
            stat.S_IMODE(info.st_mode),
            info.st_uid,
            info.st_gid,
            body,
            group,
            int(info.st_mtime),
        )
    return result


def staging_left(*volumes: Path) -> list[Path]:
    """Staging directories of a restore left in these volumes."""
    return [p for v in volumes for p in v.glob(STAGING_PREFIX + "*")]


def handmade_archive(target: Path, members: list[tuple[str, bytes]]) -> str:
    """An uncompressed archive of these (name, content) files, with its checksum, made
    by Python's tarfile (so it can hold what GNU tar never writes from a real tree)."""
    target.mkdir(exist_ok=True)
    name = "db-20261128T120000Z.tar"
    with tarfile.open(target / name, "w", format=tarfile.GNU_FORMAT) as tar:
        for member, body in members:
            info = tarfile.TarInfo(member)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    digest = hashlib.sha256((target / name).read_bytes()).hexdigest()
    (target / f"{name}.sha256").write_text(f"{digest}  {name}\n")
    return name


# --- the logship tool -------------------------------------------------------------------


class Daemon:
    """What the daemon does with the tool's control lines: keep the checkpoints."""

    def __init__(self) -> None:
        self.checkpoints: dict[str, dict[str, Any]] = {}
        self.reports: list[dict[str, Any]] = []

    def apply(self, message: dict[str, Any]) -> None:
        self.reports.append(message)
        for source in message.get("forget", []):
            self.checkpoints.pop(source, None)
        self.checkpoints.update(message.get("checkpoint", {}))

    def ship(
        self,
        sink: dict[str, Any],
        paths: list[str],
        records: list[dict[str, Any]] | None = None,
        gone: threading.Event | None = None,
        **limits: int,
    ) -> dict[str, object]:
        request = {"job": "ship", "host": "box", "sink": sink, "paths": paths, **limits}
        request["checkpoints"] = json.loads(json.dumps(self.checkpoints))
        return logship.run(request, records or [], self.apply, gone)


def lines_of(sink_file: Path) -> list[dict[str, Any]]:
    if not sink_file.exists():
        return []
    return [json.loads(line) for line in sink_file.read_text().splitlines()]


def numbers(records: list[dict[str, Any]]) -> list[int]:
    return [int(str(r["line"]).split()[-1]) for r in records]


def append(path: Path, first: int, last: int, *, newline_at_end: bool = True) -> None:
    text = "".join(f"line {i}\n" for i in range(first, last + 1))
    if not newline_at_end:
        text = text[:-1]
    with path.open("a") as f:
        f.write(text)


def file_sink(tmp_path: Path) -> tuple[dict[str, Any], Path]:
    out = tmp_path / "sink" / "out.ndjson"
    return {"type": "file", "path": str(out)}, out


def backup_stopping_app(tmp_path: Path) -> Config:
    """A config whose one job ``b`` backs up ``data``'s volumes into ``bk`` and stops the
    container ``app`` while it does; the state under ``tmp_path``."""
    path = tmp_path / "c.toml"
    path.write_text(
        f'[daemon]\nstate_dir = "{tmp_path}/state"\n'
        '[jobs.b]\nkind = "backup"\nschedule = "@daily"\nvolumes_from = "data"\n'
        'target = "bk"\nstop = ["app"]\n'
    )
    return load_config(path, {})
