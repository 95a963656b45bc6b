"""The supervisor that channel processes are started under.

Mirrors ``Phoenix.Socket.PoolSupervisor``: a place to start channel processes from,
that knows which are alive and can shut them all down. Channel processes are
*temporary* children, as in Phoenix: when one crashes it is not restarted, because
only its client knows whether to rejoin (phoenix.js does, with backoff).

Phoenix partitions this supervisor across schedulers to avoid a bottleneck; a
single asyncio loop has no such contention, so one pool is enough.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from . import process
from .process import Down, Pid


class PoolSupervisor:
    """Starts temporary child processes and keeps the list of the live ones."""

    def __init__(self, name: str = "supervisor") -> None:
        self.name = name
        self._children: dict[Pid, None] = {}  # insertion-ordered set

    def start_child(self, fn: Callable[..., Awaitable[Any]], *args: Any, role: str = "channel") -> Pid:
        """Spawn ``fn(*args)`` as a supervised child and return its pid."""
        pid = process.spawn(fn, *args, role=role)
        self._children[pid] = None
        process.on_exit(pid, self._children.pop)
        return pid

    def which_children(self) -> list[Pid]:
        """The live children, oldest first."""
        return list(self._children)

    def count_children(self) -> int:
        return len(self._children)

    async def shutdown(self, reason: Any = "shutdown", timeout: float = 5.0) -> None:
        """Stop every child with ``reason`` and wait until they are all gone."""
        children = self.which_children()
        if not children:
            return

        async def wait_all() -> None:
            monitors = {process.monitor(pid) for pid in children}
            for pid in children:
                process.exit(pid, reason)
            while monitors:
                down = await process.receive(lambda m: isinstance(m, Down) and m.ref in monitors,
                                             timeout=timeout)
                monitors.discard(down.ref)

        waiter = process.spawn(wait_all, role="supervisor shutdown")
        done = process.lookup(waiter)
        if done is not None and done.task is not None:
            await done.task
