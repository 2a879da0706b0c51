"""``python -m jobs.tools.logship``: runs ``cli.main`` under ``jobs.protocol.guarded``.

``main`` lives in ``cli``, not here: the package names it, and a package that imported its
own ``__main__`` would make ``python -m`` print a RuntimeWarning on stderr."""

import sys

from jobs.protocol.lines import guarded
from jobs.tools.logship.cli import main
from jobs.tools.logship.sinks import TOOL

if __name__ == "__main__":
    sys.exit(guarded(TOOL, main))
