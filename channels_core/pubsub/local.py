"""The embedded adapter: one node, nothing to carry.

Mirrors the single-node case of ``Phoenix.PubSub.PG2``: with no other node in the
cluster, a broadcast is complete once this node has dispatched it. It is the
default, so a server needs nothing but Python to run.
"""

from __future__ import annotations

from typing import Any

from ..process import Pid
from .adapter import Dispatcher


class LocalAdapter:
    """A PubSub adapter for a single node."""

    def __init__(self, name: str = "local") -> None:
        self._name = name

    def node_name(self) -> str:
        return self._name

    async def start(self, pubsub: Any) -> None:
        return None

    async def stop(self) -> None:
        return None

    def broadcast(self, topic: str, message: Any, dispatcher: Dispatcher, from_pid: Pid | None) -> None:
        return None

    def direct_broadcast(self, node_name: str, topic: str, message: Any, dispatcher: Dispatcher) -> None:
        if node_name != self._name:
            raise ValueError(f"unknown node {node_name!r}: this pubsub has only {self._name!r}")
