"""Chains checked across the config's jobs: each name in ``on_success``, ``on_failure`` and
``on_finish`` is a job of the config, never the job itself, and no chain leads back to
where it started (``a -> b -> a``), whichever keys its edges are."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobs.base import CHAIN_KEYS
from scheduler.settings.messages import did_you_mean

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

    from jobs.base import BaseJob
    from scheduler.settings.entries import JobEntry


def edges(job: BaseJob) -> list[tuple[str, str]]:
    """``job``'s chain edges as (key, job named): on_success, on_failure, then on_finish,
    each in the order written."""
    return [(key, name) for key in CHAIN_KEYS for name in getattr(job, key)]


def chain_problems(
    entries: Mapping[str, JobEntry], defined: Collection[str]
) -> list[tuple[str, str]]:
    """The problems of the chains of ``entries`` (the jobs validated), each as the job it is
    about and its error line; ``defined``: every job name the config defines, valid or not
    (a name of a job refused for another reason is not unknown: that job's own error says
    what is wrong)."""
    problems: list[tuple[str, str]] = []
    for name, entry in entries.items():
        for key, target in edges(entry.job):
            where = f"jobs.{name}.{key}"
            if target == name:
                problems.append((name, f"{where}: a job cannot chain to itself ({name} -> {name})"))
            elif target not in defined:
                near = did_you_mean(target, sorted(defined))
                problems.append((name, f"{where}: unknown job {target!r}{near}"))
    problems.extend(_cycles(entries))
    return problems


def _cycles(entries: Mapping[str, JobEntry]) -> list[tuple[str, str]]:
    """A problem per cycle of chain edges between different jobs, naming its path from the
    job where a walk of the chains (in the config's order) met it again."""
    graph = {
        name: [(key, t) for key, t in edges(entry.job) if t != name and t in entries]
        for name, entry in entries.items()
    }
    state: dict[str, int] = {}  # 1: on the path being walked; 2: done
    found: list[tuple[str, str]] = []
    for start, following in graph.items():
        if state.get(start):
            continue
        path: list[str] = [start]
        keys: list[str] = []
        stack = [iter(following)]
        state[start] = 1
        while stack:
            step = next(stack[-1], None)
            if step is None:
                state[path.pop()] = 2
                stack.pop()
                if keys:
                    keys.pop()
                continue
            key, target = step
            seen = state.get(target)
            if seen == 1:
                cycle = [*path[path.index(target) :], target]
                first_key = keys[path.index(target)] if path.index(target) < len(keys) else key
                line = (
                    f"jobs.{cycle[0]}.{first_key}: a chain cycle: {' -> '.join(cycle)} "
                    "(chained runs would start each other for ever)"
                )
                found.append((cycle[0], line))
            elif seen is None:
                state[target] = 1
                path.append(target)
                keys.append(key)
                stack.append(iter(graph[target]))
    return found
