"""Make the exercise notebooks from their solutions, and check that they are up to date.

    .venv/bin/python exercises/make_starters.py            # write exercises/NN_*.ipynb
    .venv/bin/python exercises/make_starters.py --verify   # exit 1 if one differs from what it would write
    .venv/bin/python exercises/make_starters.py --execute  # run the solutions first, storing their outputs

The solution notebooks in ``exercises/solutions/`` are the only source. Each cell of
a solution notebook says, by its tags, what becomes of it in the exercise notebook
(the *starter*) of the same name:

``solution``
    Replaced by the text in the cell's metadata, ``"starter"``: the code the learner
    starts from, with its ``# TODO`` lines (or, for the title cell, the starter's
    introduction). A code cell is tagged ``todo`` in the starter instead.
``solution-only``
    Left out: notes on why an answer works.
``check``
    Kept: a cell that is exactly ``await check_…(…)``.
``explore``
    Kept: a cell that runs something live for the learner to look at.

Every other cell is kept as it is. Starters are stored without outputs, so that a
learner opens a notebook with nothing run yet (and none of the answers' outputs).
Like fastbook's ``clean.py``, the script is deterministic: the same solutions give
byte-identical starters, which is what ``--verify`` (and ``tests/test_exercises.py``)
checks.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
SOLUTIONS = HERE / "solutions"

SOLUTION, SOLUTION_ONLY, TODO = "solution", "solution-only", "todo"


def starter_of(solution: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The exercise notebook made from ``solution`` (which is left unchanged)."""
    notebook = copy.deepcopy(solution)
    cells = []
    for cell in notebook.cells:
        tags = list(cell.metadata.get("tags", []))
        if SOLUTION_ONLY in tags:
            continue
        if SOLUTION in tags:
            if "starter" not in cell.metadata:
                raise ValueError(f"a cell tagged {SOLUTION!r} has no 'starter' in its metadata: {cell.source[:60]!r}")
            cell.source = cell.metadata.pop("starter")
            tags.remove(SOLUTION)
            if cell.cell_type == "code":
                tags.append(TODO)
        if tags:
            cell.metadata["tags"] = tags
        else:
            cell.metadata.pop("tags", None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
        cells.append(cell)
    notebook.cells = cells
    return notebook


def render(notebook: nbformat.NotebookNode) -> str:
    return nbformat.writes(notebook, version=4) + "\n"


def execute(path: Path) -> float:
    """Run a solution notebook in place, storing its fresh outputs (as nbval will compare them)."""
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    started = time.perf_counter()
    NotebookClient(notebook, timeout=120, kernel_name="python3", record_timing=False,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)  # timestamps would change every run
    nbformat.write(notebook, path)
    return time.perf_counter() - started


def main(argv: list[str] | None = None, *, solutions: Path = SOLUTIONS, starters: Path = HERE) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--verify", action="store_true", help="change nothing; exit 1 if a starter is out of date")
    parser.add_argument("--execute", action="store_true", help="re-run the solution notebooks first")
    args = parser.parse_args(argv)
    sources = sorted(solutions.glob("[0-9][0-9]_*.ipynb"))
    if not sources:
        print(f"make_starters.py: no solution notebooks in {solutions}", file=sys.stderr)
        return 1
    if args.execute and not args.verify:
        for path in sources:
            print(f"executed solutions/{path.name}: {execute(path):.1f} s")
    stale = []
    for path in sources:
        target = starters / path.name
        text = render(starter_of(nbformat.read(path, as_version=4)))
        if target.is_file() and target.read_text(encoding="utf-8") == text:
            continue
        if args.verify:
            stale.append(target.name)
        else:
            target.write_text(text, encoding="utf-8")
            print(f"wrote {target.name}")
    orphans = sorted({p.name for p in starters.glob("[0-9][0-9]_*.ipynb")} - {p.name for p in sources})
    for name in stale:
        print(f"make_starters.py: exercises/{name} is not what its solution makes; "
              "run .venv/bin/python exercises/make_starters.py", file=sys.stderr)
    for name in orphans:
        print(f"make_starters.py: exercises/{name} has no solution in exercises/solutions/", file=sys.stderr)
    return 1 if stale or orphans else 0


if __name__ == "__main__":
    sys.exit(main())
