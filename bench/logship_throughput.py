"""Log shipping throughput: a big log file to the file and http sinks, versus `cat`.

    python bench/logship_throughput.py [--mb 1024] [--rounds 2]

Writes MB megabytes of realistic log lines (about 100 bytes each) into a named
volume, then, alternating and ROUNDS times each, in containers of the
project's image (crontainer:latest) with the volume mounted read-only:

- floor: `cat app.log > /dev/null`, and `cat app.log > file` in a second volume
- file:  `python -m jobs.tools.logship` with a file sink in that second volume
- http:  the same tool POSTing to a receiver in this process (host network)
  that reads every body and counts its lines

The tool gets its request on stdin exactly as from the daemon (and stdin
stays open until it ends). Prints medians, MB/s and lines/s of each, and the
ratios to the floor. Needs the engine and crontainer:latest
(scripts/engine.sh makes both).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

IMAGE = "crontainer:latest"

FILL = r"""
import sys
total = int(sys.argv[1]) * 1024 * 1024
written, i = 0, 0
with open("/logs/app.log", "w") as f:
    while written < total:
        block = "".join(
            f"2026-11-28T12:00:{(i + k) % 60:02d}.{(i + k) % 1000:03d}Z INFO request handled "
            f"path=/api/items/{i + k} status=200 ms={(i + k) % 97} user=u{(i + k) % 5000}\n"
            for k in range(10000)
        )
        f.write(block)
        written += len(block)
        i += 10000
print(i)
"""


class Counter(BaseHTTPRequestHandler):
    """Accepts every POST; counts lines and bytes."""

    lines: ClassVar[int] = 0
    bytes: ClassVar[int] = 0
    lock: ClassVar[threading.Lock] = threading.Lock()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.lock:
            Counter.lines += body.count(b"\n")
            Counter.bytes += len(body)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout


def timed(argv: list[str], stdin: bytes | None = None) -> tuple[float, str]:
    """Wall time of a container run; with ``stdin``, written and kept open until it ends."""
    with tempfile.TemporaryFile() as errors:
        began = time.monotonic()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )
        if stdin is not None and proc.stdin is not None:
            proc.stdin.write(stdin)
            proc.stdin.flush()
        proc.wait()  # stdin stays open until the tool ended, as the daemon keeps it
        took = time.monotonic() - began
        if proc.stdin is not None:
            proc.stdin.close()
        errors.seek(0)
        err = errors.read().decode()
    if proc.returncode != 0:
        raise SystemExit(f"{argv}: exit {proc.returncode}: {err[-2000:]}")
    return took, err


def request(sink: dict[str, object]) -> bytes:
    body = {
        "job": "bench",
        "host": "bench",
        "sink": sink,
        "paths": ["/logs/*.log"],
        "max_bytes": 1 << 40,
        "batch_lines": 1000,
        "batch_bytes": 1 << 20,
        "checkpoints": {},
    }
    return json.dumps(body).encode() + b"\n" + b'{"end": true}\n'


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    tag = uuid.uuid4().hex[:8]
    logs, out = f"bench-logs-{tag}", f"bench-out-{tag}"
    server = ThreadingHTTPServer(("127.0.0.1", 0), Counter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    run = ["docker", "run", "--rm", "-v", f"{logs}:/logs:ro", "-v", f"{out}:/out"]
    tool = ["python3", "-m", "jobs.tools.logship"]
    times: dict[str, list[float]] = {"cat_devnull": [], "cat_file": [], "file": [], "http": []}
    try:
        for volume in (logs, out):
            docker("volume", "create", volume)
        lines = int(
            docker("run", "--rm", "-v", f"{logs}:/logs", IMAGE, "python3", "-c", FILL, str(args.mb))
        )
        size = int(docker("run", "--rm", "-v", f"{logs}:/logs", IMAGE, "stat", "-c", "%s",
                          "/logs/app.log"))  # fmt: skip
        for _ in range(args.rounds):
            cat = [*run, IMAGE, "sh", "-c"]
            times["cat_devnull"].append(timed([*cat, "cat /logs/app.log > /dev/null"])[0])
            times["cat_file"].append(timed([*cat, "cat /logs/app.log > /out/cat.log"])[0])
            docker("run", "--rm", "-v", f"{out}:/out", IMAGE, "sh", "-c", "rm -f /out/*")
            file_sink: dict[str, object] = {"type": "file", "path": "/out/out.ndjson"}
            took, err = timed([*run, "-i", IMAGE, *tool], request(file_sink))
            assert f'"lines":{lines}' in err, err[-500:]
            times["file"].append(took)
            docker("run", "--rm", "-v", f"{out}:/out", IMAGE, "sh", "-c", "rm -f /out/*")
            Counter.lines = Counter.bytes = 0
            http_sink: dict[str, object] = {"type": "http", "url": url, "retries": 0}
            took, err = timed([*run, "-i", "--network", "host", IMAGE, *tool], request(http_sink))
            assert Counter.lines == lines, (Counter.lines, lines)
            times["http"].append(took)
    finally:
        server.shutdown()
        for volume in (logs, out):
            subprocess.run(
                ["docker", "volume", "rm", "-f", volume], capture_output=True, check=False
            )
    mib = size / (1 << 20)
    medians = {name: statistics.median(values) for name, values in times.items()}
    report: dict[str, object] = {"data_mib": round(mib, 1), "lines": lines, "rounds": args.rounds}
    for name, seconds in medians.items():
        report[name] = {
            "median_s": round(seconds, 2),
            "mib_per_s": round(mib / seconds, 1),
            "lines_per_s": round(lines / seconds),
            "all_s": [round(t, 2) for t in times[name]],
        }
    report["file_vs_cat_file"] = round(medians["cat_file"] / medians["file"], 3)
    report["http_vs_cat_file"] = round(medians["cat_file"] / medians["http"], 3)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
