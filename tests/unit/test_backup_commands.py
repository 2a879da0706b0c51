"""``crontainer backups`` and ``restore`` as one-off runs through the daemon's steps: the
listing and the restore are ops containers of the backup tool; a restore stops the job's
``stop`` containers in order and starts them again in reverse, whatever happened."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.copies import TARGET_MOUNT
from scheduler.backups import OPS_TIMEOUT_S, BackupCommandError, list_archives, restore
from scheduler.engine import ExitStatus
from scheduler.errors import EngineError, EngineUnavailableError
from scheduler.settings import Config, load_config
from tests.control import control

from .fakes import FakeClock, FakeEngine, FakeOutput

ARCHIVES = [
    {"archive": "db-20261202T030000Z.tar.zst", "good": True, "bytes": 10, "time": "t2"},
    {"archive": "db-20261201T030000Z.tar.zst", "good": True, "bytes": 9, "time": "t1"},
]


class ToolEngine(FakeEngine):
    """Each container created says what the next entry of ``said`` holds (stderr bytes)."""

    said: list[bytes]
    fail_start_of: set[str]

    def output(self, container_id: str) -> FakeOutput:
        self._call("output", container_id)
        return FakeOutput([("stderr", self.said.pop(0))])

    def start(self, container_id: str) -> None:
        if container_id in self.fail_start_of:
            self.calls.append(("start", container_id))
            raise EngineError(f"starting {container_id}: refused")
        super().start(container_id)


def engine_saying(*said: bytes, fail_start_of: frozenset[str] = frozenset()) -> ToolEngine:
    engine = ToolEngine(FakeClock())
    engine.said = list(said)
    engine.fail_start_of = set(fail_start_of)
    return engine


def config(tmp_path: Path, stop: str = '["app", "idle", "worker"]') -> Config:
    path = tmp_path / "c.toml"
    path.write_text(
        '[jobs.db]\nkind = "backup"\nschedule = "@daily"\ntarget = "backups"\n'
        f'volumes_from = "app"\nstop = {stop}\nstop_grace = "3s"\n'
        '[jobs.web]\nkind = "run"\nimage = "busybox"\nschedule = "@hourly"\n'
    )
    return load_config(path, {})


def moves(engine: FakeEngine) -> list[tuple[str, object]]:
    """The stops and starts of the app's containers, in order (not the ops containers')."""
    return [(n, a) for n, a in engine.calls if n in ("select", "start") and a in APP]


APP = {"app", "idle", "worker"}


def restore_of(
    engine: FakeEngine,
    config: Config,
    job: str,
    archive: str = "latest",
    identity: str | None = None,
) -> dict[str, object]:
    """``crontainer restore JOB --archive ARCHIVE [--identity FILE]`` into the job's own
    sources."""
    return restore(
        engine,
        config,
        job,
        ops_image="ops:1",
        archive=archive,
        to=[],
        identity=identity,
        clock=engine.clock,
    )


def test_backups_lists_through_a_read_only_ops_container_and_removes_it(tmp_path: Path) -> None:
    engine = engine_saying(control({"result": {"archives": ARCHIVES}}))
    assert list_archives(engine, config(tmp_path), "db", "ops:1", engine.clock) == ARCHIVES
    [spec] = engine.created_specs
    assert spec.image == "ops:1"
    assert spec.command is not None
    assert spec.command[-5:] == ("list", "--job", "db", "--target", TARGET_MOUNT)
    assert [(m.source, m.target, m.read_only) for m in spec.mounts] == [
        ("backups", TARGET_MOUNT, True)
    ]
    assert engine.created_labels["crontainer.job"] == "db"
    assert engine.created_labels["crontainer.run_id"].startswith("cli-")
    assert engine.names().count("remove") == 1


def test_a_listing_that_does_not_end_is_stopped_after_the_commands_own_limit(
    tmp_path: Path,
) -> None:
    """6 h of the engine's silence (not the backup job's timeout, 1 h here): the ops
    container is stopped and removed, and the command says how long it waited."""
    engine = engine_saying(b"")
    engine.exit_status = None
    began = engine.clock.monotonic()
    with pytest.raises(BackupCommandError) as failed:
        list_archives(engine, config(tmp_path, '[]\ntimeout = "1h"'), "db", "ops:1", engine.clock)
    assert str(failed.value) == "the ops container did not finish within 21600s"
    assert engine.clock.monotonic() - began == OPS_TIMEOUT_S
    assert engine.names()[-3:] == ["stop", "wait", "remove"]


def test_restore_stops_in_order_restores_the_latest_and_starts_again_in_reverse(
    tmp_path: Path,
) -> None:
    engine = engine_saying(
        control({"result": {"archives": ARCHIVES}}),
        control({"result": {"archive": ARCHIVES[0]["archive"], "entries": 3}}),
    )
    engine.not_running = {"idle"}
    result = restore_of(engine, config(tmp_path), "db", "latest")
    assert result == {
        "archive": "db-20261202T030000Z.tar.zst",
        "entries": 3,
        "stopped_and_started": ["app", "worker"],
    }
    stops = [a for n, a in engine.calls if n == "stop"]
    assert stops[:2] == [3.0, 3.0]  # the job's stop_grace
    assert moves(engine) == [
        ("select", "app"),  # the restore's volumes_from, resolved before anything stops
        ("select", "app"),
        ("select", "idle"),
        ("select", "worker"),
        ("select", "app"),  # the restore's volumes_from, as its container is made
        ("start", "worker"),
        ("start", "app"),
    ]
    restore_spec = engine.created_specs[1]
    assert restore_spec.command is not None
    assert restore_spec.command[-1] == "db-20261202T030000Z.tar.zst"
    assert restore_spec.volumes_from == ("app",)


def test_a_failed_restore_says_the_tools_reason_and_still_starts_the_app_again(
    tmp_path: Path,
) -> None:
    engine = engine_saying(
        control({"result": {"archives": ARCHIVES}}),
        b"backup: db-20261201T030000Z.tar.zst: checksum mismatch\n",
    )
    engine.sequence = [ExitStatus(0), ExitStatus(1)]
    with pytest.raises(BackupCommandError) as failed:
        restore_of(engine, config(tmp_path, '["app"]'), "db", "db-20261201T030000Z.tar.zst")
    assert str(failed.value) == "db-20261201T030000Z.tar.zst: checksum mismatch"
    # volumes_from resolved before the stop and as the container is made; app started again
    assert moves(engine) == [("select", "app")] * 3 + [("start", "app")]


def test_a_container_that_does_not_start_again_fails_the_restore_naming_it(
    tmp_path: Path,
) -> None:
    """The others are still started; the error names the one left stopped."""
    engine = engine_saying(
        control({"result": {"archives": ARCHIVES}}),
        control({"result": {"archive": ARCHIVES[0]["archive"]}}),
        fail_start_of=frozenset({"worker"}),
    )
    with pytest.raises(BackupCommandError) as failed:
        restore_of(engine, config(tmp_path), "db", "latest")
    assert str(failed.value) == "could not start again: 'worker'"
    assert [a for n, a in moves(engine) if n == "start"] == ["worker", "idle", "app"]


def test_restore_of_a_job_that_is_not_a_backup_is_refused_before_the_engine(
    tmp_path: Path,
) -> None:
    engine = engine_saying()
    with pytest.raises(BackupCommandError, match="job 'web' is of kind 'run', not 'backup'"):
        restore_of(engine, config(tmp_path), "web", "latest")
    assert engine.calls == []


def test_an_engine_gone_during_the_listing_is_the_commands_error_naming_it(
    tmp_path: Path,
) -> None:
    """The engine stops answering while the ops container runs: the command fails with that
    reason (exit 1 in the CLI), not an internal error; the container is left to the
    daemon's settling, not removed through an engine that does not answer."""
    engine = engine_saying(control({"result": {"archives": ARCHIVES}}))
    engine.fail["wait"] = EngineUnavailableError("waiting: the Docker engine did not answer")
    with pytest.raises(BackupCommandError) as failed:
        list_archives(engine, config(tmp_path), "db", "ops:1", engine.clock)
    assert str(failed.value) == (
        "the engine went away during the run: waiting: the Docker engine did not answer"
    )
    assert "remove" not in engine.names()


def test_the_backups_command_fails_on_a_listing_it_cannot_read(tmp_path: Path) -> None:
    engine = engine_saying(control({"result": {"archives": [{"archive": "db-1.tar"}]}}))
    with pytest.raises(BackupCommandError) as failed:
        list_archives(engine, config(tmp_path), "db", "ops:1", engine.clock)
    assert str(failed.value) == (
        "the backup tool's listing cannot be read: request field 'archives[0].time': expected "
        "a string, got nothing"
    )


ENCRYPTED = [
    {"archive": "db-20261203T030000Z.tar.zst.age", "good": True, "bytes": 11, "time": "t3"},
    *ARCHIVES,
]
IDENTITY = (
    "# created: 2026-12-03\nAGE-SECRET-KEY-1LQWSR8PM2FJH2GR2W52LR7L8FU3HA6NFMNFET7AZVFDYVSK\n"
)


def test_an_encrypted_archive_is_restored_with_the_identity_on_stdin_only(
    tmp_path: Path,
) -> None:
    """``--identity FILE``: read where the CLI runs, written on the ops container's stdin
    (then closed); never in its command, environment or labels."""
    key = tmp_path / "key.txt"
    key.write_text(IDENTITY)
    engine = engine_saying(
        control({"result": {"archives": ENCRYPTED}}),
        control({"result": {"archive": ENCRYPTED[0]["archive"], "entries": 3}}),
    )
    result = restore_of(engine, config(tmp_path), "db", "latest", str(key))
    assert result["archive"] == "db-20261203T030000Z.tar.zst.age"
    spec = engine.created_specs[1]
    assert spec.stdin
    assert spec.command is not None
    assert spec.command[-2:] == ("--identity-stdin", "db-20261203T030000Z.tar.zst.age")
    assert engine.stdin.data == IDENTITY.strip().encode() + b"\n"
    assert engine.stdin.closed
    shown = repr((spec, engine.created_labels))
    assert "AGE-SECRET-KEY" not in shown
    assert str(key) not in shown


def test_a_plain_archive_needs_no_identity_and_gets_none(tmp_path: Path) -> None:
    key = tmp_path / "key.txt"
    key.write_text(IDENTITY)
    engine = engine_saying(
        control({"result": {"archives": ENCRYPTED}}),
        control({"result": {"archive": ARCHIVES[0]["archive"], "entries": 3}}),
    )
    restore_of(engine, config(tmp_path), "db", str(ARCHIVES[0]["archive"]), str(key))
    spec = engine.created_specs[1]
    assert not spec.stdin
    assert "--identity-stdin" not in (spec.command or ())
    assert engine.stdin.data == b""


@pytest.mark.parametrize(
    ("identity", "message"),
    [
        (
            None,
            (
                "db-20261203T030000Z.tar.zst.age is encrypted: give the age identity file that "
                "decrypts it with --identity FILE"
            ),
        ),
        ("missing.txt", "--identity missing.txt: cannot read it: No such file or directory"),
    ],
)
def test_an_encrypted_archive_without_a_readable_identity_is_refused_before_any_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, identity: str | None, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    engine = engine_saying(control({"result": {"archives": ENCRYPTED}}))
    with pytest.raises(BackupCommandError) as failed:
        restore_of(engine, config(tmp_path), "db", "latest", identity)
    assert str(failed.value) == message
    assert moves(engine) == []
    assert len(engine.created_specs) == 1  # the listing only


def test_an_identity_file_that_vanished_before_the_run_fails_it_naming_the_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read at run time (like every secret): gone between the check and the run, the restore
    fails before its container is made, and the app is started again."""
    key = tmp_path / "key.txt"
    key.write_text(IDENTITY)
    engine = engine_saying(control({"result": {"archives": ENCRYPTED}}))
    real_stop = engine.stop

    def stop_and_lose_the_key(container: str, grace: float) -> None:
        key.unlink(missing_ok=True)
        real_stop(container, grace)

    monkeypatch.setattr(engine, "stop", stop_and_lose_the_key)
    with pytest.raises(BackupCommandError) as failed:
        restore_of(engine, config(tmp_path), "db", "latest", str(key))
    assert str(failed.value) == f"--identity: cannot read {key}: No such file or directory"
    assert len(engine.created_specs) == 1
    assert ("start", "app") in moves(engine)


def test_an_identity_for_a_repository_job_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[jobs.r]\nkind = "backup"\nschedule = "@daily"\nvolumes_from = "app"\n'
        'repository = "rest:http://h:8000/r"\npassword = "p"\n'
    )
    engine = engine_saying()
    with pytest.raises(BackupCommandError) as failed:
        restore_of(engine, load_config(path, {}), "r", "latest", "key.txt")
    assert str(failed.value) == (
        "--identity is for encrypted archives: job 'r' backs up into a restic repository "
        "(its password decrypts)"
    )
    assert engine.created_specs == []


def test_a_passphrase_jobs_archive_is_restored_with_its_passphrase_on_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_AGE_PASSPHRASE", "correct horse")
    path = tmp_path / "c.toml"
    path.write_text(
        '[jobs.db]\nkind = "backup"\nschedule = "@daily"\ntarget = "backups"\n'
        'volumes_from = "app"\nencrypt = { passphrase = { env = "TEST_AGE_PASSPHRASE" } }\n'
    )
    engine = engine_saying(
        control({"result": {"archives": ENCRYPTED}}),
        control({"result": {"archive": ENCRYPTED[0]["archive"], "entries": 3}}),
    )
    restore_of(engine, load_config(path, {}), "db")
    spec = engine.created_specs[1]
    assert spec.stdin
    assert (spec.command or ())[-2:] == ("--passphrase-stdin", ENCRYPTED[0]["archive"])
    assert engine.stdin.data == b"correct horse\n"
    assert "correct horse" not in repr((spec, engine.created_labels))
