"""The Socket: one connection, many topics, and the map between them.

Mirrors ``Phoenix.Socket``, which has two faces, and so does this module:

* the **behaviour** a user writes (:class:`Socket`): ``connect`` decides whether a
  client may connect and what to remember about it, ``id`` names the connection,
  and ``channels`` routes topics to channel classes;
* the **machinery** behind it (:class:`SocketState`): the per-connection state the
  transport process keeps, with the topic → channel map (``channels``) and its
  inverse (``channels_inverse``), and the clauses that decide what each incoming
  message means: heartbeat, join, duplicate join, leave, a message for a joined
  topic, or a topic nobody joined.

The struct every channel callback receives is :class:`SocketStruct`, Phoenix's
``%Phoenix.Socket{}``: the assigns, the topic, the transport's pid and serializer.

A topic is a key in a map; a channel is a process. The socket only routes.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import operator
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

from . import process, telemetry, tracing
from .exceptions import CallbackError
from .message import Broadcast, Message, Reply
from .process import Down, Pid, Ref
from .serializers import Serializer, SocketPush
from .transports.transport import Stop, TransportConfig, negotiate_serializer

__all__ = [
    "ChannelRoute",
    "Socket",
    "SocketState",
    "SocketStruct",
    "assign",
    "channel",
    "connect",
]

logger = logging.getLogger("channels_core.socket")


# The struct


@dataclass(slots=True)
class SocketStruct:
    """What a socket knows, as handed to ``connect`` and to every channel callback.

    Treat it as immutable: :func:`assign` returns a new struct, and callbacks return
    the struct they want kept, as in Phoenix.

    Attributes:
        assigns: Your data, e.g. ``{"user_id": "u1"}``.
        channel: The channel class, inside a channel.
        channel_pid: The channel's process, inside a channel.
        endpoint: The endpoint the connection came through.
        handler: The :class:`Socket` subclass that accepted the connection.
        id: The socket's id, e.g. ``"user_sockets:u1"``, or None.
        joined: Whether the channel has joined its topic.
        join_ref: The ref of the join, e.g. ``"1"``, inside a channel.
        pubsub_server: The :class:`~channels_core.pubsub.PubSub` to broadcast on.
        ref: The ref of the message being handled, inside ``handle_in``.
        serializer: The serializer the client negotiated.
        topic: The channel's topic, e.g. ``"room:lobby"``, inside a channel.
        transport: ``"websocket"`` or ``"longpoll"``.
        transport_pid: The process that owns the connection.
    """

    assigns: dict[str, Any] = field(default_factory=dict)
    channel: Any = None
    channel_pid: Pid | None = None
    endpoint: Any = None
    handler: Any = None
    id: str | None = None
    joined: bool = False
    join_ref: Any = None
    pubsub_server: Any = None
    ref: Any = None
    serializer: Serializer | None = None
    topic: Any = None
    transport: str | None = None
    transport_pid: Pid | None = None

    def replace(self, **changes: Any) -> SocketStruct:
        """A copy with ``changes`` applied."""
        # Not dataclasses.replace, which is five times slower: a socket is copied
        # several times per join and twice per message handled.
        copy = SocketStruct(*_field_values(self))
        for name, value in changes.items():
            setattr(copy, name, value)
        return copy


#: Every field of a SocketStruct, in order: what ``replace`` copies.
_field_values = operator.attrgetter(*(f.name for f in dataclasses.fields(SocketStruct)))


def assign(socket: SocketStruct, **assigns: Any) -> SocketStruct:
    """Return a copy of ``socket`` with ``assigns`` merged into its assigns."""
    return socket.replace(assigns={**socket.assigns, **assigns})


# Routes


class ChannelRoute(NamedTuple):
    """One ``channel("room:*", RoomChannel)`` declaration.

    Attributes:
        pattern: An exact topic, or a prefix ending in ``*``.
        channel: The channel class that serves matching topics.
        options: Per-route options, e.g. ``{"assigns": {...}}``.
    """

    pattern: str
    channel: Any
    options: Mapping[str, Any]

    def matches(self, topic: Any) -> bool:
        if not isinstance(topic, str):
            return False
        if self.pattern.endswith("*"):
            return topic.startswith(self.pattern[:-1])
        return topic == self.pattern


def channel(pattern: str, channel_class: Any, **options: Any) -> ChannelRoute:
    """Declare that topics matching ``pattern`` are served by ``channel_class``.

    ``"room:*"`` matches every topic that starts with ``room:``; a ``*`` anywhere
    but at the end is refused, as Phoenix refuses it.
    """
    if "*" in pattern[:-1]:
        raise ValueError(f"channels using splat patterns must end with *, got {pattern!r}")
    return ChannelRoute(pattern, channel_class, options)


# The behaviour


class Socket:
    """Base class for user sockets: override ``connect`` and ``id``, list ``channels``.

    ``connect`` may take ``(params, socket)`` or ``(params, socket, connect_info)``;
    the transport checks which, as Phoenix checks whether ``connect/3`` is exported.
    It returns ``("ok", socket)``, ``"error"`` (HTTP 403) or ``("error", reason)``
    (handed to the transport's error handler).
    """

    channels: ClassVar[list[ChannelRoute]] = []

    def connect(self, params: dict[str, Any], socket: SocketStruct) -> Any:
        return ("ok", socket)

    def id(self, socket: SocketStruct) -> str | None:
        return None

    @classmethod
    def __channel__(cls, topic: Any) -> ChannelRoute | None:
        """The route serving ``topic``, first declared first, or None."""
        for route in cls.channels:
            if route.matches(topic):
                return route
        return None

    @classmethod
    def connect_arity(cls) -> int:
        """3 if ``connect`` wants ``connect_info``, else 2."""
        return _arity(cls.connect)


@functools.lru_cache(maxsize=256)
def _arity(function: Any) -> int:
    # Once per connect function, not once per connection: inspect.signature is slow.
    return len(inspect.signature(function).parameters) - 1  # minus self


def connect(
    handler: type[Socket],
    endpoint: Any,
    transport: str,
    config: TransportConfig,
    params: dict[str, Any],
    connect_info: dict[str, Any],
) -> SocketState | tuple[str, Any] | str:
    """Phoenix's ``Socket.__connect__``: negotiate a serializer, then ask the user.

    Returns the new connection's :class:`SocketState`, ``"error"``, or
    ``("error", reason)``.
    """
    tracing.hop("socket", "socket.connect", handler=handler.__name__)
    start = time.perf_counter_ns()
    # Only a missing vsn means V1; an empty one is invalid, as Elixir's "" is truthy.
    vsn = params.get("vsn", "1.0.0")
    serializer = negotiate_serializer(config.serializer, vsn)
    if serializer is None:
        return "error"
    socket = SocketStruct(
        handler=handler,
        endpoint=endpoint,
        pubsub_server=getattr(endpoint, "pubsub", None),
        serializer=serializer,
        transport=transport,
    )
    user = handler()
    if handler.connect_arity() == 3:
        tracing.hop("socket", f"{handler.__name__}.connect/3")
        result = user.connect(params, socket, connect_info)  # type: ignore[call-arg]
    else:
        tracing.hop("socket", f"{handler.__name__}.connect/2")
        result = user.connect(params, socket)
    outcome = _connect_result(handler, user, result, config)
    if not isinstance(outcome, SocketState):
        # Phoenix.Logger's "REFUSED CONNECTION TO UserSocket": the client sees only a 403.
        logger.info("refused connection to %s (transport %s, vsn %s)", handler.__name__, transport, vsn)
    telemetry.execute(
        telemetry.SOCKET_CONNECTED,
        {"duration": time.perf_counter_ns() - start},
        {"endpoint": endpoint, "transport": transport, "params": params, "vsn": vsn,
         "user_socket": handler, "serializer": serializer,
         "result": "ok" if isinstance(outcome, SocketState) else "error"},
    )
    return outcome


def _connect_result(
    handler: type[Socket], user: Socket, result: Any, config: TransportConfig
) -> SocketState | tuple[str, Any] | str:
    if isinstance(result, tuple) and len(result) == 2 and result[0] == "ok":
        socket = result[1]
        if not isinstance(socket, SocketStruct):
            raise CallbackError(f"{handler.__name__}.connect returned ('ok', {socket!r}): expected a socket")
        socket_id = user.id(socket)
        if socket_id is not None and not isinstance(socket_id, str):
            logger.warning(
                "%s.id/1 returned invalid identifier %r. Expected None or a string.",
                handler.__name__, socket_id,
            )
            return "error"
        return SocketState(user, socket.replace(id=socket_id), config.max_channels_per_transport)
    if result == "error":
        return "error"
    if isinstance(result, tuple) and len(result) == 2 and result[0] == "error":
        return ("error", result[1])
    logger.error(
        "%s.connect returned invalid value %r. Expected ('ok', socket), ('error', reason) or 'error'",
        handler.__name__, result,
    )
    return "error"


# The machinery


class ChannelEntry(NamedTuple):
    """A joined topic: the channel's pid, our monitor on it, and its status."""

    pid: Pid
    monitor: Ref
    status: str  # "joined" or "leaving"


class SocketState:
    """The per-connection state a transport process keeps, and what it does with frames.

    Attributes:
        handler: The user's :class:`Socket` instance for this connection.
        socket: The connection's :class:`SocketStruct`.
        channels: topic → :class:`ChannelEntry`, for routing incoming messages.
        channels_inverse: channel pid → ``(topic, join_ref)``, for routing exits.
        max_channels: How many topics this connection may join at once.
    """

    def __init__(self, handler: Socket, socket: SocketStruct, max_channels: int = 100) -> None:
        self.handler = handler
        self.socket = socket
        self.channels: dict[Any, ChannelEntry] = {}
        self.channels_inverse: dict[Pid, tuple[Any, Any]] = {}
        self.max_channels = max_channels

    # Transport callbacks

    def init(self, transport_pid: Pid) -> None:
        """The connection is up: remember who owns it, and listen on the socket's id."""
        self.socket = self.socket.replace(transport_pid=transport_pid)
        connections = getattr(self.socket.endpoint, "_connections", None)
        if connections is not None:  # listed by Endpoint.connections() while it lives
            connections[transport_pid] = self
        if self.socket.id is not None and self.socket.pubsub_server is not None:
            # A "disconnect" broadcast on this topic closes every connection of the id.
            self.socket.pubsub_server.subscribe(self.socket.id, pid=transport_pid)

    async def handle_in(self, data: str | bytes, opcode: str) -> SocketPush | None:
        """A frame arrived: decode it, then route it by topic.

        Raises:
            DecodeError: the frame is malformed. The transport lets that crash the
                connection (close 1011), exactly as Phoenix does.
        """
        message = self.socket.serializer.decode(data, opcode)  # type: ignore[union-attr]
        if tracing.active is not None:  # every frame passes here: no f-string unless traced
            tracing.hop("serializer", f"{type(self.socket.serializer).__name__}.decode",
                        topic=message.topic, event=message.event)
        try:
            entry = self.channels.get(message.topic)
        except TypeError:  # an unhashable topic (a list, an object) cannot be joined
            entry = None
        return await self._handle_in(entry, message)

    async def handle_info(self, message: Any) -> SocketPush | Stop | None:
        """A message reached the transport process: a frame to write, an exit, a close."""
        if isinstance(message, SocketPush):
            return message
        if isinstance(message, Down):
            return self._channel_down(message)
        if isinstance(message, SocketClose):
            return self._socket_close(message.pid)
        if isinstance(message, Broadcast) and message.event == "disconnect":
            tracing.hop("socket", "socket.handle_info:disconnect", id=self.socket.id)
            # 1001 "going away": phoenix.js reconnects after any close but 1000.
            return Stop(("shutdown", "disconnected"), 1001)
        return None

    def terminate(self, reason: Any) -> None:
        """The connection is gone. Channels notice on their own: they monitor us."""
        connections = getattr(self.socket.endpoint, "_connections", None)
        if connections is not None and self.socket.transport_pid is not None:
            connections.pop(self.socket.transport_pid, None)

    # The clauses of Phoenix's handle_in/4, in Phoenix's order

    async def _handle_in(self, entry: ChannelEntry | None, message: Message) -> SocketPush | None:
        topic, event = message.topic, message.event

        if topic == "phoenix" and event == "heartbeat":
            if tracing.active is not None:
                tracing.hop("socket", "socket.handle_in:heartbeat")
            return self._encode(Reply(topic="phoenix", status="ok", payload={}, ref=message.ref))

        if entry is None and event == "phx_join":
            return await self._join(message)

        if entry is not None and event == "phx_join":
            return await self._duplicate_join(entry, message)

        if entry is not None and event == "phx_leave":
            tracing.hop("socket", "socket.handle_in:phx_leave", topic=topic)
            _, join_ref = self.channels_inverse[entry.pid]
            # A leave for an older join raced a server close: it was answered already.
            if message.join_ref is None or message.join_ref == join_ref:
                process.send(entry.pid, message)
                self.channels[topic] = entry._replace(status="leaving")
            return None

        if entry is not None:
            if tracing.active is not None:
                tracing.hop("socket", "socket.handle_in:message", topic=topic, event=event)
            _, join_ref = self.channels_inverse[entry.pid]
            # join_ref may be absent (V1 clients); a stale one is dropped on purpose.
            if message.join_ref is None or message.join_ref == join_ref:
                process.send(entry.pid, message)
            return None

        if event == "phx_leave":
            tracing.hop("socket", "socket.handle_in:phx_leave_unjoined", topic=topic)
            return self._encode(
                Reply(topic=topic, status="ok", payload={}, ref=message.ref, join_ref=message.join_ref)
            )

        # The server dropped the channel, or the client never joined the topic.
        tracing.hop("socket", "socket.handle_in:unmatched_topic", topic=topic)
        return self._encode_ignore(message)

    async def _join(self, message: Message) -> SocketPush:
        from .channel_server import join  # the channel server needs this module first

        topic = message.topic
        route = self.handler.__channel__(topic)
        tracing.hop("socket", "socket.handle_in:phx_join", topic=topic,
                    channel=getattr(route, "channel", None) and route.channel.__name__)
        if route is None:
            logger.warning('ignoring unmatched topic "%s" in %s', topic, type(self.handler).__name__)
            return self._encode_ignore(message)
        if len(self.channels) >= self.max_channels:
            logger.error(
                "reached max channels per transport limit of %d for socket %r",
                self.max_channels, self.socket.id,
            )
            return self._encode(Reply(
                topic=topic, status="error", payload={"reason": "too many channels joined"},
                ref=message.ref, join_ref=message.join_ref,
            ))
        result = await join(self.socket, route.channel, message, route.options)
        if result[0] == "ok":
            _, reply_payload, pid = result
            self._put_channel(pid, topic, message.join_ref)
            return self._encode(Reply(
                topic=topic, status="ok", payload=reply_payload,
                ref=message.ref, join_ref=message.join_ref,
            ))
        return self._encode(Reply(
            topic=topic, status="error", payload=result[1], ref=message.ref, join_ref=message.join_ref,
        ))

    async def _duplicate_join(self, entry: ChannelEntry, message: Message) -> SocketPush:
        tracing.hop("socket", "socket.handle_in:duplicate_join", topic=message.topic)
        if entry.status != "leaving":
            logger.debug(
                'duplicate channel join for topic "%s" in %s; closing existing channel for new join',
                message.topic, type(self.handler).__name__,
            )
        await _shutdown_duplicate_channel(entry.pid)
        close = self._socket_close(entry.pid)
        if close is not None:
            # Queued behind the join reply: the client sees the new join's reply first.
            process.send(process.current(), close)
        return await self._join(message)

    # Channel bookkeeping

    def _put_channel(self, pid: Pid, topic: Any, join_ref: Any) -> None:
        self.channels[topic] = ChannelEntry(pid, process.monitor(pid), "joined")
        self.channels_inverse[pid] = (topic, join_ref)

    def _delete_channel(self, pid: Pid, topic: Any, monitor: Ref) -> None:
        process.demonitor(monitor, flush=True)
        self.channels.pop(topic, None)
        self.channels_inverse.pop(pid, None)

    def _channel_down(self, down: Down) -> SocketPush | None:
        found = self.channels_inverse.get(down.pid)
        if found is None:
            return None
        topic, join_ref = found
        tracing.hop("socket", "socket.handle_info:DOWN", topic=topic)
        self._delete_channel(down.pid, topic, down.ref)
        return self._encode(Message(
            topic=topic, event="phx_error", payload={"reason": "channel_crash"},
            ref=join_ref, join_ref=join_ref,
        ))

    def _socket_close(self, pid: Pid) -> SocketPush | None:
        found = self.channels_inverse.get(pid)
        if found is None:
            return None
        topic, join_ref = found
        tracing.hop("socket", "socket.handle_info:socket_close", topic=topic)
        self._delete_channel(pid, topic, self.channels[topic].monitor)
        return self._encode(Message(topic=topic, event="phx_close", payload={}, ref=join_ref, join_ref=join_ref))

    # Encoding

    def _encode(self, message: Message | Reply) -> SocketPush:
        return self.socket.serializer.encode(message)  # type: ignore[union-attr]

    def _encode_ignore(self, message: Message) -> SocketPush:
        return self._encode(Reply(
            topic=message.topic, status="error", payload={"reason": "unmatched topic"}, ref=message.ref,
        ))


class SocketClose(NamedTuple):
    """A channel stopped cleanly and tells its transport: Phoenix's ``{:socket_close, pid, reason}``."""

    pid: Pid
    reason: Any


async def _shutdown_duplicate_channel(pid: Pid) -> None:
    """Kill the old channel of a re-joined topic and wait until it is gone.

    It gets no ``terminate``: Phoenix exits it with ``{:shutdown, :duplicate_join}``
    from outside, and a process that does not trap exits just stops.
    """
    ref = process.monitor(pid)
    process.exit(pid, ("shutdown", "duplicate_join"))
    await process.receive(lambda m: isinstance(m, Down) and m.ref == ref, timeout=5.0)
