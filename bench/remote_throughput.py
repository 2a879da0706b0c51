"""An encrypted archive sent to a remote by crontainer versus the plain pipeline by hand.

    python bench/remote_throughput.py [--mb 1024] [--rounds 5] [--image crontainer:latest]

Fills a named volume with MB megabytes of mixed files (benchlib.FILL), starts a WebDAV
server (`rclone serve webdav` in a container of the image, on a user-defined network of
its own), makes an age key pair on this host, then, ROUNDS times, alternating the order
of the three ways in each round:

- plain: `docker run --rm --network NET -v DATA:/data:ro -e RCLONE_CONFIG_DEST_… IMAGE
  sh -c 'tar -C / -cf - data | zstd -q -T0 -c | age -r KEY | rclone rcat dest:plain/…'`,
  timed from `docker run` to its exit — the issue's `tar | zstd | age | rclone rcat`;
- stream: a crontainer daemon's backup job with `copy_to = ["dav"]` and no `target`
  (`encrypt` to the same key): the archive streamed into `rclone rcat` under a temporary
  name, hashed on the way, checked, renamed, its `.sha256` beside it, retention there;
- copy: the same job with a `target` volume: the archive written there (then its checksum
  and fsync), then copied in a second ops container (`rclone copyto` as `.partial`,
  checked, renamed).

crontainer's ways are timed from the daemon's `job.triggered` to its `run.succeeded`
(its own timestamps). The figures are medians over the rounds; the ratios plain / way
(1 is parity; the target for the stream is at least 0.9) are the medians of the rounds'
own ratios. Needs the engine and the image (scripts/engine.sh makes both; CRONTAINER_IMAGE
names another tag). The daemon runs from this checkout (the project's venv).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from benchlib import LABEL, Daemon, arguments, docker, fill, logs, scene

if TYPE_CHECKING:
    import argparse

DAV_USER, DAV_PASSWORD = "bench", "bench-dav-password"
WAYS = ("plain", "stream", "copy")

CONFIG = """[daemon]
name = "bench-remote"
log_format = "json"
state_dir = "{state}"
heartbeat_file = "{state}/heartbeat"
ops_image = "{image}"
http = ""

[daemon.remotes.dav]
type = "webdav"
url = "http://{server}:8080"
user = "{user}"
password = {{ env = "BENCH_DAV_PASSWORD" }}
path = "{folder}"

[jobs.stream]
kind = "backup"
schedule = "@yearly"
volumes = ["{data}:/data"]
copy_to = ["dav"]
encrypt = {{ recipients = ["{public}"] }}
network = "{network}"
keep_last = 1

[jobs.copy]
kind = "backup"
schedule = "@yearly"
volumes = ["{data}:/data"]
target = "{target}"
copy_to = ["dav"]
encrypt = {{ recipients = ["{public}"] }}
network = "{network}"
keep_last = 1
"""


def key_pair(directory: Path) -> str:
    """An age identity made by age-keygen in ``directory``; its public key."""
    identity = directory / "identity"
    subprocess.run(["age-keygen", "-o", str(identity)], check=True, capture_output=True)
    done = subprocess.run(
        ["age-keygen", "-y", str(identity)], check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


def plain(image: str, names: dict[str, str], public: str, number: int) -> float:
    """The pipeline by hand, into the server's folder ``plain``: seconds from `docker run`
    to its exit."""
    obscured = subprocess.run(
        ["rclone", "obscure", DAV_PASSWORD], check=True, capture_output=True, text=True
    ).stdout.strip()
    script = (
        'set -o pipefail; tar -C / -cf - data | zstd -q -T0 -c | age -r "$KEY" '
        f"| rclone --config /dev/null rcat dest:plain/round-{number}.tar.zst.age"
    )
    began = time.monotonic()
    docker(
        "run", "--rm", "--label", LABEL, "--network", names["network"],
        "-v", f"{names['data']}:/data:ro", "-e", f"KEY={public}",
        "-e", "RCLONE_CONFIG_DEST_TYPE=webdav",
        "-e", f"RCLONE_CONFIG_DEST_URL=http://{names['server']}:8080",
        "-e", f"RCLONE_CONFIG_DEST_USER={DAV_USER}", "-e", f"RCLONE_CONFIG_DEST_PASS={obscured}",
        image, "bash", "-c", script,
    )  # fmt: skip
    return time.monotonic() - began


def start_server(image: str, names: dict[str, str]) -> None:
    """`rclone serve webdav` on the network, with a user and a password."""
    docker(
        "run", "-d", "--label", LABEL, "--name", names["server"], "--network", names["network"],
        "-v", f"{names['served']}:/dav", image, "rclone", "serve", "webdav", "/dav",
        "--addr", ":8080", "--user", DAV_USER, "--pass", DAV_PASSWORD,
    )  # fmt: skip
    for _ in range(100):
        if "WebDav Server started" in logs(names["server"]):
            return
        time.sleep(0.1)
    raise RuntimeError(f"the WebDAV server did not start: {logs(names['server'])}")


def one_round(
    args: argparse.Namespace, names: dict[str, str], public: str, number: int
) -> dict[str, float]:
    """Each way once, in an order that turns every round."""
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-remote-") as tmp:
        config = CONFIG.format(
            state=tmp, image=args.image, server=names["server"], user=DAV_USER,
            folder=f"round-{number}", data=names["data"], public=public,
            network=names["network"], target=names["target"],
        )  # fmt: skip
        daemon = Daemon(config, Path(tmp), {"BENCH_DAV_PASSWORD": DAV_PASSWORD})
        runs = 0
        try:
            shift = number % len(WAYS)
            for way in WAYS[shift:] + WAYS[:shift]:
                if way == "plain":
                    figures[way] = plain(args.image, names, public, number)
                    continue
                runs += 1
                took, event = daemon.trigger(way, runs)
                figures[way] = took
                figures[f"{way}_archive_s"] = float(event["archive_s"])
                figures[f"{way}_bytes"] = float(event["bytes"])
        finally:
            daemon.stop()
    docker("exec", names["server"], "rm", "-rf", "/dav/plain", f"/dav/round-{number}")
    print(json.dumps({"round": number, **{k: round(v, 2) for k, v in figures.items()}}))
    return figures


def report(rounds: list[dict[str, float]]) -> dict[str, object]:
    out: dict[str, object] = {"rounds": len(rounds)}
    for way in WAYS:
        out[f"{way}_median_s"] = round(statistics.median(r[way] for r in rounds), 2)
    for way in ("stream", "copy"):
        ratios = [r["plain"] / r[way] for r in rounds]
        out[f"ratio_plain_to_{way}"] = round(statistics.median(ratios), 3)
        out[f"ratios_plain_to_{way}"] = [round(x, 3) for x in ratios]
        out[f"{way}_archive_median_s"] = round(
            statistics.median(r[f"{way}_archive_s"] for r in rounds), 2
        )
    out["archive_mib"] = round(rounds[0]["stream_bytes"] / (1 << 20), 1)
    return out


def main() -> int:
    args = arguments()
    tag = uuid.uuid4().hex[:8]
    names = {
        key: f"bench-{key}-{tag}"
        for key in ("data", "target", "served", "network", "server", "fill")
    }
    volumes = [names["data"], names["target"], names["served"]]
    with scene(volumes, names["network"], [names["fill"], names["server"]]):
        began = time.monotonic()
        counts = fill(args.image, names["data"], args.mb, names["fill"])
        fill_s = time.monotonic() - began
        start_server(args.image, names)
        with tempfile.TemporaryDirectory(prefix="bench-age-") as keys:
            public = key_pair(Path(keys))
        rounds = [one_round(args, names, public, n) for n in range(args.rounds)]
    head = {"data_mib": args.mb, "small_files": counts[0], "other_files": counts[1]}
    print(json.dumps({**head, "fill_s": round(fill_s, 1), **report(rounds)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
