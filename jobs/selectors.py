"""How a config names a container — one syntax for every key that does: exec's and
pre_exec/post_exec's ``container``, ``volumes_from``, a backup's ``stop``, signal's and
logship's ``containers``, rotate's ``signal.containers`` and ``restart``.

A selector is an exact container name (or id), ``label=key`` (the label present, any
value), ``label=key=value``, or ``compose=<project>/<service>`` (the containers Docker
Compose made for that service of that project: its labels ``com.docker.compose.project``
and ``com.docker.compose.service``). Checked at load; pure: the engine resolves a selector
against the containers that exist when a run needs it (``scheduler.selection``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, NoReturn

from pydantic import AfterValidator

COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"
COMPOSE_ONEOFF = "com.docker.compose.oneoff"
"""``True`` on the containers ``docker compose run`` makes, ``False`` on the service's own."""
FORMS = "a container name (or id), 'label=key', 'label=key=value' or 'compose=<project>/<service>'"
"""The accepted forms, in words (every error about a selector lists them)."""

_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
"""Docker's container names (and ids)."""
_LABEL_KEY = re.compile(r"[^=\s\x00-\x1f\x7f]+")
_LABEL_VALUE = re.compile(r"[^\x00-\x1f\x7f]*")
_COMPOSE_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
"""A Compose project's or service's name."""


@dataclass(frozen=True, slots=True)
class Selector:
    """A parsed selector: ``name`` (an exact name or id), or ``labels`` a container must all
    carry — each ``(key, value)``, value None for "any value"."""

    text: str
    name: str | None = None
    labels: tuple[tuple[str, str | None], ...] = ()


def parse_selector(text: str) -> Selector:
    """``text`` as a Selector; ValueError saying what is wrong and listing the forms."""
    if text.startswith("label="):
        key, equals, value = text.removeprefix("label=").partition("=")
        if not _LABEL_KEY.fullmatch(key) or not _LABEL_VALUE.fullmatch(value):
            _refuse(
                text,
                "a label selector needs a key without '=' or spaces (and a value without "
                "control characters)",
            )
        return Selector(text, labels=((key, value if equals else None),))
    if text.startswith("compose="):
        project, slash, service = text.removeprefix("compose=").partition("/")
        if not slash:
            _refuse(
                text,
                "a service alone could match other projects' containers (in every project: "
                f"'label={COMPOSE_SERVICE}={project}')",
            )
        if not _COMPOSE_NAME.fullmatch(project) or not _COMPOSE_NAME.fullmatch(service):
            _refuse(text, "a project and a service of letters, digits, '_', '.', '-'")
        labels = ((COMPOSE_PROJECT, project), (COMPOSE_SERVICE, service), (COMPOSE_ONEOFF, "False"))
        return Selector(text, labels=labels)  # a one-off (compose run) is not the service
    name = text.removeprefix("/")  # as `docker inspect` prints names
    if not _NAME.fullmatch(name):
        _refuse(text, "not a container name (letters, digits, '_', '.', '-')")
    return Selector(text, name=name)


def _refuse(text: str, why: str) -> NoReturn:
    raise ValueError(f"{text!r}: {why}; write {FORMS}")


def check_selector(text: str) -> str:
    """``text`` if it is a selector (pydantic's validator); ValueError otherwise."""
    parse_selector(text)
    return text


def split_mode(entry: str) -> tuple[str, str]:
    """A ``volumes_from`` entry as its selector and Docker's mode suffix, ``":ro"`` or
    ``":rw"`` (``""`` when it has none): ``--volumes-from app:ro``."""
    for mode in (":ro", ":rw"):
        if entry.endswith(mode):
            return entry.removesuffix(mode), mode
    return entry, ""


def check_volumes_from(entry: str) -> str:
    """``entry`` if it is a selector with an optional ``:ro``/``:rw``; ValueError otherwise."""
    parse_selector(split_mode(entry)[0])
    return entry


ContainerSelector = Annotated[str, AfterValidator(check_selector)]
"""A container, by name or by ``label=…`` / ``compose=…`` selector."""
VolumesFromEntry = Annotated[str, AfterValidator(check_volumes_from)]
"""A container whose volumes are mounted, by name or selector, with Docker's optional
``:ro`` / ``:rw`` (a run job's; the ops kinds choose the mode themselves)."""
Selectors = list[ContainerSelector]
"""Containers, each by name or by selector."""
