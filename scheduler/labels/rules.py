"""The fence: what a job declared in a container's labels may do.

Anyone who can start a container can write its labels, and the daemon holds the engine's
socket — so by default a label job acts on its own container only:

- its kind is one of ``label_kinds`` (default: exec, signal, backup, rotate, logship);
- the container is implied: exec runs in it, signal signals it, backup and rotate mount its
  volumes (``volumes_from``), a backup may ``stop`` it (``stop = true``) and run
  ``pre_exec``/``post_exec`` in it, rotate signals (``signal = "HUP"``) or restarts it
  (``restart = true``), logship reads its volumes (with ``paths``) or its output; a key that
  names a container may name only this one (its name or id);
- it sets none of the keys that reach beyond it — ``image``, ``volumes``, ``network``,
  ``cap_add``, ``env_files``, ``lock``, … (``POWER_KEYS``) — writes to no volume at a path
  of its choosing (a file sink's ``volume``: ``volumes``), to no host directory (a
  backup's ``target``, a file sink's ``volume``: ``host_paths``; a named ``target`` volume
  is fine: the archives' names are the job's) and holds no secret reference
  (``{ env = … }``/``{ file = … }``: the daemon's own environment and files).

``[daemon] label_allow`` names what to allow beyond that, one key or class at a time;
``label_kinds`` adds kinds (``run`` also needs ``image``).

A label job never chains (``on_success``, ``on_failure``, ``on_finish`` are refused, and no
allowance widens that): a chain would start other jobs — the config's, under their
privileges — when a label says; and a config job cannot name a label job either (its names
are checked against the config's jobs). A label job may be ``@manual`` (run by a trigger).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jobs.base import CHAIN_KEYS, BaseJob
from jobs.selectors import parse_selector, split_mode

if TYPE_CHECKING:
    from collections.abc import Collection

    from scheduler.engine import ContainerInfo

LABEL_KINDS = ("exec", "signal", "backup", "rotate", "logship")
"""The kinds a label job may have by default: each acts on its own container."""
ALL_KINDS = ("run", *LABEL_KINDS)
POWER_KEYS = (
    "image",
    "volumes",
    "network",
    "cap_add",
    "env_files",
    "notify",
    "log_driver",
    "log_options",
    "copy_to",
    "lock",
    "output",
)
"""Keys that reach beyond the label's own container, refused unless ``label_allow`` names them
(``notify``: the daemon itself would send requests to the label's URLs, from its own
network — a socket proxy's, say; ``log_driver``/``log_options``: the engine itself would
send the output where the label says; ``copy_to``: the operator's remotes and their
credentials; ``lock``: a label job holding a lock the config's jobs use would hold them
up, or make them be missed; ``output``: the daemon itself would write files into the
volume the label names)."""
SAFE_DEFAULTS = frozenset(
    (
        *BaseJob.model_fields,
        "memory",
        "cpus",
        "pids_limit",
        "read_only",
        "cap_drop",
        "no_new_privileges",
        "labels",
        "pull",
    )
)
"""The ``[defaults]`` keys label jobs take: run policies, notifications (the operator's
URLs), limits and hardening. The others — containers, volumes, destinations, secrets —
were written for the config's jobs: a label job would get them on its own schedule, or
send the operator's credentials to a destination of its choosing."""
CLASSES = ("host_paths", "secrets", "other_containers")
"""What ``label_allow`` may name besides the keys."""
ALLOWANCES = (*POWER_KEYS, *CLASSES)

NO_CHAINS = (
    "a label job does not chain: on_success, on_failure and on_finish are for the config's "
    "jobs (label_allow cannot allow them)"
)
"""Why a label job's chain is refused."""

Problem = tuple[str, str]
"""A refused key (as written in the labels) and why."""


def label_kind(value: str) -> str:
    """A value of ``label_kinds``: a job kind."""
    if value not in ALL_KINDS:
        raise ValueError(f"{value!r} is not a job kind (one of {', '.join(ALL_KINDS)})")
    return value


def label_allowance(value: str) -> str:
    """A value of ``label_allow``."""
    if value not in ALLOWANCES:
        raise ValueError(f"{value!r} cannot be allowed (one of {', '.join(ALLOWANCES)})")
    return value


def label_filter_entry(value: str) -> str:
    """A value of ``label_filter``: ``key`` or ``key=value``, as a ``label=`` selector takes."""
    try:
        parse_selector(f"label={value}")
    except ValueError:
        raise ValueError(f"{value!r}: expected a label, 'key' or 'key=value'") from None
    return value


def _allow_hint(what: str) -> str:
    return f"add '{what}' to [daemon] label_allow to allow it"


class Fence:
    """Checks one container's label job tables and fills in the container they imply."""

    def __init__(
        self, container: ContainerInfo, kinds: Collection[str], allow: Collection[str]
    ) -> None:
        self._container = container
        self._kinds = kinds
        self._allow = allow

    def own(self, text: object) -> bool:
        """Whether the selector ``text`` names this container (its name, ``/name``, its id
        or 12 or more of its id's first digits)."""
        if not isinstance(text, str):
            return False
        c = self._container
        short = len(text) >= 12 and c.id.startswith(text)  # noqa: PLR2004 - a short id
        return text.lstrip("/") == c.name or short

    def check(self, table: dict[str, Any]) -> tuple[dict[str, Any], list[Problem]]:
        """``table`` with the container filled in, and what the fence refuses in it."""
        table = dict(table)
        kind = table.setdefault("kind", "exec")
        if kind not in self._kinds:
            kinds = ", ".join(sorted(self._kinds))
            return table, [
                ("kind", f"kind {kind!r} is not allowed in labels (label_kinds: {kinds})")
            ]
        problems: list[Problem] = [
            (key, f"a label job may not set {key} ({_allow_hint(key)})")
            for key in POWER_KEYS
            if key in table and key not in self._allow
        ]
        problems.extend((key, NO_CHAINS) for key in CHAIN_KEYS if key in table)
        if "secrets" not in self._allow:
            problems.extend(
                (
                    path,
                    (
                        "a label job may not read the daemon's environment or files "
                        f"({_allow_hint('secrets')})"
                    ),
                )
                for path in _secret_paths(table, "")
            )
        problems.extend(self._written_places(table))
        problems.extend(self._containers(kind, table))
        return table, problems

    def _written_places(self, table: dict[str, Any]) -> list[Problem]:
        """A backup's target on the host; a file sink's volume: any volume (a file at a path
        of the label's choosing in it) is an extra volume (``volumes``); on the host, a host
        path (``host_paths``). Each allowance allows its own class only."""
        found = []
        sink = table.get("sink")
        volume = sink.get("volume") if isinstance(sink, dict) else None
        if isinstance(volume, str) and not volume.startswith("/") and "volumes" not in self._allow:
            found.append(
                ("sink.volume", f"a label job may not write to a volume ({_allow_hint('volumes')})")
            )
        if "host_paths" in self._allow:
            return found
        for key, value in (("target", table.get("target")), ("sink.volume", volume)):
            if isinstance(value, str) and value.startswith("/"):
                hint = _allow_hint("host_paths")
                found.append((key, f"a label job may not write to a host directory ({hint})"))
        return found

    # --- the keys that name containers --------------------------------------------

    def _containers(self, kind: str, table: dict[str, Any]) -> list[Problem]:
        """The keys of ``kind`` that name containers: this one (filled in where implied)."""
        reads_volumes = kind in ("backup", "rotate") or (kind == "logship" and "paths" in table)
        problems = self._many(table, "volumes_from", implied=reads_volumes)
        if kind == "exec":
            problems += self._one(table, "container", implied=True)
        elif kind == "signal":
            problems += self._many(table, "containers", implied=True)
        elif kind == "logship":
            problems += self._many(table, "containers", implied="paths" not in table)
        elif kind == "backup":
            problems += self._backup(table)
        elif kind == "rotate":
            problems += self._rotate(table)
        return problems

    def _backup(self, table: dict[str, Any]) -> list[Problem]:
        """``stop = true``: this container; pre_exec/post_exec run in it."""
        problems = self._many(table, "stop", implied=False, flag=True)
        for key in ("pre_exec", "post_exec"):
            steps = table.get(key)
            if not isinstance(steps, list):
                continue
            table[key] = steps = [dict(s) if isinstance(s, dict) else s for s in steps]
            for i, step in enumerate(steps):
                if isinstance(step, dict):
                    problems += self._one(step, "container", implied=True, where=f"{key}[{i}]")
        return problems

    def _rotate(self, table: dict[str, Any]) -> list[Problem]:
        """``signal = "HUP"`` or a signal table: to this container; ``restart = true``."""
        problems = self._many(table, "restart", implied=False, flag=True)
        signal = table.get("signal")
        if isinstance(signal, str):
            table["signal"] = {"containers": [self._container.id], "signal": signal}
        elif isinstance(signal, dict):
            table["signal"] = signal = dict(signal)
            problems += self._many(signal, "containers", implied=True, where="signal")
        return problems

    def _one(
        self, table: dict[str, Any], key: str, *, implied: bool, where: str = ""
    ) -> list[Problem]:
        """A key naming one container: this one (filled in when absent and ``implied``)."""
        shown = f"{where}.{key}" if where else key
        if key not in table:
            if implied:
                table[key] = self._container.id
            return []
        if self.own(table[key]):
            table[key] = self._container.id
            return []
        return self._other(shown)

    def _many(
        self,
        table: dict[str, Any],
        key: str,
        *,
        implied: bool,
        flag: bool = False,
        where: str = "",
    ) -> list[Problem]:
        """A key naming containers: this one only (filled in when absent and ``implied``;
        with ``flag``, ``true`` means this one and ``false`` none)."""
        shown = f"{where}.{key}" if where else key
        own = self._container.id
        value = table.get(key)
        if value is None:
            if implied:
                table[key] = [own]
            return []
        if flag and isinstance(value, bool):
            table[key] = [own] if value else []
            return []
        one = isinstance(value, str)  # one container: volumes_from and containers take it
        if not (one or isinstance(value, list)):
            return []  # the job's model says what is wrong with it
        kept = []
        for entry in [value] if one else value:
            selector, mode = split_mode(entry) if isinstance(entry, str) else (entry, "")
            if self.own(selector):
                kept.append(own + mode)  # Docker's :ro / :rw kept
            elif "other_containers" in self._allow:
                kept.append(entry)
            else:
                return self._other(shown)
        table[key] = kept[0] if one else kept  # as written: the model reads it as it would
        return []

    def _other(self, key: str) -> list[Problem]:
        if "other_containers" in self._allow:
            return []
        return [
            (
                key,
                (
                    f"a label job acts on its own container ({self._container.name}) only "
                    f"({_allow_hint('other_containers')})"
                ),
            )
        ]


def _secret_paths(value: object, path: str) -> list[str]:
    """Where ``value`` holds ``{ env = … }`` or ``{ file = … }`` (dotted paths). The models
    forbid other keys, so every secret reference has this shape, wherever it is."""
    if isinstance(value, dict):
        if len(value) == 1 and next(iter(value)) in ("env", "file"):
            return [path]  # any such table (an env variable called file too): the safe side
        return [
            found
            for key, inner in value.items()
            for found in _secret_paths(inner, f"{path}.{key}" if path else str(key))
        ]
    if isinstance(value, list):
        return [
            found for i, inner in enumerate(value) for found in _secret_paths(inner, f"{path}[{i}]")
        ]
    return []
