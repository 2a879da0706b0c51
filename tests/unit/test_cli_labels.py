"""The crontainer command and label jobs (``[daemon] labels = true``): ``trigger`` asks the
daemon for a job the config does not hold, ``backups``/``restore`` find it among the
containers' label jobs; a name unknown everywhere is still said so, with the closest name
of either."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from scheduler import admin
from scheduler.admin import AdminServer
from scheduler.cli import main
from scheduler.docker_engine import DockerEngine
from scheduler.engine import ContainerInfo
from scheduler.errors import EngineUnavailableError
from scheduler.labels.parse import PREFIX
from tests.control import control

from .test_backup_commands import ARCHIVES, ToolEngine, engine_saying
from .test_cli_edges import write_config

LABELS_ON = 'labels = true\nops_image = "ops:1"\n'
SAVE = {
    f"{PREFIX}save.kind": "backup",
    f"{PREFIX}save.schedule": "@daily",
    f"{PREFIX}save.target": "app-backups",
}
"""Container app's label job app.save: a backup of its volumes into app-backups."""


def app(**labels: str) -> ContainerInfo:
    return ContainerInfo(id="a" * 64, name="app", state="running", labels=labels)


Answer = tuple[int, dict[str, object]]


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, Answer | OSError]]]:
    """The daemon's admin socket, scripted: append (job, answer) before the command; the
    names the command asked for are what is left checked."""
    script: list[tuple[str, Answer | OSError]] = []

    def request(state_dir: Path, job: str) -> Answer:
        expected, answer = script.pop(0)
        assert job == expected
        if isinstance(answer, OSError):
            raise answer
        return answer

    monkeypatch.setattr(admin, "request_trigger", request)
    yield script
    assert script == [], "the daemon was not asked"


def test_trigger_asks_the_daemon_for_a_job_the_config_does_not_hold(
    tmp_path: Path,
    asked: list[tuple[str, Answer | OSError]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """labels = true: a name not in the config (a label job, app.ping) goes to the daemon,
    which runs it: exit 0 with its run id."""
    asked.append(("app.ping", (202, {"run_id": "r-1", "job": "app.ping"})))
    config = write_config(tmp_path, LABELS_ON)
    assert main(["trigger", "app.ping", "--config", str(config)]) == 0
    assert capsys.readouterr().out == "triggered app.ping: run r-1\n"


def test_trigger_of_a_name_the_daemon_does_not_know_either(
    tmp_path: Path,
    asked: list[tuple[str, Answer | OSError]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The daemon answers 404 with its jobs: 'unknown job', not in the config nor in the
    daemon's jobs, with the closest of the config's and the daemon's names; exit 2."""
    jobs = ["app.ping", "db-backup", "report", "rotate-logs"]
    asked.append(("app.pign", (404, {"error": "unknown job 'app.pign'", "jobs": jobs})))
    config = write_config(tmp_path, LABELS_ON)
    assert main(["trigger", "app.pign", "--config", str(config)]) == 2
    assert capsys.readouterr().err == (
        f"error: unknown job 'app.pign' (not in {config} nor in the daemon's jobs); "
        "did you mean 'app.ping'?\n"
    )
    asked.append(("reprot", (404, {"error": "unknown job 'reprot'", "jobs": []})))
    assert main(["trigger", "reprot", "--config", str(config)]) == 2
    assert "did you mean 'report'?" in capsys.readouterr().err  # the config's names too


def test_trigger_of_a_name_not_in_the_config_with_no_daemon_running(
    tmp_path: Path,
    asked: list[tuple[str, Answer | OSError]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No daemon: exit 1, 'no daemon answers', and a note that the name is not in the
    config (only the daemon knows the label jobs)."""
    asked.append(("app.ping", ConnectionRefusedError(111, "Connection refused")))
    config = write_config(tmp_path, LABELS_ON)
    assert main(["trigger", "app.ping", "--config", str(config)]) == 1
    error, note = capsys.readouterr().err.splitlines()
    assert error == (
        f"error: no daemon answers on {tmp_path}/state/admin.sock: [Errno 111] Connection refused"
    )
    assert note == (
        f"note: 'app.ping' is not in {config}; only a running daemon knows the containers' "
        "label jobs"
    )


@pytest.mark.parametrize("name", ["app ping", "app/ping", "app%2Fping"])
def test_any_name_reaches_the_daemon_as_typed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    """A name with a space, a slash or a percent sign goes through the admin socket intact
    (percent-encoded on the way): the daemon's answer, not a crash or another endpoint."""
    state = tmp_path / "state"
    state.mkdir()
    heard: list[str] = []

    def trigger(job: str) -> Answer:
        heard.append(job)
        return 404, {"error": f"unknown job {job!r}", "jobs": ["app.ping"]}

    server = AdminServer(state, trigger)
    server.start()
    try:
        config = write_config(tmp_path, LABELS_ON)
        assert main(["trigger", name, "--config", str(config)]) == 2
    finally:
        server.stop()
    assert heard == [name]
    assert f"error: unknown job {name!r} (not in {config} nor in the daemon's jobs)" in (
        capsys.readouterr().err
    )


def test_trigger_with_labels_off_still_refuses_before_any_daemon(
    tmp_path: Path,
    asked: list[tuple[str, Answer | OSError]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """labels = false: the daemon takes no label jobs, so a name not in the config is
    unknown at once (exit 2) and no daemon is asked."""
    config = write_config(tmp_path, "labels = false\n")
    assert main(["trigger", "app.ping", "--config", str(config)]) == 2
    assert capsys.readouterr().err == f"error: unknown job 'app.ping' (not in {config})\n"


def engine_with(
    monkeypatch: pytest.MonkeyPatch, *said: bytes, containers: list[ContainerInfo]
) -> ToolEngine:
    """The engine the command connects to: ``containers`` to list, ``said`` by each ops
    container it creates, in turn."""
    engine = engine_saying(*said)
    engine.selectable = containers
    monkeypatch.setattr(DockerEngine, "connect", classmethod(lambda cls, timeout: engine))
    return engine


def test_backups_of_a_label_job_lists_its_archives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """labels = true: ``backups app.save`` finds the job in container app's labels (as the
    daemon would) and lists its archives from the label's target."""
    engine = engine_with(
        monkeypatch, control({"result": {"archives": ARCHIVES}}), containers=[app(**SAVE)]
    )
    config = write_config(tmp_path, LABELS_ON)
    assert main(["backups", "app.save", "--json", "--config", str(config)]) == 0
    assert json.loads(capsys.readouterr().out) == ARCHIVES
    [spec] = engine.created_specs
    assert [m.source for m in spec.mounts] == ["app-backups"]
    assert engine.created_labels["crontainer.job"] == "app.save"


def test_restore_of_a_label_job_restores_into_its_container(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``restore app.save``: the latest archive of the label's target restored into the
    volumes of the container that declared the job."""
    restored = {"archive": ARCHIVES[0]["archive"], "entries": 3}
    engine = engine_with(
        monkeypatch,
        control({"result": {"archives": ARCHIVES}}),
        control({"result": restored}),
        containers=[app(**SAVE)],
    )
    config = write_config(tmp_path, LABELS_ON)
    assert main(["restore", "app.save", "--config", str(config)]) == 0
    assert json.loads(capsys.readouterr().out)["archive"] == ARCHIVES[0]["archive"]
    _, restoring = engine.created_specs
    assert restoring.volumes_from == ("app",)  # the label job's container, by its id
    assert engine.created_labels["crontainer.job"] == "app.save"


@pytest.mark.parametrize("command", ["backups", "restore"])
def test_a_name_in_neither_the_config_nor_the_labels_is_unknown(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: str,
) -> None:
    """Exit 2, 'unknown job' (not in the config nor in the containers' labels) with the
    closest name of either; no ops container made."""
    engine = engine_with(monkeypatch, containers=[app(**SAVE)])
    config = write_config(tmp_path, LABELS_ON)
    assert main([command, "app.sav", "--config", str(config)]) == 2
    assert capsys.readouterr().err == (
        f"error: unknown job 'app.sav' (not in {config} nor in the containers' labels); "
        "did you mean 'app.save'?\n"
    )
    assert main([command, "db-backpu", "--config", str(config)]) == 2
    assert "did you mean 'db-backup'?" in capsys.readouterr().err
    assert engine.created_specs == []


def test_a_refused_label_job_is_named_with_its_label(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The job is declared but the fence refuses it (a host directory as target): exit 2
    with the label and the reason, as ``validate --labels`` says it."""
    engine_with(monkeypatch, containers=[app(**{**SAVE, f"{PREFIX}save.target": "/srv/x"})])
    config = write_config(tmp_path, LABELS_ON)
    assert main(["backups", "app.save", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: label:app: {PREFIX}save.target: "), err


def test_labels_that_cannot_be_read_are_a_clear_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The engine cannot be reached to read the labels: exit 1, saying the job is not in the
    config and why the label jobs are unknown."""

    def connect(timeout: float) -> DockerEngine:
        raise EngineUnavailableError("the Docker engine at unix:///var/run/docker.sock: refused")

    monkeypatch.setattr(DockerEngine, "connect", connect)
    config = write_config(tmp_path, LABELS_ON)
    assert main(["backups", "app.save", "--config", str(config)]) == 1
    assert capsys.readouterr().err == (
        f"error: job 'app.save' is not in {config}, and the containers' label jobs cannot be "
        "read: the Docker engine at unix:///var/run/docker.sock: refused\n"
    )


def test_history_of_a_label_job_that_has_not_run_is_empty_not_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``history app.save`` before its first run: no rows, exit 0 (the containers' labels
    declare it); a near miss is unknown, with the label job as the closest name; the engine
    away: unknown as before (the config and the history are what is known)."""
    engine_with(monkeypatch, containers=[app(**SAVE)])
    config = write_config(tmp_path, LABELS_ON)
    assert main(["history", "app.save", "--json", "--config", str(config)]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["history", "app.sav", "--config", str(config)]) == 2
    assert capsys.readouterr().err.endswith(
        "(not in the config, the containers' labels nor in the history); did you mean 'app.save'?\n"
    )

    def connect(timeout: float) -> DockerEngine:
        raise EngineUnavailableError("refused")

    monkeypatch.setattr(DockerEngine, "connect", connect)
    assert main(["history", "app.save", "--config", str(config)]) == 2
    assert "(not in the config nor in the history)" in capsys.readouterr().err
