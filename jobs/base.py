"""Fields every job has, whatever its kind.

``[defaults]`` may set any of them (and any field of a kind) for every job
that has the field and does not set it itself.
"""

from __future__ import annotations

import difflib
import re
import signal
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from jobs.templates import BODY_MAX, DEFAULT_BODY, DEFAULT_TITLE, TITLE_MAX, template_problem
from jobs.units import Duration, Largest, Longest, Size

if TYPE_CHECKING:
    from collections.abc import Generator, Iterator

    from jobs.plan import Plan

NAME_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$"
"""Job and daemon names: usable in container names and label values."""

RESERVED_LABEL_PREFIX = "crontainer."
"""Label keys the daemon sets on every container it creates; users may not set them."""

DEFAULT_TIMEOUT_S = 24 * 3600.0


def signal_name(value: str) -> str:
    """``"hup"``, ``"HUP"`` or ``"SIGHUP"`` as ``"SIGHUP"``; refuse unknown names."""
    name = value.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    if name not in signal.Signals.__members__:
        near = difflib.get_close_matches(name, signal.Signals.__members__, n=1, cutoff=0.7)
        hint = f"; did you mean `{near[0]}`?" if near else ""
        raise ValueError(f"unknown signal {value!r} (use a name such as 'SIGTERM' or 'HUP'{hint})")
    return name


def check_labels(labels: dict[str, str]) -> dict[str, str]:
    """Refuse label keys that would hide the daemon's own labels."""
    for key in labels:
        if key.startswith(RESERVED_LABEL_PREFIX):
            raise ValueError(
                f"label {key!r}: keys starting with {RESERVED_LABEL_PREFIX!r} are the daemon's own"
            )
    return labels


def _inside_paths(value: list[str]) -> list[str]:
    for path in value:
        if not path.startswith("/"):
            raise ValueError(f"path {path!r} must be absolute (a path or glob inside the volumes)")
    return value


def _chained(value: list[str]) -> list[str]:
    """Job names, each once (whether they name jobs is the config's check: ``chains``)."""
    seen: set[str] = set()
    for name in value:
        if name in seen:
            raise ValueError(f"names {name!r} twice")
        seen.add(name)
    return value


def _lock_names(value: str | list[str]) -> str | list[str]:
    """Refuse lock names that are empty, oddly spelled or given twice."""
    names = [value] if isinstance(value, str) else value
    for name in names:
        if not name:
            raise ValueError("a lock name is empty")
        if re.fullmatch(NAME_PATTERN, name) is None:
            raise ValueError(
                f"lock name {name!r}: use letters, digits, '.', '_' and '-', starting with a "
                "letter or digit, at most 63 characters"
            )
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"lock name {twice[0]!r} is given twice")
    return value


SignalName = Annotated[str, AfterValidator(signal_name)]
"""A signal by name: ``HUP``, ``hup`` or ``SIGHUP``, stored as ``SIGHUP``."""
Labels = Annotated[dict[str, str], AfterValidator(check_labels)]
"""Extra container labels; keys under the daemon's ``crontainer.`` prefix are refused."""
InsidePaths = Annotated[list[str], AfterValidator(_inside_paths)]
"""Absolute paths (or globs) inside the volumes a job mounts."""
Chained = Annotated[list[Annotated[str, Field(min_length=1)]], AfterValidator(_chained)]
"""The names of the jobs a run's end starts (``on_success``, ``on_failure``, ``on_finish``)."""

CHAIN_KEYS = ("on_success", "on_failure", "on_finish")
"""The keys that chain a job to others: run right after one of its runs ends."""

LockNames = Annotated[str | list[str], AfterValidator(_lock_names)]
"""The exclusive locks a job's runs hold: one name or a list (``scheduler/locks.py``)."""


class Model(BaseModel):
    """Frozen, strict about unknown keys and about types: the base of every config model.

    Strict: ``retries = true``, ``retries = "3"`` or ``enabled = "off"`` are errors, not
    quietly read as 1, 3 and false (TOML has real booleans and numbers; the environment's
    text is converted by the settings loader, by the key's type)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


@dataclass(frozen=True, slots=True)
class PlanContext:
    """What a job kind may know about the run it plans."""

    job: str
    ops_image: str
    env: Mapping[str, str] = field(default_factory=dict)
    """Variables the daemon sets in the run's environment (a chained run's
    ``CRONTAINER_PARENT_*``): the kinds that run a user's command add them to its own,
    over a value of the same name."""


class EnvSecret(Model):
    """A secret read from the daemon's environment when it is used (never logged)."""

    env: str = Field(
        min_length=1,
        description="name of a variable in the daemon's environment",
        examples=["DB_PASSWORD"],
    )


class FileSecret(Model):
    """A secret read from a file the daemon can read (a Docker secret) when it is used."""

    file: str = Field(
        min_length=1,
        description="absolute path of a file the daemon can read (a Docker secret)",
        examples=["/run/secrets/db_password"],
    )

    @field_validator("file")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"file {value!r} must be an absolute path in the daemon's container")
        return value


SecretValue = str | EnvSecret | FileSecret
"""A value given as text, or ``{ env = "NAME" }`` / ``{ file = "/run/secrets/x" }``."""

_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_CONTROL_CHARACTER = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def header_problem(value: str) -> str | None:
    """Why ``value`` cannot be an HTTP header's value (a control character: CR and LF would
    split the request; HTTP sends headers as Latin-1), else None. Never shows the value: it
    may be a secret."""
    if _CONTROL_CHARACTER.search(value):
        return "holds a control character"
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return "holds a character outside Latin-1"
    return None


def _headers(value: dict[str, SecretValue]) -> dict[str, SecretValue]:
    for name, text in value.items():
        if not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"header {name!r}: not a header name (letters, digits, '-', …)")
        problem = header_problem(text) if isinstance(text, str) else None
        if problem is not None:
            raise ValueError(f"header {name!r} {problem}")
    return value


Headers = Annotated[dict[str, SecretValue], AfterValidator(_headers)]
"""HTTP headers; a value is text or a secret reference, read when it is sent."""


def http_url(value: str) -> str:
    """``value`` if it is an http(s) URL with a host, a valid port and no space or control
    character (which the HTTP client would refuse at every send); the error never shows
    the URL (it may hold a password or a token)."""
    try:
        parts = urllib.parse.urlsplit(value)
        good = parts.scheme in ("http", "https") and bool(parts.hostname)
        _ = parts.port  # a port that is not a number raises
    except ValueError:
        good = False
    if not good or re.search(r"[\x00-\x20\x7f]", value):
        raise ValueError("expected an http:// or https:// URL with a host (no spaces)")
    return value


HttpUrl = Annotated[str, AfterValidator(http_url)]
"""An http(s) URL (may carry a secret: never logged whole)."""


NotifyOn = Literal["failure", "success", "recovery", "missed"]

URLS_MAX = 20
"""The most ``notify.urls`` one job may have."""


def _template(value: str) -> str:
    problem = template_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


Template = Annotated[str, AfterValidator(_template)]
"""A notification's title or body: text with ``{field}`` of the run (jobs.templates.FIELDS)."""


def _channel_url(value: str) -> str:
    """``value`` if it has a scheme (Apprise's check of the whole URL is the loader's: jobs
    import no library); the error never shows the URL (it holds tokens)."""
    if not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", value):
        raise ValueError("expected a URL such as 'ntfy://host/topic' (see Apprise's list)")
    return value


ChannelUrl = Annotated[str, AfterValidator(_channel_url)] | EnvSecret | FileSecret
"""An Apprise URL, or a secret reference to one."""


def _default_on() -> list[NotifyOn]:
    return ["failure", "recovery", "missed"]


class NotifySpec(Model):
    """Where and when a job's outcome is told (``[jobs.<name>.notify]`` or in [defaults])."""

    on: list[NotifyOn] = Field(
        default_factory=_default_on,
        description="failure (failed or timed out), success, recovery (first success after a "
        "failure), missed",
    )
    webhook: HttpUrl | None = Field(
        None,
        description="POST a JSON object for each outcome in 'on'",
        examples=["https://hooks.example.com/crontainer"],
    )
    headers: Headers = Field(
        default_factory=dict,
        description="webhook headers: text, or { env = 'NAME' } / { file = '/run/secrets/x' }",
        examples=[{"Authorization": {"env": "HOOK_TOKEN"}}],
    )
    urls: Annotated[list[ChannelUrl], Field(max_length=URLS_MAX)] = Field(
        default_factory=list,
        description="Apprise URLs (mailto://, slack://, discord://, ntfy://, gotify://, json://, "
        "…) told of each outcome in 'on', with title and body; each is text or "
        "{ env = 'NAME' } / { file = '/run/secrets/x' } (then checked when sent)",
        examples=[["ntfy://ntfy.example.com/cron", {"env": "SLACK_URL"}]],
    )
    title: Annotated[Template, Field(max_length=TITLE_MAX)] = Field(
        DEFAULT_TITLE,
        description="the urls' message title: text with {field}s of the run (see "
        "Notifications in monitoring.md)",
    )
    body: Annotated[Template, Field(max_length=BODY_MAX)] = Field(
        DEFAULT_BODY, description="the urls' message body: text with {field}s of the run"
    )
    ping: HttpUrl | None = Field(
        None,
        description="healthchecks.io-style URL: <ping>/start at start, <ping> on success, "
        "<ping>/fail on failure or a missed run",
        examples=["https://hc-ping.com/<uuid>"],
    )
    cooldown: Annotated[Duration, Longest("7d")] = Field(
        600.0,
        description="after a webhook or urls message for a job and outcome, the same one waits "
        "this long",
    )
    timeout: Annotated[Duration, Field(gt=0), Longest("5m")] = Field(
        10.0, description="per request"
    )
    retries: int = Field(3, ge=0, le=100, description="more attempts per notification")
    retry_delay: Annotated[Duration, Longest("1h")] = Field(
        2.0, description="before the 2nd attempt; doubles each time"
    )


VOLUME_NAME_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{1,254}$"
"""Docker's rule for a volume's name (at least two characters), bounded as a file name."""


def _volume_name(value: str) -> str:
    if not re.fullmatch(VOLUME_NAME_PATTERN, value):
        raise ValueError(
            f"volume {value!r}: not a volume name (2-255 letters, digits, '_', '.', '-', "
            "starting with a letter or digit)"
        )
    return value


VolumeName = Annotated[str, AfterValidator(_volume_name)]
"""A Docker volume's name."""


class OutputSpec(Model):
    """Where and how long a job's whole run output is kept (``[jobs.<name>.output]`` or in
    [defaults]): one file per run, written by the daemon (see Run output in operations.md)."""

    volume: VolumeName = Field(
        "cron-output",
        description="the volume the files go to, as <job>/<run_id>.log; the daemon reaches it "
        "as [daemon] output_dir says",
        examples=["cron-output"],
    )
    keep: Annotated[Duration, Field(gt=0)] = Field(
        14 * 86400.0,
        description=(
            "an ended run's file older than this is deleted (when a run of the job ends; a "
            ".running one never is)"
        ),
        examples=["14d"],
    )
    max_size: Annotated[Size, Field(ge=1024), Largest("1GiB")] = Field(
        10 * 1024 * 1024,
        description="output written per run; past it, one truncation line, and the further "
        "lines are counted (on the file's end line), not written",
        examples=["10MiB"],
    )
    on: Literal["always", "failure"] = Field(
        "always",
        description="always: every run's file is kept; failure: only a failed or timed_out "
        "run's (the others' are deleted when they end)",
    )


class BaseJob(Model):
    """Schedule and run limits shared by all job kinds."""

    kind: str = Field(description="what the job does: one of the kinds below", examples=["run"])
    schedule: str = Field(
        min_length=1,
        description="5-field cron, '@with-seconds' + 6 fields, a macro (@daily…), '@every 90s' "
        "or '@manual' (only chained or triggered), "
        "or once: '@at 2027-01-01T03:00:00+01:00' (see Schedules)",
        examples=["0 3 * * *"],
    )
    timezone: str = Field("UTC", description="IANA time zone the schedule is read in")
    jitter: Annotated[Duration, Longest("1d")] = Field(
        0.0, description="delay each run by a random 0..jitter (spreads load)"
    )
    timeout: Annotated[Duration, Field(gt=0), Longest("30d")] = Field(
        DEFAULT_TIMEOUT_S,
        description="then the container gets stop_signal, stop_grace, and a kill; the run ends "
        "timed_out",
    )
    stop_signal: SignalName = Field(
        "SIGTERM", description="the signal that asks a container to stop: SIGTERM, HUP, …"
    )
    stop_grace: Annotated[Duration, Longest("1h")] = Field(
        10.0, description="time between the stop signal and the kill"
    )
    description: str = Field(
        "",
        description="free text, shown nowhere but in the file",
        examples=["nightly dump of the app's database"],
    )
    enabled: bool = Field(
        default=True, description="false keeps the job configured but never fires it"
    )
    concurrency: Literal["allow", "forbid", "replace"] = Field(
        "forbid",
        description="a run due while the job's previous run is still going: forbid skips it "
        "(run.skipped), allow runs both, replace stops the old one (stop signal, stop_grace, "
        "kill; it ends cancelled, reason replaced) and then starts the new one",
    )
    retries: int = Field(
        0,
        ge=0,
        le=100,
        description="further attempts after a failed or timed_out one; each attempt is its own "
        "container, logged and recorded with its attempt number",
    )
    retry_delay: Annotated[Duration, Longest("1d")] = Field(
        10.0, description="wait before the 2nd attempt; doubles for each further one"
    )
    retry_delay_max: Annotated[Duration, Longest("7d")] = Field(
        600.0, description="the longest wait between attempts"
    )
    retry_exit_codes: list[Annotated[int, Field(ge=0, le=255)]] = Field(
        default_factory=list,
        description="retry only failed attempts with these exit codes (empty: any failure or "
        "time-out)",
        examples=[[75]],
    )
    starting_deadline: Annotated[Duration, Longest("366d")] | None = Field(
        None,
        description="a run that cannot start within this long after its scheduled time (waiting "
        "for a slot, a late daemon) is recorded missed instead of starting late",
        examples=["5m"],
    )
    lock: LockNames = Field(
        default_factory=list,
        description="exclusive locks (one name or a list): runs of jobs sharing a lock never "
        "run at the same time; a run that finds one held waits its turn (run.waiting), first "
        "come first served, until its starting_deadline, then is recorded missed, reason "
        "lock:<name> (see Exclusive locks)",
        examples=["app-data"],
    )
    catch_up: bool = Field(
        default=False,
        description="after downtime, run once for the latest time missed while the daemon was "
        "down, if it is within starting_deadline",
    )
    history_limit: int = Field(
        10, ge=1, le=100_000, description="runs of each outcome kept per job in the history"
    )
    run_on_start: bool = Field(
        default=False,
        description="run once when the daemon starts (trigger start), like cron's @reboot; not "
        "again at a reload",
    )
    notify: NotifySpec | None = Field(
        None,
        description="who is told of the job's outcomes: webhook, Apprise and ping URLs (see "
        "Notifications in monitoring.md)",
        examples=[{"webhook": "https://hooks.example.com/crontainer"}],
    )
    on_success: Chained = Field(
        default_factory=list,
        description="jobs started right after a run of this one succeeds (trigger chain, each "
        "under its own policies; see Chains)",
        examples=[["ship-dump"]],
    )
    on_failure: Chained = Field(
        default_factory=list,
        description="jobs started right after a run of this one failed or timed out, after its "
        "last retry (a missed or skipped run never ran: it starts none)",
        examples=[["page-oncall"]],
    )
    on_finish: Chained = Field(
        default_factory=list,
        description="jobs started right after a run of this one ends, whatever its outcome "
        "(succeeded, failed, timed_out, cancelled)",
        examples=[["cleanup"]],
    )
    output: OutputSpec | None = Field(
        None,
        description="keep each run's whole stdout and stderr in a file (see Run output in "
        "operations.md); `crontainer logs` prints it",
        examples=[{"volume": "cron-output", "keep": "14d", "max_size": "10MiB"}],
    )

    KIND: ClassVar[str] = ""
    HELD_DEFAULTS: ClassVar[Mapping[str, object]] = {}
    """The kind's defaults by field, also its class attributes, so that a job can be held
    without them (``jobs/compact.py``); empty: a kind whose jobs are held whole."""

    # A compact job's defaults are not in its __dict__, which pydantic's own equality, hash,
    # iteration and repr read: these read every field through its attribute.
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BaseModel):
            return NotImplemented
        if type(other) is not type(self):
            return False
        if self.__dict__ == other.__dict__:
            return True
        return all(getattr(self, name) == getattr(other, name) for name in type(self).model_fields)

    def __hash__(self) -> int:
        return hash((type(self), *(getattr(self, name) for name in type(self).model_fields)))

    def __iter__(self) -> Generator[tuple[str, Any], None, None]:
        for name in type(self).model_fields:
            yield name, getattr(self, name)

    def __repr_args__(self) -> Iterator[tuple[str, Any]]:
        for name, info in type(self).model_fields.items():
            if info.repr:
                yield name, getattr(self, name)

    @property
    def locks(self) -> tuple[str, ...]:
        """The names of ``lock``, as a tuple (none when it is unset)."""
        return (self.lock,) if isinstance(self.lock, str) else tuple(self.lock)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        time_zone(value)
        return value

    @classmethod
    def takes_default(
        cls, key: str, table: Mapping[str, object], defaults: Mapping[str, object]
    ) -> bool:
        """Whether [defaults]' ``key`` (one of this kind's; ``defaults``: the whole table)
        applies to the job whose own table is ``table``: always, unless a kind's keys
        exclude each other."""
        del key, table, defaults  # what the kinds whose keys exclude each other look at
        return True

    def plan(self, ctx: PlanContext) -> Plan:
        """The steps of one run of this job."""
        raise NotImplementedError


def time_zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; ValueError saying so for any name that is not one (unknown,
    malformed, a directory of the zone database such as 'Europe', too long for a file)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"unknown time zone {name!r} (use an IANA name such as 'Europe/Berlin'"
            f"{_near_zone(name)})"
        ) from None


def _near_zone(name: str) -> str:
    """``"; did you mean `Europe/Berlin`?"`` for a near miss of a zone's name, else ``""``."""
    zones = {zone.lower(): zone for zone in available_timezones()}
    found = zones.get(name.lower())
    if any(zone.startswith(name.lower().rstrip("/") + "/") for zone in zones):
        return ""  # a directory of zones ('America/Argentina'): none of them is nearer
    if found is None:
        near = difflib.get_close_matches(name.lower(), zones, n=1, cutoff=0.8)
        found = zones[near[0]] if near else None
    return f"; did you mean `{found}`?" if found else ""


def name_is_valid(name: str) -> bool:
    """True when ``name`` can be a job or daemon name."""
    return re.fullmatch(NAME_PATTERN, name) is not None
