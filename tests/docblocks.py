"""The TOML blocks of the documentation, as the suite reads them: what a reader copies is
what the tests validate and run."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_FENCE = re.compile(r"^```toml\n(.*?)^```", re.MULTILINE | re.DOTALL)
_HEADING = re.compile(r"^#+ (.*)$", re.MULTILINE)


@dataclass(frozen=True)
class Block:
    """One ```toml fenced block: its file, first line (1-based), the heading above it."""

    path: Path
    line: int
    heading: str
    text: str

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def documentation() -> list[Path]:
    """The README and every Markdown file under docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def toml_blocks(path: Path) -> list[Block]:
    """The ```toml blocks of ``path``, in order."""
    text = path.read_text()
    blocks = []
    for match in _FENCE.finditer(text):
        headings = _HEADING.findall(text, 0, match.start())
        line = text.count("\n", 0, match.start()) + 2
        blocks.append(Block(path, line, headings[-1] if headings else "", match.group(1)))
    return blocks


def block_under(path: Path, heading: str, index: int = 0) -> Block:
    """The ``index``-th TOML block under the heading ``heading`` of ``path``."""
    found = [b for b in toml_blocks(path) if b.heading == heading]
    assert len(found) > index, f"{path.name}: no TOML block {index} under {heading!r}"
    return found[index]
