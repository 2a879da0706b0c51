"""The exclusive locks on their own: all of a run's locks or none, first come first served
per lock, a waiting run giving up at its starting deadline or its cancellation."""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import pytest
import structlog

from scheduler.clock import SystemClock
from scheduler.errors import ConfigError
from scheduler.locks import Holder, Locks, NoLock
from scheduler.reports import jobs_json, jobs_table
from scheduler.runs import Cancellation
from scheduler.settings import load_config

from .fakes import FakeClock
from .helpers import CAPTURE, events, wait_for

# --- the key ------------------------------------------------------------------------------

RUN = '[jobs.{name}]\nkind = "{kind}"\nschedule = "@hourly"\n{rest}\n'
KINDS = {"run": 'image = "busybox"', "exec": 'container = "app"\ncommand = "true"'}


def config_text(defaults: str, **locks: str) -> str:
    """A config with ``[defaults]`` and one job per keyword (a run job, or ``e…`` an exec
    job), each with its ``lock = …`` line (or none when empty)."""
    jobs = [
        RUN.format(
            name=name,
            kind="exec" if name.startswith("e") else "run",
            rest=KINDS["exec" if name.startswith("e") else "run"]
            + (f"\nlock = {value}" if value else ""),
        )
        for name, value in locks.items()
    ]
    return f"[defaults]\n{defaults}\n" + "".join(jobs)


def test_lock_is_one_name_or_a_list_and_may_be_a_default(tmp_path: Path) -> None:
    """``lock = "a"`` is one lock, a list several, ``[]`` none; [defaults]' lock applies to
    every job (of any kind) that sets none itself."""
    path = tmp_path / "c.toml"
    path.write_text(
        config_text('lock = "app-data"', one='"db"', many='["db", "files.v2"]', none="[]", e="")
    )
    jobs = load_config(path, {}).jobs
    assert jobs["one"].job.locks == ("db",)
    assert jobs["many"].job.locks == ("db", "files.v2")
    assert jobs["none"].job.locks == ()
    assert jobs["e"].job.locks == ("app-data",)


def test_crontainer_jobs_shows_each_jobs_locks(tmp_path: Path) -> None:
    """`crontainer jobs` has a LOCKS column (the names, comma-separated, or -) and --json a
    locks list, [defaults]' lock included."""
    path = tmp_path / "c.toml"
    path.write_text(config_text('lock = "app-data"', many='["db", "files.v2"]', none="[]", e=""))
    jobs = load_config(path, {}).jobs
    now = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    header, *rows = jobs_table(jobs, {}, {}, now).splitlines()
    assert header.split()[-1] == "LOCKS"
    assert {row.split()[0]: row.split()[-1] for row in rows} == {
        "many": "db,files.v2",
        "none": "-",
        "e": "app-data",
    }
    report = jobs_json(jobs, {}, {}, now)
    assert {name: cast("dict[str, object]", job)["locks"] for name, job in report.items()} == {
        "many": ["db", "files.v2"],
        "none": [],
        "e": ["app-data"],
    }


def test_bad_lock_names_are_refused_saying_what_a_name_may_hold(tmp_path: Path) -> None:
    """Every bad lock is reported at once, each under its job's key: an empty name, a name
    with a space, a name given twice, a value that is neither a string nor a list."""
    path = tmp_path / "c.toml"
    path.write_text(config_text("", a='""', b='["db", "x y"]', c='["db", "db"]', d="5", ok='"db"'))
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert caught.value.errors == [
        "jobs.a.lock: a lock name is empty (got '')",
        (
            "jobs.b.lock: lock name 'x y': use letters, digits, '.', '_' and '-', starting "
            "with a letter or digit, at most 63 characters"
        ),
        "jobs.c.lock: lock name 'db' is given twice",
        "jobs.d.lock: expected a string or a list (got 5)",
    ]


# --- the manager --------------------------------------------------------------------------


class RecordingCondition(threading.Condition):
    """Records each wait's timeout."""

    def __init__(self) -> None:
        super().__init__()
        self.timeouts: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.timeouts.append(timeout)
        return super().wait(timeout)


class Taker(threading.Thread):
    """Acquires locks in a thread of its own; ``answer`` is what ``acquire`` returned."""

    def __init__(
        self,
        locks: Locks,
        who: str,
        names: tuple[str, ...],
        scheduled_at: datetime,
        deadline: float | None = None,
    ) -> None:
        super().__init__(daemon=True)
        self.locks = locks
        self.who = Holder(who, f"run-{who}")
        self.names = names
        self.scheduled_at = scheduled_at
        self.deadline = deadline
        self.cancelled = Cancellation()
        self.answer: NoLock | str | None = "waiting"

    def run(self) -> None:
        self.answer = self.locks.acquire(
            self.who, self.names, self.scheduled_at, self.deadline, self.cancelled
        )


def make_locks() -> tuple[Locks, FakeClock, RecordingCondition]:
    clock = FakeClock()
    locks = Locks(clock)
    condition = RecordingCondition()
    locks.condition = condition
    return locks, clock, condition


def hold(locks: Locks, clock: FakeClock, who: str, *names: str) -> Holder:
    """``who`` takes ``names`` at once (they must be free)."""
    holder = Holder(who, f"run-{who}")
    assert locks.acquire(holder, names, clock.now(), None, Cancellation()) is None
    return holder


def in_line(locks: Locks, taker: Taker) -> Taker:
    """Start ``taker`` and wait until it waits in line."""
    before = sum(locks.waiting().values())
    taker.start()
    wait_for(lambda: sum(locks.waiting().values()) == before + 1)
    return taker


def test_free_locks_are_taken_at_once_and_released_together() -> None:
    """Free locks are all taken without waiting, held under the run's name, and released
    together; a run with no lock takes nothing."""
    locks, clock, condition = make_locks()
    a = hold(locks, clock, "a", "db", "files")
    assert locks.held() == {"db": a, "files": a}
    assert locks.acquire(Holder("n", "run-n"), (), clock.now(), None, Cancellation()) is None
    locks.release(a)
    assert locks.held() == {}
    assert condition.timeouts == []


def test_waiting_runs_take_a_lock_in_the_order_they_came() -> None:
    """One lock held; b then c wait for it: b gets it when it is released (c still waits),
    then c when b releases it — first come, first served."""
    locks, clock, _ = make_locks()
    a = hold(locks, clock, "a", "db")
    b = in_line(locks, Taker(locks, "b", ("db",), clock.now()))
    c = in_line(locks, Taker(locks, "c", ("db",), clock.now()))
    locks.release(a)
    b.join(10)
    assert b.answer is None
    assert locks.held() == {"db": b.who}
    assert c.answer == "waiting"
    assert locks.waiting() == {"c": 1}
    locks.release(b.who)
    c.join(10)
    assert c.answer is None
    assert locks.held() == {"db": c.who}


def test_a_run_takes_all_its_locks_or_none_and_is_not_overtaken_by_a_subset() -> None:
    """b needs db and files while db is held: it holds neither meanwhile, and c, which came
    later and needs only the free files, waits behind it (no starvation of b); when db is
    released b takes both, and c follows b."""
    locks, clock, _ = make_locks()
    a = hold(locks, clock, "a", "db")
    b = in_line(locks, Taker(locks, "b", ("db", "files"), clock.now()))
    assert locks.held() == {"db": a}
    c = in_line(locks, Taker(locks, "c", ("files",), clock.now()))
    assert locks.held() == {"db": a}
    locks.release(a)
    b.join(10)
    assert b.answer is None
    assert locks.held() == {"db": b.who, "files": b.who}
    assert c.answer == "waiting"
    locks.release(b.who)
    c.join(10)
    assert c.answer is None
    assert locks.held() == {"files": c.who}


def test_a_run_wanting_other_locks_passes_the_line() -> None:
    """Runs waiting for db do not hold up a run that needs only logs."""
    locks, clock, _ = make_locks()
    hold(locks, clock, "a", "db")
    in_line(locks, Taker(locks, "b", ("db",), clock.now()))
    d = hold(locks, clock, "d", "logs")
    assert locks.held()["logs"] == d


def test_run_waiting_is_logged_once_naming_the_lock_and_its_holder() -> None:
    """run.waiting, once however often the run wakes: its job, run id, locks, the lock it
    waits for, that lock's holder, and how many wait before it for its locks."""
    locks, clock, condition = make_locks()
    a = hold(locks, clock, "a", "files")
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        b = in_line(locks, Taker(locks, "b", ("files",), clock.now()))
        c = in_line(locks, Taker(locks, "c", ("db", "files"), clock.now()))
        locks.wake_all()
        wait_for(lambda: len(condition.timeouts) >= 4)
        assert (b.answer, c.answer) == ("waiting", "waiting")
        locks.release(a)
        b.join(10)
        locks.release(b.who)
        c.join(10)
    waiting = events(logs, "run.waiting")
    assert [(e["job"], e["run_id"], e["locks"], e["lock"]) for e in waiting] == [
        ("b", "run-b", ["files"], "files"),
        ("c", "run-c", ["db", "files"], "files"),
    ]
    assert [(e["holder_job"], e["holder_run_id"], e["ahead"]) for e in waiting] == [
        ("a", "run-a", 0),
        ("a", "run-a", 1),
    ]
    assert condition.timeouts == [None] * len(condition.timeouts)  # no deadline: no bound


def test_a_waiting_run_gives_up_at_its_deadline_naming_the_lock() -> None:
    """Deadline 60 s, 20.5 s late: it waits 39.5 s; past the deadline it gives up with
    ``lock:<name>``, how late it was and the holder, holding nothing, out of the line."""
    locks, clock, condition = make_locks()
    a = hold(locks, clock, "a", "db")
    b = in_line(
        locks, Taker(locks, "b", ("files", "db"), clock.now() - timedelta(seconds=20.5), 60.0)
    )
    clock.advance(39.75)
    locks.wake_all()
    b.join(10)
    assert condition.timeouts == [pytest.approx(39.5)]
    assert isinstance(b.answer, NoLock)
    assert (b.answer.reason, b.answer.lock, b.answer.holder) == ("lock:db", "db", a)
    assert b.answer.late_s == pytest.approx(60.25)
    assert locks.held() == {"db": a}
    assert locks.waiting() == {}


def test_a_run_woken_past_its_deadline_by_the_release_names_the_lock_it_waited_for() -> None:
    """b waits for db (deadline 60 s); db is released only after the deadline passed: b
    gives up with ``lock:db`` (it did wait for it), no holder (free by then) — not
    ``starting_deadline``, which says it was late before it ever waited."""
    locks, clock, _ = make_locks()
    a = hold(locks, clock, "a", "db")
    b = in_line(locks, Taker(locks, "b", ("db",), clock.now(), 60.0))
    clock.advance(61)
    locks.release(a)
    b.join(10)
    assert isinstance(b.answer, NoLock)
    assert (b.answer.reason, b.answer.lock, b.answer.holder) == ("lock:db", "db", None)
    assert b.answer.late_s == pytest.approx(61)
    assert locks.held() == {}


def test_a_waiting_run_near_its_deadline_waits_only_what_is_left() -> None:
    """Deadline 60 s, 59.7 s late: it waits the last 0.3 s (not a second more)."""
    locks, clock, condition = make_locks()
    hold(locks, clock, "a", "db")
    b = in_line(locks, Taker(locks, "b", ("db",), clock.now() - timedelta(seconds=59.7), 60.0))
    clock.advance(0.5)
    locks.wake_all()
    b.join(10)
    assert condition.timeouts == [pytest.approx(0.3)]
    assert isinstance(b.answer, NoLock)
    assert b.answer.reason == "lock:db"


def test_waiting_counts_runs_by_job_and_ahead_counts_only_runs_on_the_same_locks() -> None:
    """Two runs of k and one of m in line: waiting() says k 2, m 1; the last run's
    run.waiting counts ahead of it only the runs that want one of its locks (k's), not m's
    (on another lock)."""
    locks, clock, _ = make_locks()
    hold(locks, clock, "a", "db")
    hold(locks, clock, "x", "logs")
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        in_line(locks, Taker(locks, "k", ("db",), clock.now()))
        in_line(locks, Taker(locks, "m", ("logs",), clock.now()))
        second = Taker(locks, "k", ("db",), clock.now())
        second.who = Holder("k", "run-k2")
        in_line(locks, second)
    assert locks.waiting() == {"k": 2, "m": 1}
    assert [e["ahead"] for e in events(logs, "run.waiting")] == [0, 0, 1]
    second.cancelled.cancel("daemon_stopping")
    locks.wake_all()
    second.join(10)
    assert locks.waiting() == {"k": 1, "m": 1}


def test_a_run_behind_one_in_line_gives_up_naming_the_lock_nobody_holds() -> None:
    """b waits for db and files (files held by a); c waits for db behind b: at c's deadline
    it gives up with ``lock:db`` and no holder (db was free, b first in line for it)."""
    locks, clock, _ = make_locks()
    hold(locks, clock, "a", "files")
    in_line(locks, Taker(locks, "b", ("db", "files"), clock.now()))
    c = in_line(locks, Taker(locks, "c", ("db",), clock.now(), 5.0))
    clock.advance(6)
    locks.wake_all()
    c.join(10)
    assert isinstance(c.answer, NoLock)
    assert (c.answer.reason, c.answer.lock, c.answer.holder) == ("lock:db", "db", None)
    assert c.answer.late_s == pytest.approx(6.0)


def test_a_run_late_before_it_waits_is_past_its_starting_deadline() -> None:
    """Free locks but a run already past its deadline: it takes none, reason
    starting_deadline (it never waited for a lock)."""
    locks, clock, _ = make_locks()
    answer = locks.acquire(
        Holder("b", "r"), ("db",), clock.now() - timedelta(seconds=11), 10.0, Cancellation()
    )
    assert isinstance(answer, NoLock)
    assert (answer.reason, answer.lock, answer.holder) == ("starting_deadline", None, None)
    assert answer.late_s == pytest.approx(11.0)
    assert locks.held() == {}


def test_a_waiting_run_that_leaves_the_line_lets_the_next_one_go() -> None:
    """b (needing db and files, db held) is first in line for files; c waits for files
    behind it. b is cancelled (a stop): it gives up with the cancellation's reason, and c
    takes files at once. A run cancelled before it asks gets nothing, even free locks."""
    locks, clock, _ = make_locks()
    hold(locks, clock, "a", "db")
    b = in_line(locks, Taker(locks, "b", ("db", "files"), clock.now()))
    c = in_line(locks, Taker(locks, "c", ("files",), clock.now()))
    b.cancelled.cancel("daemon_stopping")
    locks.wake_all()
    b.join(10)
    c.join(10)
    assert b.answer == NoLock("daemon_stopping", 0.0)
    assert c.answer is None
    assert locks.held()["files"] == c.who
    early = Cancellation()
    early.cancel("replaced")
    answer = locks.acquire(Holder("e", "r"), ("logs",), clock.now(), None, early)
    assert answer == NoLock("replaced", 0.0)
    assert "logs" not in locks.held()


def test_many_runs_on_overlapping_locks_never_share_one_and_all_finish() -> None:
    """40 runs on real threads, each needing a random one to three of four locks and holding
    them a moment: no lock is ever held by two runs at once, and every run gets its locks
    (no deadlock)."""
    locks = Locks(SystemClock())
    names = ("a", "b", "c", "d")
    inside: dict[str, int] = dict.fromkeys(names, 0)
    overlaps: list[str] = []
    guard = threading.Lock()
    chooser = random.Random(20)
    wanted = [tuple(chooser.sample(names, chooser.randint(1, 3))) for _ in range(40)]
    done: list[str] = []

    def body(index: int, mine: tuple[str, ...]) -> None:
        who = Holder(f"j{index}", str(index))
        now = SystemClock().now()
        assert locks.acquire(who, mine, now, None, Cancellation()) is None
        with guard:
            for name in mine:
                inside[name] += 1
                if inside[name] > 1:
                    overlaps.append(name)
        time.sleep(0.002)
        with guard:
            for name in mine:
                inside[name] -= 1
        locks.release(who)
        with guard:
            done.append(who.run_id)

    threads = [
        threading.Thread(target=body, args=(i, mine), daemon=True) for i, mine in enumerate(wanted)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert overlaps == []
    assert sorted(done, key=int) == [str(i) for i in range(40)]
    assert locks.held() == {}
