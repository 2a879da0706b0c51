"""docs/layout.md names every module of ``jobs/`` and ``scheduler/`` — and
nothing that is not there."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TREES = ("jobs", "scheduler")


def listed() -> set[str]:
    """The paths the Layout block names under the trees: ``dir/`` and ``dir/name.py``."""
    layout = (ROOT / "docs" / "layout.md").read_text()
    block = re.search(r"^```\n(.*?)^```", layout, re.MULTILINE | re.DOTALL)
    assert block is not None, "docs/layout.md has no Layout block"
    names: set[str] = set()
    parents: list[tuple[int, str]] = []  # (indent, directory path) of the open directories
    for line in block.group(1).splitlines():
        token = line.split()[0] if line.strip() else ""
        if not token.endswith(("/", ".py")):
            continue
        indent = len(line) - len(line.lstrip())
        while parents and parents[-1][0] >= indent:
            parents.pop()
        path = (parents[-1][1] if parents else "") + token
        if path.split("/")[0] in TREES:
            names.add(path)
        if token.endswith("/"):
            parents.append((indent, path))
    return names


def _says_something(init: Path) -> bool:
    """A package's ``__init__.py`` is a module worth naming when it holds more than its
    docstring."""
    body = ast.parse(init.read_text()).body
    return any(
        not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)) for node in body
    )


def present() -> set[str]:
    """The packages and modules of the trees (an ``__init__.py`` only when it holds code)."""
    names: set[str] = set()
    for tree in TREES:
        for path in (ROOT / tree).rglob("*.py"):
            relative = path.relative_to(ROOT)
            if "__pycache__" in relative.parts:
                continue
            if path.name != "__init__.py" or _says_something(path):
                names.add(relative.as_posix())
            names.update(f"{parent.as_posix()}/" for parent in relative.parents if parent != Path())
    return names


def test_the_layout_names_every_module_and_only_modules_that_exist() -> None:
    """A module added, moved or removed without the Layout section saying so fails here."""
    shown, there = listed(), present()
    assert sorted(there - shown) == [], "modules missing from docs/layout.md"
    assert sorted(shown - there) == [], "docs/layout.md names what does not exist"


def test_the_layout_reader_sees_nested_packages() -> None:
    """The reader of the block follows indentation into sub-packages (a check of the check:
    a flat reading would pass with every nested module missing)."""
    shown = listed()
    assert {"jobs/tools/", "jobs/tools/paths.py", "scheduler/steps/containers.py"} <= shown
