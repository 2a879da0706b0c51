"""The registry of job kinds: the ``kind`` key's values, and the union of job models."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobs.backup import BackupJob
from jobs.compact import hold_defaults
from jobs.exec import ExecJob
from jobs.logship import LogshipJob
from jobs.rotate import RotateJob
from jobs.run import RunJob
from jobs.service import ServiceJob
from jobs.signal import SignalJob

if TYPE_CHECKING:
    from jobs.base import BaseJob

Job = RunJob | ExecJob | SignalJob | BackupJob | LogshipJob | RotateJob | ServiceJob
"""Any configured job (the union grows with the kinds)."""

KINDS: dict[str, type[BaseJob]] = {
    cls.KIND: cls
    for cls in (
        RunJob,
        ExecJob,
        SignalJob,
        BackupJob,
        LogshipJob,
        RotateJob,
        ServiceJob,
    )
}
"""Job kinds by the value of their ``kind`` key."""

for _kind in KINDS.values():  # their jobs are held compact (jobs/compact.py)
    hold_defaults(_kind)
