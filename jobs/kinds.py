"""The registry of job kinds: the ``kind`` key's values, and the union of job models."""

from __future__ import annotations

from jobs.backup import BackupJob
from jobs.base import BaseJob, PlanContext
from jobs.exec import ExecJob
from jobs.run import RunJob
from jobs.signal import SignalJob

Job = RunJob | ExecJob | SignalJob | BackupJob
"""Any configured job (the union grows with the kinds)."""

KINDS: dict[str, type[BaseJob]] = {cls.KIND: cls for cls in (RunJob, ExecJob, SignalJob, BackupJob)}
"""Job kinds by the value of their ``kind`` key."""

__all__ = ["KINDS", "BackupJob", "BaseJob", "ExecJob", "Job", "PlanContext", "RunJob", "SignalJob"]
