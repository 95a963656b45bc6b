"""PubSub: topics, subscribers, and broadcasts that reach every node.

Mirrors ``Phoenix.PubSub``. A process subscribes to a topic, optionally with
metadata; a broadcast on the topic is handed to a *dispatcher* together with the
list of ``(pid, metadata)`` subscribers, and the dispatcher decides what each one
receives. The default dispatcher simply sends the message to every subscriber;
channels use the fastlane dispatcher (:mod:`.fastlane`), which skips the channel
process and writes straight to the transport.

Each node keeps its own subscriber table; the *adapter* (:mod:`.adapter`) carries
broadcasts to the other nodes, which dispatch them to their own subscribers.
"""

from __future__ import annotations

from .adapter import Adapter, default_dispatch
from .local import LocalAdapter
from .pubsub import PubSub

__all__ = ["Adapter", "LocalAdapter", "PubSub", "default_dispatch"]
