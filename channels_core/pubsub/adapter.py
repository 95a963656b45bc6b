"""The adapter contract: how a broadcast reaches the other nodes.

Mirrors ``Phoenix.PubSub.Adapter``. Local delivery never goes through the adapter:
:class:`~channels_core.pubsub.PubSub` dispatches to this node's subscribers itself,
then asks the adapter to carry the message to every other node, where the adapter
calls :meth:`PubSub.dispatch_local` on arrival. An adapter for one node alone has
nothing to do, which is exactly what :class:`~channels_core.pubsub.LocalAdapter` does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from .. import process
from ..process import Pid

#: A dispatcher receives the subscribers of a topic, the pid to skip (or None)
#: and the message, and delivers it: ``dispatcher(subscribers, from_pid, message)``.
Dispatcher = Callable[[Sequence[tuple[Pid, Any]], "Pid | None", Any], None]


def default_dispatch(subscribers: Sequence[tuple[Pid, Any]], from_pid: Pid | None, message: Any) -> None:
    """Send ``message`` to every subscriber but ``from_pid``."""
    for pid, _metadata in subscribers:
        if pid != from_pid:
            process.send(pid, message)


class Adapter(Protocol):
    """What a PubSub adapter implements."""

    def node_name(self) -> str:
        """The name of this node, unique among the nodes that share broadcasts."""

    async def start(self, pubsub: Any) -> None:
        """Begin carrying broadcasts; ``pubsub`` receives what arrives from other nodes."""

    async def stop(self) -> None:
        """Stop carrying broadcasts and release every resource."""

    def broadcast(self, topic: str, message: Any, dispatcher: Dispatcher, from_pid: Pid | None) -> None:
        """Carry a broadcast to every other node."""

    def direct_broadcast(self, node_name: str, topic: str, message: Any, dispatcher: Dispatcher) -> None:
        """Carry a broadcast to the node named ``node_name`` only."""
