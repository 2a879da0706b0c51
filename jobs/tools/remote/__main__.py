"""``python -m jobs.tools.remote``: runs ``cli.main`` under ``jobs.protocol.lines.guarded``.

``main`` lives in ``cli``, not here: a package that imported its own ``__main__`` would make
``python -m`` print a RuntimeWarning on stderr."""

import sys

from jobs.protocol.lines import guarded
from jobs.tools.remote.cli import TOOL, main

if __name__ == "__main__":
    sys.exit(guarded(TOOL, main))
