"""A Swarm job service's tasks judged (pure): the first task of each slot is the one that
counts, and the run's outcome is decided from those.

Why the first task of each slot: engine 20.10 replaces a replicated job's failed task with
a new one in the same slot whatever the restart policy says (about 100 a minute), so a job
with a failing task never finishes on its own. The daemon judges each slot by the task the
engine made first for it, and removes the service itself. A replicated job's slots count
from 0 (``{{.Task.Slot}}`` renders slot 0 as the node's id); a global job's tasks have no
slot: each node is a slot there."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from scheduler.runs import Outcome, Status

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from scheduler.engine import TaskInfo


def slot_of(task: TaskInfo, *, replicated: bool) -> str:
    """The slot a task fills: its replica slot (a replicated job's), or its node (a global
    job's)."""
    return f"slot {task.slot}" if replicated else f"node {task.node_id}"


def in_order(stamp: str) -> str:
    """An engine's RFC 3339 time (UTC, ``Z``) as a text that sorts in time order: the engine
    leaves out its fraction's trailing zeros (``01.5Z`` is before ``01.51Z``, which sorts
    first as written)."""
    whole, _, fraction = stamp.removesuffix("Z").partition(".")
    return f"{whole}.{fraction:0<9}"


def first_tasks(tasks: Iterable[TaskInfo], *, replicated: bool) -> dict[str, TaskInfo]:
    """Each slot's first task (the earliest created; replacements come later), by slot."""
    first: dict[str, TaskInfo] = {}
    for task in sorted(tasks, key=lambda t: (in_order(t.created_at), t.id)):
        first.setdefault(slot_of(task, replicated=replicated), task)
    return first


@dataclass(frozen=True, slots=True)
class Judgement:
    """Where a job stands: the tasks that count (each slot's first), and whether all of
    them have ended (``expected`` slots for a replicated job; a global job's are the nodes
    it has tasks on)."""

    counted: dict[str, TaskInfo]
    expected: int | None

    @property
    def done(self) -> bool:
        """Whether every slot's first task has ended; or, a first task having failed, every
        one there is (a slot the engine has not made yet may never come: with fewer tasks
        at once than replicas, it keeps replacing the failed one in its slot instead)."""
        if not self.counted or not all(t.ended for t in self.counted.values()):
            return False
        if self.expected is None or len(self.counted) >= self.expected:
            return True
        return any(task_failed(t) for t in self.counted.values())


def judge(tasks: Iterable[TaskInfo], expected: int | None) -> Judgement:
    """Where the job of these tasks stands; ``expected``: its replicas (None: global)."""
    return Judgement(first_tasks(tasks, replicated=expected is not None), expected)


def task_failed(task: TaskInfo) -> bool:
    """Whether an ended task failed (anything but complete with exit code 0)."""
    return task.state != "complete" or (task.exit_code or 0) != 0


def task_error(task: TaskInfo) -> str:
    """Why a task failed, in words: its exit code, and the engine's error if it says more."""
    if task.exit_code is not None and task.exit_code != 0:
        return f"exit code {task.exit_code}"
    return task.error or f"ended {task.state}"


def decide(
    counted: Iterable[TaskInfo], node_name: Callable[[str], str], *, replicated: bool
) -> Outcome:
    """The run's outcome from the tasks that count (all ended): succeeded when every one
    completed; else failed, with how many failed and the first failure (task, its slot if
    replicated, node, why)."""
    tasks = list(counted)
    failed = sorted(
        (t for t in tasks if task_failed(t)),
        key=lambda t: (in_order(t.updated_at), t.id),
    )
    if not failed:
        return Outcome(Status.SUCCEEDED, exit_code=0)
    first = failed[0]
    slot = f" (slot {first.slot})" if replicated else ""
    error = (
        f"{len(failed)} of {len(tasks)} tasks failed; first: task {first.id}{slot} on "
        f"{node_name(first.node_id)}: {task_error(first)}"
    )
    return Outcome(Status.FAILED, exit_code=first.exit_code, reason="tasks_failed", error=error)
