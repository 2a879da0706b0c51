"""The README's quick start and the recipes of docs/recipes/ (exec clean-up, network
debugging, file logs to HTTP, two logging systems at once) run end to end on the real
engine, from the TOML blocks a reader copies (tests/docblocks.py).

Substitutions, each visible in its test and needed only because a test shares the engine:
container and volume names made unique (``app`` → ``t-app-1a2b3c4d``), a schedule made
frequent or replaced by ``run_on_start`` so a run happens within the test, a network or URL
pointed at the test's receiver (``network = "host"``, ``http://127.0.0.1:<port>/…``), and a
``[daemon]`` table naming a daemon of this test (its state and labels its own). Keys and
values otherwise run as written."""

from __future__ import annotations

import json
import threading
import time
import tomllib
from collections import Counter
from typing import TYPE_CHECKING, Any, ClassVar

import pytest

from tests.docblocks import ROOT, block_under, toml_blocks
from tests.receiver import PostReceiver, serving

from .conftest import (
    BUSYBOX,
    PROJECT_IMAGE,
    TEST_LABEL,
    TEST_LABELS,
    TEST_SESSION,
    EventStream,
    event,
    output_of,
    socket_path,
    toml_value,
    unique,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    import docker

    from .conftest import Daemon

pytestmark = pytest.mark.integration
OPS = f'ops_image = "{PROJECT_IMAGE}"'
RECIPES = ROOT / "docs" / "recipes"


def jobs_of(text: str) -> dict[str, dict[str, Any]]:
    """The ``[jobs.*]`` tables of a documented block."""
    jobs: dict[str, dict[str, Any]] = tomllib.loads(text)["jobs"]
    return jobs


def as_toml(jobs: dict[str, dict[str, Any]]) -> str:
    """Job tables back as TOML (nested tables inline)."""
    return "".join(
        f"[jobs.{name}]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in table.items()) + "\n"
        for name, table in jobs.items()
    )


class Ingest(PostReceiver):
    """An HTTP log endpoint: keeps each batch's records and Authorization header."""

    records: ClassVar[list[dict[str, Any]]] = []
    tokens: ClassVar[set[str | None]] = set()
    lock = threading.Lock()

    def take(self, body: bytes) -> int:
        with self.lock:
            self.tokens.add(self.headers.get("Authorization"))
            self.records.extend(json.loads(line) for line in body.splitlines())
        return 204


@pytest.fixture
def ingest() -> Iterator[str]:
    Ingest.records, Ingest.tokens = [], set()
    with serving(Ingest) as port:
        yield f"http://127.0.0.1:{port}/ingest"


def wait_until(check: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def app_with_logs(make: Callable[..., Any], lines: int) -> Any:
    """A stand-in app with ``lines`` numbered lines in /var/log/app/app.log (its volume)."""
    app = make(BUSYBOX, ["sleep", "600"], name=unique("t-app"), volumes=["/var/log/app"])
    command = f"seq 1 {lines} | sed 's/^/GET \\/item\\//' > /var/log/app/app.log"
    assert app.exec_run(["sh", "-c", command]).exit_code == 0
    return app


def numbers(records: list[dict[str, Any]]) -> Counter[int]:
    return Counter(int(str(r["line"]).rsplit("/", 1)[-1]) for r in records)


def test_the_quick_start_runs_as_the_readme_says(
    engine: docker.DockerClient,
    make_volume: Callable[[str], str],
    make: Callable[..., Any],  # after make_volume: its containers go first, then the volumes
    tmp_path: Path,
) -> None:
    """The README's app, config and `docker run` of the cron container: the backup runs at
    start and leaves an archive in the target volume; the exec job counts the app's lines;
    `crontainer jobs` inside the container shows both succeeded. Substituted: names, the
    exec's schedule (every 2 s, not a minute), the target and state volumes (made by the test)."""
    readme = (ROOT / "README.md").read_text()
    app = make(
        BUSYBOX,
        ["sh", "-c", "while true; do date >> /data/visits; sleep 5; done"],
        name=unique("t-app"),
        volumes=["/data"],
    )
    assert "while true; do date >> /data/visits; sleep 5; done" in readme
    jobs = jobs_of(block_under(ROOT / "README.md", "Quick start (5 minutes)").text)
    assert set(jobs) == {"visits", "app-backup"}
    jobs["visits"].update(container=app.name, schedule="@every 2s")
    backups = make_volume("t-backups")
    jobs["app-backup"].update(volumes_from=[app.name], target=backups)
    name = unique("t")
    config_dir = tmp_path / "crontainer"
    config_dir.mkdir()
    (config_dir / "config.toml").write_text(
        f'[daemon]\nname = "{name}"\nlog_format = "json"\n'
        f'[defaults]\nlabels = {{ "{TEST_LABEL}" = "{TEST_SESSION}" }}\n' + as_toml(jobs)
    )
    checked = engine.containers.run(
        PROJECT_IMAGE,
        ["crontainer", "validate"],
        volumes=[f"{config_dir}:/etc/crontainer:ro"],
        labels=TEST_LABELS,
        remove=True,
    )
    assert b"OK, 2 job(s)" in checked
    cron = make(
        PROJECT_IMAGE,
        None,
        name=unique("t-cron"),
        volumes=[
            f"{socket_path()}:/var/run/docker.sock",
            f"{config_dir}:/etc/crontainer:ro",
            f"{make_volume('t-state')}:/var/lib/crontainer",
        ],
    )
    log = EventStream(line.decode() for line in cron.logs(stream=True, follow=True))
    backup = log.wait_for(event("run.succeeded", job="app-backup"), timeout=120)[0]
    visits = log.wait_for(event("run.succeeded", job="visits"), timeout=60)[0]
    counted = log.matching(event("run.output", run_id=visits["run_id"]))
    assert int(counted[0]["line"]) >= 1
    listing = output_of(engine, BUSYBOX, ["ls", "/b"], volumes=[f"{backups}:/b:ro"]).split()
    assert backup["archive"] in listing
    shown = cron.exec_run(["crontainer", "jobs", "--json"])
    assert shown.exit_code == 0, shown.output
    last = {job: row["last_status"] for job, row in json.loads(shown.output).items()}
    assert last == {"visits": "succeeded", "app-backup": "succeeded"}
    cron.stop(timeout=30)


def test_exec_cleanup_deletes_only_the_old_files_and_says_which(
    start_daemon: Callable[..., Daemon], make: Callable[..., Any]
) -> None:
    """docs/recipes/exec-cleanup.md: files older than two hours go, newer ones stay; each
    deleted path is in the run's output. Substituted: the container's name, run_on_start."""
    app = make(BUSYBOX, ["sleep", "600"], name=unique("t-app"))
    setup = (
        "mkdir -p /tmp/uploads/part && touch /tmp/uploads/fresh "
        "&& touch -d '2020-01-01 00:00' /tmp/uploads/stale /tmp/uploads/part/stale-chunk"
    )
    assert app.exec_run(["sh", "-c", setup]).exit_code == 0
    jobs = jobs_of(toml_blocks(RECIPES / "exec-cleanup.md")[0].text)
    jobs["app-tmp-cleanup"].update(container=app.name, run_on_start=True)
    daemon = start_daemon(as_toml(jobs))
    done = daemon.log.wait_for(event("run.succeeded", job="app-tmp-cleanup"), timeout=60)[0]
    said = {e["line"] for e in daemon.log.matching(event("run.output", run_id=done["run_id"]))}
    assert said == {"/tmp/uploads/stale", "/tmp/uploads/part/stale-chunk"}
    left = app.exec_run(["find", "/tmp/uploads", "-type", "f"]).output.decode().split()
    assert left == ["/tmp/uploads/fresh"]


def test_network_debug_probe_reaches_the_apps_loopback(
    start_daemon: Callable[..., Daemon], make: Callable[..., Any]
) -> None:
    """docs/recipes/network-debug.md: the probe, in the app's network namespace, gets the
    answer of a server the app binds to 127.0.0.1 only. Substituted: the container's name, run_on_start, the image (the local
    busybox)."""
    serve = "mkdir -p /www && echo healthy > /www/health && exec httpd -f -p 127.0.0.1:8080 -h /www"
    app = make(BUSYBOX, ["sh", "-c", serve], name=unique("t-app"))
    jobs = jobs_of(toml_blocks(RECIPES / "network-debug.md")[0].text)
    probe = jobs["app-probe"]
    assert probe["network"] == "container:app"
    probe.update(network=f"container:{app.name}", image=BUSYBOX, run_on_start=True)
    daemon = start_daemon(as_toml(jobs))
    done = daemon.log.wait_for(event("run.succeeded", job="app-probe"), timeout=60)[0]
    lines = [e["line"] for e in daemon.log.matching(event("run.output", run_id=done["run_id"]))]
    assert lines == ["healthy"]


def test_file_logs_reach_the_http_endpoint_with_the_token(
    start_daemon: Callable[..., Daemon], make: Callable[..., Any], ingest: str
) -> None:
    """docs/recipes/logs-http.md: every line of the app's log arrives (at least once), as
    the documented record, with the token from the daemon's environment. Substituted: the
    container's name, run_on_start, the network (host) and the URL (the test's endpoint)."""
    app = app_with_logs(make, 1200)
    jobs = jobs_of(toml_blocks(RECIPES / "logs-http.md")[0].text)
    job = jobs["app-logs-http"]
    job.update(volumes_from=[app.name], network="host", run_on_start=True)
    job["sink"]["url"] = ingest
    daemon = start_daemon(as_toml(jobs), daemon=OPS, env={"LOG_TOKEN": "Bearer t0ken"})
    daemon.log.wait_for(event("run.succeeded", job="app-logs-http"), timeout=120)
    with Ingest.lock:
        records, tokens = list(Ingest.records), set(Ingest.tokens)
    assert set(numbers(records)) == set(range(1, 1201))
    assert tokens == {"Bearer t0ken"}
    assert set(records[0]) >= {"time", "host", "job", "source", "line"}
    assert records[0]["job"] == "app-logs-http"
    assert records[0]["source"] == "/var/log/app/app.log"


def test_two_logging_systems_each_get_every_line_from_one_source(
    start_daemon: Callable[..., Daemon],
    make_volume: Callable[[str], str],
    make: Callable[..., Any],
    engine: docker.DockerClient,
    ingest: str,
) -> None:
    """docs/recipes/logging-migration.md: the file sink and the HTTP sink each receive every
    line, each job at its own pace: the HTTP endpoint refusing does not hold the file job.
    Substituted: names, run_on_start and @every 1s, the network (host), the URL, the volume."""
    app = app_with_logs(make, 500)
    jobs = jobs_of(toml_blocks(RECIPES / "logging-migration.md")[0].text)
    out = make_volume("t-shipped")
    for job in jobs.values():
        job.update(volumes_from=[app.name], schedule="@every 1s")
    jobs["logs-old"]["sink"]["volume"] = out
    jobs["logs-new"].update(network="host")
    jobs["logs-new"]["sink"].update(url=ingest)
    daemon = start_daemon(as_toml(jobs), daemon=OPS)
    daemon.log.wait_for(event("run.succeeded", job="logs-old"), timeout=120)
    daemon.log.wait_for(event("run.succeeded", job="logs-new"), timeout=120)

    def old() -> Counter[int]:
        command = ["sh", "-c", "cat /o/app/app.ndjson 2>/dev/null || true"]
        text = output_of(engine, BUSYBOX, command, volumes=[f"{out}:/o:ro"])
        return numbers([json.loads(line) for line in text.splitlines()])

    wait_until(lambda: set(old()) == set(range(1, 501)), "every line in the old system")
    with Ingest.lock:
        assert set(numbers(Ingest.records)) == set(range(1, 501))
    daemon.signal()  # a graceful stop: no shipping container is left holding the volume
    assert daemon.wait_exit(60) == 0
