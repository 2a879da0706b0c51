"""A pytest plugin for mutation runs only: ``[tool.mutmut] pytest_add_cli_args`` loads it.

mutmut runs the tests in its ``mutants/`` copy of the tree, next to its own records. A mutant
can turn a tool's absolute glob into relative ones: without ``nargs="+"`` the rotate tool's
``/tmp/…/logs/*.log`` becomes a list of one-character patterns, ``*`` among them, and so it
rotated every file of the working directory, mutmut's records included. Each test session
therefore runs in an empty directory of its own. Subprocesses of the tests (``python -m
jobs.tools.rotate``) still import the mutated code: ``mutants/`` is put on their
``PYTHONPATH``, as the working directory was; and mutmut's code in them reads its settings
from the working directory's ``pyproject.toml``, so a copy of it is there.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(autouse=True, scope="session")
def _run_outside_mutants(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    tree = Path.cwd()
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tree), before]))
    sandbox = tmp_path_factory.mktemp("cwd")
    shutil.copy(tree / "pyproject.toml", sandbox)
    os.chdir(sandbox)
    try:
        yield
    finally:
        os.chdir(tree)
        if before is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = before
