"""The PubSub server: a subscriber table per topic, and broadcast.

Mirrors ``Phoenix.PubSub`` itself (the facade over ``Registry`` and the adapter).
Subscriptions belong to processes and vanish when their process exits, so a
crashed channel can never leave a subscriber behind.
"""

from __future__ import annotations

import logging
from typing import Any

from .. import process, tracing
from ..process import Pid
from .adapter import Adapter, Dispatcher, default_dispatch
from .local import LocalAdapter

logger = logging.getLogger("channels_core.pubsub")


class PubSub:
    """Subscribe processes to topics and broadcast to them, on this node and beyond.

    Args:
        adapter: Carries broadcasts to other nodes; :class:`LocalAdapter` by default.
    """

    def __init__(self, adapter: Adapter | None = None) -> None:
        self.adapter: Adapter = adapter if adapter is not None else LocalAdapter()
        # topic -> [(pid, metadata), ...] in subscription order
        self._subscribers: dict[str, list[tuple[Pid, Any]]] = {}
        # pid -> topics, so that an exiting process is removed everywhere at once
        self._topics_by_pid: dict[Pid, set[str]] = {}

    # Lifecycle

    async def start(self) -> None:
        await self.adapter.start(self)

    async def stop(self) -> None:
        await self.adapter.stop()

    def node_name(self) -> str:
        return self.adapter.node_name()

    # Subscriptions

    def subscribe(self, topic: str, metadata: Any = None, pid: Pid | None = None) -> None:
        """Subscribe ``pid`` (the calling process by default) to ``topic``."""
        pid = pid if pid is not None else process.current()
        tracing.hop("pubsub", "PubSub.subscribe", topic=topic,
                    metadata=None if metadata is None else type(metadata).__name__)
        self._subscribers.setdefault(topic, []).append((pid, metadata))
        topics = self._topics_by_pid.get(pid)
        if topics is None:
            topics = self._topics_by_pid[pid] = set()
            process.on_exit(pid, self._forget)
        topics.add(topic)

    def unsubscribe(self, topic: str, pid: Pid | None = None) -> None:
        """Remove every subscription of ``pid`` (the caller by default) to ``topic``."""
        pid = pid if pid is not None else process.current()
        entries = self._subscribers.get(topic)
        if entries is not None:
            entries[:] = [entry for entry in entries if entry[0] != pid]
            if not entries:
                del self._subscribers[topic]
        topics = self._topics_by_pid.get(pid)
        if topics is not None:
            topics.discard(topic)

    def subscribers(self, topic: str) -> list[tuple[Pid, Any]]:
        """The ``(pid, metadata)`` pairs subscribed to ``topic``, in order."""
        return list(self._subscribers.get(topic, ()))

    def topics(self) -> list[str]:
        """Every topic with at least one subscriber."""
        return list(self._subscribers)

    # Broadcasts

    def broadcast(self, topic: str, message: Any, dispatcher: Dispatcher = default_dispatch) -> None:
        """Deliver ``message`` to every subscriber of ``topic`` on every node."""
        self.adapter.broadcast(topic, message, dispatcher, None)
        self.dispatch_local(topic, message, None, dispatcher)

    def broadcast_from(
        self, from_pid: Pid, topic: str, message: Any, dispatcher: Dispatcher = default_dispatch
    ) -> None:
        """Like :meth:`broadcast`, but ``from_pid`` does not receive it."""
        self.adapter.broadcast(topic, message, dispatcher, from_pid)
        self.dispatch_local(topic, message, from_pid, dispatcher)

    def local_broadcast(self, topic: str, message: Any, dispatcher: Dispatcher = default_dispatch) -> None:
        """Deliver ``message`` to the subscribers on this node only."""
        self.dispatch_local(topic, message, None, dispatcher)

    def local_broadcast_from(
        self, from_pid: Pid, topic: str, message: Any, dispatcher: Dispatcher = default_dispatch
    ) -> None:
        """Deliver to this node's subscribers, except ``from_pid``."""
        self.dispatch_local(topic, message, from_pid, dispatcher)

    def direct_broadcast(
        self, node_name: str, topic: str, message: Any, dispatcher: Dispatcher = default_dispatch
    ) -> None:
        """Deliver ``message`` to the subscribers on the node named ``node_name`` only."""
        if node_name == self.node_name():
            self.dispatch_local(topic, message, None, dispatcher)
        else:
            self.adapter.direct_broadcast(node_name, topic, message, dispatcher)

    def dispatch_local(self, topic: str, message: Any, from_pid: Pid | None, dispatcher: Dispatcher) -> None:
        """Hand this node's subscribers of ``topic`` to ``dispatcher``.

        Adapters call this when a broadcast arrives from another node.
        """
        entries = self._subscribers.get(topic)
        if tracing.active is not None:
            tracing.hop("pubsub", "PubSub.dispatch_local", topic=topic, subscribers=len(entries or ()))
        if entries:
            dispatcher(entries, from_pid, message)

    # Private methods

    def _forget(self, pid: Pid) -> None:
        for topic in self._topics_by_pid.pop(pid, ()):
            entries = self._subscribers.get(topic)
            if entries is None:
                continue
            entries[:] = [entry for entry in entries if entry[0] != pid]
            if not entries:
                del self._subscribers[topic]
