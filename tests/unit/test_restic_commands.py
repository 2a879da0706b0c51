"""``crontainer backups`` and ``restore`` for a job with a restic repository, against the
fake engine: the restic tool's container fed its request and secrets on stdin, the
repository's volume mounted, the sources writable for a restore (or just the ``--to``
volumes), the job's ``stop`` containers stopped and started around it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from jobs.plan import Mount
from jobs.protocol.restic import ResticSnapshot
from scheduler.backups import BackupCommandError, list_archives, list_snapshots, restore
from scheduler.settings import Config, load_config
from tests.control import control

from .test_backup_commands import ARCHIVES, engine_saying, moves
from .test_backup_commands import config as archive_config

SNAPSHOT = {
    "id": "4" * 64,
    "short_id": "44444444",
    "time": "2026-12-02T03:00:00.5+00:00",
    "paths": ["/var/lib/mysql"],
    "tags": ["crontainer-job=db", "crontainer-daemon=crontainer"],
    "hostname": "crontainer",
}
RESTORED = {"repository": "/repo/db", "snapshot_id": "44444444", "volumes": ["/x"], "duration_s": 1}


def config(tmp_path: Path) -> Config:
    path = tmp_path / "c.toml"
    path.write_text(
        '[jobs.db]\nkind = "backup"\nschedule = "@daily"\nvolumes_from = "app"\n'
        'volumes = ["repo-vol:/repo"]\nrepository = "/repo/db"\npassword = "pw-s3cret"\n'
        'init = true\nkeep_last = 3\nstop = ["app", "worker"]\nstop_grace = "3s"\n'
    )
    return load_config(path, {})


def request_of(engine: Any) -> dict[str, Any]:
    line = bytes(engine.stdin.data).split(b"\n")[0]
    found = json.loads(line)
    assert isinstance(found, dict)
    return found


def test_backups_lists_the_jobs_snapshots_through_the_restic_tool(tmp_path: Path) -> None:
    engine = engine_saying(control({"result": {"snapshots": [SNAPSHOT]}}))
    listed = list_snapshots(engine, config(tmp_path), "db", "ops:1", engine.clock)
    assert listed == [ResticSnapshot.parse(SNAPSHOT, "")]
    (spec,) = engine.created_specs
    assert spec.command == ("python3", "-m", "jobs.tools.restic")
    assert spec.stdin
    assert spec.mounts == (Mount("repo-vol", "/repo"),)  # restic locks: writable
    assert spec.volumes_from == ()
    assert spec.network == "none"
    asked = request_of(engine)
    assert (asked["command"], asked["job"], asked["password"]) == ("snapshots", "db", "pw-s3cret")
    assert (asked["init"], asked["keep"], asked["check"]) == (False, {}, "never")
    assert "pw-s3cret" not in json.dumps([spec.command, dict(spec.env)])
    assert moves(engine) == []  # a listing stops nothing


def test_restore_gives_the_sources_writable_and_stops_and_starts_the_app(tmp_path: Path) -> None:
    engine = engine_saying(control({"result": RESTORED}))
    result = restore(
        engine, config(tmp_path), "db", ops_image="ops:1", archive="latest", to=[],
        clock=engine.clock,
    )  # fmt: skip
    assert result == {**RESTORED, "duration_s": 1.0, "stopped_and_started": ["app", "worker"]}
    (spec,) = engine.created_specs
    assert spec.mounts == (Mount("repo-vol", "/repo"),)
    assert spec.volumes_from == ("app",)  # not read-only
    asked = request_of(engine)
    assert (asked["command"], asked["snapshot"], asked["only"]) == ("restore", "latest", [])
    assert moves(engine) == [
        ("select", "app"),  # the restore's volumes_from, resolved before anything stops
        ("select", "app"),
        ("select", "worker"),
        ("select", "app"),  # the restore's volumes_from, as its container is made
        ("start", "worker"),
        ("start", "app"),
    ]


def test_restore_to_a_volume_mounts_it_at_the_snapshotted_path(tmp_path: Path) -> None:
    engine = engine_saying(control({"result": RESTORED}))
    restore(
        engine, config(tmp_path), "db", ops_image="ops:1", archive="4444", clock=engine.clock,
        to=["/var/lib/mysql=mysql-copy"],
    )  # fmt: skip
    (spec,) = engine.created_specs
    assert spec.mounts == (Mount("repo-vol", "/repo"), Mount("mysql-copy", "/var/lib/mysql"))
    assert spec.volumes_from == ()
    asked = request_of(engine)
    assert (asked["snapshot"], asked["only"]) == ("4444", ["/var/lib/mysql"])


def test_a_listing_it_cannot_read_fails_naming_the_field(tmp_path: Path) -> None:
    engine = engine_saying(control({"result": {"snapshots": [{"id": "x"}]}}))
    with pytest.raises(BackupCommandError, match=r"'snapshots\[0\]\.short_id': expected a"):
        list_snapshots(engine, config(tmp_path), "db", "ops:1", engine.clock)


def test_a_restore_result_it_cannot_read_fails_the_restore(tmp_path: Path) -> None:
    engine = engine_saying(control({"result": {**RESTORED, "volumes": "/x"}}))
    with pytest.raises(BackupCommandError, match="'volumes': expected an array of strings"):
        restore(
            engine, config(tmp_path), "db", ops_image="ops:1", archive="latest", to=[],
            clock=engine.clock,
        )  # fmt: skip
    assert moves(engine)[-2:] == [("start", "worker"), ("start", "app")]


def test_archives_and_snapshots_are_each_listed_only_for_their_own_jobs(tmp_path: Path) -> None:
    engine = engine_saying(control({"result": {"archives": ARCHIVES}}))
    with pytest.raises(BackupCommandError, match="backs up into a restic repository, not"):
        list_archives(engine, config(tmp_path), "db", "ops:1", engine.clock)
    with pytest.raises(BackupCommandError, match="backs up into archives, not a repository"):
        list_snapshots(engine, archive_config(tmp_path), "db", "ops:1", engine.clock)
    assert engine.created_specs == []
