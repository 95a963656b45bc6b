"""The fastlane: encode a broadcast once per serializer, write it straight to transports.

Mirrors ``Phoenix.Channel.Server.dispatch/3``. Phoenix keeps it in the channel
server; it lives here, beside PubSub, because it is a dispatcher and reads best next
to the default one.

When a channel joins, it subscribes to its topic with *fastlane metadata*: the pid
of its transport, the transport's serializer, and the events the channel
intercepts. A broadcast then skips the channel process entirely: it is encoded once
for each serializer in use and sent, already a frame, to each transport. Only the
intercepted events go to the channel process, so that ``handle_out`` can change or
drop them per subscriber. With a thousand subscribers that is one encoding, not a
thousand; it is where most of a broadcast's speed is won.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from .. import process, tracing
from ..message import Broadcast
from ..process import Pid
from ..serializers import Serializer, SocketPush


class Fastlane(NamedTuple):
    """The metadata a channel subscribes with.

    Attributes:
        transport_pid: The process that owns the client's connection.
        serializer: How that client wants its frames encoded.
        intercepts: Events that must go through the channel's ``handle_out``.
    """

    transport_pid: Pid
    serializer: Serializer
    intercepts: frozenset[str]


#: True while :func:`fastlane_dispatch` hands out a broadcast's frames. A transport
#: that writes frames from the sender's own call (channels_core.adapter) then lets
#: them wait for the event loop's next turn, so that a burst of broadcasts reaches
#: each client in one write; a reply or a push, sent on its own, goes out at once.
dispatching = False


def fastlane_dispatch(subscribers: Sequence[tuple[Pid, Any]], from_pid: Pid | None, message: Any) -> None:
    """Deliver a :class:`Broadcast` to channel subscribers the fast way."""
    global dispatching
    if not isinstance(message, Broadcast):
        for pid, _metadata in subscribers:
            if pid != from_pid:
                process.send(pid, message)
        return
    if tracing.active is not None:
        tracing.hop("pubsub", "fastlane_dispatch", topic=message.topic, event=message.event,
                    subscribers=len(subscribers))
    encoded: dict[int, SocketPush] = {}  # id(serializer) -> the frame, encoded once
    send = process.send
    event = message.event
    dispatching = True
    try:
        for pid, metadata in subscribers:
            if pid == from_pid:
                continue
            if not isinstance(metadata, Fastlane):
                send(pid, message)
            elif event in metadata.intercepts:
                send(pid, message)
            else:
                key = id(metadata.serializer)
                frame = encoded.get(key)
                if frame is None:
                    frame = encoded[key] = metadata.serializer.fastlane(message)
                send(metadata.transport_pid, frame)
    finally:
        dispatching = False
