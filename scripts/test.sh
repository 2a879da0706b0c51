#!/usr/bin/env bash
# README command 2: lint, type-check and run every test, integration tests
# against a real Docker engine included. Installs and starts what it needs.
# Extra arguments go to pytest (e.g. scripts/test.sh tests/unit -x).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

"$here/scripts/engine.sh"

# Programs only the tests use (real receivers; restic and rclone, which the restic and
# remote tools drive; ssh-keygen, for the SFTP server's keys; age and age-keygen, which
# the backup tool's encryption tests drive; docker-registry, htpasswd and openssl, for the
# private registry of test_registry.py; chromium and chromium-driver, the real browser of
# test_ui.py's status page),
# from Debian's packages. Their services are not started: policy-rc.d forbids it
# while they install.
test_tools() {
  local missing=()
  command -v rsyslogd >/dev/null 2>&1 || missing+=(rsyslog)
  command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
  command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
  command -v restic >/dev/null 2>&1 || missing+=(restic)
  command -v rclone >/dev/null 2>&1 || missing+=(rclone)
  command -v ssh-keygen >/dev/null 2>&1 || missing+=(openssh-client)
  command -v age-keygen >/dev/null 2>&1 || missing+=(age)
  command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
  command -v htpasswd >/dev/null 2>&1 || missing+=(apache2-utils)
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "== installing test receivers: ${missing[*]} (services not started)"
  local policy=/usr/sbin/policy-rc.d made=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && made=1
  fi
  if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  if [ -n "$made" ]; then rm -f "$policy"; fi
}
test_tools

# shellcheck source=scripts/venv.sh
. "$here/scripts/venv.sh"

echo "== ruff"
"$venv/bin/ruff" check .
"$venv/bin/ruff" format --check .
echo "== mypy --strict"
"$venv/bin/mypy"
echo "== pytest (under coverage: the daemon subprocesses of the real-engine tests too)"
rm -f .coverage .coverage.*
status=0
started=$SECONDS
if [ $# -eq 0 ]; then
  # The whole suite as two pytest processes at once (docs/testing.md, "The suite's time"),
  # each under coverage with data files of its own: the real-engine tests of
  # tests/integration/test_*.py, one at a time as ever; and, niced so that it takes only
  # the CPU those leave, every other test (the restic and swarm packages' real-engine
  # tests, then tests/unit), its report printed after theirs.
  others=$(mktemp)
  nice -n 10 "$venv/bin/coverage" run -m pytest --ignore-glob='tests/integration/test_*.py' \
    >"$others" 2>&1 &
  others_pid=$!
  trap 'kill "$others_pid" 2>/dev/null || true; rm -f "$others"' EXIT
  "$venv/bin/coverage" run -m pytest tests/integration/test_*.py || status=$?
  others_status=0
  wait "$others_pid" || others_status=$?
  trap - EXIT
  echo "== pytest: every other test (run at the same time as those above)"
  cat "$others"
  rm -f "$others"
  [ "$others_status" -eq 0 ] || [ "$status" -ne 0 ] || status=$others_status
else
  "$venv/bin/coverage" run -m pytest "$@" || status=$?
fi
echo "== pytest took $((SECONDS - started)) s"
"$venv/bin/coverage" combine -q
echo "== coverage of scheduler/ and jobs/ (unit and real-engine tests together)"
if [ $# -eq 0 ]; then  # the whole suite: below pyproject's fail_under (docs/testing.md) fails
  if ! "$venv/bin/coverage" report; then
    [ "$status" -ne 0 ] || status=1
  fi
else  # a part of the suite: the figure only
  "$venv/bin/coverage" report --fail-under=0 | tail -n 1
fi
exit "$status"
