"""The Channel behaviour: what a user writes to handle one topic.

Mirrors ``Phoenix.Channel``. A channel answers four moments in a topic's life:
``join`` (may this client subscribe?), ``handle_in`` (the client sent an event),
``handle_out`` (a broadcast is about to reach this client) and ``handle_info``
(any other message reached the channel's process); ``terminate`` runs when it
stops. The class is a *facade*: it never runs by itself. Each join starts a
process (:mod:`channels_core.channel_server`) that calls these methods one message
at a time, which is why a channel never has to lock anything.

Return values follow Phoenix's forms, written as tuples::

    join       -> ("ok", socket) | ("ok", reply, socket) | ("error", reply)
    handle_in  -> ("noreply", socket) | ("reply", status_or_(status, payload), socket)
                | ("stop", reason, socket) | ("stop", reason, reply, socket)
    handle_out, handle_info -> ("noreply", socket) | ("stop", reason, socket)

Any callback may be ``async def``. Inheriting from :class:`Channel` is optional:
any class with a ``join`` method will do, as the talk's LiveView aside shows
(``Phoenix.LiveView.Channel`` follows the contract without ``use Phoenix.Channel``).

The functions below the class are the channel API: ``push``, ``reply``,
``broadcast`` and friends. Each takes the socket, as Phoenix's do.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, ClassVar, NamedTuple

from . import process, tracing
from .exceptions import ChannelsError
from .message import Broadcast, Message, Reply
from .process import Pid
from .pubsub.fastlane import fastlane_dispatch
from .serializers import Serializer
from .socket import SocketStruct

__all__ = [
    "Channel",
    "SocketRef",
    "broadcast",
    "broadcast_from",
    "local_broadcast",
    "local_broadcast_from",
    "push",
    "reply",
    "socket_ref",
]

logger = logging.getLogger("channels_core.channel")


class Channel:
    """Base class for channels. Override ``join`` and the callbacks you need.

    Attributes:
        intercept: Broadcast events that must pass through :meth:`handle_out`
            instead of the fastlane, e.g. ``["new_msg"]``.
    """

    intercept: ClassVar[Sequence[str]] = ()

    def join(self, topic: str, payload: Any, socket: SocketStruct) -> tuple[Any, ...]:
        """Authorize a client to join ``topic``; refuse by returning ``("error", reply)``."""
        raise NotImplementedError(f"{type(self).__name__}.join/3 is not implemented")

    def handle_in(self, event: str, payload: Any, socket: SocketStruct) -> tuple[Any, ...]:
        """Handle an event the client pushed on this channel's topic."""
        raise NotImplementedError(
            f"{type(self).__name__}.handle_in/3 has no clause for event {event!r}"
        )

    def handle_out(self, event: str, payload: Any, socket: SocketStruct) -> tuple[Any, ...]:
        """Handle an intercepted broadcast before it reaches this client.

        The default pushes it unchanged, which is what the fastlane would have done.
        """
        push(socket, event, payload)
        return ("noreply", socket)

    def handle_info(self, message: Any, socket: SocketStruct) -> tuple[Any, ...]:
        """Handle any other message sent to the channel's process."""
        logger.warning(
            "%s received unexpected message in handle_info/2: %r", type(self).__name__, message
        )
        return ("noreply", socket)

    def terminate(self, reason: Any, socket: SocketStruct) -> None:
        """Called when the channel stops on its own terms (leave, close, crash)."""
        return None


class SocketRef(NamedTuple):
    """Everything needed to reply later, from outside ``handle_in``.

    Phoenix's ``socket_ref/1`` returns the same five things: a reply is a frame
    sent to the transport, and this is the address on the envelope.
    """

    transport_pid: Pid
    serializer: Serializer
    topic: str
    join_ref: Any
    ref: Any


def _assert_joined(socket: SocketStruct, function: str) -> SocketStruct:
    if not socket.joined:
        raise ChannelsError(f"{function} can only be called after the socket has joined")
    return socket


def push(socket: SocketStruct, event: str, payload: Any) -> None:
    """Send ``event`` with ``payload`` to this channel's client (a ``dict`` or ``bytes``)."""
    _assert_joined(socket, "push/3")
    if tracing.active is not None:
        tracing.hop("channel", "channel.push", event=event)
    message = Message(topic=socket.topic, event=event, payload=payload, join_ref=socket.join_ref)
    process.send(socket.transport_pid, socket.serializer.encode(message))  # type: ignore[arg-type]


def socket_ref(socket: SocketStruct) -> SocketRef:
    """Capture where to reply, so that ``reply`` can be called after ``handle_in`` returns."""
    _assert_joined(socket, "socket_ref/1")
    if socket.ref is None:
        raise ChannelsError("socket refs can only be generated for a socket with a message ref")
    return SocketRef(
        socket.transport_pid,  # type: ignore[arg-type]
        socket.serializer,  # type: ignore[arg-type]
        socket.topic,  # type: ignore[arg-type]
        socket.join_ref,
        socket.ref,
    )


def reply(ref: SocketRef, status_payload: str | tuple[str, Any]) -> None:
    """Reply asynchronously to the message ``ref`` was taken from.

    ``status_payload`` is a status (``"ok"``) or a ``(status, payload)`` pair.
    """
    status, payload = (status_payload, {}) if isinstance(status_payload, str) else status_payload
    if tracing.active is not None:
        tracing.hop("channel", "channel.reply", status=status)
    frame = ref.serializer.encode(
        Reply(topic=ref.topic, status=status, payload=payload, ref=ref.ref, join_ref=ref.join_ref)
    )
    process.send(ref.transport_pid, frame)


def broadcast(socket: SocketStruct, event: str, payload: Any) -> None:
    """Broadcast ``event`` to every subscriber of the socket's topic, on every node.

    This is Phoenix's ``broadcast!``: errors raise, as is Python's way.
    """
    _assert_joined(socket, "broadcast/3")
    if tracing.active is not None:
        tracing.hop("channel", "channel.broadcast", event=event)
    message = Broadcast(topic=socket.topic, event=event, payload=payload)  # type: ignore[arg-type]
    socket.pubsub_server.broadcast(socket.topic, message, fastlane_dispatch)


def broadcast_from(socket: SocketStruct, event: str, payload: Any) -> None:
    """Broadcast to every subscriber of the topic except this channel's own client."""
    _assert_joined(socket, "broadcast_from/3")
    if tracing.active is not None:
        tracing.hop("channel", "channel.broadcast_from", event=event)
    message = Broadcast(topic=socket.topic, event=event, payload=payload)  # type: ignore[arg-type]
    socket.pubsub_server.broadcast_from(
        socket.channel_pid, socket.topic, message, fastlane_dispatch
    )


def local_broadcast(socket: SocketStruct, event: str, payload: Any) -> None:
    """Broadcast to the subscribers of the topic on this node only."""
    _assert_joined(socket, "local_broadcast/3")
    if tracing.active is not None:
        tracing.hop("channel", "channel.local_broadcast", event=event)
    message = Broadcast(topic=socket.topic, event=event, payload=payload)  # type: ignore[arg-type]
    socket.pubsub_server.local_broadcast(socket.topic, message, fastlane_dispatch)


def local_broadcast_from(socket: SocketStruct, event: str, payload: Any) -> None:
    """Broadcast to this node's subscribers of the topic, except this channel's client."""
    _assert_joined(socket, "local_broadcast_from/3")
    if tracing.active is not None:
        tracing.hop("channel", "channel.local_broadcast_from", event=event)
    message = Broadcast(topic=socket.topic, event=event, payload=payload)  # type: ignore[arg-type]
    socket.pubsub_server.local_broadcast_from(
        socket.channel_pid, socket.topic, message, fastlane_dispatch
    )
