"""``include = ["conf.d/*.toml"]``: more ``[jobs.*]`` tables in files beside the main one.

Globs are relative to the main file's directory (absolute ones are taken as they are); the
files they match are read in sorted order, each once, the main file never. An included file
holds ``[jobs.<name>]`` tables only: ``[daemon]`` and ``[defaults]`` stay in the main file,
so one place says how the daemon runs and what every job defaults to.
"""

from __future__ import annotations

import glob
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from scheduler.settings.tables import toml_tables


class TopLevel(BaseModel):
    """The keys above every table (before ``[daemon]``)."""

    include: list[str] = Field(
        default_factory=list,
        description="globs of files with more [jobs.<name>] tables, relative to this file's "
        "directory, read in sorted order; watched and reloaded like this file",
        examples=[["conf.d/*.toml"]],
    )


MAX_INCLUDED_BYTES = 1024 * 1024
"""Each included file, as the main file: at most this much is read."""
MAX_PATTERNS = 64


def include_paths(main: Path, patterns: object) -> list[Path]:
    """The files ``patterns`` (the ``include`` value) match, sorted and each once; nothing
    for a value that is not a list of strings (the loader says what is wrong with it)."""
    if not isinstance(patterns, list):
        return []
    base = main.parent
    found: dict[Path, None] = {}
    for pattern in patterns[:MAX_PATTERNS]:
        if not isinstance(pattern, str) or not pattern.strip():
            continue
        full = pattern if Path(pattern).is_absolute() else str(base / pattern)
        for match in sorted(glob.glob(full)):  # noqa: PTH207 - Path.glob takes no absolute glob
            path = Path(match)
            if path.is_file() and path.resolve() != main.resolve():
                found.setdefault(path)
    return list(found)


def shown(main: Path, path: Path) -> str:
    """``path`` as errors name it: relative to the main file's directory where it is below
    it (``conf.d/db.toml``)."""
    try:
        return str(path.relative_to(main.parent))
    except ValueError:
        return str(path)


def included_jobs(
    main: Path, patterns: object, errors: list[str]
) -> list[tuple[str, dict[str, Any]]]:
    """Each included file (as errors name it) with its ``[jobs.*]`` tables; what is wrong
    with ``include`` or a file goes to ``errors`` (that file's jobs are then left out)."""
    if patterns is None:
        return []
    if not isinstance(patterns, list) or not all(
        isinstance(p, str) and p.strip() for p in patterns
    ):
        errors.append("include: expected a list of file globs, e.g. include = ['conf.d/*.toml']")
        return []
    if len(patterns) > MAX_PATTERNS:
        errors.append(f"include: {len(patterns)} globs; at most {MAX_PATTERNS} are allowed")
        return []
    files = []
    for path in include_paths(main, patterns):
        name = shown(main, path)
        jobs = _jobs_of(main, path, name, errors)
        if jobs is not None:
            files.append((name, jobs))
    return files


def _jobs_of(main: Path, path: Path, name: str, errors: list[str]) -> dict[str, Any] | None:
    try:
        size = path.stat().st_size
        if size > MAX_INCLUDED_BYTES:
            errors.append(f"{name}: {size} bytes; at most {MAX_INCLUDED_BYTES} are read")
            return None
        with path.open("rb") as f:
            raw = toml_tables(f.read().decode())
    except OSError as e:
        errors.append(f"{name}: cannot be read: {e.strerror}")
        return None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        errors.append(f"{name}: not TOML: {e}")
        return None
    except RecursionError:
        errors.append(f"{name}: values are nested too deeply")
        return None
    found = True
    for key in raw:
        if key != "jobs":
            errors.append(
                f"{name}: {key}: an included file holds [jobs.<name>] tables only "
                f"([daemon] and [defaults] stay in {main.name})"
            )
            found = False
    jobs = raw.get("jobs", {})
    if not isinstance(jobs, dict):
        errors.append(f"{name}: jobs: expected tables, [jobs.<name>]")
        return None
    return jobs if found else None
