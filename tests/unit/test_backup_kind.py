"""Job kind backup: validation errors name the field; the plan keeps the documented order."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.backup import BackupJob
from jobs.base import PlanContext
from jobs.plan import ExecCommand, RunContainer, WithStopped
from scheduler.backups import BackupCommandError, _pick
from scheduler.errors import ConfigError
from scheduler.settings import load_config

from .configs import load_job

BASE = '[jobs.b]\nkind = "backup"\nschedule = "@daily"\ntarget = "backups"\n'


def load(tmp_path: Path, extra: str) -> BackupJob:
    return load_job(tmp_path, BASE + extra, "b", BackupJob)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("", "jobs.b: a backup needs a source: volumes_from and/or volumes"),
        (
            'volumes_from = "db"\npaths = ["var/lib"]',
            "jobs.b.paths: path 'var/lib' must be absolute",
        ),
        ('volumes = ["data"]', "jobs.b.volumes: volume 'data': expected 'source:/target'"),
        (
            'volumes_from = "db"\ncompression = "xz"',
            "jobs.b.compression: expected 'zstd', 'gzip' or 'none'",
        ),
        (
            'volumes_from = "db"\nkeep_last = 0',
            "jobs.b.keep_last: must be at least 1",
        ),
        (
            'volumes_from = "db"\npre_exec = [{ command = "x" }]',
            "jobs.b.pre_exec[0].container: required key is missing",
        ),
        (
            'volumes = ["backups:/data"]',
            "jobs.b: volume 'backups' is the target too: the backup would hold its own archives",
        ),
        ('volumes = ["v:/backup"]', "jobs.b: volume target '/backup': /backup is where the"),
        ('volumes_from = "db"\npaths = ["/"]', "jobs.b: path '/' overlaps /backup, where the"),
        ('volumes_from = "db"\npaths = ["/backup/x"]', "jobs.b: path '/backup/x' overlaps /backup"),
        ('volumes_from = "db"\nconcurrency = "allow"', "jobs.b: concurrency 'allow' would let"),
    ],
)
def test_bad_backup_config_names_the_field(tmp_path: Path, extra: str, message: str) -> None:
    """Every mistake is reported at jobs.<name>.<field>."""
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, extra)
    assert any(message in e for e in caught.value.errors), caught.value.errors


@pytest.mark.parametrize(
    ("target", "message"),
    [("./here", "a host path must be absolute"), ("vol:/x", "without ':'")],
)
def test_bad_target_is_refused(tmp_path: Path, target: str, message: str) -> None:
    """A target is a volume name or an absolute host path."""
    path = tmp_path / "c.toml"
    path.write_text(
        BASE.replace('target = "backups"', f'target = "{target}"') + 'volumes_from = "db"\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert any(e.startswith("jobs.b.target:") and message in e for e in caught.value.errors)


def test_plan_order_pre_stop_archive_start_post(tmp_path: Path) -> None:
    """pre_exec, then the archive inside stop/start, with post_exec as cleanup."""
    job = load(
        tmp_path,
        'volumes_from = "app-data"\nvolumes = ["logs:/var/log/app"]\nstop = ["app", "worker"]\n'
        'pre_exec = [{ container = "db", command = "sync" }]\n'
        'post_exec = [{ container = "db", command = ["echo", "done"] }]\n'
        "keep_last = 3\nkeep_daily = 7\n",
    )
    plan = job.plan(PlanContext(job="b", ops_image="ops:1"))
    pre, middle = plan.steps
    assert isinstance(pre, ExecCommand)
    assert (pre.container, pre.command) == ("db", ("sync",))
    assert isinstance(middle, WithStopped)
    assert middle.containers == ("app", "worker")
    (archive,) = middle.body
    assert isinstance(archive, RunContainer)
    assert archive.tool == "backup"
    spec = archive.spec
    assert spec.image == "ops:1"
    assert (spec.volumes_from, spec.volumes_from_read_only) == (("app-data",), True)
    assert [(m.source, m.target, m.read_only) for m in spec.mounts] == [
        ("backups", "/backup", False),
        ("logs", "/var/log/app", True),
    ]
    assert spec.network == "none"
    assert spec.command == (
        "python3", "-m", "jobs.tools.backup", "create", "--job", "b", "--target", "/backup",
        "--compression", "zstd", "--timezone", "UTC", "--keep-last", "3", "--keep-daily", "7", "--mounts",
    )  # fmt: skip
    (post,) = plan.cleanup
    assert isinstance(post, ExecCommand)
    assert post.command == ("echo", "done")


def test_restore_latest_skips_archives_stamped_in_the_future() -> None:
    """'latest' is the newest complete archive with a real time; with only future-stamped
    ones, the error names them and says how to choose one."""
    archives: list[dict[str, object]] = [
        {"archive": "db-20990101T000000Z.tar.zst", "good": True, "future": True},
        {"archive": "db-20261201T000000Z.tar.zst", "good": True, "future": False},
        {"archive": "db-20261130T000000Z.tar.zst", "good": True, "future": False},
    ]
    assert _pick(archives, "latest", "db", "bk") == "db-20261201T000000Z.tar.zst"
    with pytest.raises(BackupCommandError) as caught:
        _pick(archives[:1], "latest", "db", "bk")
    assert str(caught.value) == (
        "job 'db' has no complete archive in 'bk' (only archives stamped in the future, made "
        "while the clock was wrong: db-20990101T000000Z.tar.zst — name one with --archive)"
    )
    assert _pick(archives[:1], "db-20990101T000000Z.tar.zst", "db", "bk") == archives[0]["archive"]
