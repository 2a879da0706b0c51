"""A run's whole output kept in a file: the format, the size bound, on = "failure", keep's
pruning, the volume's directory, and the runner writing it."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import structlog

from jobs.base import OutputSpec
from scheduler.engine import (
    LABEL_ATTEMPT,
    LABEL_DAEMON,
    LABEL_JOB,
    LABEL_RUN,
    ContainerInfo,
    ExitStatus,
)
from scheduler.errors import ConfigError, EngineUnavailableError
from scheduler.history import History
from scheduler.output import OutputLog
from scheduler.recovery import settle
from scheduler.run_files import ENGINE, OutputDirError, OutputDirs, RunFile, is_end, prune

from .fakes import FakeClock, FakeEngine
from .helpers import SCHEDULED, Heard, Logs, ended, events, make_config, make_runner

if TYPE_CHECKING:
    from scheduler.settings import Config

T0 = datetime(2026, 12, 4, 10, 15, 6, 123456, tzinfo=UTC)
"""The first time the ticking clock gives; recorded start of the runs left running."""


class Ticking:
    """A wall clock that moves one millisecond each time it is read."""

    def __init__(self) -> None:
        self.at = T0

    def __call__(self) -> datetime:
        now = self.at
        self.at += timedelta(milliseconds=1)
        return now


def spec(**given: object) -> OutputSpec:
    return OutputSpec.model_validate(given)


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_each_line_has_its_time_and_stream_and_the_file_ends_with_the_status(
    tmp_path: Path,
) -> None:
    """Output lines in the order given, times in UTC with microseconds (the lines of one
    chunk, up to a flush, share the time it was read), then the end line; the file is
    renamed from .log.running to .log."""
    file = RunFile(tmp_path / "job", "r1", spec(), Ticking())
    assert file.path == tmp_path / "job" / "r1.log.running"
    file.line("stdout", b"hello world")
    file.line("stderr", b"warn\r")
    file.flush()
    assert lines_of(file.path)[0] == "2026-12-04T10:15:06.123456Z stdout hello world"
    file.line("stdout", b"x" * 5, cut=True)
    file.flush()
    file.line("stdout", b"caf\xc3\xa9 \xff")
    kept = file.close("failed", 3)
    assert kept == tmp_path / "job" / "r1.log"
    assert not file.path.exists()
    assert lines_of(kept) == [
        "2026-12-04T10:15:06.123456Z stdout hello world",
        "2026-12-04T10:15:06.123456Z stderr warn",
        "2026-12-04T10:15:06.124456Z stdout+cut xxxxx",
        "2026-12-04T10:15:06.125456Z stdout café \ufffd",
        (
            "2026-12-04T10:15:06.126456Z meta end status=failed exit_code=3 dropped_lines=0 "
            "dropped_bytes=0"
        ),
    ]
    assert is_end(lines_of(kept)[-1])
    assert not is_end(lines_of(kept)[0])


def test_a_process_printing_the_end_words_on_stdout_is_no_end(tmp_path: Path) -> None:
    """Only the daemon's meta stream ends a file."""
    file = RunFile(tmp_path / "job", "r1", spec(), Ticking())
    file.line("stdout", b"meta end status=succeeded")
    file.close("succeeded", 0)
    first, last = lines_of(tmp_path / "job" / "r1.log")
    assert not is_end(first)
    assert is_end(last)


def test_nothing_reaches_the_disk_before_a_flush(tmp_path: Path) -> None:
    """Lines are buffered: one write per chunk of output (the flush), not per line."""
    file = RunFile(tmp_path / "job", "r1", spec(), Ticking())
    file.line("stdout", b"a")
    file.line("stdout", b"b")
    assert file.path.read_bytes() == b""
    file.flush()
    assert len(lines_of(file.path)) == 2


def test_past_max_size_one_truncation_line_and_the_rest_counted(tmp_path: Path) -> None:
    """Lines that would pass max_size are dropped and counted; one truncation line says so;
    the end line counts them. The output lines stay within max_size."""
    file = RunFile(tmp_path / "job", "r1", spec(max_size=1024), Ticking())
    line = b"y" * 90  # 28 bytes of time, 7 of stream, 1 space... about 128 bytes a line
    for _ in range(20):
        file.line("stdout", line)
    file.close("succeeded", 0)
    written = lines_of(tmp_path / "job" / "r1.log")
    kept = [w for w in written if " stdout " in w]
    assert len(kept) == 8  # lines of 126 bytes: 8 fit in 1024, 9 do not
    assert sum(len(w) + 1 for w in kept) <= 1024
    assert written[8].endswith(" meta truncated max_size=1024")
    assert written[9].endswith(
        " meta end status=succeeded exit_code=0 dropped_lines=12 dropped_bytes=1080"
    )
    assert len(written) == 10


@pytest.mark.parametrize(
    ("status", "kept"),
    [("succeeded", False), ("failed", True), ("timed_out", True), ("cancelled", False)],
)
def test_on_failure_keeps_only_failed_and_timed_out_runs(
    tmp_path: Path, status: str, *, kept: bool
) -> None:
    """on = "failure": a failed or timed_out run's file is kept, another's deleted."""
    file = RunFile(tmp_path / "job", "r1", spec(on="failure"), Ticking())
    file.line("stdout", b"something")
    result = file.close(status, 1)
    assert (result is not None) is kept
    assert sorted(p.name for p in (tmp_path / "job").iterdir()) == (["r1.log"] if kept else [])


def test_on_always_keeps_a_succeeded_run(tmp_path: Path) -> None:
    """on = "always" (the default) keeps every run's file."""
    file = RunFile(tmp_path / "job", "r1", spec(), Ticking())
    assert file.close("succeeded", 0) == tmp_path / "job" / "r1.log"


def test_lines_after_the_end_are_not_written(tmp_path: Path) -> None:
    """An output thread still draining after the run ended writes nothing more."""
    file = RunFile(tmp_path / "job", "r1", spec(), Ticking())
    file.close("succeeded", 0)
    file.line("stdout", b"late")
    file.flush()
    file.meta("late")
    assert file.close("failed", 1) is None
    assert len(lines_of(tmp_path / "job" / "r1.log")) == 1


def test_prune_deletes_only_ended_run_files_older_than_keep(tmp_path: Path) -> None:
    """keep is measured from each file's last change to now (the daemon's clock); other
    files are left alone, and so is a ``.running`` file however old (a quiet run still
    going, or one its daemon could not end, waiting to be settled)."""
    now = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    ages = {"old.log": 15, "young.log": 13, "stale.log.running": 20, "notes.txt": 30}
    for name, days in ages.items():
        path = tmp_path / name
        path.write_text("x")
        stamp = (now - timedelta(days=days)).timestamp()
        os.utime(path, (stamp, stamp))
    assert prune(tmp_path, 14 * 86400, now) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "notes.txt",
        "stale.log.running",
        "young.log",
    ]
    assert prune(tmp_path / "absent", 1, now) == 0


def test_the_volume_is_a_directory_under_output_dir(tmp_path: Path) -> None:
    """output_dir/<volume>, when it is there; a clear error naming the mount otherwise."""
    (tmp_path / "cron-output").mkdir()
    dirs = OutputDirs(str(tmp_path), None)
    assert dirs.of("cron-output") == tmp_path / "cron-output"
    with pytest.raises(OutputDirError) as caught:
        dirs.of("other")
    assert str(caught.value) == (
        f"volume 'other' is not mounted at {tmp_path}/other (mount it there: "
        f"-v other:{tmp_path}/other)"
    )


def test_the_engine_says_where_a_volume_is(tmp_path: Path) -> None:
    """output_dir = "engine": the volume's Mountpoint; a missing volume is named."""
    engine = FakeEngine(FakeClock(), volumes={"cron-output": str(tmp_path)})
    dirs = OutputDirs(ENGINE, engine)
    assert dirs.of("cron-output") == tmp_path
    assert dirs.of("cron-output") == tmp_path
    assert engine.calls.count(("volume_path", "cron-output")) == 1  # asked once
    with pytest.raises(OutputDirError, match=r"'nope' does not exist on the engine"):
        dirs.of("nope")


def test_problems_name_each_job_whose_volume_is_unreachable(tmp_path: Path) -> None:
    """The start-up check: enabled jobs with output whose volume is not there."""
    (tmp_path / "out" / "here").mkdir(parents=True)
    config = make_config(
        tmp_path,
        job='output = { volume = "gone" }',
        jobs='[jobs.k]\nkind = "run"\nimage = "i"\nschedule = "@daily"\n'
        'output = { volume = "here" }\n'
        '[jobs.off]\nkind = "run"\nimage = "i"\nschedule = "@daily"\nenabled = false\n'
        'output = { volume = "gone" }\n',
        daemon=f'output_dir = "{tmp_path}/out"',
    )
    problems = OutputDirs(config.daemon.output_dir, None).problems(config.jobs)
    assert problems == [
        (
            f"jobs.j.output.volume: volume 'gone' is not mounted at {tmp_path}/out/gone "
            f"(mount it there: -v gone:{tmp_path}/out/gone)"
        )
    ]


# --- the config ------------------------------------------------------------------------


def config_errors(tmp_path: Path, job: str, daemon: str = "") -> list[str]:
    with pytest.raises(ConfigError) as caught:
        make_config(tmp_path, job=job, daemon=daemon)
    return caught.value.errors


def test_output_keys_are_validated_in_the_files_words(tmp_path: Path) -> None:
    """Volume names, durations, sizes, on: each error names the key."""
    errors = config_errors(
        tmp_path, 'output = { volume = "../x", keep = "soon", max_size = "1kB", on = "never" }'
    )
    text = "\n".join(errors)
    assert "jobs.j.output.volume: " in text
    assert "not a volume name" in text
    assert "jobs.j.output.keep: " in text
    assert "jobs.j.output.max_size: " in text
    assert "jobs.j.output.on: " in text
    assert len(errors) == 4


def test_output_dir_is_absolute_or_engine(tmp_path: Path) -> None:
    """[daemon] output_dir: a relative path is refused."""
    errors = config_errors(tmp_path, "", daemon='output_dir = "out"')
    assert len(errors) == 1
    assert errors[0].startswith("daemon.output_dir: ")
    assert "absolute directory or 'engine'" in errors[0]


def test_defaults_output_merges_with_the_jobs_own(tmp_path: Path) -> None:
    """[defaults] output and a job's output table merge key by key."""
    path = tmp_path / "c.toml"
    path.write_text(
        f'[daemon]\nstate_dir = "{tmp_path}/s"\n'
        '[defaults]\noutput = { volume = "logs", keep = "2d" }\n'
        '[jobs.j]\nkind = "run"\nimage = "i"\nschedule = "@daily"\noutput = { on = "failure" }\n'
    )
    from scheduler.settings import load_config  # noqa: PLC0415

    job = load_config(path, {}).jobs["j"].job
    assert job.output == OutputSpec(volume="logs", keep=2 * 86400.0, on="failure")
    assert job.output.max_size == 10 * 1024 * 1024


# --- the runner writes it ---------------------------------------------------------------


def output_config(tmp_path: Path, job: str = "", on: str = "always") -> Config:
    (tmp_path / "out" / "vol").mkdir(parents=True)
    return make_config(
        tmp_path,
        job=f'output = {{ volume = "vol", on = "{on}" }}\n{job}',
        daemon=f'output_dir = "{tmp_path}/out"',
    )


def run(config: Config, engine: FakeEngine) -> tuple[str, Logs]:
    runner = make_runner(config, engine, Heard())
    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars]
    ) as logs:
        run_id = runner.submit(config.jobs["j"], SCHEDULED)
        ended(runner)
    assert run_id is not None
    return run_id, logs


def test_a_run_writes_its_whole_output_with_its_end(tmp_path: Path) -> None:
    """The container's lines (past the log's own bound, max_output_per_run) go to
    <volume>/<job>/<run_id>.log, then the end line with the outcome."""
    config = output_config(tmp_path)
    chunks = [("stdout", b"one\ntw"), ("stderr", b"oops\n"), ("stdout", b"o\nthree")]
    engine = FakeEngine(FakeClock(), output_chunks=chunks, exit_status=ExitStatus(2))
    run_id, logs = run(config, engine)
    path = tmp_path / "out" / "vol" / "j" / f"{run_id}.log"
    written = [line.split(" ", 1)[1] for line in lines_of(path)]
    assert written[:4] == ["stdout one", "stderr oops", "stdout two", "stdout three"]
    assert written[4] == "meta end status=failed exit_code=2 dropped_lines=0 dropped_bytes=0"
    assert len(written) == 5
    assert events(logs, "run.output_file_failed") == []


def test_retries_are_announced_in_the_file(tmp_path: Path) -> None:
    """Each attempt's output goes to the run's one file; a retry line comes between."""
    config = output_config(tmp_path, job="retries = 1\nretry_delay = 5")
    engine = FakeEngine(
        FakeClock(),
        output_chunks=[("stdout", b"try\n")],
        sequence=[ExitStatus(1), ExitStatus(0)],
    )
    run_id, _ = run(config, engine)
    written = [line.split(" ", 1)[1] for line in lines_of(tmp_path / "out/vol/j" / f"{run_id}.log")]
    assert written == [
        "stdout try",
        "meta retry attempt=2 delay_s=5.0",
        "stdout try",
        "meta end status=succeeded exit_code=0 dropped_lines=0 dropped_bytes=0",
    ]


def test_on_failure_leaves_no_file_of_a_run_that_succeeded(tmp_path: Path) -> None:
    """The file written while it ran is deleted at its end."""
    config = output_config(tmp_path, on="failure")
    engine = FakeEngine(FakeClock(), output_chunks=[("stdout", b"fine\n")])
    run(config, engine)
    assert list((tmp_path / "out/vol/j").iterdir()) == []


def test_an_unreachable_volume_is_logged_and_the_run_goes_on(tmp_path: Path) -> None:
    """run.output_file_failed names the volume; the run succeeds, its output logged."""
    config = make_config(
        tmp_path, job='output = { volume = "vol" }', daemon=f'output_dir = "{tmp_path}/none"'
    )
    engine = FakeEngine(FakeClock(), output_chunks=[("stdout", b"fine\n")])
    _, logs = run(config, engine)
    failed = events(logs, "run.output_file_failed")
    assert len(failed) == 1
    assert failed[0]["volume"] == "vol"
    assert "is not mounted at" in str(failed[0]["error"])
    assert len(events(logs, "run.succeeded")) == 1
    assert [e["line"] for e in events(logs, "run.output")] == ["fine"]


def test_the_output_log_feeds_the_file_one_write_per_chunk(tmp_path: Path) -> None:
    """OutputLog writes each line to the file, and the file out at each chunk's end."""
    file = RunFile(tmp_path / "job", "r1", spec(), Ticking())
    output = OutputLog(structlog.get_logger(), max_line=100, max_total=5)
    output.file = file
    output.feed("stdout", b"first line past the log's bound\nsecond\npart")
    assert len(lines_of(file.path)) == 2
    output.close()
    assert [line.split(" ", 2)[2] for line in lines_of(file.path)] == [
        "first line past the log's bound",
        "second",
        "part",
    ]


def test_a_timed_out_run_is_kept_on_failure(tmp_path: Path) -> None:
    """on = "failure": a run stopped at its timeout keeps its file, ending timed_out."""
    config = output_config(tmp_path, on="failure")
    engine = FakeEngine(FakeClock(), output_chunks=[("stdout", b"slow\n")], exit_status=None)
    run_id, _ = run(config, engine)
    last = lines_of(tmp_path / "out/vol/j" / f"{run_id}.log")[-1]
    assert last.split(" ", 1)[1] == (
        "meta end status=timed_out exit_code=143 dropped_lines=0 dropped_bytes=0"
    )


def test_a_run_the_engine_interrupted_is_left_running_for_the_settling(tmp_path: Path) -> None:
    """The engine went away while the container existed: the run stays recorded running,
    and its file .running without an end line, until the settling knows how it ended."""
    config = output_config(tmp_path, on="failure")
    engine = FakeEngine(
        FakeClock(),
        output_chunks=[("stdout", b"before\n")],
        fail={"wait": EngineUnavailableError("engine gone")},
    )
    run_id, logs = run(config, engine)
    assert events(logs, "run.succeeded", "run.failed") == []
    path = tmp_path / "out/vol/j" / f"{run_id}.log.running"
    assert [line.split(" ", 1)[1] for line in lines_of(path)] == ["stdout before"]


def test_runs_an_earlier_daemon_left_have_their_files_ended_when_settled(
    tmp_path: Path,
) -> None:
    """A container that ended while the daemon was down, one adopted and followed to its
    end, and a run whose container is gone: each file gets a line saying how it was
    settled and the end line, and is kept as on says (failed: kept)."""
    config = output_config(tmp_path, on="failure")
    labels = {LABEL_DAEMON: "d1", LABEL_JOB: "j", LABEL_ATTEMPT: "1"}
    engine = FakeEngine(
        FakeClock(),
        exit_status=ExitStatus(4),
        containers=[
            ContainerInfo("c1", "c1", "exited", {**labels, LABEL_RUN: "exited"}),
            ContainerInfo("c2", "c2", "running", {**labels, LABEL_RUN: "alive"}),
        ],
    )
    history = History.open(config.daemon.state_dir)
    directory = tmp_path / "out/vol/j"
    directory.mkdir()
    for run_id in ("exited", "alive", "gone"):
        history.begin(run_id, 1, "j", trigger="schedule", scheduled_at=T0, started_at=T0)
        (directory / f"{run_id}.log.running").write_text("2026-12-04T10:15:06.123456Z stdout x\n")
    runner = make_runner(config, engine, Heard(), history=history)
    settle(engine, history, runner, jobs=config.jobs, daemon="d1", clock=engine.clock)
    ended(runner)
    assert sorted(p.name for p in directory.iterdir()) == ["alive.log", "exited.log", "gone.log"]
    ends = {
        p.name: [line.split(" ", 1)[1] for line in lines_of(p)[1:]] for p in directory.iterdir()
    }
    unknown = "dropped_lines=unknown dropped_bytes=unknown"
    settled = (
        "meta settled after a restart: the output since the daemon stopped is not in this file"
    )
    assert ends == {
        "exited.log": [settled, f"meta end status=failed exit_code=4 {unknown}"],
        "alive.log": [
            "meta adopted after a restart: the output since then is not in this file",
            f"meta end status=failed exit_code=4 {unknown}",
        ],
        "gone.log": [settled, f"meta end status=failed exit_code=none {unknown}"],
    }
    history.close()


class FullDisk:
    """A raw file that takes part of the first write, then fails as a full disk does."""

    def __init__(self) -> None:
        self.closed = False
        self.taken = b""

    def write(self, data: memoryview) -> int:
        if self.taken:
            raise OSError(28, "No space left on device")
        self.taken = bytes(data[:10])
        return 10

    def close(self) -> None:
        self.closed = True


def test_a_failed_write_ends_the_writing_not_the_run(tmp_path: Path) -> None:
    """A part written, then the rest retried; a write that fails stops the file's writing
    (error says why) and nothing raises."""
    file = RunFile(tmp_path / "job", "r1", spec(), Ticking())
    disk = FullDisk()
    file._file = disk  # type: ignore[assignment]
    file.line("stdout", b"hello world")
    file.flush()
    assert disk.taken == b"2026-12-04"
    assert file.error == "[Errno 28] No space left on device"
    file.line("stdout", b"more")
    file.flush()
    assert file.close("succeeded", 0) == tmp_path / "job" / "r1.log"
    assert disk.closed
