# The cron container. Built with the classic builder of engine 20.10 too:
# no BuildKit-only syntax here.
#
#   docker build -t crontainer .                                   # official slim Python
#   docker build --build-arg BASE_IMAGE=crontainer-base:bookworm .  # a local Debian base
#
# The same image runs the ops containers (backups, rotation, shipping), so it
# has no VOLUME: each ops container would leave an anonymous volume behind.
# Mount a named volume at the state directory instead (see docs/deploying.md).
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

# tini as PID 1 (forwards signals, reaps children); for the ops jobs: tar, gzip
# and zstd (archives), restic (repositories), rclone (remote copies), age
# (encryption), ssh (sftp). Installed only where the base image lacks them:
# each pair is the command, then Debian's package that has it.
RUN set -eu; \
    missing=""; \
    for pair in tini:tini tar:tar gzip:gzip zstd:zstd restic:restic rclone:rclone \
        age:age ssh:openssh-client; do \
      command -v "${pair%%:*}" >/dev/null 2>&1 || missing="$missing ${pair#*:}"; \
    done; \
    if [ -n "$missing" ]; then \
      apt-get update; \
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing; \
      rm -rf /var/lib/apt/lists/*; \
    fi

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/crontainer \
    PATH=/opt/crontainer/bin:$PATH

# Dependencies first, in their own layer: a source change does not reinstall them.
COPY pyproject.toml README.md /src/
RUN set -eu; \
    python3 -m venv /opt/crontainer; \
    mkdir -p /src/scheduler /src/jobs; \
    touch /src/scheduler/__init__.py /src/jobs/__init__.py; \
    pip install --no-cache-dir /src; \
    pip uninstall -y crontainer; \
    rm -rf /src/scheduler /src/jobs /src/build

COPY scheduler /src/scheduler
COPY jobs /src/jobs
RUN pip install --no-cache-dir --no-deps /src && rm -rf /src

# OCI labels: what this image is. VERSION is the package's version (scripts/engine.sh
# passes pyproject.toml's); it stays empty when the build is not given it. Declared
# here, after the installs, so that a new version does not rebuild their layers.
# No source URL and no licence: the project publishes neither.
ARG VERSION=
LABEL org.opencontainers.image.title="crontainer" \
      org.opencontainers.image.description="A cron container: runs ops containers (backups, log shipping, rotation, any command) on a schedule through the Docker API." \
      org.opencontainers.image.version="${VERSION}"

# [daemon] http's default port: /metrics, /healthz, /readyz. Published only when asked
# (docker run -p 127.0.0.1:8137:8137).
EXPOSE 8137

# Liveness: the daemon's main loop refreshes a heartbeat while its scheduling
# loop is alive; `crontainer health` fails when the heartbeat is stale.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
  CMD ["crontainer", "health"]

ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["crontainer", "run"]
