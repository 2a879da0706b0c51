"""What each job kind does: a validated TOML table in, a plan out (``jobs.kinds``).

This package never imports ``scheduler``, ``docker`` or ``apscheduler``, and this
file imports nothing: the tools under ``jobs.tools`` run in ops containers and
start without loading the config models (pydantic) they do not use.
"""
