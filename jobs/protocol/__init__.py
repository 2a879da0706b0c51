"""The protocol between the daemon and the ops tools under ``jobs.tools`` (stdlib only:
the tools import it inside the ops image).

- ``lines``: control lines — how a tool tells the daemon its result, checkpoints and
  warnings on its stderr, and how its diagnostics stay apart from them.
- ``ship``: logship's request (the first line of the tool's stdin).
- ``rotate``: rotate's requests (the tool's command line), state (on its stdin) and
  results.
- ``backup``: the backup tool's requests (its command lines) and results.
- ``fields``: reading a request or result from JSON, with errors naming the field.

Each type is defined once and shared by the plan that builds a request (``jobs/<kind>.py``),
the daemon that completes it and reads the result (``scheduler/``), and the tool.
"""
