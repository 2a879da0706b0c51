"""Programs that run inside the ops containers (``python -m jobs.tools.<name>``).

Standard library only, plus the standard tools of the image (tar, zstd, gzip).
They never see the Docker socket or the daemon's state: what they need comes
in as arguments, what they produce goes out as one JSON line on stdout.
"""
