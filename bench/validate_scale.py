"""``crontainer validate`` of a generated config of many jobs: wall time and CPU of the
command (a subprocess, as a user runs it), and the memory of a ``load_config`` of the same
file (tracemalloc's peak and the process's RSS). Issue #19's target: 10,000 jobs in < 2 s.

    python bench/validate_scale.py                 # N = 1,000 and 10,000, 3 rounds each
    python bench/validate_scale.py --jobs 10000 --rounds 5
    python bench/validate_scale.py --shared        # many jobs with the same schedule
    python bench/validate_scale.py --write /tmp/jobs.toml --jobs 10000   # only the file
    python bench/validate_scale.py --jobs 10000 --compare /tmp/old   # another checkout too,
        # alternating with this one in each round (its own code, this Python)
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ZONES = ["Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney"]
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun", "mon-fri", "sat,sun"]


def schedule_of(rng: random.Random, *, shared: bool) -> str:  # noqa: PLR0911 - one return per share
    """One schedule of the mix: mostly rare jobs (daily and weekly crons at varied times),
    some ``@every`` and macros, a few with a seconds field. ``shared``: on the hour or the
    half hour only, so that many jobs have the same schedule (a few hundred distinct)."""
    pick = rng.random()
    minute, hour = rng.choice([0, 30]) if shared else rng.randrange(60), rng.randrange(24)
    if pick < 0.45:
        return f"{minute} {hour} * * *"
    if pick < 0.65:
        return f"{minute} {hour} * * {rng.choice(WEEKDAYS)}"
    if pick < 0.72:
        return f"{minute} {hour} {rng.randrange(1, 29)} * *"
    if pick < 0.78:
        return f"{minute} */{rng.choice([2, 3, 4, 6, 12])} * * *"
    if pick < 0.86:
        return rng.choice(["@every 1h", "@every 6h", "@every 30m", "@every 1d"])
    if pick < 0.97:
        return rng.choice(["@hourly", "@daily", "@weekly", "@monthly"])
    return rng.choice(["@with-seconds 30 * * * * *", "@with-seconds 0 */5 * * * *"])


def config_text(jobs: int, seed: int = 19, *, shared: bool = False) -> str:
    """A config of ``jobs`` jobs: run and exec kinds with busybox, a few in a time zone."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible mix, not a secret
    lines = ['[daemon]\nname = "bench"\nstate_dir = "/tmp/crontainer-bench-state"\n']
    for index in range(jobs):
        lines.append(f"[jobs.job-{index:05d}]")
        if rng.random() < 0.7:
            lines += ['kind = "run"', 'image = "busybox:latest"']
        else:
            lines += ['kind = "exec"', f'container = "app-{index % 7}"']
        lines.append(f'schedule = "{schedule_of(rng, shared=shared)}"')
        if rng.random() < 0.05:
            lines.append(f'timezone = "{rng.choice(ZONES)}"')
        lines.append(f'command = ["sh", "-c", "echo job {index}"]\n')
    return "\n".join(lines)


def validate_once(path: Path, root: Path = ROOT) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of ``python -m scheduler validate`` run
    in the checkout ``root``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "scheduler", "validate", "--config", str(path)],
        cwd=root,
        capture_output=True,
        check=False,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"validate failed ({done.returncode}): {done.stderr.decode()[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


MEMORY = """
import resource, sys, tracemalloc
from pathlib import Path
tracemalloc.start()
from scheduler.settings import load_config
base = tracemalloc.get_traced_memory()[0]
config = load_config(Path(sys.argv[1]))
now, peak = tracemalloc.get_traced_memory()
print(len(config.jobs), now - base, peak - base)
tracemalloc.stop()
"""

RSS = """
import resource, sys
from pathlib import Path
from scheduler.settings import load_config
config = load_config(Path(sys.argv[1]))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def memory(path: Path) -> tuple[int, int, int]:
    """A ``load_config`` of ``path`` in a fresh process: bytes held after it and at its
    peak (tracemalloc, imports excluded), and the process's peak RSS in KiB without
    tracemalloc."""
    traced = subprocess.run(
        [sys.executable, "-c", MEMORY, str(path)], cwd=ROOT, capture_output=True, check=True
    ).stdout.split()
    rss = subprocess.run(
        [sys.executable, "-c", RSS, str(path)], cwd=ROOT, capture_output=True, check=True
    ).stdout
    return int(traced[1]), int(traced[2]), int(rss)


def main() -> None:
    """Measure each N given and print one line per N."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, action="append", help="N (repeatable)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--write", type=Path, help="only write the config of --jobs N here")
    parser.add_argument(
        "--shared", action="store_true", help="times on the hour or half hour: few distinct"
    )
    parser.add_argument(
        "--compare", type=Path, help="another checkout, run alternately with this one"
    )
    args = parser.parse_args()
    counts = args.jobs or [1000, 10000]
    if args.write:
        args.write.write_text(config_text(counts[0], shared=args.shared))
        return
    with tempfile.TemporaryDirectory() as folder:
        for count in counts:
            path = Path(folder) / f"jobs-{count}.toml"
            path.write_text(config_text(count, shared=args.shared))
            roots = [ROOT, args.compare] if args.compare else [ROOT]
            runs: dict[Path, list[tuple[float, float]]] = {root: [] for root in roots}
            for _ in range(args.rounds):  # alternating, so load on the machine hits both
                for root in roots:
                    runs[root].append(validate_once(path, root))
            medians = {root: _report(count, root, runs[root]) for root in roots}
            if args.compare:
                (wall, cpu), (old_wall, old_cpu) = medians[ROOT], medians[args.compare]
                ratio = f"wall {wall / old_wall:.2f}x, CPU {cpu / old_cpu:.2f}x"
                print(f"N={count}: this / compared: {ratio}")
            held, peak, rss = memory(path)
            print(
                f"N={count}: load_config holds {held / 2**20:.1f} MiB "
                f"({held / count:.0f} B/job), peak {peak / 2**20:.1f} MiB; "
                f"RSS peak {rss / 1024:.0f} MiB",
                flush=True,
            )


def _report(count: int, root: Path, runs: list[tuple[float, float]]) -> tuple[float, float]:
    """Print the validate line of one checkout; its median wall and CPU seconds."""
    walls, cpus = [w for w, _ in runs], [c for _, c in runs]
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    print(
        f"N={count} ({root}): validate wall median {wall:.2f} s (min {min(walls):.2f}, "
        f"max {max(walls):.2f}), CPU median {cpu:.2f} s (min {min(cpus):.2f})",
        flush=True,
    )
    return wall, cpu


if __name__ == "__main__":
    main()
