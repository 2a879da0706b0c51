"""A corpus of bad config files, each loaded: every error line names the place as written
in the file (or the environment variable that was set), and none speaks of the
implementation — no model's class name (collected from the model modules, so a new model
is covered without touching this file), no pydantic wording ("Input should", "instance
of", tags, discriminators), no Python values (True, None) — and none shows a secret."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import tomllib
from typing import TYPE_CHECKING

import pytest
from pydantic import BaseModel

import jobs
import scheduler.settings
from jobs.kinds import KINDS
from scheduler.errors import ConfigError
from scheduler.settings import entries, load_config

if TYPE_CHECKING:
    from pathlib import Path


def _model_names() -> set[str]:
    """The class names of every model of the config (and of the enums it uses), found in
    the modules of ``jobs`` and ``scheduler.settings``, and the models made from them."""
    names: set[str] = set()
    for package in (jobs, scheduler.settings):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if ".tools" in info.name:
                continue
            module = importlib.import_module(info.name)
            for _, found in inspect.getmembers(module, inspect.isclass):
                if issubclass(found, BaseModel) or found.__module__.startswith(package.__name__):
                    names.add(found.__name__)
    names.update(entries._defaults_model(kind).__name__ for kind in KINDS.values())
    return names - {"BaseModel"}


MODEL_NAMES = _model_names()
JARGON = re.compile(
    r"Input should|instance of|model_|pydantic|\btags?\b|discriminator|Field required|"
    r"Extra inputs|function-(after|before|wrap|plain)|union\[|list\[|dict\[|Value error|"
    r"Assertion failed|validation error|dictionary|\bstr\b|\bint\b|\bfloat\b|\bbool\b",
    re.IGNORECASE,
)
PYTHON = re.compile(r"\b(True|False|None|Input)\b|\{'|<class")
"""Python's own spelling of values (the file writes true, false, tables as { a = … })."""
SECRETS = ("918273", "SECRETPW", "SECRETTK")
"""Markers put in values under secret keys: no error may show them."""

RUN = '[jobs.r]\nkind = "run"\nimage = "busybox"\nschedule = "@daily"\n'
EXEC = '[jobs.e]\nkind = "exec"\ncontainer = "app"\nschedule = "@daily"\ncommand = "true"\n'
SIGNAL = '[jobs.g]\nkind = "signal"\nschedule = "@daily"\ncontainers = ["app"]\n'
BACKUP = '[jobs.b]\nkind = "backup"\nschedule = "@daily"\nvolumes_from = "db"\ntarget = "t"\n'
REPO = (
    '[jobs.b]\nkind = "backup"\nschedule = "@daily"\nvolumes = ["data:/data"]\n'
    'repository = "rest:http://h:8000/x"\n'
)
SHIP = '[jobs.s]\nkind = "logship"\nschedule = "@daily"\ncontainers = ["web"]\n'
ROTATE = (
    '[jobs.o]\nkind = "rotate"\nschedule = "@daily"\nvolumes = ["logs:/logs"]\n'
    'paths = ["/logs/*.log"]\nmax_size = "10MB"\n'
)
SERVICE = '[jobs.v]\nkind = "service"\nimage = "busybox"\nschedule = "@daily"\n'
S3 = '[daemon.remotes.box]\ntype = "s3"\nbucket = "backups"\n'

CORPUS: dict[str, tuple[str, dict[str, str]]] = {
    # top level
    "misspelt tables": ("[deamon]\nname = 'x'\n[job.x]\nkind = 'run'\n[default]\nx = 1\n", {}),
    "tables as values": ("daemon = 5\ndefaults = 'x'\njobs = 3\n", {}),
    "a job that is not a table": ('[jobs]\nkind = "run"\nx = 5\n', {}),
    "a bad job name and no kind": (
        '[jobs."a b"]\nkind = "run"\n[jobs.k]\nschedule = "@daily"\n',
        {},
    ),
    # every kind: unknown keys, near misses, another kind's key, whole-job rules
    "run": (RUN + 'comand = "x"\nenviroment = {}\ntarget = "t"\nvolumes = "a:/a"\n', {}),
    "run types": (RUN + 'retries = "3"\nenabled = "off"\ncatch_up = 1\ncpus = true\n', {}),
    "run tables as text": (RUN + 'labels = "x"\nenv = "A=1"\nnotify = "x"\n', {}),
    "run command": (RUN + "command = 5\nentrypoint = { a = 1 }\n", {}),
    "run lists": (RUN + 'env_files = "/x"\ncap_add = "NET_ADMIN"\nretry_exit_codes = 1\n', {}),
    "run sizes and durations": (
        RUN + 'memory = "lots"\ntimeout = "5 minutes"\njitter = true\nstop_grace = [1]\n',
        {},
    ),
    "run choices": (
        RUN + 'concurrency = "forbidd"\npull = "sometimes"\nstop_signal = "SIGTREM"\n',
        {},
    ),
    "run secrets": (
        RUN
        + 'env = { A = { env = 918273 }, B = { fil = "/x" }, C = { file = "rel" }, D = 918273,'
        + ' E = { env = "X", extra = "v" }, F = { env = "X", file = "/y" } }\n',
        {},
    ),
    "service": (
        SERVICE
        + 'mode = "replicated"\nreplicas = 0\nconstraints = "node.role == worker"\n'
        + 'secrets = [5]\nvolumes_from = ["db"]\ncpus = "half"\n',
        {},
    ),
    "service global with replicas": (
        SERVICE + 'mode = "global-job"\nreplicas = 3\nenv = { PW = { env = 918273 } }\n',
        {},
    ),
    "exec": (EXEC.replace('command = "true"\n', "") + "comand = 'x'\nenv = { A = 1 }\n", {}),
    "exec command as table": (EXEC.replace('"true"', "{ x = 1 }"), {}),
    "signal": (SIGNAL + 'signal = "SIGHUB"\nrestart = "yes"\ncontainer = "app"\n', {}),
    "selectors": (
        SIGNAL.replace('["app"]', '["label=", "compose=a/b/c", 5]')
        + BACKUP.replace('"db"', '["compose=x:rw"]')
        + 'stop = ["composee=app"]\n',
        {},
    ),
    "signal containers": (SIGNAL.replace('["app"]', '"app"') + "containers_ = 1\n", {}),
    "backup rules and keys": (
        '[jobs.b]\nkind = "backup"\nschedule = "@daily"\nvolume_from = "db"\ntimeout = "x"\n',
        {},
    ),
    "backup pre_exec": (
        BACKUP + 'pre_exec = "mysqldump"\npost_exec = [{ container = "db" }, { command = 5 }]\n',
        {},
    ),
    "backup pre_exec keys": (BACKUP + 'pre_exec = [{ container = "db", comand = "x" }]\n', {}),
    "backup encrypt as text": (BACKUP + 'encrypt = "age1x"\n', {}),
    "backup encrypt both": (
        BACKUP + 'encrypt = { recipients = "age1", passphrase = { file = "rel" } }\n',
        {},
    ),
    "backup encrypt unknown": (BACKUP + "encrypt = { recipient = ['x'] }\n", {}),
    "backup keep": (BACKUP + 'keep_last = 0\nkeep_daily = "3"\ncompression = "xz"\n', {}),
    "backup repository secrets": (
        REPO + 'password = 918273645\nenv = { AWS = { env = 918273 } }\ncheck = "daily"\n',
        {},
    ),
    "backup ssh": (
        REPO.replace("rest:http://h:8000/x", "sftp:u@h:/x")
        + 'password = "p"\nssh = { key = 918273, known_hosts = { env = "X" } }\n',
        {},
    ),
    "backup ssh as text": (REPO + 'password = "p"\nssh = "x"\n', {}),
    "backup copy_to": (BACKUP + 'copy_to = "box"\n', {}),
    "backup copy_to unknown": (BACKUP + 'copy_to = ["nowhere"]\n', {}),
    "logship no sink": (SHIP, {}),
    "logship sink types": (SHIP + 'sink = { type = "gelf" }\n', {}),
    "logship sink no type": (SHIP + 'sink = { url = "http://x" }\n', {}),
    "logship sink as text": (SHIP + 'sink = "stdout"\n', {}),
    "logship sink keys": (
        SHIP + 'sink = { type = "syslog", adress = "udp://SECRETPW@h", facility = "locl0" }\n',
        {},
    ),
    "logship http sink": (
        SHIP
        + 'sink = { type = "http", url = "htp://u:SECRETPW@h/?t=SECRETTK", timeout = "x", '
        + "headers = { A = { env = 918273 }, B = 918273 }, ok_status = 200 }\n",
        {},
    ),
    "logship file sink": (SHIP + 'sink = { type = "file", volume = 5, path = "/abs" }\n', {}),
    "logship stdout sink": (SHIP + 'sink = { type = "stdout", batch_lines = "x" }\n', {}),
    "logship rules": (
        SHIP.replace('containers = ["web"]\n', "") + 'sink = { type = "stdout" }\n',
        {},
    ),
    "logship lists": (SHIP + 'sink = { type = "stdout" }\npaths = "/x"\nlog_options = "x"\n', {}),
    "rotate signal as text": (ROTATE + 'signal = "app"\n', {}),
    "rotate signal spec": (ROTATE + 'signal = { containers = "app", signal = "SIGHUB" }\n', {}),
    "rotate signal keys": (ROTATE + "signal = { container = ['app'] }\n", {}),
    "rotate rules": (
        ROTATE.replace('max_size = "10MB"\n', "") + 'restart = ["a"]\nmaxsize = 1\n',
        {},
    ),
    "rotate sizes": (ROTATE.replace('"10MB"', "true") + 'min_size = "10 MB"\nmode = "move"\n', {}),
    "notify": (
        RUN + 'notify = { on = "failure", webhook = "htps://u:SECRETPW@h", cooldown = "x" }\n',
        {},
    ),
    "notify keys": (RUN + 'notify = { hook = "x", headers = { A = 918273 }, retries = "3" }\n', {}),
    "schedules": (
        RUN.replace("@daily", "every day at 3")
        + RUN.replace("jobs.r", "jobs.q").replace("@daily", "0 0 3 * * ? 2027")
        + RUN.replace("jobs.r", "jobs.p").replace("@daily", "@reboot"),
        {},
    ),
    "time zone": (RUN + 'timezone = "Europe/Berln"\n', {}),
    "daemon keys": (
        '[daemon]\nlog_level = "warn"\nhttp = 8137\nmaxsize = 1\nstate_dir = 5\n' + RUN,
        {},
    ),
    "defaults": ("[defaults]\ntimeout = true\nimagee = 'x'\nlabels = 'x'\n" + RUN, {}),
    "remotes": (
        S3
        + "access_key_id = 918273\nsecret_access_key = { env = 918273 }\nregion = 5\n"
        + '[daemon.remotes.dav]\ntype = "webdv"\n[daemon.remotes.ssh]\nport = 1\n'
        + RUN,
        {},
    ),
    "remotes sftp": (
        '[daemon.remotes.box]\ntype = "sftp"\nhost = "h"\nuser = "u"\nkey = { fil = "/k" }\n'
        'known_hosts = 5\nport = "22"\n' + RUN,
        {},
    ),
    "remotes as text": ('[daemon]\nremotes = "box"\n' + RUN, {}),
    "env overrides": (
        RUN,
        {
            "CRONTAINER_DAEMON__LOG_LEVEL": "warn",
            "CRONTAINER_DAEMON__LOGLEVEL": "info",
            "CRONTAINER_DEFAULTS__TIMEOUT": "soon",
            "CRONTAINER_DEFAULTS__CATCH_UP": "maybe",
            "CRONTAINER_DEFAULTS__LABELS": '{"team": 5}',
            "CRONTAINER_DAEMON__REMOTES": '{"box": {"type": "s3", "bucket": "B"}}',
        },
    ),
}


def _errors(tmp_path: Path, text: str, env: dict[str, str]) -> list[str]:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env)
    return caught.value.errors


def _segments(where: str) -> list[str | int]:
    """``jobs.b.pre_exec[0].command`` as its parts (the corpus's names hold no dots)."""
    parts: list[str | int] = []
    for word in where.split("."):
        name, *indexes = word.split("[")
        parts.append(name)
        parts.extend(int(i.rstrip("]")) for i in indexes)
    return parts


def _written(data: object, where: str) -> bool:
    """``where`` is a place in the file: every part but the last is there, and the last is
    a key of a table (a missing key) or there too."""
    *parents, last = _segments(where)
    for part in parents:
        data = _child(data, part)
        if data is _MISSING:
            return False
    return isinstance(data, dict) or (isinstance(data, list) and isinstance(last, int))


_MISSING = object()


def _child(data: object, part: str | int) -> object:
    if isinstance(data, dict):
        return data.get(part, _MISSING)
    if isinstance(data, list) and isinstance(part, int) and part < len(data):
        return data[part]
    return _MISSING


def test_the_corpus_is_large_and_covers_every_kind() -> None:
    """At least 40 files, and a job of every kind among them."""
    assert len(CORPUS) >= 40
    for kind in KINDS:
        assert any(f'kind = "{kind}"' in text for text, _ in CORPUS.values()), kind


def test_the_scan_knows_the_models() -> None:
    """The names are collected, not listed: the models of every union a user can get wrong."""
    wanted = {"SignalSpec", "EnvSecret", "FileSecret", "SyslogSink", "S3Remote", "ExecSpec"}
    assert wanted <= MODEL_NAMES
    assert {"Encryption", "NotifySpec", "DaemonSettings", "BackupJobDefaults"} <= MODEL_NAMES


@pytest.mark.parametrize("case", list(CORPUS))
def test_every_error_is_in_the_users_words(tmp_path: Path, case: str) -> None:
    """No class name, no pydantic wording, no secret; the place as written in the file."""
    text, env = CORPUS[case]
    errors = _errors(tmp_path, text, env)
    assert errors, case
    data = tomllib.loads(text)
    for line in errors:
        where, _, message = line.partition(": ")
        assert message, line
        names = {n for n in MODEL_NAMES if re.search(rf"\b{n}\b", line)}
        assert not names, line
        assert JARGON.search(line) is None, line
        assert PYTHON.search(line) is None, line
        for secret in SECRETS:
            assert secret not in line, line
        var = where.split(" ", 1)[0]
        if var.startswith("CRONTAINER_"):
            assert var in env, line
        else:
            assert _written(data, where), line


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        (
            "misspelt tables",
            [
                "deamon: unknown key (did you mean `daemon`?)",
                "job: unknown key (did you mean `jobs`?)",
                "default: unknown key (did you mean `defaults`?)",
            ],
        ),
        (
            "rotate signal as text",
            ["jobs.o.signal: expected a table: { containers = … } (got 'app')"],
        ),
        (
            "logship sink types",
            ["jobs.s.sink.type: unknown sink type 'gelf' (one of: file, http, syslog, stdout)"],
        ),
        (
            "logship sink keys",
            [
                "jobs.s.sink.address: required key is missing",
                (
                    "jobs.s.sink.facility: unknown facility 'locl0' (did you mean `local0`?) "
                    "(one of: kern, user, mail, daemon, auth, syslog, lpr, news, uucp, cron, authpriv, ftp, ntp, audit, "
                    "alert, clock, local0, local1, local2, local3, local4, local5, local6, local7)"
                ),
                "jobs.s.sink.adress: unknown key (did you mean `address`?)",
            ],
        ),
        (
            "backup rules and keys",
            [
                (
                    "jobs.b.timeout: expected a duration such as '90s', '1h30m', '2d' or a number of "
                    "seconds (units ms, s, m, h, d, w), got 'x'"
                ),
                "jobs.b.volume_from: unknown key (did you mean `volumes_from`?)",
                (
                    "jobs.b: a backup needs a target (archives in a volume or host directory), "
                    "copy_to (archives streamed to remotes) or a repository (restic snapshots)"
                ),
            ],
        ),
        (
            "run secrets",
            [
                "jobs.r.env.A.env: expected a string",
                (
                    "jobs.r.env.B: expected a string, { env = … } or { file = … }; unknown key "
                    "`fil`, did you mean `file`?"
                ),
                "jobs.r.env.C.file: file 'rel' must be an absolute path in the daemon's container",
                "jobs.r.env.D: expected a string, { env = … } or { file = … }",
                # `env` is a key of one form: only `extra`, in none of them, is unknown
                "jobs.r.env.E: expected a string, { env = … } or { file = … }; unknown key `extra`",
                (
                    "jobs.r.env.F: expected a string, { env = … } or { file = … }; `env` and "
                    "`file` are keys of different forms: write one of them"
                ),
            ],
        ),
        (
            "run",
            [
                "jobs.r.volumes: expected a list (got 'a:/a': a list is written ['a:/a'])",
                "jobs.r.comand: unknown key (did you mean `command`?)",
                "jobs.r.enviroment: unknown key (did you mean `env`?)",
                "jobs.r.target: unknown key: `target` is a key of kind backup, not of kind run",
            ],
        ),
        (
            "env overrides",
            [
                (
                    "CRONTAINER_DAEMON__LOGLEVEL: unknown environment variable (did you mean "
                    "`CRONTAINER_DAEMON__LOG_LEVEL`?)"
                ),
                (
                    "CRONTAINER_DAEMON__REMOTES (at box.bucket): expected text matching the pattern "
                    "'^[a-z0-9][a-z0-9.-]{1,62}$' (got 'B')"
                ),
                "CRONTAINER_DAEMON__REMOTES (at box.access_key_id): required key is missing",
                "CRONTAINER_DAEMON__REMOTES (at box.secret_access_key): required key is missing",
                (
                    "CRONTAINER_DAEMON__LOG_LEVEL: expected 'debug', 'info', 'warning' or 'error' "
                    "(got 'warn'; did you mean `warning`?)"
                ),
                (
                    "CRONTAINER_DEFAULTS__TIMEOUT: expected a duration such as '90s', '1h30m', '2d' "
                    "or a number of seconds (units ms, s, m, h, d, w), got 'soon'"
                ),
                "CRONTAINER_DEFAULTS__CATCH_UP: expected true or false (got 'maybe')",
                "CRONTAINER_DEFAULTS__LABELS (at team): expected a string (got 5)",
            ],
        ),
    ],
)
def test_what_some_errors_say_in_full(tmp_path: Path, case: str, expected: list[str]) -> None:
    """The whole of what a few of the corpus's files get, as a user reads it."""
    text, env = CORPUS[case]
    assert _errors(tmp_path, text, env) == expected


@pytest.mark.parametrize(
    "line",
    [
        "jobs.r.signal: Input should be a valid dictionary or instance of SignalSpec (got 'app')",
        "jobs.s.sink: Input tag 'gelf' found using 'type' does not match any of the expected tags",
        "jobs.e.env.A.EnvSecret.env: Input should be a valid string",
        "jobs.e.command.function-after[_command(), str]: x",
        "daemon.state_dir: Input is not a valid path for <class 'pathlib.Path'> (got 5)",
        "jobs.r.memory: expected a size, got True",
    ],
)
def test_the_scan_catches_what_users_were_shown(line: str) -> None:
    """The lines of issue #17, and Python's own spelling, are caught by the scan."""
    caught = JARGON.search(line) or PYTHON.search(line)
    names = {n for n in MODEL_NAMES if re.search(rf"\b{n}\b", line)}
    assert caught or names


def test_the_secrets_of_the_corpus_are_in_its_files() -> None:
    """Each marker is in some file under a secret key: the check for it is not empty."""
    for secret in SECRETS:
        assert any(secret in text for text, _ in CORPUS.values()), secret
