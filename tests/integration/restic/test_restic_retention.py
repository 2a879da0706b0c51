"""Retention over faked times on the real engine: snapshots made by hand with restic's
``backup --time`` at chosen instants (the job's host and tags, in a local repository), then
one run of the job with keep rules: exactly the grandfather-father-son set — computed here
on its own — is left of the job's snapshots, and another job's are all left."""

from __future__ import annotations

import json
import re
import signal
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

from tests.integration.conftest import PROJECT_IMAGE, event, output_of, unique
from tests.integration.restic.conftest import data_container

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    import docker

    from tests.integration.conftest import Daemon

pytestmark = pytest.mark.integration

KEEP = {"daily": 3, "weekly": 2, "monthly": 3, "yearly": 2}
INSTANTS = (
    "2026-11-30 22:00:00",  # a Monday
    "2026-11-30 08:00:00",  # the same day, older
    "2026-11-29 12:00:00",  # Sunday: the week before
    "2026-11-28 12:00:00",
    "2026-11-27 12:00:00",
    "2026-11-21 12:00:00",
    "2026-11-02 12:00:00",
    "2026-10-31 23:00:00",
    "2026-10-01 12:00:00",
    "2026-09-15 12:00:00",
    "2026-08-15 12:00:00",
    "2025-12-31 12:00:00",
    "2025-06-01 12:00:00",
    "2024-06-01 12:00:00",
    "2023-06-01 12:00:00",
)
"""Before the run's own snapshot (made now, the newest), in UTC."""
_NANOS = re.compile(r"(\.\d{6})\d+")


def instant(text: str) -> datetime:
    """restic's RFC 3339 time (nanoseconds) as a datetime in UTC."""
    return datetime.fromisoformat(_NANOS.sub(r"\1", text)).astimezone(UTC)


def bucket(rule: str, when: datetime) -> tuple[int, ...]:
    """The period of ``rule`` that ``when`` falls in."""
    iso = when.isocalendar()
    return {
        "daily": (when.year, when.month, when.day),
        "weekly": (iso.year, iso.week),
        "monthly": (when.year, when.month),
        "yearly": (when.year,),
    }[rule]


def grandfather_father_son(times: Mapping[str, datetime], keep: Mapping[str, int]) -> set[str]:
    """The ids kept: for each rule, the newest snapshot of each of its ``keep[rule]``
    newest periods that hold one."""
    kept: set[str] = set()
    for rule, count in keep.items():
        periods: list[tuple[int, ...]] = []
        for sid, when in sorted(times.items(), key=lambda item: item[1], reverse=True):
            period = bucket(rule, when)
            if period not in periods and len(periods) < count:
                periods.append(period)
                kept.add(sid)
    return kept


def listing(engine: docker.DockerClient, repo: str) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = json.loads(
        output_of(
            engine,
            PROJECT_IMAGE,
            ["restic", "snapshots", "--json", "--no-cache", "--no-lock"],
            volumes=[f"{repo}:/repo:ro"],
            environment={"RESTIC_REPOSITORY": "/repo/db", "RESTIC_PASSWORD": "pw"},
        )
    )
    return listed


def test_one_run_with_keep_rules_leaves_exactly_the_gfs_set_of_the_job(
    start_daemon: Callable[..., Daemon],
    engine: docker.DockerClient,
    make: Callable[..., Any],
    make_volume: Callable[[str], str],
) -> None:
    data = data_container(make)
    repo = make_volume("crontainer-test-gfs")
    name = unique("t")
    tags = f"--host {name} --tag crontainer-job=db --tag crontainer-daemon={name}"
    script = "set -e; restic init >/dev/null; "
    script += "".join(f'restic backup -q {tags} --time "{t}" /data; ' for t in INSTANTS)
    script += "restic backup -q --host elsewhere --tag crontainer-job=db --time '2020-01-01 00:00:00' /data; "
    script += f"restic backup -q --host {name} --tag crontainer-job=other --tag crontainer-daemon={name} /data"
    output_of(
        engine,
        PROJECT_IMAGE,
        ["sh", "-c", script],
        volumes=[f"{repo}:/repo"],
        volumes_from=[f"{data.name}:ro"],
        environment={
            "RESTIC_REPOSITORY": "/repo/db",
            "RESTIC_PASSWORD": "pw",
            "RESTIC_CACHE_DIR": "/tmp/c",
        },
    )
    before = listing(engine, repo)
    keep = "".join(f"keep_{rule} = {count}\n" for rule, count in KEEP.items())
    daemon = start_daemon(
        "[jobs.db]\n"
        'kind = "backup"\nschedule = "@yearly"\nrun_on_start = true\n'
        f'volumes_from = ["{data.name}"]\nvolumes = ["{repo}:/repo"]\npaths = ["/data"]\n'
        f'repository = "/repo/db"\npassword = "pw"\n{keep}',
        daemon=f'ops_image = "{PROJECT_IMAGE}"',
        name=name,
    )
    done = daemon.log.wait_for(event("run.succeeded", job="db"), timeout=300)[0]
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(60) == 0
    after = listing(engine, repo)

    def of_the_job(snapshots: list[dict[str, Any]]) -> dict[str, datetime]:
        job_tags = ["crontainer-job=db", f"crontainer-daemon={name}"]
        return {
            s["short_id"]: instant(s["time"])
            for s in snapshots
            if s["hostname"] == name and s.get("tags") == job_tags
        }

    made = of_the_job(before)
    assert len(made) == len(INSTANTS)
    left = of_the_job(after)
    times = {**made, done["snapshot_id"]: left[done["snapshot_id"]]}
    expected = grandfather_father_son(times, KEEP)
    assert set(left) == expected
    assert set(done["forgotten"]) == set(made) - expected
    assert len(expected) < len(times)  # the rules do forget some
    assert {s["short_id"] for s in before} - set(made) <= {s["short_id"] for s in after}
