"""docs/reference.md, generated from the code: ``python -m scheduler.reference``."""
