"""Log lines in a notebook: one plain line each, under the cell that caused them.

No Phoenix counterpart. The walkthrough chapters (through ``notebooks/_setup.py``)
and the exercise notebooks call :func:`plain_logs` first. Without it, a server
started in a notebook cell prints its warnings through Python's last-resort
handler, traceback and all, and a reader sees our stack instead of the point; with
it, every run prints the same lines (no timestamps, no file paths), so a notebook's
stored output can be checked against a fresh run.
"""

from __future__ import annotations

import logging
import sys

__all__ = ["plain_logs"]


class _PlainFormatter(logging.Formatter):
    """``LEVEL logger: message``, without the traceback of an exception."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname} {record.name}: {record.getMessage()}"


class _CurrentCellHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes each line under the cell that is running when it is logged.

    ipykernel (7 here) sends a task's output to the cell whose context the task
    inherited, so a server started in one cell would log a later cell's crash under
    that first cell, or nowhere once it has finished.
    """

    def emit(self, record: logging.LogRecord) -> None:
        stream = self.stream
        current = getattr(stream, "_parent_header_global", None)  # the cell executing now
        if current is None or not hasattr(stream, "set_thread_parent"):
            super().emit(record)
            return
        token = stream.set_thread_parent(current)
        try:
            super().emit(record)
        finally:
            stream.reset_thread_parent(token)


def plain_logs(level: int = logging.WARNING) -> None:
    """Print the package's log lines to this notebook, one plain line each; keep uvicorn quiet."""
    handler = _CurrentCellHandler(sys.stdout)
    handler.setFormatter(_PlainFormatter())
    root = logging.getLogger("channels_core")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
