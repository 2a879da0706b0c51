"""python -m scheduler.reference: print docs/reference.md (``> docs/reference.md``)."""

from __future__ import annotations

import sys

from scheduler.reference.document import document

sys.stdout.write(document())
