#!/usr/bin/env bash
# The real-engine tests with the machine's CPUs busy (docs/testing.md, "No timing luck"):
# two busy loops at normal priority beside scripts/test.sh tests/integration, N times.
#
#   scripts/test-under-load.sh [N] [PYTEST ARGS...]     N defaults to 3
#
# Prints each run's outcome and wall time; exits non-zero if any run failed.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
runs=${1:-3}
[ $# -gt 0 ] && shift
busy=()
trap 'kill "${busy[@]}" 2>/dev/null' EXIT
for _ in 1 2; do
  ( while :; do :; done ) &
  busy+=($!)
done
failed=0
for i in $(seq "$runs"); do
  start=$(date +%s)
  if scripts/test.sh tests/integration -q "$@"; then verdict=passed; else verdict=FAILED; failed=1; fi
  echo "== loaded run $i/$runs: $verdict in $(( $(date +%s) - start )) s"
done
exit "$failed"
