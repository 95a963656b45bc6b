"""Channel tests without a network: connect, join, push, and assert on what comes back.

Mirrors ``Phoenix.ChannelTest``. There, the test process plays the transport: it
builds a socket whose ``transport_pid`` is itself, starts the real channel
process with ``Phoenix.Channel.Server.join``, sends it ``%Message{}`` structs as a
client's frames would arrive, and reads what the channel pushes, replies and
broadcasts from its own mailbox with ``assert_receive``. Nothing is mocked: the
channel process, its supervisor, PubSub and the fastlane are the real ones, and
only the socket and the wire are left out.

This module does the same on :mod:`channels_core.process`. ``async with
channel_test(endpoint):`` makes the running test task a process (the *test
process*) for the length of the block, and the functions below act on it:

* :func:`connect` runs your socket's ``connect`` exactly as a transport would
  (serializer negotiation, ``connect/3`` or ``connect/2``, ``id``) and returns the
  :class:`~channels_core.socket.SocketStruct`, or raises :class:`ConnectRefused`.
  :func:`build_socket` makes one without calling ``connect``, as ``socket/3`` does.
* :func:`subscribe_and_join` subscribes the test process to the topic (so that
  :func:`assert_broadcast` sees broadcasts) and joins: your channel's ``join``
  runs in a new channel process, exactly as for a real client. It returns the
  join reply and a :class:`JoinedChannel`, or raises :class:`JoinRefused`.
* :func:`push` sends the channel an event as a client would and returns its ref;
  :func:`leave` and :func:`close` end the channel as a client leaving or
  disconnecting would; :func:`broadcast_from` broadcasts on the channel's topic.
* ``await`` :func:`assert_push`, :func:`assert_reply`, :func:`assert_broadcast`
  and :func:`assert_exit` wait for a matching message (a second by default),
  returning as soon as it is there; :func:`refute_push`, :func:`refute_reply` and
  :func:`refute_broadcast` wait out their (short) timeout and fail if one arrives.
  A failure says what was expected and lists what the test process received
  instead, as ExUnit's ``assert_receive`` does.

Frames keep their real encoding. The socket negotiates the V2 JSON serializer (or
V1, with ``vsn="1.0.0"`` in the params), so a payload a client could not receive
(a ``datetime``, a tuple key) fails here as it would in production; the test
process decodes each frame back into a :class:`~channels_core.message.Message`
or :class:`~channels_core.message.Reply` before matching. Payloads the test
pushes go through JSON as a client's would: ``push(room, "n", {1: (2, 3)})``
reaches ``handle_in`` as ``{"1": [2, 3]}``. ``bytes`` stay ``bytes``.

A channel that crashes is treated as Phoenix treats a linked channel process:
the next ``assert_*`` fails at once with the crash reason, and so does the end
of the block, unless the test expected it with :func:`assert_exit`. When the
block ends, every channel still running is closed (its ``terminate`` runs with
``("shutdown", "closed")``, as when a client disconnects), and the endpoint is
shut down if the block started it.

Payload patterns: pass the exact value, :data:`ANY` (also inside a dict, e.g.
``{"id": ANY}``), or a function of the payload returning a bool (Elixir's
guards). Leaving the payload out matches any payload.

A complete example, for a chat channel that broadcasts ``new_msg`` and replies
``ok``::

    from channels_core.testing import (
        ConnectRefused, assert_broadcast, assert_push, assert_reply, channel_test,
        connect, push, subscribe_and_join,
    )
    from myapp.realtime import MyEndpoint, RoomChannel, UserSocket

    async def test_new_msg_is_broadcast_and_acknowledged():
        async with channel_test(MyEndpoint()):
            socket = connect(UserSocket, {"user_id": "u1"})
            reply, room = await subscribe_and_join(socket, RoomChannel, "room:lobby", {"user": "ada"})
            assert reply == {}
            ref = push(room, "new_msg", {"body": "hi"})
            await assert_reply(ref, "ok")
            await assert_broadcast("new_msg", {"body": "hi"})
            await assert_push("new_msg", {"body": "hi"})

    async def test_a_bad_token_is_refused():
        async with channel_test(MyEndpoint()):
            with pytest.raises(ConnectRefused):
                connect(UserSocket, {}, connect_info={"auth_token": "forged"})

With pytest, the ``channel_case`` fixture of :mod:`channels_core.pytest_plugin`
(installed with the package) wraps the test in ``channel_test`` for you, given an
``endpoint`` fixture::

    @pytest.fixture
    def endpoint():
        return MyEndpoint()

    async def test_join(channel_case):
        socket = connect(UserSocket, {"user_id": "u1"})
        reply, room = await subscribe_and_join(socket, None, "room:lobby")
        ...

The test body must run on the event loop of the block (pytest-asyncio does
this), and the functions here must be called inside the block: outside, they
raise :class:`RuntimeError` saying so. A failure points at the test's own line:
the helpers hide their frames from pytest's tracebacks (``__tracebackhide__``).
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import functools
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from unittest.mock import ANY

from . import process
from . import socket as socket_module
from .channel_server import Close
from .channel_server import join as server_join
from .client import decode_v1, decode_v2
from .message import Broadcast, Message, Reply
from .process import Down, Pid, Ref
from .pubsub.fastlane import fastlane_dispatch
from .serializers import SocketPush
from .socket import SocketClose, SocketState, SocketStruct
from .transports.transport import LONGPOLL_DEFAULTS, V2, WEBSOCKET_DEFAULTS, TransportConfig

__all__ = [
    "ANY",
    "ChannelCase",
    "ConnectRefused",
    "JoinRefused",
    "JoinedChannel",
    "assert_broadcast",
    "assert_exit",
    "assert_push",
    "assert_reply",
    "broadcast_from",
    "build_socket",
    "channel_test",
    "close",
    "connect",
    "join",
    "leave",
    "push",
    "refute_broadcast",
    "refute_push",
    "refute_reply",
    "subscribe_and_join",
]

#: How long an ``assert_*`` waits by default, in seconds. A passing assertion returns
#: as soon as its message is there, so only failures pay for a generous default.
ASSERT_TIMEOUT = 1.0
#: How long a ``refute_*`` waits by default, in seconds: every call pays all of it.
REFUTE_TIMEOUT = 0.1
#: How long ``join`` waits for the channel's ``join`` to answer.
JOIN_TIMEOUT = 5.0
#: How many mailbox entries a failure lists.
SHOWN = 10

_case: contextvars.ContextVar[ChannelCase | None] = contextvars.ContextVar("channels_core_channel_case", default=None)


class ConnectRefused(Exception):
    """The socket's ``connect`` refused: it returned ``"error"`` or ``("error", reason)``.

    Attributes:
        result: What ``connect`` amounted to: ``"error"`` or ``("error", reason)``.
        reason: The reason of ``("error", reason)``, or None for a bare ``"error"``.
    """

    def __init__(self, handler: type, result: Any) -> None:
        self.result = result
        self.reason = result[1] if isinstance(result, tuple) else None
        super().__init__(f"{handler.__name__}.connect refused the connection: {result!r}")


class JoinRefused(Exception):
    """The channel's ``join`` returned ``("error", reply)`` (or crashed: ``{"reason": "join crashed"}``).

    Attributes:
        reply: The reply a client would have received, e.g. ``{"reason": "unauthorized"}``.
    """

    def __init__(self, channel: Any, topic: str, reply: Any) -> None:
        self.reply = reply
        name = getattr(channel, "__name__", repr(channel))
        super().__init__(f"{name} refused to join {topic!r}: {reply!r}")


@dataclass(frozen=True)
class JoinedChannel:
    """A channel the test process joined: what :func:`push`, :func:`leave` and friends need.

    Phoenix's ``subscribe_and_join`` returns the channel's socket; the pid, topic and
    join ref are what a test uses of it.

    Attributes:
        pid: The channel's process; ``process.send(room.pid, msg)`` reaches ``handle_info``.
        topic: The topic joined, e.g. ``"room:lobby"``.
        join_ref: The ref of the join, as a client would have chosen it.
        channel: The channel class.
        socket: The socket the test joined with.
    """

    pid: Pid
    topic: str
    join_ref: str
    channel: Any
    socket: SocketStruct = field(repr=False)

    @property
    def name(self) -> str:
        """``RoomChannel on 'room:lobby'``: how failures name this channel."""
        return f"{getattr(self.channel, '__name__', self.channel)} on {self.topic!r}"


class ChannelCase:
    """The state of one ``async with channel_test(endpoint):`` block.

    Made by :func:`channel_test`; tests rarely touch it, as the module functions
    find it on their own.

    Attributes:
        endpoint: The endpoint sockets connect through.
        pid: The test process: every socket's ``transport_pid``.
        assert_timeout: The default timeout of the ``assert_*`` functions.
        refute_timeout: The default timeout of the ``refute_*`` functions.
    """

    def __init__(self, endpoint: Any, *, assert_timeout: float | None = None,
                 refute_timeout: float | None = None) -> None:
        self.endpoint = endpoint() if isinstance(endpoint, type) else endpoint
        self.assert_timeout = ASSERT_TIMEOUT if assert_timeout is None else assert_timeout
        self.refute_timeout = REFUTE_TIMEOUT if refute_timeout is None else refute_timeout
        self.pid: Pid | None = None
        self._adopted: process.Process | None = None
        self._started_endpoint = False
        self._refs = itertools.count(1)
        self._channels: dict[Pid, tuple[JoinedChannel, Ref]] = {}
        self._exits: dict[Pid, Any] = {}
        self._expected_exits: set[Pid] = set()
        self._subscriptions: set[tuple[int, str]] = set()
        self._pubsubs: dict[int, Any] = {}  # id -> PubSub, to unsubscribe a process we did not adopt
        self._states: list[SocketState] = []

    # The block

    async def __aenter__(self) -> ChannelCase:
        if _case.get() is not None:
            raise RuntimeError("channel_test blocks do not nest: one test process plays one transport")
        if not self.endpoint.started:
            await self.endpoint.startup()
            self._started_endpoint = True
        current = process.current_pid_or_none()
        if current is None:
            self._adopted = process.adopt("channel test")
            current = self._adopted.pid
        self.pid = current
        _case.set(self)
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        __tracebackhide__ = True
        try:
            await self._close_channels()
            self._drain_exits()
            crashes = [] if exc_type is not None else self._unexpected_crashes()
        finally:
            for state in self._states:
                state.terminate("normal")
            if self._adopted is not None:
                # Its subscriptions go with it, as a process's do.
                process.release(self._adopted, "normal")
            else:
                # A process we only borrowed lives on: take back what we subscribed it to.
                for pubsub_id, topic in self._subscriptions:
                    self._pubsubs[pubsub_id].unsubscribe(topic, pid=self.pid)
                for state in self._states:
                    if state.socket.id is not None:
                        state.socket.pubsub_server.unsubscribe(state.socket.id, pid=self.pid)
            # set, not reset: a pytest fixture may end the block in another context.
            _case.set(None)
            if self._started_endpoint:
                await self.endpoint.shutdown()
        if crashes:
            lines = "\n".join(f"  {joined.name} crashed with {reason!r}" for joined, reason in crashes)
            raise AssertionError(
                "a channel crashed during the test and nothing expected it:\n"
                f"{lines}\n(expect a crash with `await assert_exit(channel, reason)`)"
            )

    async def _close_channels(self, timeout: float = 5.0) -> None:
        """Close every channel still running, as a disconnecting client would."""
        running = [pid for pid in self._channels if pid not in self._exits and process.is_alive(pid)]
        for pid in running:
            process.send(pid, Close())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for pid in running:
            if await self._wait_exit(pid, max(0.0, deadline - loop.time())) is _NOTHING:
                # A terminate that never returns: stop it from outside, as a supervisor would.
                process.exit(pid, "killed")
                await self._wait_exit(pid, 1.0)

    # Bookkeeping the test never sees: channel exits and their socket_close notes

    def _remember_pubsub(self, pubsub: Any) -> None:
        self._pubsubs[id(pubsub)] = pubsub

    def _is_bookkeeping(self, message: Any) -> bool:
        if isinstance(message, Down):
            entry = self._channels.get(message.pid)
            return entry is not None and entry[1] == message.ref
        return isinstance(message, SocketClose) and message.pid in self._channels

    def _absorb(self, message: Any) -> bool:
        """Record a channel's exit; True if ``message`` was bookkeeping."""
        if not self._is_bookkeeping(message):
            return False
        if isinstance(message, Down):
            self._exits[message.pid] = message.reason
        return True

    def _drain_exits(self) -> None:
        mailbox = self._mailbox()
        for message in [m for m in mailbox if self._is_bookkeeping(m)]:
            mailbox.remove(message)
            self._absorb(message)

    def _unexpected_crashes(self) -> list[tuple[JoinedChannel, Any]]:
        return [
            (self._channels[pid][0], reason)
            for pid, reason in self._exits.items()
            if not process.is_clean_exit(reason) and pid not in self._expected_exits
        ]

    def _mailbox(self) -> Any:
        me = process.lookup(self.pid) if self.pid is not None else None
        if me is None:
            raise RuntimeError("the test process has exited")
        return me.mailbox

    # Waiting

    async def _wait_exit(self, pid: Pid, timeout: float) -> Any:
        """The exit reason of channel ``pid``, or ``_NOTHING`` if it still runs after ``timeout``."""
        if pid not in self._exits:
            await self._receive(lambda m: False, timeout, until=lambda: pid in self._exits)
        return self._exits.get(pid, _NOTHING)

    async def _receive(
        self,
        match: Callable[[Any], bool],
        timeout: float,
        *,
        until: Callable[[], bool] | None = None,
        on_crash: Callable[[JoinedChannel, Any], None] | None = None,
    ) -> Any:
        """Take the first message ``match`` accepts, or return ``_NOTHING`` after ``timeout``.

        Channel exits met on the way are recorded, never returned. ``until`` ends
        the wait early once it holds (an exit was recorded); ``on_crash`` is called,
        to raise, when nothing matching is left and a channel has crashed unexpectedly.
        """
        __tracebackhide__ = True
        if self.pid != process.current_pid_or_none():
            raise RuntimeError(
                "channels_core.testing: waiting from a task that is not the test process; "
                "await the assertions in the test body itself"
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout

        def wanted(message: Any) -> bool:
            return self._is_bookkeeping(message) or match(message)

        while True:
            if until is not None and until():
                return _NOTHING
            # What is in the mailbox already comes first: a push queued before a crash
            # still matches. Only then does a crash end the wait, or do we block.
            message = await _take(wanted, 0.0)
            if message is _NOTHING:
                if on_crash is not None:
                    for joined, reason in self._unexpected_crashes():
                        on_crash(joined, reason)
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return _NOTHING
                message = await _take(wanted, remaining)
                if message is _NOTHING:
                    return _NOTHING
            if not self._absorb(message):
                return message

    def next_ref(self) -> str:
        """A fresh ref, a numeric string as phoenix.js makes them."""
        return str(next(self._refs))

    # Describing the mailbox for failures

    def explain(self) -> str:
        """What the test process holds: the mailbox, decoded, and the channels' exits."""
        mailbox = list(self._mailbox())
        lines = []
        if not mailbox:
            lines.append("The test process's mailbox is empty.")
        else:
            shown = mailbox[:SHOWN]
            more = f", showing the first {SHOWN}" if len(mailbox) > SHOWN else ""
            lines.append(f"The test process's mailbox holds {len(mailbox)} message(s){more}, oldest first:")
            lines.extend(f"  {describe(m)}" for m in shown)
        exits = [(self._channels[pid][0], reason) for pid, reason in self._exits.items()]
        for joined, reason in exits:
            lines.append(f"Channel {joined.name} exited with {reason!r}.")
        return "\n".join(lines)


_NOTHING: Any = object()


async def _take(match: Callable[[Any], bool], timeout: float) -> Any:
    try:
        return await process.receive(match, timeout=timeout)
    except TimeoutError:
        return _NOTHING


def channel_test(endpoint: Any, *, assert_timeout: float | None = None,
                 refute_timeout: float | None = None) -> ChannelCase:
    """``async with channel_test(endpoint):`` — the test task becomes the transport process.

    Args:
        endpoint: The endpoint sockets connect through (an instance, or an
            :class:`~channels_core.endpoint.Endpoint` subclass to instantiate). It is
            started if it is not, and then shut down when the block ends.
        assert_timeout: Default timeout of the ``assert_*`` functions, in seconds
            (:data:`ASSERT_TIMEOUT`).
        refute_timeout: Default timeout of the ``refute_*`` functions, in seconds
            (:data:`REFUTE_TIMEOUT`).
    """
    return ChannelCase(endpoint, assert_timeout=assert_timeout, refute_timeout=refute_timeout)


def _active(function: str) -> ChannelCase:
    case = _case.get()
    if case is None:
        raise RuntimeError(
            f"channels_core.testing.{function}() must be called inside `async with channel_test(endpoint):` "
            "(or in a test that uses the channel_case fixture)"
        )
    return case


# Sockets


def connect(
    handler: type,
    params: dict[str, Any] | None = None,
    *,
    connect_info: dict[str, Any] | None = None,
    endpoint: Any = None,
    transport: str = "websocket",
) -> SocketStruct:
    """Run ``handler``'s ``connect`` as a transport would, with the test process as transport.

    ``params`` are the connect params (``vsn`` defaults to ``"2.0.0"``);
    ``connect_info`` is what ``connect/3`` receives; ``endpoint`` overrides the
    block's. The transport's options are the ones the endpoint declares for
    ``handler``, or the defaults.

    Returns:
        The connected socket, with the ``id`` and assigns ``connect`` gave it.

    Raises:
        ConnectRefused: ``connect`` returned ``"error"`` or ``("error", reason)``.
    """
    case = _active("connect")
    endpoint = case.endpoint if endpoint is None else endpoint
    config = _transport_config(endpoint, handler, transport)
    params = {"vsn": V2.vsn, **{str(key): value for key, value in (params or {}).items()}}
    result = socket_module.connect(handler, endpoint, transport, config, params, dict(connect_info or {}))
    if not isinstance(result, SocketState):
        raise ConnectRefused(handler, result)
    # As Phoenix's Socket.__init__: the transport is us, and we listen on the socket id.
    result.init(case.pid)  # type: ignore[arg-type]
    case._states.append(result)
    case._remember_pubsub(result.socket.pubsub_server)
    return result.socket


def build_socket(
    handler: type | None = None,
    id: str | None = None,  # noqa: A002 - Phoenix's name
    assigns: dict[str, Any] | None = None,
    *,
    endpoint: Any = None,
    transport: str = "websocket",
) -> SocketStruct:
    """A socket with the given ``id`` and ``assigns``, without calling ``connect``.

    Phoenix's ``socket/3``: for channel tests that do not care how the client
    connected. ``handler`` defaults to the endpoint's first declared socket.
    """
    case = _active("build_socket")
    endpoint = case.endpoint if endpoint is None else endpoint
    if handler is None:
        sockets = getattr(type(endpoint), "sockets", [])
        if not sockets:
            raise ValueError(f"{type(endpoint).__name__} declares no socket; pass the socket class")
        handler = sockets[0].handler
    case._remember_pubsub(endpoint.pubsub)
    return SocketStruct(
        assigns=dict(assigns or {}),
        endpoint=endpoint,
        handler=handler,
        id=id,
        pubsub_server=endpoint.pubsub,
        serializer=V2,
        transport=transport,
        transport_pid=case.pid,
    )


def _transport_config(endpoint: Any, handler: type, transport: str) -> TransportConfig:
    for entry in getattr(type(endpoint), "__dispatch__", {}).values():
        if entry.handler is handler and entry.kind == transport and entry.config is not None:
            return entry.config
    return LONGPOLL_DEFAULTS if transport == "longpoll" else WEBSOCKET_DEFAULTS


# Channels


async def join(
    socket: SocketStruct, channel: Any, topic: str, payload: Any = None, *, timeout: float = JOIN_TIMEOUT
) -> tuple[Any, JoinedChannel]:
    """Join ``topic`` with ``channel`` (or, if None, the channel the socket routes it to).

    The channel's ``join`` runs in a new channel process, started under the
    endpoint's supervisor exactly as for a real client.

    Returns:
        ``(reply, channel)``: the join reply (``{}`` for a plain ``("ok", socket)``)
        and the :class:`JoinedChannel` to push to.

    Raises:
        JoinRefused: ``join`` returned ``("error", reply)``, or crashed.
    """
    __tracebackhide__ = True
    case = _active("join")
    options: Any = {}
    if channel is None:
        route = socket.handler.__channel__(topic) if socket.handler is not None else None
        if route is None:
            handler = getattr(socket.handler, "__name__", socket.handler)
            raise ValueError(f"no channel found for topic {topic!r} in {handler}; pass the channel class")
        channel, options = route.channel, route.options
    ref = case.next_ref()
    message = Message(topic=topic, event="phx_join", payload=_as_client_sent(payload if payload is not None else {}),
                      ref=ref, join_ref=ref)
    socket = socket.replace(transport_pid=case.pid)
    started: list[tuple[Pid, Ref]] = []

    def monitor_from_the_start(pid: Pid) -> None:
        # Monitored before join runs: a crash just after the reply keeps its reason.
        started.append((pid, process.monitor(pid)))

    try:
        async with asyncio.timeout(timeout):
            result = await server_join(socket, channel, message, options, on_start=monitor_from_the_start)
    except TimeoutError:
        for pid, monitor in started:
            # A join that hangs would hang the block's end too: stop it now, from outside.
            case._channels[pid] = (JoinedChannel(pid, topic, ref, channel, socket), monitor)
            case._expected_exits.add(pid)
            process.exit(pid, "killed")
            await case._wait_exit(pid, 1.0)
        raise AssertionError(
            f"{getattr(channel, '__name__', channel)}.join did not answer within {timeout} s for {topic!r}"
        ) from None
    if result[0] != "ok":
        for _pid, monitor in started:
            process.demonitor(monitor, flush=True)
        raise JoinRefused(channel, topic, result[1])
    _, reply, pid = result
    joined = JoinedChannel(pid=pid, topic=topic, join_ref=ref, channel=channel, socket=socket)
    case._channels[pid] = (joined, started[0][1])
    return reply, joined


async def subscribe_and_join(
    socket: SocketStruct, channel: Any, topic: str, payload: Any = None, *, timeout: float = JOIN_TIMEOUT
) -> tuple[Any, JoinedChannel]:
    """Subscribe the test process to ``topic``, then :func:`join` it.

    Subscribed, the test process receives every broadcast on the topic, which is
    what :func:`assert_broadcast` looks for.
    """
    case = _active("subscribe_and_join")
    pubsub = socket.pubsub_server
    key = (id(pubsub), topic)
    if key not in case._subscriptions:  # twice subscribed, every broadcast would arrive twice
        pubsub.subscribe(topic)
        case._subscriptions.add(key)
        case._remember_pubsub(pubsub)
    return await join(socket, channel, topic, payload, timeout=timeout)


def push(channel: JoinedChannel, event: str, payload: Any = None) -> str:
    """Send ``event`` to the channel as its client would; ``handle_in`` gets it.

    Returns:
        The message's ref, for :func:`assert_reply`.
    """
    case = _active("push")
    ref = case.next_ref()
    process.send(channel.pid, Message(
        topic=channel.topic, event=event, payload=_as_client_sent(payload if payload is not None else {}),
        ref=ref, join_ref=channel.join_ref,
    ))
    return ref


def leave(channel: JoinedChannel) -> str:
    """Leave the channel as a client would (``phx_leave``); returns the ref to assert the reply on.

    The channel replies ``ok``, runs ``terminate`` with ``("shutdown", "left")`` and
    exits; ``await assert_exit(channel, ("shutdown", "left"))`` waits for that.
    """
    return push(channel, "phx_leave", {})


async def close(channel: JoinedChannel, timeout: float = 5.0) -> Any:
    """Close the channel as a disconnecting client would, and wait until it has exited.

    Returns:
        The channel's exit reason, ``("shutdown", "closed")`` unless ``terminate`` crashed it.
    """
    __tracebackhide__ = True
    case = _active("close")
    case._expected_exits.add(channel.pid)
    process.send(channel.pid, Close())
    reason = await case._wait_exit(channel.pid, timeout)
    if reason is _NOTHING:
        raise AssertionError(f"close: {channel.name} still runs {timeout} s after being closed")
    return reason


def broadcast_from(channel: JoinedChannel, event: str, payload: Any) -> None:
    """Broadcast on the channel's topic from the test process, which does not get it back.

    Every channel on the topic receives it; intercepted events go through their
    ``handle_out``. Phoenix's ``broadcast_from/3``.
    """
    case = _active("broadcast_from")
    pubsub = channel.socket.pubsub_server
    pubsub.broadcast_from(case.pid, channel.topic, Broadcast(channel.topic, event, payload), fastlane_dispatch)


# Assertions


async def assert_push(event: str, payload: Any = ANY, *, timeout: float | None = None) -> Any:
    """Wait until a channel has pushed ``event`` with a payload matching ``payload``.

    Broadcasts the channel did not intercept reach the client as pushes too, so
    they match here as well, as in Phoenix.

    Returns:
        The payload pushed.
    """
    __tracebackhide__ = True
    case = _active("assert_push")
    call = f"assert_push({event!r}, {_show(payload)})"
    message = await _assert(case, call, "push", timeout,
                            lambda m: isinstance(m, Message) and m.event == event and _matches(payload, m.payload),
                            near=lambda m: isinstance(m, Message) and m.event == event)
    return message.payload


async def assert_reply(ref: str, status: str, payload: Any = ANY, *, timeout: float | None = None) -> Any:
    """Wait until a channel has replied to the push ``ref`` with ``status`` and a matching payload.

    Returns:
        The reply's payload (the ``response``).
    """
    __tracebackhide__ = True
    case = _active("assert_reply")
    call = f"assert_reply({ref!r}, {status!r}, {_show(payload)})"
    message = await _assert(
        case, call, "reply", timeout,
        lambda m: isinstance(m, Reply) and m.ref == ref and m.status == status and _matches(payload, m.payload),
        near=lambda m: isinstance(m, Reply) and m.ref == ref,
    )
    return message.payload


async def assert_broadcast(event: str, payload: Any = ANY, *, timeout: float | None = None) -> Any:
    """Wait until ``event`` has been broadcast on a topic the test subscribed to.

    Returns:
        The payload broadcast.
    """
    __tracebackhide__ = True
    case = _active("assert_broadcast")
    call = f"assert_broadcast({event!r}, {_show(payload)})"
    message = await _assert(
        case, call, "broadcast", timeout,
        lambda m: isinstance(m, Broadcast) and m.event == event and _matches(payload, m.payload),
        near=lambda m: isinstance(m, Broadcast) and m.event == event,
    )
    return message.payload


async def assert_exit(channel: JoinedChannel, reason: Any = ANY, *, timeout: float | None = None) -> Any:
    """Wait until ``channel``'s process has exited with a reason matching ``reason``.

    ``reason`` may be an exception class (a crash with that exception), an
    exception (same class and arguments), a clean reason such as
    ``("shutdown", "left")``, or a function of the reason. Expecting a crash this
    way keeps it from failing the test.

    Returns:
        The exit reason.
    """
    __tracebackhide__ = True
    case = _active("assert_exit")
    timeout = case.assert_timeout if timeout is None else timeout
    case._expected_exits.add(channel.pid)
    got = await case._wait_exit(channel.pid, timeout)
    if got is _NOTHING:
        raise AssertionError(
            f"assert_exit({channel.name}, {_show(reason)}) failed: the channel is still running "
            f"after {timeout} s.\n{case.explain()}"
        )
    if not _reason_matches(reason, got):
        raise AssertionError(
            f"assert_exit({channel.name}, {_show(reason)}) failed: the channel exited with {got!r}."
        )
    return got


async def refute_push(event: str, payload: Any = ANY, *, timeout: float | None = None) -> None:
    """Fail if a channel pushes ``event`` with a matching payload within ``timeout``."""
    __tracebackhide__ = True
    case = _active("refute_push")
    await _refute(case, f"refute_push({event!r}, {_show(payload)})", "pushed", timeout,
                  lambda m: isinstance(m, Message) and m.event == event and _matches(payload, m.payload))


async def refute_reply(ref: str, status: str, payload: Any = ANY, *, timeout: float | None = None) -> None:
    """Fail if a channel replies to ``ref`` with ``status`` and a matching payload within ``timeout``."""
    __tracebackhide__ = True
    case = _active("refute_reply")
    await _refute(
        case, f"refute_reply({ref!r}, {status!r}, {_show(payload)})", "replied", timeout,
        lambda m: isinstance(m, Reply) and m.ref == ref and m.status == status and _matches(payload, m.payload),
    )


async def refute_broadcast(event: str, payload: Any = ANY, *, timeout: float | None = None) -> None:
    """Fail if ``event`` is broadcast with a matching payload within ``timeout``."""
    __tracebackhide__ = True
    case = _active("refute_broadcast")
    await _refute(case, f"refute_broadcast({event!r}, {_show(payload)})", "broadcast", timeout,
                  lambda m: isinstance(m, Broadcast) and m.event == event and _matches(payload, m.payload))


async def _assert(
    case: ChannelCase,
    call: str,
    kind: str,
    timeout: float | None,
    match: Callable[[Any], bool],
    near: Callable[[Any], bool],
) -> Any:
    __tracebackhide__ = True
    timeout = case.assert_timeout if timeout is None else timeout

    def crashed(joined: JoinedChannel, reason: Any) -> None:
        __tracebackhide__ = True
        raise AssertionError(
            f"{call} failed: {joined.name} crashed with {reason!r}.\n"
            "A crash ends the test, as a linked channel process does in Phoenix; if it is expected, "
            "`await assert_exit(channel, reason)` first.\n" + case.explain()
        )

    found = await case._receive(lambda m: match(decoded(m)), timeout, on_crash=crashed)
    if found is not _NOTHING:
        # A copy: decoded frames are cached, and the test may change what it gets.
        return copy.deepcopy(decoded(found))
    mailbox = list(case._mailbox())
    close_calls = [describe(m) for m in mailbox if near(decoded(m))]
    hint = ""
    if close_calls:
        hint = "\nClosest: " + "; ".join(close_calls[:3])
    raise AssertionError(f"{call} failed: no matching {kind} within {timeout} s.{hint}\n{case.explain()}")


async def _refute(case: ChannelCase, call: str, verb: str, timeout: float | None, match: Callable[[Any], bool]) -> None:
    __tracebackhide__ = True
    timeout = case.refute_timeout if timeout is None else timeout
    found = await case._receive(lambda m: match(decoded(m)), timeout)
    if found is not _NOTHING:
        raise AssertionError(f"{call} failed: within {timeout} s, the test process received {describe(found)}")


# Matching


def _matches(expected: Any, actual: Any) -> bool:
    if expected is ANY:
        return True
    if callable(expected) and not isinstance(expected, type):
        return bool(expected(actual))
    return bool(expected == actual)


def _reason_matches(expected: Any, actual: Any) -> bool:
    if isinstance(expected, type) and issubclass(expected, BaseException):
        return isinstance(actual, expected)
    if isinstance(expected, BaseException):
        return type(actual) is type(expected) and getattr(actual, "args", None) == expected.args
    return _matches(expected, actual)


def _show(pattern: Any) -> str:
    if pattern is ANY:
        return "ANY"
    if callable(pattern) and not isinstance(pattern, type):
        return getattr(pattern, "__name__", repr(pattern))
    return repr(pattern)


def _as_client_sent(payload: Any) -> Any:
    """``payload`` as the channel would receive it from a client: through JSON, bytes aside."""
    if isinstance(payload, (bytes, bytearray)):
        return bytes(payload)
    try:
        return json.loads(json.dumps(payload, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"a client could not send this payload, it is not JSON: {payload!r} ({exc})") from None


# Frames


def decoded(message: Any) -> Any:
    """A frame for the client (:class:`SocketPush`) as a Message or Reply; anything else as is."""
    if isinstance(message, SocketPush):
        try:
            return _decode_frame(message.opcode, message.data)
        except (ValueError, TypeError):
            return message
    return message


@functools.lru_cache(maxsize=4096)
def _decode_frame(opcode: str, data: str | bytes) -> Message | Reply:
    # Which serializer made a frame is not written on it; its shape says.
    if opcode == "text" and isinstance(data, str) and data.lstrip().startswith("{"):
        frame = decode_v1(data)
    else:
        frame = decode_v2(data)
    payload = frame.payload
    if frame.event == "phx_reply" and isinstance(payload, dict) and "status" in payload:
        return Reply(topic=frame.topic, status=payload["status"], payload=payload.get("response"),
                     ref=frame.ref, join_ref=frame.join_ref)
    return Message(topic=frame.topic, event=frame.event, payload=payload, ref=frame.ref, join_ref=frame.join_ref)


def describe(message: Any) -> str:
    """One line for a mailbox entry, as failures list them."""
    value = decoded(message)
    if isinstance(value, Reply):
        return f"reply {value.status!r} to ref {value.ref!r} on {value.topic!r}: {value.payload!r}"
    if isinstance(value, Message):
        return f"push {value.event!r} on {value.topic!r}: {value.payload!r}"
    if isinstance(value, Broadcast):
        return f"broadcast {value.event!r} on {value.topic!r}: {value.payload!r}"
    return f"message {value!r}"
