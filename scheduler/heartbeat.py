"""The heartbeat file: touched while the daemon's scheduling loop is alive, its age read by
``crontainer health`` (the image's HEALTHCHECK) — one default for both."""

from __future__ import annotations

from pathlib import Path

DEFAULT = Path("/tmp/crontainer.heartbeat")  # noqa: S108 - a liveness marker, no secret
"""``[daemon] heartbeat_file``'s default, and ``crontainer health --file``'s."""
