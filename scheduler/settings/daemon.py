"""The ``[daemon]`` table: the daemon's own settings, each with its bounds and description."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, ValidationInfo, field_validator

from jobs.base import NAME_PATTERN, Model
from jobs.units import Duration, Largest, Longest, Size
from scheduler import heartbeat
from scheduler.labels.rules import LABEL_KINDS, label_allowance, label_filter_entry, label_kind
from scheduler.locations import is_file_path
from scheduler.settings.remotes import Remote

DEFAULT_HTTP = "0.0.0.0:8137"
"""Port 8137: outside the exporters' 9100-9999 range, no common service."""
_FILE_EXAMPLES = {
    "heartbeat_file": "/tmp/crontainer.heartbeat",  # noqa: S108 - an example
    "registry_config": "/root/.docker/config.json",
}
"""What the error of a key naming a file shows as an example."""


class DaemonSettings(Model):
    """The ``[daemon]`` table: the daemon's own settings (a change applies at the next start,
    not at a reload)."""

    name: str = Field(
        "crontainer",
        pattern=NAME_PATTERN,
        description="identifies this daemon across restarts: the label crontainer.daemon on its "
        "containers, the prefix of their names",
    )
    ops_image: str | None = Field(
        None,
        description="image of the ops containers (backup, logship, rotate) and of the lock "
        "container; default: the image the daemon runs from (outside a container: "
        "crontainer:latest)",
        examples=["crontainer:latest"],
    )
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", description="auto (console on a TTY, JSON otherwise), json or console"
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="the lowest level logged"
    )
    shutdown_grace: Annotated[Duration, Longest("1d")] = Field(
        30.0, description="on SIGTERM, how long running jobs may go on before they are stopped"
    )
    engine_timeout: Annotated[Duration, Field(gt=0), Longest("1h")] = Field(
        60.0, description="deadline of each Docker API call"
    )
    engine_wait: Annotated[Duration, Longest("1d")] = Field(
        60.0, description="at start, retry an engine that does not answer this long, then exit 1"
    )
    config_poll: Annotated[Duration, Longest("1d")] = Field(
        5.0,
        description="how often the config file's content is checked for changes; 0 turns the "
        "check off (SIGHUP still reloads)",
    )
    heartbeat_file: Path = Field(
        heartbeat.DEFAULT,
        strict=False,
        description="an absolute file path, touched every 5 s while the scheduling loop is alive; "
        "read by crontainer health, which reads this key from the config too",
    )
    registry_config: Path | None = Field(
        None,
        strict=False,
        description="a Docker config.json whose credentials image pulls use (auths, credHelpers, "
        "credsStore: the docker-credential-<name> helper on PATH), read again when it changes; "
        "mount it read-only. Default: $DOCKER_CONFIG/config.json, else ~/.docker/config.json; a "
        "missing file means anonymous pulls. A job's registry_auth takes precedence",
        examples=["/run/secrets/docker-config.json"],
    )
    state_dir: Path = Field(
        Path("/var/lib/crontainer"),
        strict=False,
        description="the run history (crontainer.db, SQLite); created if missing; mount a named "
        "volume here",
    )
    max_concurrent_runs: int = Field(
        16,
        ge=1,
        le=1000,
        description="runs in flight at once over all jobs; a run beyond it waits for a slot until "
        "its starting_deadline (run.queued), then is recorded missed",
    )
    max_output_line: Annotated[Size, Field(ge=80), Largest("1MiB")] = Field(
        16 * 1024,
        description="output lines longer than this are cut (truncated: true in run.output)",
    )
    max_output_per_run: Annotated[Size, Largest("1GiB")] = Field(
        1024 * 1024,
        description="output logged per run; past it, lines are counted (run.output_truncated), "
        "not logged",
    )
    output_dir: str = Field(
        "/var/lib/crontainer/output",
        description="where the daemon reaches the volumes of the jobs' output: the volume V is "
        "the directory <output_dir>/V (mount it there: -v V:/var/lib/crontainer/output/V); "
        "'engine': the engine's own directory of the volume (its Mountpoint), for a daemon "
        "on the engine's host that may write there. Checked at start",
        examples=["engine"],
    )
    http: str = Field(
        DEFAULT_HTTP,
        description="host:port of the read-only HTTP listener (/metrics, /healthz, /readyz); port "
        "0 takes any free port; '' turns it off. At most 32 connections at once (one more is "
        "closed at once), each closed 10 s after it was accepted",
    )
    ui: bool = Field(
        default=False,
        description="serve the read-only status page on the HTTP listener: / (every job, its "
        "next run and last runs, 200 a page, ?q= and ?outcome= filters; the next 24 h's "
        "timeline), /jobs/<job> (its charts and history), /runs/<run_id> (one run). The "
        "listener is on all interfaces: put it behind a reverse proxy with authentication, or "
        "bind it to 127.0.0.1 (see 'Status page' in monitoring.md)",
    )
    ui_output: bool = Field(
        default=True,
        description="the status page shows a run's output tail (its kept output file, else the "
        "history's last lines); false hides them (output can hold sensitive text)",
    )

    labels: bool = Field(
        default=False,
        description="also take jobs from container labels (crontainer.jobs.<job>.<key>), found "
        "at start, on the engine's container events and every label_resync (see 'Jobs in "
        "container labels' in configuration.md)",
    )
    label_filter: list[Annotated[str, AfterValidator(label_filter_entry)]] = Field(
        default_factory=list,
        description="only containers carrying all these labels ('key' or 'key=value') give "
        "jobs, e.g. one Compose project",
        examples=[["com.docker.compose.project=app"]],
    )
    label_resync: Annotated[Duration, Field(ge=1), Longest("1d")] = Field(
        60.0,
        description="how often every container's labels are read again (engine events can be "
        "lost: an engine restart drops them)",
    )
    label_kinds: list[Annotated[str, AfterValidator(label_kind)]] = Field(
        default_factory=lambda: list(LABEL_KINDS),
        description="the job kinds a label may ask for (add 'run' to allow new containers; "
        "it needs 'image' in label_allow)",
    )
    label_allow: list[Annotated[str, AfterValidator(label_allowance)]] = Field(
        default_factory=list,
        description="what label jobs may ask for beyond their own container: keys ('image', "
        "'volumes', 'network', 'cap_add', 'env_files', 'notify', 'log_driver', 'log_options', "
        "'copy_to', 'lock', 'output'), 'host_paths' (a target or sink "
        "volume on the host), 'secrets' ({ env = … } / { file = … } values: the daemon's "
        "environment and files), 'other_containers' (containers but their own)",
        examples=[["image"]],
    )

    remotes: dict[str, Remote] = Field(
        default_factory=dict,
        description="[daemon.remotes.<name>] tables: destinations of the backups' copy_to (s3, "
        "sftp, webdav; see 'Copies off the host'); from the environment, the whole table as "
        'JSON: CRONTAINER_DAEMON__REMOTES=\'{"box": {"type": "sftp", …}}\'',
        examples=[
            {
                "offsite": {
                    "type": "sftp",
                    "host": "backup.example.org",
                    "user": "crontainer",
                    "key": {"file": "/run/secrets/offsite_key"},
                    "known_hosts": {"file": "/etc/crontainer/known_hosts"},
                }
            }
        ],
    )

    # --- high availability (issue 22): scheduler/claims.py, scheduler/replicas.py ---
    ha: Literal["off", "swarm"] = Field(
        "off",
        description="'swarm': several daemons with this name against one Swarm (its managers' "
        "engines) share the jobs; each scheduled fire runs once across them, claimed as a "
        "Swarm config (see 'High availability' in deploying.md). 'off': one daemon per name "
        "and engine (the single-instance lock)",
    )
    ha_lease_interval: Annotated[Duration, Field(ge=0.5), Longest("1m")] = Field(
        5.0,
        description="with ha = 'swarm': how often a replica renews its lease; another replica "
        "counts it dead after 3 intervals without a renewal, and settles its runs",
    )
    ha_claim_timeout: Annotated[Duration, Field(ge=1), Longest("5m")] = Field(
        10.0,
        description="with ha = 'swarm': how long a claim's create may take; past it (or on any "
        "error but 'claimed') the fire is not run here (run.missed, reason claim_failed)",
    )
    ha_claim_keep: Annotated[Duration, Field(ge=60), Longest("30d")] = Field(
        3600.0,
        description="with ha = 'swarm': claims older than this are removed (each job keeps its "
        "newest history_limit of each outcome); a catch-up of an instant older than this is not "
        "run",
    )

    @field_validator("heartbeat_file", "registry_config", mode="before")
    @classmethod
    def _a_file(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, str) and not is_file_path(value):
            example = _FILE_EXAMPLES[str(info.field_name)]
            raise ValueError(f"expected the absolute path of a file, e.g. '{example}'")
        return value

    @field_validator("state_dir", mode="before")
    @classmethod
    def _a_directory(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            raise ValueError("expected a directory, e.g. '/var/lib/crontainer'")
        return value

    @field_validator("output_dir")
    @classmethod
    def _output_dir(cls, value: str) -> str:
        if value != "engine" and not value.startswith("/"):
            raise ValueError(
                f"expected an absolute directory or 'engine', got {value!r} "
                "(e.g. '/var/lib/crontainer/output')"
            )
        return value

    @field_validator("http")
    @classmethod
    def _listen_address(cls, value: str) -> str:
        if value == "":
            return value
        host, colon, port = value.rpartition(":")
        if not colon or not port.isdigit() or not 0 <= int(port) < 65536:  # noqa: PLR2004
            raise ValueError(f"{value!r}: expected host:port (e.g. '0.0.0.0:8137'), or ''")
        if not host:
            raise ValueError(f"{value!r}: the host is missing (e.g. '0.0.0.0:{port}')")
        return value

    def http_address(self) -> tuple[str, int] | None:
        """(host, port) of the HTTP listener, or None when it is off."""
        if not self.http:
            return None
        host, _, port = self.http.rpartition(":")
        return host.strip("[]"), int(port)
