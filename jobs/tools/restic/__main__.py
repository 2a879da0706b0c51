"""``python -m jobs.tools.restic``: runs ``cli.main`` under ``jobs.protocol.lines.guarded``.

``main`` lives in ``cli``, not here: a package that imported its own ``__main__`` would make
``python -m`` print a RuntimeWarning on stderr."""

import sys

from jobs.protocol.lines import guarded
from jobs.tools.restic.cli import main
from jobs.tools.restic.runner import TOOL

if __name__ == "__main__":
    sys.exit(guarded(TOOL, main))
