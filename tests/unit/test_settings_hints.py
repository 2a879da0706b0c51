"""Every error of a file in one run — a misspelt table, the keys' errors and the jobs'
whole-job rules together — and "did you mean" for a near miss, with only real names."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from scheduler.settings.messages import closest

from .configs import file_errors

if TYPE_CHECKING:
    from pathlib import Path

RUN = '[jobs.r]\nkind = "run"\nimage = "busybox"\nschedule = "@daily"\n'
ROTATE = '[jobs.o]\nkind = "rotate"\nschedule = "@daily"\npaths = ["/logs/*.log"]\n'
NEEDS_TARGET = (
    "a backup needs a target (archives in a volume or host directory), copy_to (archives "
    "streamed to remotes) or a repository (restic snapshots)"
)


def test_a_misspelt_table_does_not_hide_the_other_errors(tmp_path: Path) -> None:
    """[deamon], [job.x] and [default] are each an error, and [daemon], [defaults] and the
    jobs are still checked."""
    text = (
        "[deamon]\nname = 'x'\n[job.x]\nkind = 'run'\n[default]\ntimeout = '1h'\n"
        "[daemon]\nlog_level = 'loud'\n[defaults]\nretries = -1\n" + RUN + "bogus = 1\n"
    )
    assert file_errors(tmp_path, text) == [
        "deamon: unknown key (did you mean `daemon`?)",
        "job: unknown key (did you mean `jobs`?)",
        "default: unknown key (did you mean `defaults`?)",
        "daemon.log_level: expected 'debug', 'info', 'warning' or 'error' (got 'loud')",
        "defaults.retries: must be at least 0 (got -1)",
        "jobs.r.bogus: unknown key",
    ]


def test_a_whole_job_rule_is_reported_with_the_keys_errors(tmp_path: Path) -> None:
    """A backup with a bad key and no target: both at once, not the rule only after the
    key is fixed."""
    text = '[jobs.b]\nkind = "backup"\nschedule = "@daily"\nvolumes_from = "db"\nretries = "x"\n'
    assert file_errors(tmp_path, text) == [
        "jobs.b.retries: expected a whole number (got 'x')",
        f"jobs.b: {NEEDS_TARGET}",
    ]


def test_every_broken_rule_of_a_job_is_reported_at_once(tmp_path: Path) -> None:
    """No volumes, no max_size/max_age, signal and restart, concurrency 'allow': four
    rules, four errors."""
    text = ROTATE + 'signal = { containers = ["a"] }\nrestart = ["a"]\nconcurrency = "allow"\n'
    assert file_errors(tmp_path, text) == [
        "jobs.o: a rotate job needs the volumes that hold the files: volumes_from and/or volumes",
        "jobs.o: a rotate job needs max_size and/or max_age (when to rotate)",
        "jobs.o: signal and restart exclude each other: choose one",
        "jobs.o: concurrency 'allow' would let two runs rotate the same files",
    ]


def test_a_rule_that_needs_a_broken_key_is_left_out_the_others_are_not(tmp_path: Path) -> None:
    """volumes given as text: the rule about the volumes cannot be judged (it is left out);
    the rule about max_size can, and is reported."""
    text = ROTATE + 'volumes = "logs:/logs"\n'
    assert file_errors(tmp_path, text) == [
        "jobs.o.volumes: expected a list (got 'logs:/logs': a list is written ['logs:/logs'])",
        "jobs.o: a rotate job needs max_size and/or max_age (when to rotate)",
    ]


def test_a_misspelt_key_counts_as_the_key_it_looks_like(tmp_path: Path) -> None:
    """volume_from is taken for a misspelt volumes_from: no "needs a source" for a source
    that is there, misspelt; the target rule still shows."""
    text = '[jobs.b]\nkind = "backup"\nschedule = "@daily"\nvolume_from = "db"\n'
    assert file_errors(tmp_path, text) == [
        "jobs.b.volume_from: unknown key (did you mean `volumes_from`?)",
        f"jobs.b: {NEEDS_TARGET}",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            RUN.replace("schedule", "schedul"),
            "jobs.r.schedul: unknown key (did you mean `schedule`?)",
        ),
        (RUN + "enviroment = {}\n", "jobs.r.enviroment: unknown key (did you mean `env`?)"),
        (
            RUN + "maxsize = 1\n",
            (
                "jobs.r.maxsize: unknown key (did you mean `max_size`? that is a key of kind "
                "rotate, not of kind run)"
            ),
        ),
        (
            ROTATE + 'volumes = ["l:/logs"]\nmaxsize = "1MB"\n',
            "jobs.o.maxsize: unknown key (did you mean `max_size`?)",
        ),
        (RUN + "Image = 'x'\n", "jobs.r.Image: unknown key (did you mean `image`?)"),
        ("[daemon]\nlog_levl = 'info'\n" + RUN, "daemon.log_levl: unknown key (did you mean"),
        (RUN.replace('"run"', '"rnu"'), "jobs.r.kind: unknown kind 'rnu' (one of: run, exec, "),
        (
            RUN + 'notify = { webhok = "https://h/x" }\n',
            "jobs.r.notify.webhok: unknown key (did you mean `webhook`?)",
        ),
        (RUN + 'concurrency = "replce"\n', "(got 'replce'; did you mean `replace`?)"),
        (RUN + 'stop_signal = "SIGTREM"\n', "did you mean `SIGTERM`?"),
        (RUN + 'timezone = "europe/berlin"\n', "did you mean `Europe/Berlin`?"),
        (RUN + 'timezone = "America/New_Yrok"\n', "did you mean `America/New_York`?"),
        (
            '[daemon.remotes.box]\ntype = "sftpp"\n' + RUN,
            (
                "daemon.remotes.box.type: expected one of s3, sftp, webdav (got 'sftpp') (did you "
                "mean `sftp`?)"
            ),
        ),
        (
            (
                '[jobs.s]\nkind = "logship"\nschedule = "@daily"\ncontainers = ["w"]\n'
                'sink = { type = "syslg", address = "udp://h:514" }\n'
            ),
            (
                "jobs.s.sink.type: unknown sink type 'syslg' (one of: file, http, syslog, stdout) "
                "(did you mean `syslog`?)"
            ),
        ),
    ],
)
def test_a_near_miss_gets_the_name_meant(tmp_path: Path, text: str, expected: str) -> None:
    """Keys of every table, kinds, choices, signals, time zones, remote and sink types."""
    errors = file_errors(tmp_path, text)
    assert any(expected in line for line in errors), errors


def test_kind_backpu_is_told_backup(tmp_path: Path) -> None:
    """The whole line: the kinds there are, and the one meant."""
    errors = file_errors(tmp_path, RUN.replace('"run"', '"backpu"'))
    assert errors == [
        (
            "jobs.r.kind: unknown kind 'backpu' (one of: run, exec, signal, backup, logship, "
            "rotate, service) (did you mean `backup`?)"
        )
    ]


def test_a_key_of_another_kind_is_named_as_such(tmp_path: Path) -> None:
    """Not "did you mean": the key is right, the kind is not the one that takes it."""
    errors = file_errors(tmp_path, ROTATE + 'volumes = ["l:/logs"]\nmax_size = 1\ntarget = "t"\n')
    assert errors == [
        "jobs.o.target: unknown key: `target` is a key of kind backup, not of kind rotate"
    ]
    errors = file_errors(tmp_path, RUN + 'container = "app"\n')
    assert errors == [
        "jobs.r.container: unknown key: `container` is a key of kind exec, not of kind run"
    ]


def test_a_key_nothing_is_near_gets_no_guess(tmp_path: Path) -> None:
    """No far-fetched guess: a word near nothing gets the plain error."""
    assert file_errors(tmp_path, RUN + "bogus = 1\n") == ["jobs.r.bogus: unknown key"]
    assert file_errors(tmp_path, RUN.replace('"run"', '"xyz"')) == [
        "jobs.r.kind: unknown kind 'xyz' (one of: run, exec, signal, backup, logship, rotate, service)"
    ]


def test_the_guess_is_only_ever_one_of_the_choices() -> None:
    """closest() returns a real choice or nothing; never the word itself."""
    choices = ["schedule", "timezone", "volumes_from", "env"]
    assert closest("schedul", choices) == "schedule"
    assert closest("VOLUMES-FROM", choices) == "volumes_from"
    assert closest("enviroment", choices) == "env"
    assert closest("schedule", ["schedule"]) is None
    assert closest("zzz", choices) is None


def test_an_unknown_variable_is_told_the_variable_meant(tmp_path: Path) -> None:
    """A misspelt CRONTAINER_* variable is told the variable it is near."""
    errors = file_errors(tmp_path, RUN, {"CRONTAINER_DEFAULTS__TIMEOT": "1h"})
    assert errors == [
        (
            "CRONTAINER_DEFAULTS__TIMEOT: unknown environment variable (did you mean "
            "`CRONTAINER_DEFAULTS__TIMEOUT`?)"
        )
    ]


def test_an_override_error_names_the_variable_set(tmp_path: Path) -> None:
    """The file never said daemon.log_level: the variable did."""
    errors = file_errors(tmp_path, RUN, {"CRONTAINER_DAEMON__LOG_LEVEL": "loud"})
    assert errors == [
        "CRONTAINER_DAEMON__LOG_LEVEL: expected 'debug', 'info', 'warning' or 'error' (got 'loud')"
    ]
    errors = file_errors(
        tmp_path, RUN, {"CRONTAINER_DEFAULTS__NOTIFY": '{"retries": 1000, "hook": "x"}'}
    )
    assert errors == [
        "CRONTAINER_DEFAULTS__NOTIFY (at retries): must be at most 100 (got 1000)",
        "CRONTAINER_DEFAULTS__NOTIFY (at hook): unknown key (did you mean `webhook`?)",
    ]


def test_a_kinds_own_field_check_runs_on_defaults_and_on_the_rules_check(tmp_path: Path) -> None:
    """A field check that reads its kind (volumes_from's mode: a backup's is read-only)
    works in [defaults] and while the rules of a job with a bad key are judged: errors, not
    a crash of the whole load."""
    text = (
        '[defaults]\nvolumes_from = ["db"]\n'
        '[jobs.b]\nkind = "backup"\nschedule = "@daily"\nvolumes_from = ["db:rw"]\nretries = "x"\n'
    )
    errors = file_errors(tmp_path, text)
    assert "jobs.b.retries: expected a whole number (got 'x')" in errors
    assert not any("cannot be loaded" in line for line in errors), errors
    assert any(line.startswith("jobs.b.volumes_from") for line in errors), errors


def test_an_undefined_remote_is_named_beside_the_jobs_other_errors(tmp_path: Path) -> None:
    """copy_to's names are checked against [daemon.remotes] even when the job has other
    errors, so that fixing those does not reveal one more."""
    text = (
        '[jobs.b]\nkind = "backup"\nschedule = "@daily"\nvolumes_from = "db"\n'
        'target = "t"\ncopy_to = ["nas"]\nretries = "x"\n'
    )
    assert file_errors(tmp_path, text) == [
        "jobs.b.retries: expected a whole number (got 'x')",
        (
            "jobs.b.copy_to: no remote 'nas' is defined (remotes: none: add a "
            "[daemon.remotes.<name>] table)"
        ),
    ]
