"""The one switch every layer checks before it reports to a tracer.

A trace of a live run (see :mod:`channels_core.anatomy`) needs each layer to say
what it did. Rather than sprinkling prints, each layer tests one module attribute,
``tracing.active``, and calls the tracer only when one is installed. When nobody
traces, the cost is a global lookup and an ``is None`` test, which is why the
hooks can stay in the hot path (the benchmark in ``bench/`` measures it).

This mirrors how trio lets an ``Instrument`` observe the scheduler: the library
exposes hook points, the observer lives outside it.
"""

from __future__ import annotations

from typing import Any, Protocol


class Tracer(Protocol):
    """What a tracer must accept. Every method is called synchronously, in order."""

    def hop(self, layer: str, function: str, detail: dict[str, Any] | None = None) -> None:
        """A request passed through ``function`` of ``layer``."""

    def frame(self, direction: str, connection: Any, opcode: str, data: str | bytes) -> None:
        """A frame crossed the wire: ``"↑"`` from the client, ``"↓"`` to it."""

    def process_spawn(self, parent: Any, pid: Any) -> None: ...

    def process_exit(self, pid: Any, reason: Any) -> None: ...

    def process_send(self, sender: Any, receiver: Any, message: Any) -> None: ...

    def process_monitor(self, watcher: Any, watched: Any) -> None: ...

    def process_down(self, watcher: Any, pid: Any, reason: Any) -> None: ...


#: The tracer in force, or None. Set only through ``channels_core.anatomy.trace``.
active: Tracer | None = None


def hop(layer: str, function: str, **detail: Any) -> None:
    """Report a layer hop to the active tracer, if any."""
    if active is not None:
        active.hop(layer, function, detail or None)
