"""Re-run the walkthrough notebooks in place and store their fresh outputs.

Run it after changing code that a notebook shows or runs; nbval (in `make test`)
then checks that a reader's run reproduces exactly what is stored.

    .venv/bin/python scripts/execute_notebooks.py            # every notebook
    .venv/bin/python scripts/execute_notebooks.py 05 06      # those whose name starts so
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def execute(path: Path) -> float:
    notebook = nbformat.read(path, as_version=4)
    started = time.perf_counter()
    client = NotebookClient(
        notebook, timeout=120, kernel_name="python3", record_timing=False, resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)  # timestamps would change every run
    nbformat.write(notebook, path)
    return time.perf_counter() - started


def main(prefixes: list[str]) -> int:
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if prefixes:
        paths = [p for p in paths if p.name.startswith(tuple(prefixes))]
    for path in paths:
        print(f"{path.name}: {execute(path):.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
