#!/usr/bin/env bash
# README command 1: run the cron container with config.example.toml and show
# its JSON logs. Sets up an engine and the images first (scripts/engine.sh).
#
#   scripts/run-example.sh            run until Ctrl-C (a graceful stop)
#   scripts/run-example.sh 30         run for 30 seconds, then stop it
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/scripts/engine.sh"

image=${CRONTAINER_IMAGE:-crontainer:latest}
name=crontainer-example
socket=/var/run/docker.sock
case "${DOCKER_HOST:-}" in
  unix://*) socket=${DOCKER_HOST#unix://} ;;
  "") ;;
  *) echo "run-example.sh: DOCKER_HOST=$DOCKER_HOST is not a unix socket; mount your own access" >&2; exit 1 ;;
esac

docker rm -f "$name" >/dev/null 2>&1 || true
args=(
  --name "$name" --rm
  --stop-timeout 60
  -v "$socket:/var/run/docker.sock"
  -v "$here/config.example.toml:/etc/crontainer/config.toml:ro"
  -v crontainer-example-state:/var/lib/crontainer
  "$image"
)
if [ -n "${1:-}" ]; then
  docker run -d "${args[@]}" >/dev/null
  docker logs -f "$name" &
  follower=$!
  sleep "$1"
  docker stop "$name" >/dev/null   # SIGTERM: the daemon drains and exits 0
  wait "$follower" || true
else
  exec docker run "${args[@]}"
fi
