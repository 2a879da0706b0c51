"""Job kind backup with ``encrypt`` on the real engine: the archive is age's (neither zstd nor
tar reads it, ``age -d`` with the identity does), ``crontainer restore --identity`` gives the
identical tree back into a wiped volume, a wrong identity fails and writes nothing, and no
ops container shows the identity — from the target, and from an SFTP and a WebDAV remote
the archive was copied to (``restore --from``), the local archives deleted."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from .conftest import BUSYBOX, PROJECT_IMAGE, Daemon, output_of, unique
from .helpers import SEED, SMALL_SEED, Inspector, cli, first_success, run_cli, snapshot
from .servers import DAV_PASSWORD
from .test_remotes import SFTP_FOLDER, files_in, known_hosts, remotes

pytestmark = pytest.mark.integration

Start = Callable[..., Daemon]


def key_pair(directory: Path, name: str) -> tuple[Path, str]:
    """An age identity file made by the real age-keygen, and its public key."""
    identity = directory / name
    subprocess.run(["age-keygen", "-o", str(identity)], check=True, capture_output=True)
    public = subprocess.run(
        ["age-keygen", "-y", str(identity)], check=True, capture_output=True, text=True
    )
    return identity, public.stdout.strip()


def by_hand(engine: docker.DockerClient, target: str, script: str, **env: str) -> str:
    """``script`` run by sh in a helper container of the project image, the target at /b."""
    return output_of(
        engine,
        PROJECT_IMAGE,
        ["sh", "-c", script],
        volumes=[f"{target}:/b:ro"],
        environment=env,
    )


@dataclass(frozen=True)
class Scene:
    """The target volume, the data container (SEED or SMALL_SEED at /data, its random file
    ``big_bytes`` long), the app stopped around runs, an identity file with its public key,
    and an identity the archive is not encrypted to."""

    target: str
    data: Any
    app: Any
    identity: Path
    public: str
    wrong: Path
    big_bytes: int


def make_scene(
    tmp_path: Path, make: Callable[..., Any], make_volume: Callable[[str], str], seed: str
) -> Scene:
    identity, public = key_pair(tmp_path, "key.txt")
    wrong, _ = key_pair(tmp_path, "wrong.txt")
    data = make(BUSYBOX, ["sh", "-c", seed], name=unique("t-data"), volumes=["/data"])
    assert data.wait(timeout=120)["StatusCode"] == 0, data.logs()
    app = make(BUSYBOX, ["sleep", "600"], name=unique("t-app"))
    target = make_volume("crontainer-test-backups")
    big_bytes = int(re.findall(r"head -c (\d+) /dev/urandom", seed)[0])
    return Scene(target, data, app, identity, public, wrong, big_bytes)


@pytest.fixture
def scene(tmp_path: Path, make: Callable[..., Any], make_volume: Callable[[str], str]) -> Scene:
    """The scene with SEED's 200 MB file: the encrypted archive at full size."""
    return make_scene(tmp_path, make, make_volume, SEED)


@pytest.fixture
def small_scene(
    tmp_path: Path, make: Callable[..., Any], make_volume: Callable[[str], str]
) -> Scene:
    """The scene with SMALL_SEED's 1 MiB file, for what size does not change (the
    passphrase, the remotes): the 200 MB archive is ``scene``'s test."""
    return make_scene(tmp_path, make, make_volume, SMALL_SEED)


def encrypted_run(
    start_daemon: Start,
    scene: Scene,
    encrypt: str,
    more: str = "",
    daemon_text: str = f'ops_image = "{PROJECT_IMAGE}"',
    env: dict[str, str] | None = None,
) -> tuple[Daemon, str]:
    """The daemon (``daemon_text``: its ``[daemon]`` table) of a backup job ``db`` with
    ``encrypt`` (TOML) and ``more`` keys, stopped after its first good run, and that run's
    archive: checked to be encrypted, of the scene's tree (its random file whole)."""
    daemon = start_daemon(
        '[jobs.db]\nkind = "backup"\nschedule = "@yearly"\nrun_on_start = true\n'
        f'volumes_from = ["{scene.data.name}"]\ntarget = "{scene.target}"\n'
        f'stop = ["{scene.app.name}"]\nstop_grace = "1s"\nencrypt = {encrypt}\n{more}',
        daemon=daemon_text,
        env=env,
    )
    done = first_success(daemon, timeout=600)
    archive: str = done["archive"]
    assert re.fullmatch(r"db-\d{8}T\d{6}Z\.tar\.zst\.age", archive), archive
    assert done["encrypted"] is True
    assert done["bytes"] > scene.big_bytes  # the random file does not compress
    assert done["files"] == 11
    listed = json.loads(cli(daemon, "backups", "db", "--json"))
    assert [(a["archive"], a["good"]) for a in listed] == [(archive, True)]
    return daemon, archive


def wiped_source(
    engine: docker.DockerClient, scene: Scene
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The data container's volume, emptied, its tree before and its tree now (empty)."""
    source = next(m["Name"] for m in scene.data.attrs["Mounts"] if m["Destination"] == "/data")
    before = snapshot(engine, source)
    output_of(engine, PROJECT_IMAGE, ["sh", "-c", "rm -rf /data/*"], volumes=[f"{source}:/data"])
    wiped = snapshot(engine, source)
    assert wiped == {".": before["."]}
    return source, before, wiped


def assert_never_shown(watching: Inspector, daemon: Daemon, secret: str, runs: int) -> None:
    """No container the daemon or the CLI made (at least ``runs``: those with its name, not
    another daemon's on the engine) shows ``secret`` in its command, environment or labels,
    nor does any line the daemon logged."""
    watching.close()
    judged = watching.judged(daemon)  # its own, and any of the project's image unlabelled
    ops = [c for c in judged if "crontainer.job" in (c.get("Config", {}).get("Labels") or {})]
    assert len(ops) >= runs
    assert watching.gone(daemon) == []
    assert secret not in json.dumps(judged)
    assert secret not in "".join(daemon.log.raw)


def test_an_encrypted_archive_is_unreadable_without_the_identity_and_restores_with_it(
    start_daemon: Start, engine: docker.DockerClient, scene: Scene
) -> None:
    target, app, identity = scene.target, scene.app, scene.identity
    watching = Inspector(engine)
    daemon, archive = encrypted_run(start_daemon, scene, f'{{ recipients = ["{scene.public}"] }}')

    # Wipe the source; without --identity, or with the wrong one, nothing is written.
    source, before, wiped = wiped_source(engine, scene)
    missing = run_cli(daemon, "restore", "db")
    assert missing.returncode == 1
    assert f"error: {archive} is encrypted: give the age identity file that decrypts it " in (
        missing.stderr
    )
    refused = run_cli(daemon, "restore", "db", "--identity", str(scene.wrong))
    assert refused.returncode == 1
    assert f"could not read {archive} (nothing restored): the identity does not decrypt " in (
        refused.stderr
    )
    assert snapshot(engine, source) == wiped
    app.reload()
    assert app.status == "running"  # started again after the failed restore

    restored = json.loads(cli(daemon, "restore", "db", "--identity", str(identity)))
    assert restored["archive"] == archive
    assert restored["stopped_and_started"] == [app.name]
    assert snapshot(engine, source) == before
    secret = next(
        line for line in identity.read_text().splitlines() if line.startswith("AGE-SECRET-KEY-")
    )
    assert_never_shown(watching, daemon, secret, runs=5)  # backup, listings, restores

    # By hand: neither zstd nor tar reads the stored bytes; age with the identity does.
    said = by_hand(
        engine,
        target,
        f"zstd -t /b/{archive} 2>/dev/null; echo zstd=$?; "
        f"tar -tf /b/{archive} >/dev/null 2>&1; echo tar=$?; head -c 22 /b/{archive}",
    )
    assert said.splitlines() == ["zstd=1", "tar=2", "age-encryption.org/v1"]
    members = by_hand(
        engine,
        target,
        f'printf "%s" "$KEY" > /tmp/k && age -d -i /tmp/k /b/{archive} | zstd -dc | tar -t',
        KEY=identity.read_text(),
    )
    assert "data/café ☃ naïve.txt" in members.splitlines()


def test_a_passphrase_archive_restores_with_the_jobs_passphrase_and_not_another(
    start_daemon: Start, engine: docker.DockerClient, small_scene: Scene, tmp_path: Path
) -> None:
    """The passphrase is read from its file at each run and each restore, typed into age's
    own terminal inside the ops container; a changed (wrong) one writes nothing."""
    passphrase = "correct horse battery staple"  # noqa: S105 - a test value
    secret_file = tmp_path / "age-passphrase"
    secret_file.write_text(passphrase + "\n")
    watching = Inspector(engine)
    daemon, archive = encrypted_run(
        start_daemon, small_scene, f'{{ passphrase = {{ file = "{secret_file}" }} }}'
    )
    header = by_hand(engine, small_scene.target, f"head -c 32 /b/{archive}")
    assert header.startswith("age-encryption.org/v1\n-> scrypt ")

    source, before, wiped = wiped_source(engine, small_scene)
    secret_file.write_text("not the passphrase\n")
    refused = run_cli(daemon, "restore", "db")
    assert refused.returncode == 1
    assert f"could not read {archive} (nothing restored): the passphrase does not decrypt " in (
        refused.stderr
    )
    assert snapshot(engine, source) == wiped
    secret_file.write_text(passphrase + "\n")
    restored = json.loads(cli(daemon, "restore", "db"))
    assert restored["archive"] == archive
    assert snapshot(engine, source) == before
    assert_never_shown(watching, daemon, passphrase, runs=4)  # backup, listings, restores


def test_encrypted_copies_on_sftp_and_webdav_restore_with_the_identity_only(
    start_daemon: Start,
    engine: docker.DockerClient,
    small_scene: Scene,
    network: str,
    sftp_server: tuple[str, Path, str],
    dav_server: Any,
) -> None:
    secrets = {"TEST_DAV_PASSWORD": DAV_PASSWORD}
    box = (sftp_server[0], sftp_server[1], known_hosts(engine, sftp_server[0]))
    watching = Inspector(engine)
    daemon, archive = encrypted_run(
        start_daemon,
        small_scene,
        f'{{ recipients = ["{small_scene.public}"] }}',
        f'copy_to = ["box", "dav"]\nnetwork = "{network}"\n',
        remotes(box, dav_server),
        secrets,
    )
    sftp = engine.containers.get(sftp_server[0])
    assert files_in(sftp, SFTP_FOLDER) == [archive, f"{archive}.sha256"]
    assert files_in(dav_server, "/dav/copies") == [archive, f"{archive}.sha256"]
    stored = f"/dav/copies/{archive}"
    code, said = dav_server.exec_run(
        ["sh", "-c", (f"zstd -t {stored} 2>/dev/null; echo zstd=$?; "
         f"tar -tf {stored} >/dev/null 2>&1; echo tar=$?; head -c 22 {stored}")]
    )  # fmt: skip
    assert code == 0
    assert said.decode().splitlines() == ["zstd=1", "tar=2", "age-encryption.org/v1"]

    # The local archives gone and the source wiped: each remote gives the tree back, with
    # the identity only.
    output_of(engine, BUSYBOX, ["sh", "-c", "rm -f /t/*"], volumes=[f"{small_scene.target}:/t"])
    assert json.loads(cli(daemon, "backups", "db", "--json")) == []
    for remote, chosen in (("box", "latest"), ("dav", archive)):
        source, before, wiped = wiped_source(engine, small_scene)
        from_remote = ("restore", "db", "--from", remote, "--archive", chosen)
        missing = run_cli(daemon, *from_remote, env=secrets)
        assert missing.returncode == 1
        assert f"{archive} is encrypted: give the age identity file that decrypts it " in (
            missing.stderr
        )
        refused = run_cli(daemon, *from_remote, "--identity", str(small_scene.wrong), env=secrets)
        assert refused.returncode == 1
        assert f"could not read {archive} (nothing restored): the identity does not decrypt " in (
            refused.stderr
        )
        assert snapshot(engine, source) == wiped
        restored = json.loads(
            cli(daemon, *from_remote, "--identity", str(small_scene.identity), env=secrets)
        )
        assert (restored["archive"], restored["remote"]) == (archive, remote)
        assert restored["stopped_and_started"] == [small_scene.app.name]
        assert snapshot(engine, source) == before
    secret = next(
        line
        for line in small_scene.identity.read_text().splitlines()
        if line.startswith("AGE-SECRET-KEY-")
    )
    assert_never_shown(watching, daemon, secret, runs=8)  # backup, copy, listing, restores
    shown = json.dumps(watching.seen)
    assert DAV_PASSWORD not in shown
