"""Validation errors as the config's error lines: ``where: what`` (``jobs.db-backup.schedule:
…``), never showing a value that may be a secret."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


def _where(prefix: str, loc: tuple[int | str, ...]) -> str:
    text = prefix
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "config"


_SECRET_KEYS = frozenset({"env", "headers", "password", "secret", "token", "url", "webhook"})
_SECRET_KEYS |= {"ping", "address", "key", "access_key_id", "secret_access_key"}
"""Keys whose values may be secrets (a URL may hold a password or a token): an error under
one of them never shows the value it refused."""


def _shown(loc: tuple[int | str, ...], value: object) -> str | None:
    """``value`` as an error about ``loc`` may show it; None when it must not be shown."""
    if not isinstance(value, str | int | float | bool):
        return None
    if _SECRET_KEYS.intersection(p for p in loc if isinstance(p, str)):
        return None
    if isinstance(value, str) and ("://" in value or re.search(r"[^@\s]@", value)):
        return None  # an address may carry a user, a password or a token
    return repr(value)


def error_lines(error: ValidationError, prefix: str, skip_head: int = 0) -> list[str]:
    """One ``where: what`` line per error pydantic found, ``where`` under ``prefix``."""
    lines = []
    for item in error.errors(include_url=False):
        where = _where(prefix, tuple(item["loc"])[skip_head:])
        kind = item["type"]
        if kind == "extra_forbidden":
            message = "unknown key"
        elif kind == "missing":
            message = "required key is missing"
        else:
            message = item["msg"].removeprefix("Value error, ")
            value = item.get("input")
            shown = _shown(tuple(item["loc"]), value)
            if shown is not None and shown not in message:
                message += f" (got {shown})"
        lines.append(f"{where}: {message}")
    return lines
