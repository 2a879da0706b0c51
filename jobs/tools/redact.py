"""Secrets taken out of what a tool prints (stdlib only)."""

from __future__ import annotations

SHORTEST_LINE = 4
"""A line of a multi-line secret (an SSH key) shorter than this is not redacted on its own
(it would star out ordinary text); the whole secret still is."""


class Redactor:
    """Takes secrets out of a text as ``***``: each secret, and each line of a multi-line
    one, the longest first (no part of a longer one is left behind)."""

    def __init__(self, secrets: set[str]) -> None:
        lines = {line for s in secrets for line in s.splitlines() if len(line) >= SHORTEST_LINE}
        self._secrets = sorted((s for s in secrets | lines if s), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text
