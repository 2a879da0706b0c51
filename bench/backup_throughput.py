"""Archive throughput of the backup tool versus plain `tar | zstd`, same image, same data.

    python bench/backup_throughput.py [--mb 1024] [--rounds 7] [--random-share 0.2]
                                      [--layout interleaved|segregated] [--age]

Fills a named volume with MB megabytes of mixed files (a share of large
incompressible ones, the rest many small text files; see FILL), then, alternating
and ROUNDS times each, runs in a container of the project's image (crontainer:latest):

- plain: `tar -C / -cf - data | zstd -q -T0 -c > /backup/plain.tar.zst`
- plain with the same integrity work: the same, `| tee` into the file and
  `sha256sum`, then `sync` of the file
- tool:  `python -m jobs.tools.backup create --job bench --target /backup /data`

With ``--age`` each pipeline ends in ``age -r <recipient>`` (a key pair made on this
host by age-keygen) and the tool gets ``--recipient``: archive + age versus the plain
``tar | zstd | age`` (target at least 0.9 too).

It prints the median wall time of each, the throughput, and the ratio
(tool throughput / plain throughput; the target is at least 0.9). The data
sits in the page cache after the first pass, so both read from memory alike.

It also measures, in the same container, the CPU seconds (user + system) of the
plain pipeline and of one sha256 pass over the archive it made, and the
ceiling they imply for any tool that must write a sha256 of the archive:
(plain wall + S) / (max(plain wall, sha256 CPU, (plain CPU + sha256 CPU) / cores) + S),
S being the start and end of a container (`docker run --rm IMAGE true`, which every
timed command above pays too) — one sha256 stream cannot be split over cores, and
the cores are shared. It leaves out copying the bytes at all, so it is an upper bound
(up to the machine's noise: one probe).
Needs the engine and crontainer:latest, or the image ``CRONTAINER_IMAGE`` names
(scripts/engine.sh makes both).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid

IMAGE = os.environ.get("CRONTAINER_IMAGE", "crontainer:latest")
"""The project's image (``CRONTAINER_IMAGE``, as the tests take it)."""

FILL = r"""
import os, sys
total = int(sys.argv[1]) * 1024 * 1024
share, layout = float(sys.argv[2]), sys.argv[3]
blobs, smalls = int(total * share) // (4 << 20), int(total * (1 - share)) // 10240
line = b"2026-11-28T12:00:00Z INFO request handled path=/api/items status=200 ms=12\n"
every = max(1, smalls // max(1, blobs))
made = 0
def blob(folder):
    global made
    os.makedirs(folder, exist_ok=True)
    with open(f"{folder}/blob-{made:04d}.bin", "wb") as f:
        f.write(os.urandom(4 << 20))
    made += 1
for i in range(smalls):
    d = f"/data/small/{i // 500:03d}"
    os.makedirs(d, exist_ok=True)
    with open(f"{d}/log-{i:06d}.txt", "wb") as f:
        f.write(line * (10240 // len(line)))
    if layout == "interleaved" and i % every == 0 and made < blobs:
        blob(d)
while made < blobs:
    blob("/data/big")
"""
"""Small log files (10 KiB, very compressible) and 4 MiB random blobs. ``interleaved``: the
blobs sit among the small files, spread over the directories, as in a real data volume;
``segregated``: all in one directory of their own (/data/big, archived last here: the
worst case for the checksum, which then has all its work at the end)."""


CPU_PROBE = r"""
TIMEFORMAT='%R %U %S'
HASH='import hashlib
h = hashlib.sha256()
with open("/backup/cpu.tar.zst", "rb") as f:
    while b := f.read(1 << 20):
        h.update(b)'
for i in 1 2; do
  { time sh -c 'tar -C / -cf - data | zstd -q -T0 -c > /backup/cpu.tar.zst' ; } 2>> /tmp/plain
done
{ time python3 -c "$HASH" ; } 2>> /tmp/sha
echo "$(tail -1 /tmp/plain) $(tail -1 /tmp/sha) $(stat -c %s /backup/cpu.tar.zst) $(nproc)"
"""
"""Second pass of the plain pipeline (warm cache): wall, user, sys; then the same for one
sha256 pass over its archive with hashlib (OpenSSL, as the tool uses), archive size, cores."""


def recipient() -> str:
    """The public key of a new age identity (made by age-keygen here, thrown away)."""
    made = subprocess.run(["age-keygen"], capture_output=True, text=True, check=True)
    return next(line.split(": ", 1)[1] for line in made.stdout.splitlines() if "public key" in line)


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout


def timed_run(volumes: list[str], command: list[str]) -> float:
    mounts = [arg for v in volumes for arg in ("-v", v)]
    began = time.monotonic()
    docker("run", "--rm", *mounts, IMAGE, *command)
    return time.monotonic() - began


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--random-share", type=float, default=0.2, help="share of incompressible data (0.2)"
    )
    parser.add_argument("--layout", choices=["interleaved", "segregated"], default="interleaved")
    parser.add_argument("--age", action="store_true", help="encrypt with age (a recipient)")
    args = parser.parse_args()
    age = f" | age -r {recipient()}" if args.age else ""
    tag = uuid.uuid4().hex[:8]
    data, out = f"bench-data-{tag}", f"bench-out-{tag}"
    try:
        for volume in (data, out):
            docker("volume", "create", volume)
        fill = timed_run(
            [f"{data}:/data"],
            ["python3", "-c", FILL, str(args.mb), str(args.random_share), args.layout],
        )
        size = int(
            docker("run", "--rm", "-v", f"{data}:/data", IMAGE, "du", "-sb", "/data").split()[0]
        )
        plain_cmd = [
            "sh",
            "-c",
            f"tar -C / -cf - data | zstd -q -T0 -c{age} > /backup/plain.tar.zst",
        ]
        # The same work as the tool's integrity rules: a sha256 of the output, and fsync.
        hashed_cmd = [
            "sh",
            "-c",
            (
                f"tar -C / -cf - data | zstd -q -T0 -c{age} | tee /backup/plain.tar.zst "
                "| sha256sum > /backup/plain.sha256 && sync /backup/plain.tar.zst"
            ),
        ]
        tool_cmd = [
            "python3",
            "-m",
            "jobs.tools.backup",
            "create",
            "--job",
            "bench",
            "--target",
            "/backup",
            *(("--recipient", age.removeprefix(" | age -r ")) if age else ()),
            "/data",
        ]
        clean = ["sh", "-c", "rm -f /backup/*"]
        cpu = docker(
            "run",
            "--rm",
            "-v",
            f"{data}:/data:ro",
            "-v",
            f"{out}:/backup",
            IMAGE,
            "bash",
            "-c",
            CPU_PROBE,
        )
        timed_run([f"{out}:/backup"], clean)
        start = statistics.median(timed_run([], ["true"]) for _ in range(3))
        plain, hashed, tool = [], [], []
        for _ in range(args.rounds):
            plain.append(timed_run([f"{data}:/data:ro", f"{out}:/backup"], plain_cmd))
            timed_run([f"{out}:/backup"], clean)
            hashed.append(timed_run([f"{data}:/data:ro", f"{out}:/backup"], hashed_cmd))
            timed_run([f"{out}:/backup"], clean)
            tool.append(timed_run([f"{data}:/data:ro", f"{out}:/backup"], tool_cmd))
            timed_run([f"{out}:/backup"], clean)
    finally:
        for volume in (data, out):
            subprocess.run(
                ["docker", "volume", "rm", "-f", volume], capture_output=True, check=False
            )
    wall, user, system, _sha_wall, sha_user, sha_sys, archive_bytes, cores = cpu.split()
    plain_cpu, sha_cpu = float(user) + float(system), float(sha_user) + float(sha_sys)
    best = max(float(wall), sha_cpu, (plain_cpu + sha_cpu) / int(cores))
    plain_s, tool_s = statistics.median(plain), statistics.median(tool)
    hashed_s = statistics.median(hashed)
    mib = size / (1 << 20)
    report = {
        "data_mib": round(mib, 1),
        "random_share": args.random_share,
        "layout": args.layout,
        "age": args.age,
        "fill_s": round(fill, 1),
        "rounds": args.rounds,
        "plain_median_s": round(plain_s, 2),
        "tool_median_s": round(tool_s, 2),
        "plain_mib_per_s": round(mib / plain_s, 1),
        "tool_mib_per_s": round(mib / tool_s, 1),
        "ratio_tool_to_plain": round(plain_s / tool_s, 3),
        "plain_with_sha256_and_sync_median_s": round(hashed_s, 2),
        "ratio_tool_to_plain_with_sha256_and_sync": round(hashed_s / tool_s, 3),
        "cores": int(cores),
        "plain_cpu_s": round(plain_cpu, 2),
        "plain_cores_busy": round(plain_cpu / float(wall), 2),
        "archive_mib": round(int(archive_bytes) / (1 << 20), 1),
        "sha256_cpu_s": round(sha_cpu, 2),
        "plain_probe_wall_s": float(wall),
        "container_start_s": round(start, 2),
        "ceiling_with_sha256": round((float(wall) + start) / (best + start), 3),
        "plain_all_s": [round(t, 2) for t in plain],
        "tool_all_s": [round(t, 2) for t in tool],
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
