"""The status page's server time per page: a config of many jobs, a state database of many
runs, and each page rendered as the listener renders it (``StatusPages.answer``; no socket).
Issue 21's target: < 200 ms for / with 1,000 jobs and 100,000 history rows (``/`` shows
the first 200 jobs, ``?page=5`` the last 200, ``?outcome=failed`` those whose last run
failed, ``?q=`` those whose name holds a text). Printed per page: the wall time of the
first render and its CPU time (cold: / makes the strip of last runs of every job it shows
and plans the timeline of each schedule), then the wall time of the rounds after it (warm:
a strip is made again only for a job whose runs changed), their median and longest, the
median CPU time of the rendering thread in those rounds (what the page costs the daemon,
whatever else the machine runs), and the page's size.

    python bench/ui_render.py                         # 1,000 jobs, 100,000 rows, 5 rounds
    python bench/ui_render.py --jobs 1000 --rows 100000 --rounds 10
    python bench/ui_render.py --no-index              # without schema 7's runs_by_job_time
    python bench/ui_render.py --varied                # most jobs a schedule of their own
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scheduler.history import History  # noqa: E402
from scheduler.settings import load_config  # noqa: E402
from scheduler.status import Health  # noqa: E402
from scheduler.ui import PageSource, StatusPages  # noqa: E402

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
SCHEDULES = ["*/5 * * * *", "0 3 * * *", "@hourly", "30 2 * * mon-fri", "@every 10m", "@manual"]
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo"]
STATUSES = ["succeeded"] * 16 + ["failed", "timed_out", "skipped", "missed"]


def varied(rng: random.Random) -> str:
    """A schedule of its own: a random minute of every n-th hour, or every n minutes in a
    span of hours (the timeline plans each distinct schedule once)."""
    minute, step = rng.randrange(60), rng.choice([1, 2, 3, 4, 6, 12])
    if rng.random() < 0.2:  # a fifth fire often
        first = rng.randrange(12)
        return f"*/{rng.choice([5, 10, 15])} {first}-{first + rng.randrange(12)} * * *"
    return f"{minute} */{step} * * *"


def write_config(directory: Path, jobs: int, *, varied_schedules: bool = False) -> Path:
    rng = random.Random(21)  # noqa: S311 - a reproducible mix, not a secret
    parts = [f'[daemon]\nstate_dir = "{directory}/state"\nui = true\n']
    parts += [
        f'[jobs.job-{i:05d}]\nkind = "run"\nimage = "busybox"\n'
        f'schedule = "{varied(rng) if varied_schedules else rng.choice(SCHEDULES)}"\n'
        f'timezone = "{rng.choice(ZONES)}"\n'
        f'command = ["sh", "-c", "echo {i}"]\n'
        for i in range(jobs)
    ]
    path = directory / "c.toml"
    path.write_text("".join(parts))
    return path


def fill(history: History, jobs: int, rows: int) -> None:
    """``rows`` attempts spread over the jobs, one every few minutes back from NOW; failed
    ones with a reason, an error and an output tail."""
    rng = random.Random(34)  # noqa: S311 - a reproducible mix, not a secret
    batch = []
    for n in range(rows):
        job = f"job-{n % jobs:05d}"
        at = NOW - timedelta(minutes=5 * (n // jobs) + rng.random())
        status = rng.choice(STATUSES)
        bad = status in ("failed", "timed_out")
        batch.append(
            (
                f"r{n:07d}",
                1,
                job,
                "schedule",
                at.isoformat(),
                at.isoformat(),
                (at + timedelta(seconds=rng.uniform(0.2, 30))).isoformat(),
                status,
                1 if bad else 0,
                "exit_code" if bad else None,
                "the job exited 1" if bad else None,
                f"{n:064x}",
                ("error: something went wrong\n" * 40) if bad else None,
            )
        )
    with history.connection:
        history.connection.executemany(
            "INSERT INTO runs (run_id, attempt, job, trigger, scheduled_at, started_at, "
            "finished_at, status, exit_code, reason, error, container_id, output_tail) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            batch,
        )
        history.connection.execute(
            "INSERT INTO jobs (name, last_status, last_finished_at, last_success_at) "
            "SELECT job, status, max(finished_at), max(finished_at) FROM runs GROUP BY job"
        )
        history.connection.execute("ANALYZE")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-index", action="store_true", help="drop runs_by_job_time first")
    parser.add_argument(
        "--varied", action="store_true", help="a schedule of its own for most jobs (timeline)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        config = load_config(write_config(directory, args.jobs, varied_schedules=args.varied), {})
        history = History.open(directory / "state")
        fill(history, args.jobs, args.rows)
        if args.no_index:
            history.connection.execute("DROP INDEX runs_by_job_time")
        loop = threading.Event()
        loop.set()
        health = Health(loop.is_set, lambda: None)
        health.ready.set()
        pages = StatusPages(
            PageSource(
                jobs=lambda: config.jobs,
                sources=lambda: config.sources,
                history=history,
                health=health,
                now=lambda: NOW,
                daemon="bench",
                output_dirs=None,
            )
        )
        failed = history.connection.execute(
            "SELECT run_id FROM runs WHERE status = 'failed' LIMIT 1"
        ).fetchone()[0]
        targets = [
            "/",
            "/?page=5",
            "/?outcome=failed",
            "/?q=job-0099",
            "/jobs/job-00007",
            "/jobs/job-00007?outcome=failed",
            f"/runs/{failed}",
        ]
        print(
            f"{args.jobs} jobs, {args.rows} history rows, {args.rounds} rounds"
            + (" (no runs_by_job_time index)" if args.no_index else "")
            + (" (varied schedules)" if args.varied else "")
        )
        print(
            f"{'page':30} {'cold ms':>8} {'CPU':>6} {'warm ms':>8} {'max ms':>8} {'CPU ms':>8}"
            f" {'bytes':>9}"
        )
        for target in targets:
            times, cpu, size = [], [], 0
            for _ in range(args.rounds + 1):
                started, used = time.perf_counter(), time.thread_time()
                answer = pages.answer(target)
                times.append((time.perf_counter() - started) * 1000)
                cpu.append((time.thread_time() - used) * 1000)
                assert answer is not None
                assert answer.status == 200
                size = len(answer.body)
            cold, warm, most = times[0], statistics.median(times[1:]), max(times[1:])
            print(
                f"{target:30} {cold:8.1f} {cpu[0]:6.1f} {warm:8.1f} {most:8.1f} "
                f"{statistics.median(cpu[1:]):8.1f} {size:9d}"
            )
        history.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
