"""Selectors (``jobs.selectors``) resolved on the engine, against the containers that exist
when a step needs them: exactly one (exec's and pre_exec/post_exec's ``container``, each
``volumes_from`` entry), or every match (``stop``, signal's and logship's ``containers``).
A selector that cannot be used fails the run with a ``SelectionError`` naming what it found.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobs.selectors import parse_selector
from scheduler.errors import EngineError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from scheduler.engine import ContainerInfo, Engine

RUNNING = "running"
"""The state of a running container, as the engine lists it."""


class SelectionError(EngineError):
    """A selector matched no container, or several where exactly one is needed."""


def _names(found: Iterable[ContainerInfo]) -> str:
    return ", ".join(c.name for c in found)


def named(text: str) -> bool:
    """Whether the selector ``text`` is a container's name (or id), not labels."""
    try:
        return parse_selector(text).name is not None
    except ValueError:
        return False


def matches(engine: Engine, text: str) -> list[ContainerInfo]:
    """Every container (any state) the selector ``text`` matches now, by name."""
    try:
        selector = parse_selector(text)
    except ValueError as e:  # checked at load: only a plan built by hand gets here
        raise SelectionError(str(e)) from None
    return sorted(engine.select(selector), key=lambda c: c.name)


def exactly_one(engine: Engine, text: str, key: str, *, running: bool) -> ContainerInfo:
    """The one container ``text`` matches (with ``running``: the one running container);
    SelectionError naming the containers found when there is none or more than one.
    ``key``: the config key that holds the selector, for the error."""
    found = matches(engine, text)
    if running:
        stopped = [c for c in found if c.state != RUNNING]
        found = [c for c in found if c.state == RUNNING]
        if not found and stopped:
            verb = "is" if len(stopped) == 1 else "are"
            raise SelectionError(
                f"{key} {text!r} matched no running container: {_names(stopped)} {verb} not "
                "running; it must match exactly one running container"
            )
    if not found:
        raise SelectionError(f"{key} {text!r} matched no container; it must match exactly one")
    if len(found) > 1:
        what = "running containers" if running else "containers"
        raise SelectionError(
            f"{key} {text!r} matched {len(found)} {what}: {_names(found)}; it must match "
            "exactly one"
        )
    return found[0]


def every(engine: Engine, texts: Iterable[str], key: str) -> list[ContainerInfo]:
    """Every container (any state) the selectors ``texts`` match, in their order (each
    selector's by name), each once; SelectionError if one of them matches nothing."""
    seen: dict[str, ContainerInfo] = {}
    for text in texts:
        found = matches(engine, text)
        if not found:
            raise SelectionError(f"{key} {text!r} matched no container")
        for container in found:
            seen.setdefault(container.id, container)
    return list(seen.values())
