"""crontainer logs: a run's file found (a run id, latest), printed, followed to its end; the
errors and their exit codes."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest

from scheduler import run_logs
from scheduler.cli import main
from scheduler.history import History
from scheduler.run_logs import STALE_S, find, follow
from scheduler.runs import Status

END = "2026-12-04T10:00:09.000000Z meta end status=succeeded exit_code=0 dropped_lines=0 "
END += "dropped_bytes=0\n"
AT = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)


def write_config(tmp_path: Path, output: str = 'output = { volume = "vol" }') -> Path:
    (tmp_path / "out" / "vol" / "j").mkdir(parents=True, exist_ok=True)
    path = tmp_path / "c.toml"
    path.write_text(
        f'[daemon]\nstate_dir = "{tmp_path}/state"\noutput_dir = "{tmp_path}/out"\n'
        f'[jobs.j]\nkind = "run"\nimage = "i"\nschedule = "@daily"\n{output}\n'
        '[jobs.quiet]\nkind = "run"\nimage = "i"\nschedule = "@daily"\n'
    )
    return path


def record(tmp_path: Path, *runs: tuple[str, str], first: int = 0) -> None:
    """Runs of job j in the history, oldest first: (run id, status), a minute apart from
    minute ``first``."""
    history = History.open(tmp_path / "state")
    try:
        for minute, (run_id, status) in enumerate(runs, start=first):
            at = AT.replace(minute=minute)
            history.begin(run_id, 1, "j", trigger="schedule", scheduled_at=at, started_at=at)
            if status != "running":
                history.finish(run_id, 1, status=Status(status), finished_at=at)
    finally:
        history.close()


def logs(config: Path, *args: str) -> int:
    return main(["logs", "--config", str(config), *args])


def test_a_run_id_prints_that_runs_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The file as it is, byte for byte; exit 0."""
    config = write_config(tmp_path)
    text = "2026-12-04T10:00:00.000000Z stdout hi\n" + END
    (tmp_path / "out/vol/j/r1.log").write_text(text)
    assert logs(config, "j", "r1") == 0
    assert capsys.readouterr().out == text


def test_latest_is_the_newest_run_with_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The history's newest run whose file is kept (r3 kept none), running ones included."""
    config = write_config(tmp_path)
    record(tmp_path, ("r1", "failed"), ("r2", "failed"), ("r3", "succeeded"))
    (tmp_path / "out/vol/j/r1.log").write_text("one\n")
    (tmp_path / "out/vol/j/r2.log").write_text("two\n")
    assert logs(config, "j") == 0
    assert capsys.readouterr().out == "two\n"
    record(tmp_path, ("r4", "running"), first=3)
    (tmp_path / "out/vol/j/r4.log.running").write_text("four\n")
    assert logs(config, "j", "latest") == 0
    assert capsys.readouterr().out == "four\n"


def test_without_a_history_latest_is_the_newest_file(tmp_path: Path) -> None:
    """No history (or none of its runs has a file): the file last changed."""
    (tmp_path / "j").mkdir()
    (tmp_path / "j/a.log").write_text("a")
    (tmp_path / "j/b.log.running").write_text("b")
    found = find(tmp_path, "j", "latest", [])
    assert found.run_id in {"a", "b"}
    newest = max((tmp_path / "j").iterdir(), key=lambda p: p.stat().st_mtime)
    assert found.path == newest


@pytest.mark.parametrize(
    ("args", "output", "code", "said"),
    [
        (["nope"], None, 2, "error: unknown job 'nope' (not in "),
        (["quiet"], None, 2, "error: job 'quiet' keeps no output: it has no output table"),
        (["j", "r9"], None, 1, "error: no run 'r9' of job 'j' in the history nor in "),
        (["j", "r1"], None, 1, "error: run r1 of job 'j' has no output file in "),
        (["j"], None, 1, "error: job 'j' has no output file in "),
        (
            ["j"],
            'output = { volume = "elsewhere" }',
            1,
            "error: the output of job 'j' cannot be read: volume 'elsewhere' is not mounted at",
        ),
    ],
)
def test_errors_say_what_is_missing_with_their_exit_code(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    output: str | None,
    code: int,
    said: str,
) -> None:
    """Unknown job and a job without output: 2; no such run, a run without a file, no
    file yet, an unreachable volume: 1."""
    config = write_config(tmp_path, *(output,) if output else ())
    record(tmp_path, ("r1", "succeeded"))
    assert logs(config, *args) == code
    captured = capsys.readouterr()
    assert captured.err.startswith(said), captured.err
    assert captured.out == ""


def test_a_bad_config_is_a_usage_error(tmp_path: Path) -> None:
    """An invalid config: exit 2."""
    path = tmp_path / "c.toml"
    path.write_text("[jobs.j]\nkind = 'nothing'\n")
    assert logs(path, "j") == 2


class Writer:
    """Stands for the daemon: at each of follow's sleeps, the next piece is appended to
    the file (or the file is renamed away)."""

    def __init__(self, path: Path, pieces: list[str | None]) -> None:
        self.path = path
        self.pieces = pieces
        self.sleeps = 0
        self.now = 0.0

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.now += seconds
        assert self.sleeps < 1000, "follow never ended"
        if self.pieces:
            piece = self.pieces.pop(0)
            if piece is None:
                self.path.rename(self.path.with_suffix(""))
            else:
                with self.path.open("a") as f:
                    f.write(piece)

    def monotonic(self) -> float:
        return self.now


def test_follow_prints_lines_as_they_come_and_ends_at_the_end_line(tmp_path: Path) -> None:
    """A partial line waits for its newline; the end line ends the following even with
    more written after it."""
    path = tmp_path / "r1.log.running"
    path.write_text("2026-12-04T10:00:00.000000Z stdout one\n2026-12-04T10:00:01.000000Z std")
    writer = Writer(path, ["", "out two\n", END, "after the end\n"])
    out = io.BytesIO()
    follow(path, out, lambda: False, sleep=writer.sleep, monotonic=writer.monotonic)
    assert out.getvalue().decode().splitlines() == [
        "2026-12-04T10:00:00.000000Z stdout one",
        "2026-12-04T10:00:01.000000Z stdout two",
        END.rstrip("\n"),
    ]


def test_follow_ends_when_the_file_is_renamed_under_it(tmp_path: Path) -> None:
    """The run ended (its file renamed or deleted): what is left is read, then the end."""
    path = tmp_path / "r1.log.running"
    path.write_text("a\n")
    writer = Writer(path, ["b\n", None])
    out = io.BytesIO()
    follow(path, out, lambda: False, sleep=writer.sleep, monotonic=writer.monotonic)
    assert out.getvalue() == b"a\nb\n"


def test_follow_of_a_run_a_dead_daemon_left_ends_when_the_history_says_it_is_over(
    tmp_path: Path,
) -> None:
    """No end line will come: once the history says over and the file has not grown for
    STALE_S, the following ends; a retry announced keeps it waiting."""
    path = tmp_path / "r1.log.running"
    path.write_text("x\n2026-12-04T10:00:01.000000Z meta retry attempt=2 delay_s=5.0\n")
    asked: list[float] = []
    quiet: list[str | None] = [""] * int(3 * STALE_S / 0.2)  # no growth for 3 * STALE_S
    writer = Writer(path, [*quiet, "y\n"])

    def over() -> bool:
        asked.append(writer.now)
        return True

    out = io.BytesIO()
    follow(path, out, over, sleep=writer.sleep, monotonic=writer.monotonic)
    assert out.getvalue().endswith(b"y\n")
    assert asked  # asked only once the retry was followed by a line
    assert writer.now >= 3 * STALE_S + STALE_S


def test_ctrl_c_ends_a_follow_with_130(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A follow stopped with Ctrl-C exits 130, as a shell says for SIGINT, without a
    traceback."""
    config = write_config(tmp_path)
    (tmp_path / "out/vol/j/r1.log.running").write_text("a\n")

    def interrupted(*_args: object, **_kw: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(run_logs, "follow", interrupted)
    assert logs(config, "j", "r1", "--follow") == 130
