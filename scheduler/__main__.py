"""``python -m scheduler`` is the ``crontainer`` command."""

import sys

from scheduler.cli import main

sys.exit(main())
