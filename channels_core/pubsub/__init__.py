"""PubSub: topics, subscribers, and broadcasts that reach every node.

Mirrors ``Phoenix.PubSub``. A process subscribes to a topic, optionally with
metadata; a broadcast on the topic is handed to a *dispatcher* together with the
list of ``(pid, metadata)`` subscribers, and the dispatcher decides what each one
receives. The default dispatcher simply sends the message to every subscriber;
channels use the fastlane dispatcher (:mod:`.fastlane`), which skips the channel
process and writes straight to the transport.

Each node keeps its own subscriber table; the *adapter* (:mod:`.adapter`) carries
broadcasts to the other nodes, which dispatch them to their own subscribers:
:class:`LocalAdapter` for one node, :class:`~.redis.RedisAdapter` for several.
"""

from __future__ import annotations

from typing import Any

from .adapter import Adapter, default_dispatch
from .local import LocalAdapter
from .pubsub import PubSub

__all__ = ["Adapter", "LocalAdapter", "PubSub", "RedisAdapter", "default_dispatch"]


def __getattr__(name: str) -> Any:
    # RedisAdapter is imported on first use, so that a single node never loads redis-py.
    if name == "RedisAdapter":
        from .redis import RedisAdapter

        return RedisAdapter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
