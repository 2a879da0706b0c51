"""Background work (preparations ahead, their removals, execs created ahead) runs on daemon
threads: an engine call that hangs never keeps the daemon from stopping, and a stop waits
for that work only as long as it says."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from scheduler.background import Background

from .helpers import wait_for

ROOT = Path(__file__).resolve().parents[2]

HUNG = textwrap.dedent(
    """
    import sys, threading
    from datetime import timedelta
    from pathlib import Path

    import scheduler.prepared
    from tests.unit.fakes import FakeClock, FakeEngine
    from tests.unit.helpers import SCHEDULED, Heard, make_config, make_runner

    scheduler.prepared.CLOSE_WAIT_S = 0.2  # the stop's wait for them: short, still bounded
    never = threading.Event()
    entered = threading.Barrier(3)

    class Hung(FakeEngine):
        # A pull and an exec creation that never return (an engine that stopped answering).
        def ensure_image(self, image, policy, auth=None):
            entered.wait()
            never.wait()

        def exec_create(self, container, command, *, user, workdir, env):
            entered.wait()
            never.wait()
            return "x"

    jobs = (
        '[jobs.x]\\nkind = "exec"\\ncontainer = "app"\\ncommand = "w"\\nschedule = "@daily"\\n'
    )
    config = make_config(Path(sys.argv[1]), jobs=jobs)
    engine = Hung(FakeClock(SCHEDULED - timedelta(seconds=5)))
    runner = make_runner(config, engine, Heard())
    runner.preparations.prepare(config.jobs["j"], SCHEDULED, SCHEDULED)
    runner.execs_ahead.prepare(config.jobs["x"], SCHEDULED, SCHEDULED)
    entered.wait(10)
    runner.stop_preparing(wait=False)  # as the daemon's stop: then the runs' grace, then
    runner.finish_preparing()
    print("stopped", flush=True)
    """
)


def test_engine_calls_that_hang_do_not_keep_the_process_from_exiting(tmp_path: Path) -> None:
    """A preparation's pull and an exec's creation hang forever: the stop waits its bounded
    time and the process exits (Python joins a ThreadPoolExecutor's workers at its exit,
    whatever its shutdown said: it would never end)."""
    process = subprocess.Popen(
        [sys.executable, "-c", HUNG, str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        out, err = process.communicate(timeout=60)  # a hang detector, not a speed bound
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        pytest.fail(f"the process did not exit; it printed {out!r}, {err.decode()[-2000:]}")
    assert process.returncode == 0, err.decode()[-2000:]
    assert out == b"stopped\n"


def test_work_runs_on_daemon_threads_up_to_the_limit() -> None:
    """Each piece of work runs, its future tells its result; at most ``workers`` threads,
    all daemon threads named after the pool."""
    pool = Background(2, "bg")
    gate = threading.Event()
    seen: list[threading.Thread] = []

    def work(value: int) -> int:
        seen.append(threading.current_thread())
        gate.wait(10)
        return value * 2

    futures = [pool.submit(work, n) for n in range(5)]
    wait_for(lambda: len(seen) == 2)
    gate.set()
    assert [f.result(10) for f in futures] == [0, 2, 4, 6, 8]
    assert len({t.name for t in seen}) == 2
    assert all(t.daemon and t.name.startswith("bg") for t in seen)
    assert pool.shutdown(wait_s=10)


def test_a_failure_is_the_futures_not_the_threads() -> None:
    """Work that raises sets its future's exception; the thread takes the next piece."""
    pool = Background(1, "bg")

    def boom() -> None:
        raise ValueError("boom")

    failed = pool.submit(boom)
    assert isinstance(failed.exception(10), ValueError)
    assert pool.submit(lambda: 7).result(10) == 7
    pool.shutdown(wait_s=10)


def test_a_bounded_shutdown_cancels_what_waits_and_leaves_what_hangs() -> None:
    """``shutdown`` cancels work not begun (with ``cancel_futures``), waits at most
    ``wait_s`` for the rest and says whether it all ended; nothing more is taken after it."""
    pool = Background(1, "bg")
    never, entered = threading.Event(), threading.Event()

    def hang() -> None:
        entered.set()
        never.wait()

    hung = pool.submit(hang)
    assert entered.wait(10)
    queued = pool.submit(lambda: None)
    assert pool.shutdown(wait_s=0.1, cancel_futures=True) is False
    assert queued.cancelled()
    assert not hung.done()
    with pytest.raises(RuntimeError):
        pool.submit(lambda: None)
    never.set()
    hung.result(10)


def test_a_shutdown_without_cancelling_lets_queued_work_run() -> None:
    """Without ``cancel_futures`` the work already queued still runs after the shutdown."""
    pool = Background(1, "bg")
    gate = threading.Event()
    first = pool.submit(gate.wait, 10)
    second = pool.submit(lambda: "ran")
    pool.shutdown()
    gate.set()
    assert first.result(10) is True
    assert second.result(10) == "ran"
