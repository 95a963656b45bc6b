"""Checks on the walkthrough notebooks that need no kernel.

nbval re-runs every notebook and compares outputs; these tests guard what nbval
cannot see: that source is only ever shown through the toolkit (read live from
``channels_core``, never pasted), that no stored output holds a path of the
machine it ran on, and that every notebook follows the chapter skeleton.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
PACKAGE_LINES = {
    line.strip()
    for path in (ROOT / "channels_core").rglob("*.py")
    for line in path.read_text().splitlines()
    if len(line.strip()) > 25 and not line.strip().startswith(("#", '"""', "from ", "import "))
}
ABSOLUTE_PATH = re.compile(r"(/work/|/tmp/|/root/|/home/|/usr/|/opt/|[A-Z]:\\\\)")
FORBIDDEN_SOURCE_READERS = re.compile(r"inspect\.getsource|\.read_text\(|open\([^)]*channels_core|%load|%pycat|!cat ")


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def test_there_are_walkthrough_notebooks() -> None:
    assert len(NOTEBOOKS) >= 1


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_source_is_shown_only_through_the_toolkit(path: Path) -> None:
    for index, cell in enumerate(load(path)["cells"]):
        text = "".join(cell["source"])
        if cell["cell_type"] == "code":
            assert not FORBIDDEN_SOURCE_READERS.search(text), f"cell {index} reads source by hand"
        # Three or more lines of the package's code typed into a cell would be a pasted copy.
        pasted = [line.strip() for line in text.splitlines() if line.strip() in PACKAGE_LINES]
        assert len(pasted) < 3, f"cell {index} pastes package source: {pasted[:3]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_absolute_machine_paths_in_outputs(path: Path) -> None:
    for index, cell in enumerate(load(path)["cells"]):
        for output in cell.get("outputs", []):
            blob = json.dumps(output)
            match = ABSOLUTE_PATH.search(blob)
            assert match is None, f"cell {index} output holds a machine path: {match.group(0)!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_chapter_skeleton(path: Path) -> None:
    cells = load(path)["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    markdown = ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]
    assert markdown and markdown[0].startswith("# "), "a chapter opens with its title"
    assert "import _setup" in "".join(code[0]["source"]), "the first code cell imports _setup"
    assert any(m.startswith("## Regroup") for m in markdown), "a chapter ends with a Regroup section"
    stored = [c for c in code if c.get("outputs")]
    assert stored, "a chapter is stored with its outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_server_started_is_stopped(path: Path) -> None:
    source = "\n".join("".join(c["source"]) for c in load(path)["cells"] if c["cell_type"] == "code")
    started = len(re.findall(r"\.start\(\)", source)) + len(re.findall(r"async with Server\(", source))
    stopped = len(re.findall(r"\.stop\(\)", source)) + len(re.findall(r"async with Server\(", source))
    assert started == stopped, f"{started} servers started, {stopped} stopped"
