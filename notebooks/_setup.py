"""Shared setup for the walkthrough notebooks: imported by each one's first cell.

It makes a notebook's output the same from one run to the next, so that nbval can
compare a fresh run with the stored one: log lines are printed without
timestamps or tracebacks (whose file paths differ between machines), and
uvicorn's own access log stays quiet.
"""

from __future__ import annotations

import logging
import sys


class _PlainFormatter(logging.Formatter):
    """``LEVEL logger: message``, without the traceback of an exception."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname} {record.name}: {record.getMessage()}"


def setup(level: int = logging.WARNING) -> None:
    """Print the package's log lines to the notebook, one plain line each."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_PlainFormatter())
    root = logging.getLogger("channels_core")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


setup()
