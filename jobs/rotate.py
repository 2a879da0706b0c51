"""Job kind ``rotate``: rotate, compress and prune log files in volumes, and tell the app
to reopen its logs — without installing anything in the app's image.

A run: the rotation (an ops container: rename or copytruncate) → if something was
rotated, the signal (or restart) to the app, sent by the daemon through the Docker
API → compression and pruning (a second ops container), after the signal: the app
writes into the renamed file until it reopens. Why not logrotate: it keeps its own
state file and would have to signal the app from inside the ops container, which
never gets the Docker socket; the rules below are a few dozen lines of Python.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from jobs.base import InsidePaths, Model, PlanContext, SignalName
from jobs.containers import ContainerJob, parse_volume
from jobs.plan import ContainerSpec, Plan, PullPolicy, RotateLogs, SignalContainers
from jobs.protocol.rotate import FinishRequest, RotateRequest
from jobs.selectors import Selectors
from jobs.units import Duration, Largest, Longest, Size


class SignalSpec(Model):
    """Who is told to reopen its logs after a rotation, and with which signal."""

    containers: Selectors = Field(
        min_length=1, description="every running container each selects", examples=[["app"]]
    )
    signal: SignalName = Field("SIGHUP", description="the signal to send")


class RotateJob(ContainerJob):
    """Rotate log files by size or age; compress; keep some; signal the app."""

    KIND: ClassVar[str] = "rotate"
    VOLUMES_FROM_MODE: ClassVar[str] = ":rw"
    kind: Literal["rotate"]
    paths: InsidePaths = Field(
        min_length=1,
        description="absolute globs of the live log files",
        examples=[["/var/log/app/*.log"]],
    )
    max_size: Annotated[Size, Field(ge=1), Largest("1TiB")] | None = Field(
        None, description="rotate a file this big (or bigger)", examples=["100MiB"]
    )
    max_age: Annotated[Duration, Longest("366d")] | None = Field(
        None, description="rotate a file this long after the last time", examples=["1d"]
    )
    min_size: Annotated[Size, Largest("1TiB")] = Field(
        0, description="with max_age: not a file smaller than this"
    )
    mode: Literal["rename", "copytruncate"] = Field(
        "rename",
        description="rename the file (the app reopens it), or copy it and truncate it (lines "
        "written during the copy are lost)",
    )
    compression: Literal["zstd", "gzip", "none"] = Field("zstd", description="of the rotated files")
    delay_compression: bool = Field(
        default=False, description="leave the newest rotated file uncompressed until next time"
    )
    keep_last: int | None = Field(
        None, ge=0, le=100_000, description="rotated files kept per log file", examples=[14]
    )
    keep_age: Annotated[Duration, Longest("520w")] | None = Field(
        None, description="rotated files older than this go", examples=["30d"]
    )
    signal: SignalSpec | None = Field(
        None,
        description="containers told to reopen their logs, only when something rotated",
        examples=[{"containers": ["app"], "signal": "HUP"}],
    )
    restart: Selectors = Field(
        default_factory=list,
        description="containers restarted instead of signalled",
        examples=[["app"]],
    )

    @model_validator(mode="after")
    def _consistent(self) -> RotateJob:
        if not self.volumes_from and not self.volumes:
            raise ValueError(
                "a rotate job needs the volumes that hold the files: volumes_from and/or volumes"
            )
        return self

    @model_validator(mode="after")
    def _when(self) -> RotateJob:
        if self.max_size is None and self.max_age is None:
            raise ValueError("a rotate job needs max_size and/or max_age (when to rotate)")
        return self

    @model_validator(mode="after")
    def _tell(self) -> RotateJob:
        if self.signal is not None and self.restart:
            raise ValueError("signal and restart exclude each other: choose one")
        return self

    @model_validator(mode="after")
    def _one_run_at_a_time(self) -> RotateJob:
        if self.concurrency == "allow":
            raise ValueError("concurrency 'allow' would let two runs rotate the same files")
        return self

    def _spec(self, ctx: PlanContext, request: RotateRequest | FinishRequest) -> ContainerSpec:
        return ContainerSpec(
            image=ctx.ops_image,
            command=("python3", "-m", "jobs.tools.rotate", *request.argv()),
            stdin=isinstance(request, RotateRequest),  # the state, written by the daemon
            mounts=tuple(parse_volume(v) for v in self.volumes),
            volumes_from=tuple(self.volumes_from),
            network="none",
            labels=self.labels,
            stop_signal=self.stop_signal,
            pull=PullPolicy.MISSING,
            healthcheck=False,
            **self.hardening(),
        )

    def plan(self, ctx: PlanContext) -> Plan:
        """Rotate, tell the app (only if something rotated), then compress and prune."""
        paths = tuple(self.paths)
        rotate = RotateRequest(
            paths, self.mode, self.max_size, self.max_age, self.min_size, confine=True, state=None
        )
        rules = (self.compression, self.delay_compression, self.keep_last, self.keep_age)
        finish = FinishRequest(paths, *rules, confine=True)
        tell: SignalContainers | None = None
        if self.signal is not None:
            tell = SignalContainers(tuple(self.signal.containers), self.signal.signal)
        elif self.restart:
            tell = SignalContainers(tuple(self.restart), restart=True)
        return Plan(
            steps=(
                RotateLogs(
                    rotate=self._spec(ctx, rotate), tell=tell, finish=self._spec(ctx, finish)
                ),
            )
        )
