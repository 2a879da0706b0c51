"""The fence (scheduler/labels/rules.py): what a label job may do — its own container,
implied where a kind needs one — and what [daemon] label_kinds / label_allow widen."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from scheduler.engine import ContainerInfo
from scheduler.labels.rules import ALL_KINDS, LABEL_KINDS, POWER_KEYS, Fence, Problem
from scheduler.settings import load_config

from .configs import load_errors

if TYPE_CHECKING:
    from collections.abc import Collection
    from pathlib import Path

ID = "0123456789abcdef" * 4
"""The label's own container's full id (64 hex digits)."""
APP = ContainerInfo(id=ID, name="app", state="running", labels={})


def check(
    table: dict[str, Any],
    *,
    allow: Collection[str] = (),
    kinds: Collection[str] = LABEL_KINDS,
) -> tuple[dict[str, Any], list[Problem]]:
    """The fence of container ``app`` on ``table``: the table it passes on, and its refusals."""
    return Fence(APP, kinds, allow).check(table)


def passed(table: dict[str, Any], **keys: Any) -> dict[str, Any]:
    """The table the fence passes on, asserting it refuses nothing."""
    fenced, problems = check(table, **keys)
    assert problems == []
    return fenced


def refused(table: dict[str, Any], **keys: Any) -> list[str]:
    """The keys the fence refuses in ``table`` (at least one)."""
    _, problems = check(table, **keys)
    assert problems, "the fence let it through"
    return [key for key, _ in problems]


# --- exec: the container is implied ---------------------------------------------------


def test_kind_defaults_to_exec_in_the_own_container() -> None:
    """No kind: an exec job; no container: the label's own, by its full id."""
    fenced = passed({"schedule": "@daily", "command": "true"})
    assert (fenced["kind"], fenced["container"]) == ("exec", ID)


def test_the_table_given_is_not_changed() -> None:
    """The fence fills in a copy: the parsed labels stay as written."""
    table = {"schedule": "@daily", "command": "true"}
    passed(table)
    assert table == {"schedule": "@daily", "command": "true"}


@pytest.mark.parametrize("given", ["app", "/app", ID, ID[:12], ID[:20]])
def test_exec_may_name_its_own_container(given: str) -> None:
    """Its name, /name, its full id or 12+ of the id's first digits: taken, as the full id."""
    assert passed({"container": given})["container"] == ID


@pytest.mark.parametrize(
    "given", ["db", "app2", ID[:11], "label=role=app", "compose=proj/app", "/db", 7]
)
def test_exec_may_not_name_another_container(given: object) -> None:
    """Another name, a too-short id prefix, a label or compose selector, a non-text value:
    refused, naming the key and the allowance that would allow it."""
    _, problems = check({"container": given})
    ((key, reason),) = problems
    assert key == "container"
    assert "own container (app)" in reason
    assert "'other_containers'" in reason


@pytest.mark.parametrize("given", ["db", "label=role=app", "compose=proj/app"])
def test_other_containers_allows_naming_another(given: str) -> None:
    """label_allow = ["other_containers"]: the container is kept as written."""
    assert passed({"container": given}, allow=["other_containers"])["container"] == given


# --- signal, backup, rotate, logship ----------------------------------------------------


def test_signal_containers_are_implied_and_checked() -> None:
    """A signal job signals its own container when none is given; its own name passes as
    the id; another is refused unless other_containers."""
    assert passed({"kind": "signal"})["containers"] == [ID]
    assert passed({"kind": "signal", "containers": ["/app", ID[:12]]})["containers"] == [ID, ID]
    assert refused({"kind": "signal", "containers": ["app", "db"]}) == ["containers"]
    allowed = passed({"kind": "signal", "containers": ["db"]}, allow=["other_containers"])
    assert allowed["containers"] == ["db"]


def test_backup_mounts_its_own_volumes() -> None:
    """A backup's volumes_from is implied; given, it may name only the own container (a
    mode suffix is kept); another is refused."""
    assert passed({"kind": "backup"})["volumes_from"] == [ID]
    assert passed({"kind": "backup", "volumes_from": ["app:rw"]})["volumes_from"] == [f"{ID}:rw"]
    assert refused({"kind": "backup", "volumes_from": ["db"]}) == ["volumes_from"]
    assert refused({"kind": "backup", "volumes_from": ["db:ro"]}) == ["volumes_from"]


def test_a_single_container_written_as_text_is_fenced_too() -> None:
    """volumes_from and logship's containers take one container as text (not a list): the
    fence checks it like a list's entry — another container is refused, the own one is
    the id (a defect let ``volumes_from=other`` through unchecked)."""
    assert refused({"kind": "backup", "volumes_from": "db"}) == ["volumes_from"]
    assert refused({"kind": "logship", "containers": "db"}) == ["containers"]
    assert refused({"kind": "signal", "containers": "db"}) == ["containers"]
    assert passed({"kind": "backup", "volumes_from": "app:ro"})["volumes_from"] == f"{ID}:ro"
    assert passed({"kind": "logship", "containers": "/app"})["containers"] == ID
    allowed = passed({"kind": "backup", "volumes_from": "db"}, allow=["other_containers"])
    assert allowed["volumes_from"] == "db"


def test_backup_stop_true_is_the_own_container() -> None:
    """stop = true: this container; false: none; a list of others: refused (not implied)."""
    assert passed({"kind": "backup", "stop": True})["stop"] == [ID]
    assert passed({"kind": "backup", "stop": False})["stop"] == []
    assert "stop" not in passed({"kind": "backup"})
    assert passed({"kind": "backup", "stop": ["app"]})["stop"] == [ID]
    assert refused({"kind": "backup", "stop": ["other"]}) == ["stop"]


def test_backup_pre_and_post_exec_run_in_the_own_container() -> None:
    """pre_exec/post_exec steps: the container implied; another refused, named by step."""
    fenced = passed(
        {
            "kind": "backup",
            "pre_exec": [{"command": "dump"}],
            "post_exec": [{"command": "rm", "container": "app"}],
        }
    )
    assert fenced["pre_exec"] == [{"command": "dump", "container": ID}]
    assert fenced["post_exec"] == [{"command": "rm", "container": ID}]
    keys = refused(
        {
            "kind": "backup",
            "pre_exec": [{"command": "a"}, {"command": "b", "container": "db"}],
            "post_exec": [{"command": "c", "container": "db"}],
        }
    )
    assert keys == ["pre_exec[1].container", "post_exec[0].container"]


def test_backup_steps_given_are_not_changed() -> None:
    """The steps filled in are copies: the parsed labels' own steps stay as written."""
    step = {"command": "dump"}
    passed({"kind": "backup", "pre_exec": [step]})
    assert step == {"command": "dump"}


def test_rotate_signal_shorthand_and_table_go_to_the_own_container() -> None:
    """rotate: signal = "HUP" is a signal to this container; a signal table's containers
    are implied and checked; restart = true is this container; volumes_from implied."""
    fenced = passed({"kind": "rotate", "signal": "HUP"})
    assert fenced["signal"] == {"containers": [ID], "signal": "HUP"}
    assert fenced["volumes_from"] == [ID]
    assert passed({"kind": "rotate", "signal": {"signal": "USR1"}})["signal"] == {
        "signal": "USR1",
        "containers": [ID],
    }
    assert refused({"kind": "rotate", "signal": {"containers": ["db"]}}) == ["signal.containers"]
    assert passed({"kind": "rotate", "restart": True})["restart"] == [ID]
    assert refused({"kind": "rotate", "restart": ["db"]}) == ["restart"]


def test_logship_reads_its_volumes_with_paths_else_its_output() -> None:
    """logship with paths: volumes_from implied, containers not; without paths: containers
    implied, volumes_from not."""
    files = passed({"kind": "logship", "paths": ["/var/log/*.log"]})
    assert (files["volumes_from"], "containers" in files) == ([ID], False)
    output = passed({"kind": "logship"})
    assert (output["containers"], "volumes_from" in output) == ([ID], False)
    assert refused({"kind": "logship", "containers": ["db"]}) == ["containers"]


# --- the keys and classes label_allow names ---------------------------------------------

POWER_VALUES: dict[str, object] = {
    "image": "alpine",
    "volumes": ["data:/data"],
    "network": "host",
    "cap_add": ["NET_ADMIN"],
    "env_files": ["/etc/app.env"],
    "notify": {"webhook": "http://docker-proxy:2375/containers/create"},
    "log_driver": "syslog",
    "log_options": {"syslog-address": "tcp://203.0.113.9:514"},
    "copy_to": ["offsite"],
    "lock": "app-data",
    "output": {"volume": "app-data"},
}


@pytest.mark.parametrize("key", POWER_KEYS)
def test_keys_that_reach_beyond_the_container_need_label_allow(key: str) -> None:
    """image, volumes, network, cap_add, env_files: refused (the key named, the allowance
    hinted) unless label_allow names that key — allowing another key does not allow it."""
    table = {"kind": "backup", key: POWER_VALUES[key]}
    _, problems = check(table)
    assert problems == [
        (key, f"a label job may not set {key} (add '{key}' to [daemon] label_allow to allow it)")
    ]
    others = [k for k in (*POWER_KEYS, "secrets", "host_paths", "other_containers") if k != key]
    assert refused(table, allow=others) == [key]
    assert passed(table, allow=[key])[key] == POWER_VALUES[key]


@pytest.mark.parametrize(
    ("table", "where"),
    [
        (
            {"kind": "backup", "repository": "rest:http://h/x", "ssh": {"key": {"env": "K"}}},
            "ssh.key",
        ),
        (
            {"kind": "backup", "repository": "rest:http://h/x", "password": {"file": "/run/s"}},
            "password",
        ),
        ({"kind": "backup", "env": {"AWS_KEY": {"env": "K"}}}, "env.AWS_KEY"),
        (
            {"kind": "backup", "pre_exec": [{"command": "a", "env": {"K": {"file": "/k"}}}]},
            "pre_exec[0].env.K",
        ),
    ],
)
def test_secret_references_need_secrets(table: dict[str, Any], where: str) -> None:
    """{ env = … } / { file = … } anywhere in the job (the daemon's environment and files):
    refused at its dotted path unless label_allow names 'secrets'."""
    _, problems = check(table)
    assert [key for key, _ in problems] == [where]
    assert "'secrets'" in problems[0][1]
    assert refused(table, allow=["host_paths", "other_containers"]) == [where]
    passed(table, allow=["secrets"])


def test_plain_text_where_a_secret_may_be_is_fine() -> None:
    """A password written as text, or a table with more keys than env/file, is no reference."""
    passed({"kind": "backup", "password": "text", "sink": {"type": "http", "url": "u"}})


@pytest.mark.parametrize(
    ("table", "where"),
    [
        ({"env": {"file": "x"}}, "env"),
        (
            {
                "kind": "logship",
                "sink": {"type": "http", "url": "u", "headers": {"labels": {"env": "S"}}},
            },
            "sink.headers.labels",
        ),
        ({"kind": "backup", "env": {"env": {"env": "S"}}}, "env"),
        (
            {"kind": "backup", "env": {"labels": {"file": "/etc/crontainer/config.toml"}}},
            "env.labels",
        ),
    ],
)
def test_any_table_of_env_or_file_alone_is_taken_for_a_secret_reference(
    table: dict[str, Any], where: str
) -> None:
    """The models forbid other keys, so a secret reference is a table of env or file alone,
    wherever it is — under a key called labels or env too (a header called Labels holding
    the daemon's variable was sent out so). An env variable called file is refused with
    them: the safe side."""
    assert refused(table) == [where]


def test_notify_headers_holding_a_secret_are_refused_twice_over() -> None:
    """notify itself needs label_allow; allowed, a secret in its headers still needs
    'secrets'."""
    table = {"notify": {"webhook": "http://h", "headers": {"X-Token": {"env": "T"}}}}
    assert refused(table, allow=["notify"]) == ["notify.headers.X-Token"]
    passed(table, allow=["notify", "secrets"])


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"kind": "backup", "target": "/srv/backups"}, "target"),
        ({"kind": "logship", "sink": {"type": "file", "volume": "/x"}}, "sink.volume"),
    ],
)
def test_host_directories_need_host_paths(table: dict[str, Any], key: str) -> None:
    """A backup's target or a file sink's volume on the host: refused unless host_paths."""
    _, problems = check(table)
    assert [k for k, _ in problems] == [key]
    assert "'host_paths'" in problems[0][1]
    assert refused(table, allow=["secrets", "other_containers"]) == [key]
    passed(table, allow=["host_paths"])


def test_a_named_backup_target_is_fine() -> None:
    """A named volume as a backup's target needs nothing (the archives carry the job's name)."""
    assert passed({"kind": "backup", "target": "backups"})["target"] == "backups"


def test_a_file_sink_in_a_named_volume_needs_volumes() -> None:
    """A file sink's named volume (a file at a path of the label's choosing in any volume):
    refused unless label_allow names 'volumes' — host_paths does not allow it (it did: the
    volume check ran only while host_paths was not allowed)."""
    table = {"kind": "logship", "sink": {"type": "file", "volume": "logs"}}
    _, problems = check(table)
    assert problems == [
        (
            "sink.volume",
            (
                "a label job may not write to a volume (add 'volumes' to [daemon] label_allow to "
                "allow it)"
            ),
        )
    ]
    assert refused(table, allow=["host_paths", "secrets", "other_containers"]) == ["sink.volume"]
    passed(table, allow=["volumes"])


def test_every_refusal_of_a_job_is_reported_at_once() -> None:
    """Several refused keys: each named, not only the first."""
    table = {"kind": "backup", "image": "x", "target": "/srv", "volumes_from": ["db"]}
    assert sorted(refused(table)) == ["image", "target", "volumes_from"]


# --- kinds ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", LABEL_KINDS)
def test_the_default_kinds_are_allowed(kind: str) -> None:
    """exec, signal, backup, rotate, logship need no label_kinds."""
    assert check({"kind": kind})[0]["kind"] == kind


def test_a_kind_not_in_label_kinds_is_refused() -> None:
    """run by default, or any kind label_kinds leaves out: refused, naming the kinds."""
    assert check({"kind": "run"})[1] == [
        (
            "kind",
            (
                "kind 'run' is not allowed in labels "
                "(label_kinds: backup, exec, logship, rotate, signal)"
            ),
        )
    ]
    assert refused({"kind": "backup"}, kinds=["exec"]) == ["kind"]
    assert refused({}, kinds=["signal"]) == ["kind"]  # exec, the default kind, too


def test_run_in_label_kinds_still_needs_image_allowed() -> None:
    """label_kinds with run: a run job is no longer refused for its kind, but its image is,
    until label_allow names image."""
    table = {"kind": "run", "image": "alpine"}
    assert refused(table, kinds=ALL_KINDS) == ["image"]
    passed(table, kinds=ALL_KINDS, allow=["image"])


# --- the [daemon] keys ------------------------------------------------------------------


def test_daemon_label_keys_take_good_values(tmp_path: Path) -> None:
    """label_kinds, label_allow and label_filter with good values load."""
    path = tmp_path / "c.toml"
    path.write_text(
        f'[daemon]\nstate_dir = "{tmp_path}/state"\nlabels = true\n'
        'label_kinds = ["exec", "run"]\nlabel_allow = ["image", "secrets"]\n'
        'label_filter = ["com.docker.compose.project=app", "backup"]\n'
    )
    daemon = load_config(path, {}).daemon
    assert (daemon.labels, daemon.label_kinds, daemon.label_allow) == (
        True,
        ["exec", "run"],
        ["image", "secrets"],
    )
    assert daemon.label_filter == ["com.docker.compose.project=app", "backup"]


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (
            'label_kinds = ["exec", "cron"]',
            (
                "daemon.label_kinds[1]: 'cron' is not a job kind "
                "(one of run, exec, signal, backup, rotate, logship)"
            ),
        ),
        (
            'label_allow = ["image", "everything"]',
            (
                "daemon.label_allow[1]: 'everything' cannot be allowed (one of image, volumes, "
                "network, cap_add, env_files, notify, log_driver, log_options, copy_to, lock, "
                "output, host_paths, secrets, other_containers)"
            ),
        ),
        (
            'label_filter = [""]',
            "daemon.label_filter[0]: '': expected a label, 'key' or 'key=value'",
        ),
        (
            'label_filter = ["a", "=x"]',
            "daemon.label_filter[1]: '=x': expected a label, 'key' or 'key=value'",
        ),
        (
            'label_filter = ["a b=c"]',
            "daemon.label_filter[0]: 'a b=c': expected a label, 'key' or 'key=value'",
        ),
    ],
)
def test_daemon_label_keys_refuse_bad_values(tmp_path: Path, line: str, error: str) -> None:
    """An unknown kind or allowance, a filter entry without a label key: load_config fails
    naming the key, the entry and what was expected."""
    assert load_errors(tmp_path, line + "\n") == [error]


def test_label_resync_has_a_floor(tmp_path: Path) -> None:
    """label_resync below 1 s is refused, naming the key."""
    (error,) = load_errors(tmp_path, 'label_resync = "0.5s"\n')
    assert error.startswith("daemon.label_resync: ")
