#!/usr/bin/env bash
# Make sure a Docker engine answers, and make the local images that the tests
# and the example need. Idempotent: a second run only checks.
#
#   scripts/engine.sh            engine + images (busybox, python base, crontainer)
#   scripts/engine.sh engine     only make sure an engine answers
#
# On a machine that already runs Docker, the existing engine is used.
# On a fresh Debian machine (root, no engine) it installs Debian's docker.io
# and starts dockerd in the background.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
log() { printf '[engine.sh] %s\n' "$*" >&2; }

BUSYBOX_IMAGE=${CRONTAINER_BUSYBOX_IMAGE:-busybox:latest}
BASE_IMAGE=${CRONTAINER_BASE_IMAGE:-crontainer-base:bookworm}
PROJECT_IMAGE=${CRONTAINER_IMAGE:-crontainer:latest}
DOCKERD_LOG=${DOCKERD_LOG:-/var/log/crontainer-dockerd.log}

need_root() {
  if [ "$(id -u)" != 0 ]; then
    log "$1 needs root; run as root or start a Docker engine yourself"
    exit 1
  fi
}

apt_install() {
  need_root "installing $*"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  fi
}

engine_answers() { timeout 10 docker info >/dev/null 2>&1; }

ensure_engine() {
  if engine_answers; then
    return 0
  fi
  if [ -n "${DOCKER_HOST:-}" ]; then
    log "DOCKER_HOST=$DOCKER_HOST does not answer; not starting a local engine"
    exit 1
  fi
  command -v dockerd >/dev/null 2>&1 || { log "installing docker.io"; apt_install docker.io; }
  command -v docker >/dev/null 2>&1 || apt_install docker.io
  need_root "starting dockerd"
  log "starting dockerd (log: $DOCKERD_LOG)"
  # setsid: the engine outlives this script and the shell that ran it.
  setsid dockerd >"$DOCKERD_LOG" 2>&1 < /dev/null &
  for _ in $(seq 1 120); do
    engine_answers && { log "engine is up"; return 0; }
    sleep 0.5
  done
  log "dockerd did not answer within 60 s; last lines of $DOCKERD_LOG:"
  tail -n 20 "$DOCKERD_LOG" >&2 || true
  exit 1
}

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

ensure_busybox() {
  have_image "$BUSYBOX_IMAGE" && return 0
  [ -x /bin/busybox ] && /bin/busybox --list >/dev/null 2>&1 && ldd /bin/busybox 2>&1 | grep -q 'not a dynamic' \
    || apt_install busybox-static
  log "making $BUSYBOX_IMAGE from Debian's busybox-static"
  local root
  root=$(mktemp -d)
  mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/root"
  cp /bin/busybox "$root/bin/busybox"
  for applet in $("$root/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
  done
  echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
  echo 'nobody:x:65534:65534:nobody:/:/bin/false' >>"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  chmod 1777 "$root/tmp"
  tar -C "$root" -c . | docker import \
    -c 'ENV PATH=/bin' -c 'CMD ["sh"]' - "$BUSYBOX_IMAGE" >/dev/null
  rm -rf "$root"
}

ensure_base() {
  have_image "$BASE_IMAGE" && return 0
  command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
  log "making $BASE_IMAGE with debootstrap (about a minute)"
  local root
  root=$(mktemp -d)
  debootstrap --variant=minbase \
    --include=python3,python3-venv,ca-certificates,tini,zstd,restic,rclone,age,openssh-client \
    bookworm "$root" >/dev/null
  # pip inside `docker build` must trust this machine's CA bundle.
  if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    mkdir -p "$root/usr/local/share/crontainer"
    cp /etc/ssl/certs/ca-certificates.crt "$root/usr/local/share/crontainer/host-ca.crt"
    printf '[global]\ncert = /usr/local/share/crontainer/host-ca.crt\n' >"$root/etc/pip.conf"
  fi
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | docker import -c 'ENV LANG=C.UTF-8' - "$BASE_IMAGE" >/dev/null
  rm -rf "$root"
}

project_version() {
  sed -n 's/^version *= *"\(.*\)"$/\1/p' "$here/pyproject.toml" | head -n 1
}

ensure_project_image() {
  log "building $PROJECT_IMAGE on $BASE_IMAGE"
  local out
  out=$(mktemp)
  if ! DOCKER_BUILDKIT=0 docker build --network host --build-arg "BASE_IMAGE=$BASE_IMAGE" \
      --build-arg "VERSION=$(project_version)" -t "$PROJECT_IMAGE" "$here" >"$out" 2>&1; then
    cat "$out" >&2
    rm -f "$out"
    log "building $PROJECT_IMAGE failed"
    exit 1
  fi
  rm -f "$out"
}

ensure_engine
if [ "${1:-all}" = all ]; then
  ensure_busybox
  ensure_base
  ensure_project_image
fi
