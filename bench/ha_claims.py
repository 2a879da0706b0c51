"""What a claim costs (``ha = "swarm"``): create, lose, update and list Swarm configs.

    python bench/ha_claims.py [--fires 200]

Starts the tests' private single-node Swarm (a dockerd of its own, never the shared
engine: ``tests/integration/conftest.py``'s ``PrivateSwarm``), then for each of FIRES
instants: replica r1 claims it (a create that wins), replica r2 claims it too (a 409, then
the claim read for its claimant), r1 writes the run's outcome on it (read, update against
the version). Prints the median and 95th percentile of each, and the time to list every
claim (what the sweep and ``history --cluster`` read).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import docker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scheduler.claims import Claims, claim_name
from scheduler.clock import SystemClock
from scheduler.docker_engine import DockerEngine
from tests.integration.conftest import PrivateSwarm


def spread(seconds: list[float]) -> str:
    """Median and 95th percentile, in milliseconds."""
    ordered = sorted(seconds)
    p95 = ordered[int(len(ordered) * 0.95)]
    return f"median {statistics.median(ordered) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fires", type=int, default=200)
    args = parser.parse_args()
    swarm = PrivateSwarm(docker.DockerClient(base_url="unix:///var/run/docker.sock"))
    try:
        os.environ["DOCKER_HOST"] = swarm.host
        engine = DockerEngine.connect(60)
        first = Claims(engine, "bench", "r1", SystemClock(), timeout=10, keep=3600)
        second = Claims(engine, "bench", "r2", SystemClock(), timeout=10, keep=3600)
        base = datetime.now(UTC).replace(microsecond=0)
        won: list[float] = []
        lost: list[float] = []
        ended: list[float] = []
        for number in range(args.fires):
            at = base + timedelta(seconds=number)
            began = time.perf_counter()
            assert first.claim("j", at, f"run{number}").won
            won.append(time.perf_counter() - began)
            began = time.perf_counter()
            assert second.claim("j", at, f"other{number}").reason == "claimed"
            lost.append(time.perf_counter() - began)
            began = time.perf_counter()
            assert first.record_outcome(claim_name("bench", "j", at), {"crontainer.status": "ok"})
            ended.append(time.perf_counter() - began)
        began = time.perf_counter()
        count = len(engine.configs({"crontainer.daemon": "bench"}))
        listed = time.perf_counter() - began
        print(f"claim won: {spread(won)}")
        print(f"claim lost (409, then the claimant read): {spread(lost)}")
        print(f"outcome written: {spread(ended)}")
        print(f"list {count} claims: {listed * 1000:.1f} ms")
    finally:
        swarm.close()


if __name__ == "__main__":
    main()
