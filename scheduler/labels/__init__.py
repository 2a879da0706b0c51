"""Jobs declared in container labels (``[daemon] labels = true``).

A container carrying ``crontainer.jobs.<job>.<key>`` labels declares the job
``<container>.<job>`` beside the app it serves. Its parts:

- ``parse``: the labels of one container as job tables (values read as TOML values);
- ``rules``: the fence — what a label job may do (by default: act on its own container
  only, the container implied) and the ``[daemon]`` keys that widen it;
- ``scan``: every container's label jobs, fenced and validated like ``[jobs.*]`` tables;
- ``watch``: the discovery — at start, on the engine's container events, and every
  ``label_resync`` — handing each changed set to the daemon.
"""
