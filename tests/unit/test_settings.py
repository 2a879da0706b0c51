"""The config loader: every error names the job (or section) and the field."""

from __future__ import annotations

import json
import re
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest

from jobs.rotate import RotateJob
from jobs.run import RunJob
from jobs.signal import SignalJob
from scheduler import settings
from scheduler.cli import main
from scheduler.errors import ConfigError
from scheduler.settings import DEFAULT_CONFIG_PATH, config_path, config_schema, load_config

ROOT = Path(__file__).resolve().parents[2]

GOOD_JOB = """
[jobs.hello]
kind = "run"
schedule = "*/5 * * * *"
image = "busybox:latest"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def errors_of(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), environ or {})
    return caught.value.errors


def test_example_config_loads_and_has_a_frequent_job() -> None:
    """config.example.toml is valid, and one job runs every few seconds for newcomers."""
    config = load_config(ROOT / "config.example.toml", {})
    assert set(config.jobs) >= {"heartbeat", "disk-report"}
    schedule = config.jobs["heartbeat"].schedule
    first, second = schedule.next_times(datetime.now(UTC), 2)
    assert (second - first).total_seconds() <= 10


def commented_examples() -> str:
    """The commented-out jobs (and remotes) of config.example.toml, uncommented."""
    examples, inside = [], False
    for line in (ROOT / "config.example.toml").read_text().splitlines():
        header = re.match(r"^# \[(jobs|defaults|daemon\.remotes)\.", line) is not None
        inside = header or (inside and line.startswith("#"))
        if inside and re.match(r"^# (\[[a-z]|[a-z_]+ += )", line):  # a table header or a key
            examples.append(line[2:])
    return "\n".join(examples) + "\n"


def test_commented_examples_in_the_example_config_are_valid(tmp_path: Path) -> None:
    """Every commented-out job (and remote) of config.example.toml validates once
    uncommented."""
    config = load_config(write(tmp_path, commented_examples()), {})
    expected = {"db-backup", "ship-logs", "rotate-logs", "flush-cache", "reopen-logs", "db-dump"}
    assert expected <= set(config.jobs)
    assert set(config.daemon.remotes) == {"offsite"}


def test_minimal_config_gets_documented_defaults(tmp_path: Path) -> None:
    """A job with only the required keys gets UTC, a 24h timeout, pull=missing."""
    config = load_config(write(tmp_path, GOOD_JOB), {})
    assert config.daemon.name == "crontainer"
    job = config.jobs["hello"].job
    assert isinstance(job, RunJob)
    assert (job.timezone, job.timeout, job.pull.value, job.stop_grace) == (
        "UTC",
        86400.0,
        "missing",
        10.0,
    )


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    """pydantic-settings would skip a missing file silently; we refuse."""
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", {})
    with pytest.raises(ConfigError, match="is not a file"):
        load_config(tmp_path, {})


def test_invalid_toml_names_the_file_and_line(tmp_path: Path) -> None:
    """A syntax error says where."""
    errors = errors_of(tmp_path, "[daemon\nname = 1\n")
    assert len(errors) == 1
    assert "config.toml: cannot read the config" in errors[0]
    assert "line 1" in errors[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[deamon]\nname='x'\n" + GOOD_JOB, "deamon: unknown key (did you mean `daemon`?)"),
        ("[daemon]\nnmae='x'\n" + GOOD_JOB, "daemon.nmae: unknown key (did you mean `name`?)"),
        (
            "[defaults]\nimagee='x'\n" + GOOD_JOB,
            "defaults.imagee: unknown key (no job kind has it) (did you mean `image`?)",
        ),
        (GOOD_JOB + "comand = 'x'\n", "jobs.hello.comand: unknown key (did you mean `command`?)"),
    ],
)
def test_unknown_keys_are_errors_at_every_level(tmp_path: Path, text: str, expected: str) -> None:
    """Top level, [daemon], [defaults] and each job refuse keys they do not know."""
    assert expected in errors_of(tmp_path, text)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            'schedule = "* * * * * *"',
            "jobs.hello.schedule: 6 fields: a seconds field must be marked",
        ),
        ('timeout = "ten minutes"', "jobs.hello.timeout: expected a duration such as '90s'"),
        ("timeout = 0", "jobs.hello.timeout: must be more than 0"),
        ('memory = "lots"', "jobs.hello.memory: expected a size such as '10MB'"),
        ("env = ['A=1']", "jobs.hello.env: expected a table"),
        ("command = 5", "jobs.hello.command"),
        ('pull = "sometimes"', "jobs.hello.pull: expected 'never', 'missing' or 'always'"),
        ('timezone = "Mars/Olympus"', "jobs.hello.timezone: unknown time zone 'Mars/Olympus'"),
        ('volumes = ["data"]', "jobs.hello.volumes: volume 'data': expected 'source:/target'"),
        ('volumes = ["./here:/x"]', "a host path must be absolute"),
        ('volumes = ["data:/x:rx"]', "mode must be 'ro' or 'rw'"),
        ('labels = { "crontainer.job" = "x" }', "jobs.hello.labels: label 'crontainer.job'"),
        ('stop_signal = "SIGNOPE"', "jobs.hello.stop_signal: unknown signal 'SIGNOPE'"),
        ("cpus = -1", "jobs.hello.cpus: must be more than 0"),
    ],
)
def test_bad_values_name_job_and_field(tmp_path: Path, extra: str, expected: str) -> None:
    """Bad schedules, durations, sizes and types each name jobs.<name>.<field>."""
    text = (
        GOOD_JOB.replace('schedule = "*/5 * * * *"\n', "")
        if extra.startswith("schedule")
        else GOOD_JOB
    )
    errors = errors_of(tmp_path, text + extra + "\n")
    assert any(expected in e for e in errors), errors


def test_missing_required_field_and_unknown_kind(tmp_path: Path) -> None:
    """Missing image, missing kind and an unknown kind are each reported, all at once."""
    text = """
[jobs.a]
kind = "run"
schedule = "@daily"
[jobs.b]
schedule = "@daily"
[jobs.c]
kind = "backupp"
schedule = "@daily"
[jobs."bad name"]
kind = "run"
"""
    errors = errors_of(tmp_path, text)
    assert "jobs.a.image: required key is missing" in errors
    assert (
        "jobs.b.kind: required key is missing (one of: run, exec, signal, backup, logship, rotate, service)"
        in errors
    )
    assert (
        "jobs.c.kind: unknown kind 'backupp' (one of: run, exec, signal, backup, logship, rotate, service)"
        " (did you mean `backup`?)" in errors
    )
    assert any(e.startswith("jobs.bad name: a job name must start with") for e in errors)
    assert len(errors) == 4


def test_all_errors_of_one_job_are_reported_together(tmp_path: Path) -> None:
    """A bad schedule does not hide a bad timeout in the same job."""
    text = '[jobs.x]\nkind = "run"\nimage = "i"\nschedule = "99 * * * *"\ntimeout = "x"\n'
    errors = errors_of(tmp_path, text)
    assert [e.split(":")[0] for e in errors] == ["jobs.x.schedule", "jobs.x.timeout"]


def test_defaults_apply_where_the_job_does_not_set_the_key(tmp_path: Path) -> None:
    """[defaults] fills gaps; the job's own value wins; env and labels merge key by key."""
    text = """
[defaults]
timezone = "Europe/Berlin"
timeout = "2h"
labels = { team = "ops", tier = "low" }
env = { TZ = "UTC" }
[jobs.a]
kind = "run"
schedule = "@daily"
image = "busybox"
timeout = "5m"
labels = { tier = "high" }
"""
    job = load_config(write(tmp_path, text), {}).jobs["a"].job
    assert isinstance(job, RunJob)
    assert job.timezone == "Europe/Berlin"
    assert job.timeout == 300.0
    assert job.labels == {"team": "ops", "tier": "high"}
    assert job.env == {"TZ": "UTC"}


def test_a_bad_default_is_reported_once_under_defaults(tmp_path: Path) -> None:
    """The error names defaults.<field>, not every job that inherits it."""
    text = '[defaults]\ntimeout = "soon"\n' + GOOD_JOB + GOOD_JOB.replace("hello", "other")
    errors = errors_of(tmp_path, text)
    assert len(errors) == 1
    assert errors[0].startswith("defaults.timeout: expected a duration")


def test_a_default_signal_is_a_default_of_the_kinds_whose_shape_it_has(tmp_path: Path) -> None:
    """The signal kind's signal is a name, rotate's a table: a [defaults] signal of either
    shape is a default of the kinds that take that shape, and the other kind's jobs load
    without it; a value of neither shape is [defaults]' error, once."""
    jobs = (
        '[jobs.s]\nkind = "signal"\nschedule = "@daily"\ncontainers = ["app"]\n'
        '[jobs.r]\nkind = "rotate"\nschedule = "@daily"\nvolumes_from = ["logs"]\n'
        'paths = ["/l/*.log"]\nmax_size = "1MiB"\n'
    )

    def loaded(defaults: str) -> tuple[SignalJob, RotateJob]:
        found = load_config(write(tmp_path, defaults + jobs), {}).jobs
        signal_job, rotate_job = found["s"].job, found["r"].job
        assert isinstance(signal_job, SignalJob)
        assert isinstance(rotate_job, RotateJob)
        return signal_job, rotate_job

    signal_job, rotate_job = loaded('[defaults]\nsignal = "USR1"\n')
    assert (signal_job.signal, rotate_job.signal) == ("SIGUSR1", None)
    signal_job, rotate_job = loaded(
        '[defaults]\nsignal = { containers = ["app"], signal = "HUP" }\n'
    )
    assert signal_job.signal == "SIGHUP"  # the kind's own default
    assert rotate_job.signal is not None
    assert rotate_job.signal.signal == "SIGHUP"
    errors = errors_of(tmp_path, "[defaults]\nsignal = 5\n" + jobs)
    assert len(errors) == 1
    assert errors[0].startswith("defaults.signal: ")


def test_kind_cannot_have_a_default(tmp_path: Path) -> None:
    """Every job says what it is."""
    assert "defaults.kind: a job's kind cannot have a default" in errors_of(
        tmp_path, '[defaults]\nkind = "run"\n' + GOOD_JOB
    )


def test_environment_overrides_daemon_and_defaults(tmp_path: Path) -> None:
    """CRONTAINER_DAEMON__X and CRONTAINER_DEFAULTS__X win over the file; JSON for tables."""
    text = '[daemon]\nmax_concurrent_runs = 2\nname = "file"\n' + GOOD_JOB
    environ = {
        "CRONTAINER_DAEMON__MAX_CONCURRENT_RUNS": "4",
        "crontainer_daemon__log_format": "json",
        "CRONTAINER_DEFAULTS__TIMEOUT": "90s",
        "CRONTAINER_DEFAULTS__LABELS": '{"team": "ops"}',
        "CRONTAINER_CONFIG": "/ignored/by/load_config",
        "PATH": "/bin",
    }
    config = load_config(write(tmp_path, text), environ)
    assert config.daemon.max_concurrent_runs == 4
    assert config.daemon.name == "file"
    assert config.daemon.log_format == "json"
    job = config.jobs["hello"].job
    assert isinstance(job, RunJob)
    assert job.timeout == 90.0
    assert job.labels == {"team": "ops"}


@pytest.mark.parametrize(
    ("var", "value", "expected"),
    [
        ("CRONTAINER_DEBUG", "1", "CRONTAINER_DEBUG: unknown environment variable"),
        ("CRONTAINER_DAEMON__NAMEE", "x", "CRONTAINER_DAEMON__NAMEE: unknown environment variable"),
        (
            "CRONTAINER_JOBS__HELLO__IMAGE",
            "x",
            "CRONTAINER_JOBS__HELLO__IMAGE: unknown environment",
        ),
        (
            "CRONTAINER_DAEMON__MAX_CONCURRENT_RUNS",
            "many",
            "CRONTAINER_DAEMON__MAX_CONCURRENT_RUNS: expected a whole number",
        ),
        (
            "CRONTAINER_DEFAULTS__LABELS",
            "{bad json",
            "CRONTAINER_DEFAULTS__LABELS: a list or table",
        ),
        ("CRONTAINER_DEFAULTS__CPUS", "lots", "CRONTAINER_DEFAULTS__CPUS: expected a number"),
        ("CRONTAINER_DEFAULTS__KIND", "run", "CRONTAINER_DEFAULTS__KIND: unknown environment"),
        ("CRONTAINER_DEFAULTS__CATCH_UP", "maybe", "CRONTAINER_DEFAULTS__CATCH_UP: expected true"),
    ],
)
def test_unknown_or_bad_environment_variables_are_errors(
    tmp_path: Path, var: str, value: str, expected: str
) -> None:
    """A typo in a CRONTAINER_* variable is an error, never silently ignored."""
    errors = errors_of(tmp_path, GOOD_JOB, {var: value})
    assert any(expected in e for e in errors), errors


@pytest.mark.parametrize(
    ("var", "text", "attribute", "value"),
    [
        ("CRONTAINER_DEFAULTS__CATCH_UP", "yes", "catch_up", True),
        ("CRONTAINER_DEFAULTS__CATCH_UP", " On ", "catch_up", True),
        ("CRONTAINER_DEFAULTS__CATCH_UP", "1", "catch_up", True),
        ("CRONTAINER_DEFAULTS__RUN_ON_START", "TRUE", "run_on_start", True),
        ("CRONTAINER_DEFAULTS__ENABLED", "off", "enabled", False),
        ("CRONTAINER_DEFAULTS__ENABLED", "no", "enabled", False),
        ("CRONTAINER_DEFAULTS__ENABLED", "0", "enabled", False),
        ("CRONTAINER_DEFAULTS__RETRIES", " +3 ", "retries", 3),
        ("CRONTAINER_DEFAULTS__CPUS", "1.5", "cpus", 1.5),
        ("CRONTAINER_DEFAULTS__CPUS", "2", "cpus", 2.0),
        ("CRONTAINER_DEFAULTS__TIMEOUT", "1", "timeout", 1.0),
        ("CRONTAINER_DEFAULTS__DESCRIPTION", " 42 ", "description", " 42 "),
    ],
)
def test_environment_text_becomes_the_keys_type(
    tmp_path: Path, var: str, text: str, attribute: str, value: object
) -> None:
    """An environment variable is text: a flag reads true/yes/on/1 and false/no/off/0 (any
    case, blanks around), a number its digits; a text key gets the text as it is."""
    config = load_config(write(tmp_path, GOOD_JOB), {var: text})
    assert getattr(config.jobs["hello"].job, attribute) == value


@pytest.mark.parametrize(
    ("http", "address"),
    [
        ("", None),
        ("192.0.2.7:9100", ("192.0.2.7", 9100)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
        ("[::]:9100", ("::", 9100)),
        ("[::1]:8137", ("::1", 8137)),
        ("NAS-X:8137", ("NAS-X", 8137)),  # a host name as written
    ],
)
def test_the_http_listener_address_is_host_and_port_ipv6_too(
    tmp_path: Path, http: str, address: tuple[str, int] | None
) -> None:
    """``http = "host:port"``: the port after the last colon, an IPv6 host without its
    brackets; '' turns the listener off."""
    config = load_config(write(tmp_path, f'[daemon]\nhttp = "{http}"\n' + GOOD_JOB), {})
    assert config.daemon.http_address() == address


def test_config_path_precedence() -> None:
    """--config, else CRONTAINER_CONFIG, else /etc/crontainer/config.toml."""
    assert config_path("a.toml", {"CRONTAINER_CONFIG": "b.toml"}) == Path("a.toml")
    assert config_path(None, {"CRONTAINER_CONFIG": "b.toml"}) == Path("b.toml")
    assert config_path(None, {}) == DEFAULT_CONFIG_PATH == Path("/etc/crontainer/config.toml")


def test_daemon_name_must_fit_labels_and_container_names(tmp_path: Path) -> None:
    """The daemon's name ends up in container names."""
    errors = errors_of(tmp_path, '[daemon]\nname = "my daemon"\n' + GOOD_JOB)
    assert any(e.startswith("daemon.name: expected text matching the pattern") for e in errors), (
        errors
    )


def schema_validator(capsys: pytest.CaptureFixture[str]) -> jsonschema.Draft202012Validator:
    """`crontainer schema`'s output, checked as a JSON Schema."""
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_the_example_config_validates_against_the_published_schema(
    capsys: pytest.CaptureFixture[str],
) -> None:
    validator = schema_validator(capsys)
    example = tomllib.loads((ROOT / "config.example.toml").read_text())
    assert list(validator.iter_errors(example)) == []
    assert list(validator.iter_errors(tomllib.loads(commented_examples()))) == []


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('[jobs.a]\nkind = "run"\nschedule = "@daily"\nimage = "x"\nimgae = "y"\n', "imgae"),
        ('[jobs.a]\nkind = "cron"\nschedule = "@daily"\n', "cron"),
        ("[daemon]\nnmae = 'x'\n", "nmae"),
        ("[defaults]\ntimeout = true\n", "True"),
        (
            (
                '[jobs.s]\nkind = "logship"\nschedule = "@daily"\ncontainers = ["a"]\n'
                '[jobs.s.sink]\ntype = "kafka"\n'
            ),
            "kafka",
        ),
    ],
)
def test_the_schema_refuses_what_the_loader_refuses(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, where: str
) -> None:
    validator = schema_validator(capsys)
    errors = list(validator.iter_errors(tomllib.loads(text)))
    assert errors
    assert any(where in str(e.message) or where in str(e.instance) for e in errors), errors
    with pytest.raises(ConfigError):
        load_config(write(tmp_path, text), {})


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ('"abc"', "expected a whole number (got 'abc')"),
        ('"a @b"', "expected a whole number (got 'a @b')"),
        ("2.5", "expected a whole number (got 2.5)"),
        ("true", "expected a whole number (got true)"),
        # address-like text may hold a user, a password or a token: never shown
        ('"https://h/x?t=SECRET"', "expected a whole number"),
        ('"x://SECRET"', "expected a whole number"),
        ('"me@host"', "expected a whole number"),
        ("[1]", "expected a whole number"),  # not a plain value
    ],
)
def test_an_error_shows_the_refused_value_unless_it_may_hold_a_secret(
    tmp_path: Path, value: str, error: str
) -> None:
    """An error ends with "(got <value>)" for a plain value; never for text that looks like
    an address (``://`` or ``user@``), nor for a list or table; and it is the only error."""
    assert errors_of(tmp_path, GOOD_JOB + f"retries = {value}\n") == [
        f"jobs.hello.retries: {error}"
    ]


@pytest.mark.parametrize(
    ("key", "value"),
    [("schedule", "5"), ("schedule", '["@daily"]'), ("timezone", "5"), ("timezone", "[]")],
)
def test_a_schedule_or_time_zone_that_is_not_text_is_one_error_naming_the_key(
    tmp_path: Path, key: str, value: str
) -> None:
    """Not text: one error for that key, and no crash ("cannot be loaded") of the loader."""
    job = '[jobs.hello]\nkind = "run"\nimage = "busybox:latest"\n'
    schedule = "" if key == "schedule" else 'schedule = "@daily"\n'
    errors = errors_of(tmp_path, job + schedule + f"{key} = {value}\n")
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"jobs.hello.{key}: expected a string"), errors


def test_load_config_reads_the_given_environment_or_else_the_processs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``environ`` given: only it counts (the process's CRONTAINER_* are ignored); not given:
    the process's environment is read."""
    monkeypatch.setenv("CRONTAINER_DAEMON__NAME", "from-process")
    path = write(tmp_path, '[daemon]\nname = "from-file"\n' + GOOD_JOB)
    assert load_config(path, {}).daemon.name == "from-file"
    assert load_config(path, {"CRONTAINER_DAEMON__NAME": "given"}).daemon.name == "given"
    assert load_config(path).daemon.name == "from-process"


def test_an_unexpected_failure_while_loading_is_a_config_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever goes wrong inside, the caller gets one ConfigError naming the file and the
    exception, never the exception itself (a reload must not stop the daemon)."""

    def broken(path: Path, env: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(settings, "_load_config", broken)
    path = write(tmp_path, GOOD_JOB)
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert caught.value.errors == [f"{path}: cannot be loaded: RuntimeError: boom"]


def test_a_bad_schedule_alone_is_exactly_one_error(tmp_path: Path) -> None:
    """A job whose only fault is its schedule gets that one error, not a second one."""
    text = GOOD_JOB.replace('"*/5 * * * *"', '"99 * * * *"')
    assert errors_of(tmp_path, text) == [
        "jobs.hello.schedule: minute field: 99 is out of range 0-59"
    ]


def test_a_bad_default_with_a_colon_in_its_value_is_still_reported_once(tmp_path: Path) -> None:
    """The key of a bad default is found whatever its message holds after the key."""
    text = '[defaults]\nretries = "1:2"\n' + GOOD_JOB + GOOD_JOB.replace("hello", "other")
    assert errors_of(tmp_path, text) == ["defaults.retries: expected a whole number (got '1:2')"]


def test_the_published_schema_is_draft_2020_12_and_closed_at_every_table() -> None:
    """``crontainer schema``: a 2020-12 schema titled for crontainer whose top level and
    [defaults] refuse unknown keys; [defaults] has every job key but ``kind``; [jobs.<name>]
    picks its kind by ``kind``."""
    schema = config_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "crontainer configuration"
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {"daemon", "defaults", "jobs"}
    assert schema["properties"]["defaults"]["anyOf"][0] == {"$ref": "#/$defs/Defaults"}
    defaults = schema["$defs"]["Defaults"]
    assert defaults["additionalProperties"] is False
    assert "kind" not in defaults["properties"]
    assert {"timeout", "timezone", "image", "retries", "keep_last"} <= set(defaults["properties"])
    jobs = schema["properties"]["jobs"]["additionalProperties"]
    assert jobs["discriminator"]["propertyName"] == "kind"
    assert set(jobs["discriminator"]["mapping"]) == {
        "run",
        "exec",
        "signal",
        "backup",
        "logship",
        "rotate",
        "service",
    }


def test_jobs_share_their_equal_texts_and_schedules(tmp_path: Path) -> None:
    """Jobs with the same image, command words and schedule hold one object of each (a
    config of thousands of jobs keeps each distinct text and trigger once)."""
    job = 'kind = "run"\nimage = "busybox:latest"\nschedule = "5 4 * * *"\n'
    text = "".join(f'[jobs.j{n}]\n{job}command = ["sh", "-c", "echo {n}"]\n' for n in range(3))
    jobs = load_config(write(tmp_path, text)).jobs
    runs = [jobs[f"j{n}"].job for n in range(3)]
    assert all(isinstance(run, RunJob) for run in runs)
    first, *others = [run for run in runs if isinstance(run, RunJob)]
    assert all(o.image is first.image for o in others)
    words = [c for c in (run.command for run in [first, *others]) if isinstance(c, list)]
    assert len(words) == 3
    assert all(w[0] is words[0][0] and w[1] is words[0][1] for w in words)
    assert all(jobs[f"j{n}"].schedule is jobs["j0"].schedule for n in (1, 2))
    assert [o.command for o in others] == [["sh", "-c", "echo 1"], ["sh", "-c", "echo 2"]]


def test_jobs_of_one_config_share_their_empty_tables_and_still_read_as_configured(
    tmp_path: Path,
) -> None:
    """Two jobs that leave env and volumes unset hold one shared empty table and list, and
    one set of the keys given; each still reads as written, equal jobs stay equal, and a
    copy that sets a key does not change the other's set of keys."""
    path = tmp_path / "c.toml"
    path.write_text(
        f'[daemon]\nstate_dir = "{tmp_path}/state"\n'
        + "".join(
            f'[jobs.{name}]\nkind = "run"\nimage = "busybox"\nschedule = "@daily"\n'
            f'command = "{command}"\n'
            for name, command in (("a", "true"), ("b", "false"), ("c", "true"))
        )
        + '[jobs.d]\nkind = "run"\nimage = "busybox"\nschedule = "@daily"\ncommand = "true"\n'
        'env = { X = "1" }\n'
    )
    jobs = {name: entry.job for name, entry in load_config(path, {}).jobs.items()}
    a, b, c, d = (jobs[name] for name in "abcd")
    assert isinstance(a, RunJob)
    assert isinstance(b, RunJob)
    assert isinstance(d, RunJob)
    assert a.env is b.env
    assert a.volumes is b.volumes
    assert a.env == {}
    assert a.volumes == []
    assert a.model_fields_set is b.model_fields_set
    assert a.model_fields_set == {"kind", "image", "schedule", "command"}
    assert d.env == {"X": "1"}
    assert d.model_fields_set == a.model_fields_set | {"env"}
    assert a == c
    assert a != b
    assert a.command == "true"
    assert b.command == "false"
    changed = a.model_copy(update={"retries": 2})
    assert "retries" in changed.model_fields_set
    assert "retries" not in b.model_fields_set
