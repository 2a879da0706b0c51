"""The recipes of docs/recipes/ run end to end on the real engine, their jobs read from the
pages' TOML blocks (what a reader copies is what runs): a MariaDB dump backed up and
restored into a new server, a container's output shipped to rsyslog, an app's log rotated
under its writes. Each test names, in its docstring, what it changes in the page's job and
why; the changes are made in the test, on the parsed job."""

from __future__ import annotations

import json
import os
import signal
import time
import tomllib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.docblocks import ROOT, Block, block_under

from .conftest import BUSYBOX, PROJECT_IMAGE, Daemon, event, output_of, toml_value, unique
from .helpers import cli
from .servers import mariadb_image, start_mariadb
from .test_logship import lines_logged, rsyslog, syslog_lines  # noqa: F401 - rsyslog: a fixture

pytestmark = pytest.mark.integration

Start = Callable[..., Daemon]
OPS = f'ops_image = "{PROJECT_IMAGE}"'
RECIPES = ROOT / "docs" / "recipes"


def recipe_jobs(block: Block) -> dict[str, dict[str, Any]]:
    """The jobs of a recipe's TOML block, parsed (the block holds only ``[jobs.…]``)."""
    config = tomllib.loads(block.text)
    assert list(config) == ["jobs"], f"{block}: a recipe's block holds only [jobs.…] tables"
    jobs: dict[str, dict[str, Any]] = config["jobs"]
    return jobs


def as_toml(jobs: dict[str, dict[str, Any]]) -> str:
    """Jobs as TOML again (nested tables inline), for the daemon's config."""
    return "".join(
        f"[jobs.{name}]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in table.items()) + "\n"
        for name, table in jobs.items()
    )


def first_run(daemon: Daemon, job: str, timeout: float = 120) -> dict[str, Any]:
    """The end event of ``job``'s first run, which must have succeeded; the daemon then
    stopped (SIGTERM, exit 0). Its log lines are kept under $CRONTAINER_RECIPE_LOGS when
    that is set (where the pages' "What the log shows" lines are copied from)."""
    done = daemon.log.wait_for(
        lambda e: e.get("event") in ("run.succeeded", "run.failed") and e.get("job") == job,
        timeout=timeout,
    )[0]
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(60) == 0
    directory = os.environ.get("CRONTAINER_RECIPE_LOGS")
    if directory:
        Path(directory, f"{job}.log").write_text("".join(daemon.log.raw))
    assert done["event"] == "run.succeeded", daemon.log.raw[-20:]
    return done


# --- mariadb-dump.md -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def mariadb(engine: docker.DockerClient) -> str:
    """A MariaDB server's image (Debian's mariadb-server, made once per machine)."""
    return mariadb_image(engine)


def sql(server: Any, statements: str) -> str:
    """What ``mariadb -N -B -e statements`` prints in ``server`` (fails the test on error)."""
    code, out = server.exec_run(["mariadb", "-N", "-B", "-e", statements])
    assert code == 0, out
    return str(out.decode())


def test_mariadb_dump_is_archived_and_restores_into_a_new_server(
    start_daemon: Start,
    engine: docker.DockerClient,
    make_volume: Callable[[str], str],  # before make: volumes go after the containers using them
    make: Callable[..., Any],
    mariadb: str,
) -> None:
    """The page's job dumps a real MariaDB into its volume and archives the dump; restored
    into a new volume (the page's command) and loaded into a new server, the rows come back.
    Changed in the job: the container ``db`` is a MariaDB of the test's own (Debian's
    mariadb-server in an image the suite makes: no image can be pulled here; a unique name
    on the shared engine) in ``volumes_from`` and ``pre_exec``; the target ``db-backups`` is
    a volume of the test's; ``run_on_start = true`` instead of waiting for 03:00."""
    db = start_mariadb(make, mariadb)
    sql(
        db,
        "CREATE DATABASE shop; "
        "CREATE TABLE shop.orders (id INT PRIMARY KEY, item VARCHAR(40) NOT NULL); "
        "INSERT INTO shop.orders VALUES (1, 'teapot'), (2, 'kettle'), (3, 'tea cosy');",
    )
    target = make_volume("crontainer-test-db-backups")
    jobs = recipe_jobs(block_under(RECIPES / "mariadb-dump.md", "The job"))
    job = jobs["db-dump"]
    job["volumes_from"] = [db.name]
    job["pre_exec"][0]["container"] = db.name
    job["target"] = target
    job["run_on_start"] = True
    daemon = start_daemon(as_toml(jobs), daemon=OPS)
    done = first_run(daemon, "db-dump")

    archive = done["archive"]
    assert archive.startswith("db-dump-")
    assert archive.endswith(".tar.zst")
    backup = {"volumes": [f"{target}:/backup:ro"]}
    listing = output_of(engine, PROJECT_IMAGE, ["tar", "-tf", f"/backup/{archive}"], **backup)
    assert listing.split() == ["var/lib/mysql/dump.sql"]  # the dump, and only the dump
    read = f"zstd -dc /backup/{archive} | tar -xOf - var/lib/mysql/dump.sql"
    dump = output_of(engine, PROJECT_IMAGE, ["sh", "-c", read], **backup)
    assert "CREATE TABLE `orders`" in dump
    rows = "INSERT INTO `orders` VALUES\n(1,'teapot'),\n(2,'kettle'),\n(3,'tea cosy');"
    assert rows in dump
    assert db.exec_run(["ls", "/var/lib/mysql/dump.sql.new"]).exit_code != 0  # moved

    # The page's restore: the dump into a new volume, a new server on it, the dump loaded.
    fresh = make_volume("crontainer-test-db-data-new")
    restored = json.loads(
        cli(daemon, "restore", "db-dump", "--archive", "latest", "--to", f"/var/lib/mysql={fresh}")
    )
    assert restored["archive"] == archive
    db_new = start_mariadb(make, mariadb, fresh)
    assert sql(db_new, "SHOW DATABASES LIKE 'shop'") == ""
    loaded = db_new.exec_run(["sh", "-c", "mariadb < /var/lib/mysql/dump.sql"])
    assert loaded.exit_code == 0, loaded.output
    rows = sql(db_new, "SELECT id, item FROM shop.orders ORDER BY id")
    assert rows.splitlines() == ["1\tteapot", "2\tkettle", "3\ttea cosy"]


# --- nginx-syslog.md -----------------------------------------------------------------------

NGINX_STAND_IN = r"""
for i in 1 2 3 4 5; do
  echo "172.17.0.1 - - [$(date -u '+%d/%b/%Y:%H:%M:%S +0000')] \"GET /item/$i HTTP/1.1\" 200 $((600 + i)) \"-\" \"curl/7.88.1\""
done
echo "$(date -u '+%Y/%m/%d %H:%M:%S') [error] 29#29: *6 open() \"/usr/share/nginx/html/missing\" failed (2: No such file or directory)" >&2
exec sleep 600
"""
"""nginx's log lines as its image writes them: the access log on stdout, the error log on
stderr."""


def test_nginx_output_arrives_at_rsyslog_with_host_and_app_name(
    start_daemon: Start,
    engine: docker.DockerClient,
    make: Callable[..., Any],
    rsyslog: tuple[int, int, Path],  # noqa: F811 - the fixture imported above
) -> None:
    """The page's job ships the container's stdout and stderr to a real rsyslog, which
    parses each line as an RFC 5424 message from the engine's host, with the app name and
    the source. Changed in the job: ``nginx`` is a stand-in, not nginx (no nginx image
    here): busybox printing nginx's access-log lines on stdout and an error-log line on
    stderr, under a unique name on the shared engine; the sink's address is the test's
    rsyslog on 127.0.0.1 (the page's scheme kept), reached with ``network = "host"``;
    ``run_on_start = true`` instead of waiting for the minute."""
    udp, tcp, received = rsyslog
    nginx = make(BUSYBOX, ["sh", "-c", NGINX_STAND_IN], name=unique("t-nginx"))
    lines_logged(nginx, 5)  # the access log's lines; then the error log's
    deadline = time.monotonic() + 30
    while not nginx.logs(stdout=False, stderr=True).endswith(b"\n"):
        assert time.monotonic() < deadline, "the stand-in wrote no error-log line"
        time.sleep(0.1)
    jobs = recipe_jobs(block_under(RECIPES / "nginx-syslog.md", "The job"))
    job = jobs["nginx-logs"]
    job["containers"] = [nginx.name]
    scheme = job["sink"]["address"].split("://")[0]
    job["sink"]["address"] = f"{scheme}://127.0.0.1:{tcp if scheme == 'tcp' else udp}"
    job["network"] = "host"
    job["run_on_start"] = True
    daemon = start_daemon(as_toml(jobs), daemon=OPS)
    done = first_run(daemon, "nginx-logs")
    assert done["lines"] == 6

    written = {
        "stdout": nginx.logs(stdout=True, stderr=False).decode().splitlines(),
        "stderr": nginx.logs(stdout=False, stderr=True).decode().splitlines(),
    }
    messages = syslog_lines(received, 6)
    host = engine.info()["Name"]
    for stream, lines in written.items():
        source = f'[crontainer@32473 source="container:{nginx.name}:{stream}" job="nginx-logs"]'
        assert [m for m in messages if m[3] == source] == [
            [f"im{scheme}", host, job["sink"]["app_name"], source, line] for line in lines
        ]
    assert len(messages) == 6
    assert '"GET /item/3 HTTP/1.1" 200 603' in messages[2][4]


# --- rotate-hup.md -------------------------------------------------------------------------

LOG_DIR = "/var/log/app"
APP = f"""
i=0
exec 3>>{LOG_DIR}/app.log
trap 'exec 3>&-; exec 3>>{LOG_DIR}/app.log' HUP
trap 'exit 0' TERM
while true; do
  i=$((i+1))
  echo "$(date -u +%FT%TZ) request $i handled" >&3
  usleep 20000
done
"""
"""The app of compose.yaml's demo: numbered lines into its log, reopened on SIGHUP."""

READ_ALL = f"""
cd {LOG_DIR}
for f in app.log.*.zst; do zstd -q -d -c "$f"; done
echo ---
cat app.log
"""
"""The rotated (compressed) files, then the live one."""


def live_lines(app: Any, count: int, timeout: float = 60) -> None:
    """Until the app's live log holds at least ``count`` lines."""
    deadline = time.monotonic() + timeout
    while True:
        found = app.exec_run(["sh", "-c", f"wc -l < {LOG_DIR}/app.log"]).output.strip()
        if found.isdigit() and int(found) >= count:
            return
        assert time.monotonic() < deadline, f"the live log stayed under {count} lines"
        time.sleep(0.05)


def test_rotated_log_is_compressed_and_the_app_writes_on_into_a_new_file_losing_nothing(
    start_daemon: Start, engine: docker.DockerClient, make: Callable[..., Any]
) -> None:
    """The page's job renames the app's log, sends the HUP and compresses the rotated file;
    the app reopens its log: its numbered lines go on in the new ``app.log``, each number
    exactly once across the two files. Changed in the job: the app is compose.yaml's demo
    app (busybox), under a unique name on the shared engine, in ``volumes_from`` and the
    signal's ``containers``; ``max_size`` is 4KiB instead of the page's size (a few seconds
    of the app's lines); ``run_on_start = true`` (started once the log is over 4KiB)
    instead of waiting for the hour."""
    app = make(BUSYBOX, ["sh", "-c", APP], name=unique("t-app"), volumes=[LOG_DIR])
    jobs = recipe_jobs(block_under(RECIPES / "rotate-hup.md", "The job"))
    job = jobs["app-logs"]
    job["volumes_from"] = [app.name]
    job["signal"]["containers"] = [app.name]
    job["max_size"] = "4KiB"
    job["run_on_start"] = True
    live_lines(app, 4096 // 30)  # each line is longer than 30 bytes: over max_size
    daemon = start_daemon(as_toml(jobs), daemon=OPS)
    done = first_run(daemon, "app-logs")
    [rotated] = done["rotated"]
    assert rotated.startswith(f"{LOG_DIR}/app.log.")
    assert done["compressed"] == [f"{rotated}.zst"]
    sent = daemon.log.matching(event("run.signal_sent", container=app.name, signal="SIGHUP"))
    assert len(sent) == 1

    live_lines(app, 20)  # the app goes on writing, into the new file
    app.kill(signal="SIGTERM")
    assert app.wait(timeout=30)["StatusCode"] == 0
    out = output_of(engine, PROJECT_IMAGE, ["sh", "-c", READ_ALL], volumes_from=[app.name])
    old, new = (
        [int(line.split()[2]) for line in part.splitlines() if line] for part in out.split("---\n")
    )
    files = output_of(engine, BUSYBOX, ["ls", LOG_DIR], volumes_from=[app.name]).split()
    assert sorted(files) == sorted(["app.log", Path(rotated).name + ".zst"])
    assert len(new) >= 20
    assert new[0] == old[-1] + 1  # reopened: the new file goes on where the old one ended
    assert Counter(old + new) == Counter(range(1, new[-1] + 1))  # every line, once
