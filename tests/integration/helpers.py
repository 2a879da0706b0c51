"""What the backup tests share: a data tree worth backing up, a volume's tree as data to
compare, the crontainer command run beside a test's daemon, and an inspector of the
containers the engine creates (to show no secret reaches them)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from typing import Any, Protocol

import docker
import docker.errors

from scheduler.engine import LABEL_DAEMON

from .conftest import PROJECT_IMAGE, ROOT, TEST_HELPER, Daemon, cli_environ, event, output_of

SEED = r"""
set -e
cd /data
mkdir -p sub/deeper empty
head -c 209715200 /dev/urandom > big.bin
printf 'hello\n' > file.txt
chmod 640 file.txt && chown 1234:5678 file.txt
chown 42:43 sub && chmod 750 sub
printf '#!/bin/sh\n' > sub/run.sh && chmod 4755 sub/run.sh
ln -s file.txt link
ln file.txt hard
printf 'x' > "café ☃ naïve.txt"
printf 'y' > "sub/deeper/$(printf 'long-%.0s' $(seq 1 45)).dat"
"""
SMALL_SEED = SEED.replace("209715200", "1048576")
"""The same tree with a 1 MiB file (where size does not matter)."""
CUT_SEED = SEED.replace("209715200", "20971520")
"""The same tree with a 20 MiB file: an upload to a server limited to 2 MiB/s takes about
ten seconds, time to cut it mid-way (the 200 MB file at 20 MiB/s took as long, and its
archives twice as long to make and to copy again)."""

SNAPSHOT = r"""
import hashlib, json, os, stat, sys
top = sys.argv[1]
seen, out = {}, {}
for base, dirs, files in os.walk(top):
    for name in sorted(dirs + files) + ([] if base != top else ["."]):
        path = os.path.normpath(os.path.join(base, name))
        info = os.lstat(path)
        rel = os.path.relpath(path, top)
        if stat.S_ISLNK(info.st_mode):
            body = os.readlink(path)
        elif stat.S_ISREG(info.st_mode):
            with open(path, "rb") as f:
                body = hashlib.sha256(f.read()).hexdigest()
        else:
            body = None
        group = seen.setdefault(info.st_ino, rel) if stat.S_ISREG(info.st_mode) else None
        out[rel] = [stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid, body, group]
print(json.dumps(out, sort_keys=True))
"""


def snapshot(engine: docker.DockerClient, volume: str) -> dict[str, Any]:
    """The tree of a volume: path → type, mode, owner, content hash or link, hard-link group."""
    found: dict[str, Any] = json.loads(
        output_of(
            engine, PROJECT_IMAGE, ["python3", "-c", SNAPSHOT, "/v"], volumes=[f"{volume}:/v:ro"]
        )
    )
    return found


def first_success(daemon: Daemon, job: str = "db", timeout: float = 180) -> dict[str, Any]:
    """The job's first ``run.succeeded`` event; the daemon then stopped (SIGTERM, exit 0)."""
    done: dict[str, Any] = daemon.log.wait_for(event("run.succeeded", job=job), timeout=timeout)[0]
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(60) == 0
    return done


def run_cli(
    daemon: Daemon, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `crontainer …` with the daemon's config (and ``env`` added to the environment)."""
    command = [sys.executable, "-m", "scheduler", *args, "--config", str(daemon.config)]
    environ = {**cli_environ(), **(env or {})}
    return subprocess.run(
        command, capture_output=True, text=True, check=False, cwd=ROOT, env=environ
    )


def cli(daemon: Daemon, *args: str, env: dict[str, str] | None = None) -> str:
    """Run `crontainer …` with the daemon's config (and ``env`` added to the environment);
    fail the test with stderr on error."""
    done = run_cli(daemon, *args, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


class Named(Protocol):
    """What the Inspector needs of a daemon: its name (a ``Daemon``)."""

    @property
    def name(self) -> str: ...


class Inspector:
    """Inspects every container the engine creates while it watches (the ops containers
    live only as long as their run), and judges those of one daemon: the ones carrying its
    name, and the ones of the project's image carrying no daemon's name at all — a
    container the daemon made without its labels (it would escape the orphan clean-up) is
    exactly what this is here to catch. Another daemon's (another name: another session
    on a shared engine) and the tests' own helpers (``TEST_HELPER``) are not judged."""

    def __init__(self, engine: docker.DockerClient) -> None:
        self.seen: list[dict[str, Any]] = []
        self._engine = engine
        self._images = {PROJECT_IMAGE, engine.images.get(PROJECT_IMAGE).id}
        self._events = engine.events(decode=True, filters={"type": "container", "event": "create"})
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        for item in self._events:
            self.seen.append(self._inspect(item))

    def _inspect(self, item: dict[str, Any]) -> dict[str, Any]:
        """The container's inspect data; if it was removed first, what its create event
        tells (its labels and image)."""
        try:
            found: dict[str, Any] = self._engine.api.inspect_container(item["id"])
        except docker.errors.NotFound:
            attributes = dict(item.get("Actor", {}).get("Attributes", {}))
            image = attributes.pop("image", item.get("from"))
            attributes.pop("name", None)
            return {"Id": item["id"], "gone": True, "Labels": attributes, "Image": image}
        return found

    def close(self) -> None:
        self._events.close()

    def judged(self, daemon: Named) -> list[dict[str, Any]]:
        """Every container seen that is ``daemon``'s to answer for: labelled with its name,
        or of the project's image with no daemon's name (and no test helper)."""
        return [c for c in self.seen if self._judges(c, daemon.name)]

    def gone(self, daemon: Named) -> list[str]:
        """The ids of the judged containers (see ``judged``) that were removed before they
        could be inspected."""
        return [c["Id"] for c in self.judged(daemon) if c.get("gone")]

    def ops(self, daemon: Named) -> list[dict[str, Any]]:
        """The inspect data of ``daemon``'s ops containers seen: the judged containers (see
        ``judged``) of the project's image, inspected."""
        return [
            c
            for c in self.judged(daemon)
            if not c.get("gone") and c["Config"].get("Image") in self._images
        ]

    def _judges(self, container: dict[str, Any], name: str) -> bool:
        if container.get("gone"):
            labels, image = container["Labels"], container["Image"]
        else:
            labels = container.get("Config", {}).get("Labels") or {}
            image = container.get("Config", {}).get("Image")
        if LABEL_DAEMON in labels:
            return bool(labels[LABEL_DAEMON] == name)
        return image in self._images and TEST_HELPER not in labels
