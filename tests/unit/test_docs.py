"""Every TOML block of the README and docs/ is a config ``crontainer validate`` accepts: what
a reader copies works. A block that is a fragment (a table to add to a whole config) says so
in a comment on its first line (``# fragment``) and is checked as TOML only."""

from __future__ import annotations

import tomllib
from typing import TYPE_CHECKING

import pytest

from scheduler.settings import load_config
from tests.docblocks import ROOT, Block, documentation, toml_blocks

if TYPE_CHECKING:
    from pathlib import Path

BLOCKS = [block for path in documentation() for block in toml_blocks(path)]


def test_the_documentation_has_toml_blocks_to_check() -> None:
    """The reader finds the blocks where they look: the README, the configuration and each
    recipe page (a fence written differently would silently leave a block unchecked)."""
    files = {block.path.relative_to(ROOT).as_posix() for block in BLOCKS}
    assert "README.md" in files
    assert "docs/configuration.md" in files
    recipes = {p.relative_to(ROOT).as_posix() for p in (ROOT / "docs" / "recipes").glob("*.md")}
    assert recipes - {"docs/recipes/README.md"} <= files


@pytest.mark.parametrize("block", BLOCKS, ids=str)
def test_each_toml_block_is_a_valid_config(block: Block, tmp_path: Path) -> None:
    tomllib.loads(block.text)  # every block is TOML, fragments too
    if block.text.lstrip().startswith("# fragment"):
        return
    config = tmp_path / "config.toml"
    config.write_text(block.text)
    loaded = load_config(config, environ={})
    assert loaded.jobs or "[daemon]" in block.text, f"{block}: no job and no [daemon] table"
    # What a reader copies draws no warning either (a string command with shell syntax).
    assert not loaded.warnings, f"{block}: {loaded.warnings}"
