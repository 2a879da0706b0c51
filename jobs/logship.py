"""Job kind ``logship``: new log lines from files in volumes and from containers' output,
shipped to a sink by an ops container, at least once, from checkpoints.

The daemon keeps the checkpoints (its state database), hands them to the tool
on stdin with the job's request, reads containers' logs through the Docker API
and feeds them on the same stdin, and stores each checkpoint the tool reports
once the sink acknowledged a batch (``jobs.tools.logship``). The request is a
``ShipRequest`` (``jobs.protocol``), whose defaults are the ones below.
"""

from __future__ import annotations

import difflib
import urllib.parse
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from jobs.base import (
    EnvSecret,
    FileSecret,
    Headers,
    HttpUrl,
    InsidePaths,
    Model,
    PlanContext,
)
from jobs.containers import ContainerJob, ContainerNames, parse_volume
from jobs.plan import (
    ContainerSpec,
    Mount,
    Plan,
    PullPolicy,
    SecretRef,
    ShipLogs,
)
from jobs.protocol.ship import (
    APP_NAME,
    BATCH_BYTES,
    BATCH_LINES,
    FACILITIES,
    FACILITY,
    MAX_BYTES,
    MAX_LINE,
    OK_STATUS,
    SEVERITIES,
    SEVERITY,
    SINK_RETRIES,
    SINK_RETRY_DELAY,
    SINK_TIMEOUT,
    UDP_RATE,
    FileSinkSpec,
    HttpSinkSpec,
    ShipRequest,
    StdoutSinkSpec,
    SyslogSinkSpec,
)
from jobs.units import Duration, Largest, Longest, Size

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

SINK_MOUNT = "/sink"
"""Where a file sink's volume is mounted in the shipping container."""


def _one_of(what: str, names: Iterable[str]) -> Callable[[str], str]:
    """A validator: ``value`` is one of ``names``, or an error that lists them."""
    known = list(names)

    def check(value: str) -> str:
        if value not in known:
            near = difflib.get_close_matches(value.lower(), known, n=1, cutoff=0.6)
            guess = f" (did you mean `{near[0]}`?)" if near else ""
            raise ValueError(f"unknown {what} {value!r}{guess} (one of: {', '.join(known)})")
        return value

    return check


class SinkBase(Model):
    """What every sink has: the batch, the unit of delivery and of checkpoints."""

    batch_lines: int = Field(
        BATCH_LINES, ge=1, le=1_000_000, description="at most this many lines per batch"
    )
    batch_bytes: Annotated[Size, Largest("1GiB")] = Field(
        BATCH_BYTES, description="at most about this many bytes per batch"
    )

    @field_validator("batch_bytes")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value < 1:
            raise ValueError("batch_bytes must be at least 1 byte")
        return value


class FileSink(SinkBase):
    """Append NDJSON to ``path`` inside ``volume`` (a named volume or a host directory)."""

    type: Literal["file"] = Field(description="append NDJSON to a file in a volume")
    volume: str = Field(
        min_length=1,
        description="a named volume, or an absolute host directory",
        examples=["shipped-logs"],
    )
    path: str = Field(
        min_length=1, description="the file, relative to the volume", examples=["app/app.ndjson"]
    )

    @field_validator("volume")
    @classmethod
    def _volume(cls, value: str) -> str:
        if ":" in value or value.startswith((".", "~")):
            raise ValueError(
                f"volume {value!r}: a volume name or an absolute host path, without ':'"
            )
        return value

    @field_validator("path")
    @classmethod
    def _relative(cls, value: str) -> str:
        parts = value.split("/")
        if value.startswith("/") or ".." in parts:
            raise ValueError(f"path {value!r} must be relative to the volume, without '..'")
        return value

    def spec(self) -> FileSinkSpec:
        """The sink for the tool: the file inside the shipping container."""
        return FileSinkSpec(f"{SINK_MOUNT}/{self.path}")


class HttpSink(SinkBase):
    """POST batches of NDJSON; delivered when the answer's status is in ``ok_status``."""

    type: Literal["http"] = Field(description="POST batches of NDJSON")
    url: HttpUrl = Field(
        min_length=1,
        description="the receiver's http(s) URL",
        examples=["https://logs.example.com/ingest"],
    )
    headers: Headers = Field(
        default_factory=dict,
        description="values as text, or { env = 'NAME' } / { file = '/run/secrets/x' }",
        examples=[{"Authorization": {"env": "LOGS_TOKEN"}}],
    )
    timeout: Annotated[Duration, Field(gt=0), Longest("5m")] = Field(
        SINK_TIMEOUT, description="per request"
    )
    ok_status: list[Annotated[int, Field(ge=100, le=599)]] = Field(
        default_factory=lambda: list(OK_STATUS),
        min_length=1,
        description="the answers' statuses that acknowledge a batch",
    )
    retries: int = Field(
        SINK_RETRIES, ge=0, le=100, description="more attempts per batch after a failure"
    )
    retry_delay: Annotated[Duration, Longest("1h")] = Field(
        SINK_RETRY_DELAY, description="before the 2nd attempt; doubles, up to 30s"
    )

    def spec(self) -> HttpSinkSpec:
        """The sink for the tool, with the headers given as text; the daemon adds the
        secret ones when it runs the job. Sorted by name, as the request always sent them."""
        return HttpSinkSpec(
            url=self.url,
            headers={k: v for k, v in sorted(self.headers.items()) if isinstance(v, str)},
            timeout=self.timeout,
            ok_status=tuple(self.ok_status),
            retries=self.retries,
            retry_delay=self.retry_delay,
        )


class SyslogSink(SinkBase):
    """RFC 5424 messages over UDP, or over TCP with octet counting (RFC 6587)."""

    type: Literal["syslog"] = Field(description="RFC 5424 messages over UDP or TCP")
    address: str = Field(
        description="udp://host:port or tcp://host:port", examples=["tcp://10.0.0.5:514"]
    )
    facility: Annotated[str, AfterValidator(_one_of("facility", FACILITIES))] = Field(
        FACILITY, description="kern, user, daemon, local0…local7, …"
    )
    severity: Annotated[str, AfterValidator(_one_of("severity", SEVERITIES))] = Field(
        SEVERITY, description="emerg, alert, crit, err, warning, notice, info…"
    )
    app_name: str = Field(
        APP_NAME,
        min_length=1,
        max_length=48,
        pattern=r"^[!-~]+$",
        description="the messages' APP-NAME",
    )
    timeout: Annotated[Duration, Field(gt=0), Longest("5m")] = Field(
        SINK_TIMEOUT, description="to connect and send (TCP)"
    )
    retries: int = Field(
        SINK_RETRIES, ge=0, le=100, description="more attempts per batch after a failure"
    )
    retry_delay: Annotated[Duration, Longest("1h")] = Field(
        SINK_RETRY_DELAY, description="before the 2nd attempt; doubles, up to 30s"
    )
    udp_rate: float = Field(
        UDP_RATE,
        ge=0,
        le=1_000_000,
        description="UDP: at most this many messages per second (0: no limit)",
    )

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        parts = urllib.parse.urlsplit(value)
        try:
            port = parts.port
        except ValueError:
            port = None
        if parts.scheme not in ("udp", "tcp") or not parts.hostname or port is None:
            raise ValueError(f"address {value!r}: expected udp://host:port or tcp://host:port")
        return value

    def spec(self) -> SyslogSinkSpec:
        """The sink for the tool."""
        return SyslogSinkSpec(
            address=self.address,
            facility=self.facility,
            severity=self.severity,
            app_name=self.app_name,
            timeout=self.timeout,
            retries=self.retries,
            retry_delay=self.retry_delay,
            udp_rate=self.udp_rate,
        )


class StdoutSink(SinkBase):
    """Print NDJSON records: the shipping container's log driver carries them on."""

    type: Literal["stdout"] = Field(description="print NDJSON on the shipping container's stdout")

    def spec(self) -> StdoutSinkSpec:
        """The sink for the tool."""
        return StdoutSinkSpec()


Sink = Annotated[FileSink | HttpSink | SyslogSink | StdoutSink, Field(discriminator="type")]


class LogshipJob(ContainerJob):
    """Ship new lines of log files in volumes and of containers' output to a sink."""

    KIND: ClassVar[str] = "logship"
    VOLUMES_FROM_MODE: ClassVar[str] = ":ro"
    kind: Literal["logship"]
    paths: InsidePaths = Field(
        default_factory=list,
        description="absolute globs of the files, e.g. '/var/log/app/*.log'",
        examples=[["/var/log/app/*.log"]],
    )
    containers: ContainerNames = Field(
        default_factory=list,
        description="containers whose stdout/stderr is shipped: every container each selects",
        examples=[["app", "label=com.example.ship=true"]],
    )
    sink: Sink = Field(
        description="where the lines go: a table with type file, http, syslog or stdout",
        examples=[{"type": "http", "url": "https://logs.example.com/ingest"}],
    )
    max_bytes: Annotated[Size, Field(ge=1), Largest("1TiB")] = Field(
        MAX_BYTES, description="at most this much per run; the rest waits for the next"
    )
    max_line: Annotated[Size, Field(ge=1024), Largest("64MiB")] = Field(
        MAX_LINE, description="a longer line is shipped cut to this many bytes; its rest is skipped"
    )
    network: str | None = Field(
        None,
        description="network of the shipping container ('host' reaches the host's loopback)",
        examples=["host"],
    )
    log_driver: str | None = Field(
        None,
        description="log driver of the shipping container (for the stdout sink)",
        examples=["syslog"],
    )
    log_options: dict[str, str] = Field(
        default_factory=dict,
        description="options of log_driver",
        examples=[{"syslog-address": "udp://10.0.0.5:514"}],
    )

    @model_validator(mode="after")
    def _has_sources(self) -> LogshipJob:
        if self.paths and not (self.volumes_from or self.volumes):
            raise ValueError("paths need the volumes that hold them: volumes_from and/or volumes")
        if (self.volumes_from or self.volumes) and not self.paths:
            raise ValueError("volumes_from/volumes need paths: the globs of the files to ship")
        if not self.paths and not self.containers:
            raise ValueError("a logship job needs a source: paths (in volumes) and/or containers")
        return self

    @model_validator(mode="after")
    def _log_driver(self) -> LogshipJob:
        if self.log_options and self.log_driver is None:
            raise ValueError("log_options need log_driver")
        return self

    @model_validator(mode="after")
    def _one_run_at_a_time(self) -> LogshipJob:
        if self.concurrency == "allow":
            raise ValueError(
                "concurrency 'allow' would let two runs ship the same lines: "
                "use 'forbid' (the default) or 'replace'"
            )
        return self

    def _request(self, ctx: PlanContext) -> ShipRequest:
        return ShipRequest(
            job=ctx.job,
            sink=self.sink.spec(),
            paths=tuple(self.paths),
            max_bytes=self.max_bytes,
            max_line=self.max_line,
            batch_lines=self.sink.batch_lines,
            batch_bytes=self.sink.batch_bytes,
            confine=True,  # read files only inside the volumes mounted into the container
        )

    def plan(self, ctx: PlanContext) -> Plan:
        """One shipping container of ``ops_image``, fed by the daemon on stdin."""
        mounts = [
            Mount(m.source, m.target, read_only=True) for m in map(parse_volume, self.volumes)
        ]
        if isinstance(self.sink, FileSink):
            mounts.append(Mount(self.sink.volume, SINK_MOUNT))
        secrets: list[SecretRef] = []
        if isinstance(self.sink, HttpSink):
            for header, value in self.sink.headers.items():
                if isinstance(value, EnvSecret):
                    secrets.append(SecretRef(header, env=value.env))
                elif isinstance(value, FileSecret):
                    secrets.append(SecretRef(header, file=value.file))
        spec = ContainerSpec(
            image=ctx.ops_image,
            command=("python3", "-m", "jobs.tools.logship"),
            mounts=tuple(mounts),
            volumes_from=tuple(self.volumes_from),
            volumes_from_read_only=True,
            network=self.network,
            labels=self.labels,
            stop_signal=self.stop_signal,
            pull=PullPolicy.MISSING,
            healthcheck=False,
            **self.hardening(),
            stdin=True,
            log_driver=self.log_driver,
            log_options=self.log_options,
        )
        return Plan(
            steps=(
                ShipLogs(
                    spec,
                    request=self._request(ctx),
                    containers=tuple(self.containers),
                    secrets=tuple(secrets),
                    quiet_stdout=isinstance(self.sink, StdoutSink),
                ),
            )
        )
