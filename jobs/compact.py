"""A job held by the values it does not share with its kind's defaults.

A validated pydantic model holds every field in its ``__dict__``. On CPython a dict of more
than 42 keys takes a 128-slot table: a run job's 45 fields cost 1,584 bytes a job, an exec
job's 30 fields 832, though a job of a large config sets four or five keys. So each kind's
defaults are also its class attributes (``hold_defaults``, once per kind, by ``jobs.kinds``),
and ``compact`` takes out of a job's ``__dict__`` every value equal to its field's default
(and of the same type): reading the attribute then finds the class's value, which equals
the one a fresh job would hold (a default list or table is one object shared by the jobs
that leave it unset; a job is frozen and nothing edits one in place). Such a job holds a
dict of what was given: 184 bytes for four keys.

What reads a model's ``__dict__`` rather than its attributes sees only those values:
``BaseJob`` has an equality, a hash, ``dict(job)`` and a repr over every field, as before
(a compact job equals the same job validated and not compacted); pydantic's serializer
(``model_dump``) leaves the defaults out, as with ``exclude_defaults=True`` (the daemon
never dumps a job).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jobs.base import BaseJob

_ABSENT = object()


def hold_defaults(kind: type[BaseJob]) -> None:
    """Make ``kind``'s defaults its class attributes (a default factory called once), so
    that its jobs can be held compact."""
    defaults: dict[str, object] = {}
    for name, info in kind.model_fields.items():
        if info.is_required():
            continue
        factory = info.default_factory
        # called as pydantic calls it for a job: get_default() would first read the
        # factory's signature, which for a builtin (list, dict) costs 0.7 MiB of memory
        defaults[name] = info.default if factory is None else factory()  # type: ignore[call-arg]
        setattr(kind, name, defaults[name])
    kind.HELD_DEFAULTS = defaults


def compact(job: BaseJob) -> None:
    """Take out of ``job``'s ``__dict__`` the values equal to their defaults (of the same
    type: a 0 given for a default of 0.0 stays); nothing for a kind not held compact."""
    defaults = type(job).HELD_DEFAULTS
    if not defaults:
        return
    kept = {
        name: value
        for name, value in job.__dict__.items()
        if (default := defaults.get(name, _ABSENT)) is not value
        and (type(value) is not type(default) or value != default)
    }
    object.__setattr__(job, "__dict__", kept)
