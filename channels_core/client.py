"""An asyncio Phoenix Channels client, shaped like phoenix.js.

phoenix.js, the JavaScript client that ships with Phoenix, is built from three
objects, and so is this module:

* :class:`Socket` owns one WebSocket connection to an endpoint. Every channel is
  multiplexed over it. It sends heartbeats so that both ends notice a dead peer,
  and it reconnects with backoff when the connection drops.
* :class:`Channel` is the client's side of one topic. It joins, rejoins after
  errors, holds back pushes until the join has succeeded, and hands incoming
  events to callbacks.
* :class:`Push` is one outgoing message that may get a reply. It matches the
  reply by ``ref``, runs ``receive`` hooks and times out.

Keeping that shape, rather than inventing a more "Pythonic" one, is the point:
the states, refs and frames are the ones phoenix.js produces, so a wire log
recorded here reads the same as one recorded in a browser, and the code can be
read next to phoenix.js. The few places where this module deliberately behaves
differently are marked in comments.

phoenix.js is callback based because browsers are. Every callback API is kept,
and the objects that stand for a future outcome are also awaitable:
``await channel.join()`` and ``await channel.push(...)`` return a :class:`Reply`
or raise :class:`PushTimeout`. Callbacks are plain functions called from the
event loop; they must not block (start a task for anything slow).

The wire format lives in small pure functions at the top of the module
(:func:`encode_v2`, :func:`decode_v2`, :func:`encode_v1`, :func:`decode_v1`):
they do no I/O, so they can be tested, and shown in a notebook, on their own.
They belong to the client; the server has its own serializers.

Example::

    async with Socket("ws://127.0.0.1:4000/socket", params={"token": "t"}) as socket:
        channel = socket.channel("room:lobby", {"user": "ann"})
        reply = await channel.join()            # Reply(status="ok", response={})
        await channel.push("new_msg", {"body": "hi"})
        message = await channel.next_message("new_msg")
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
import logging
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, overload
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.protocol import State
from websockets.typing import Subprotocol

__all__ = [
    "AUTH_TOKEN_PREFIX",
    "DEFAULT_VSN",
    "Channel",
    "ChannelState",
    "CloseEvent",
    "Inbox",
    "Message",
    "Push",
    "PushTimeout",
    "Reply",
    "Socket",
    "auth_token_subprotocol",
    "decode_binary",
    "decode_v1",
    "decode_v2",
    "default_reconnect_after",
    "default_rejoin_after",
    "encode_binary_push",
    "encode_v1",
    "encode_v2",
    "endpoint_url",
]

logger = logging.getLogger("channels_core.client")

DEFAULT_VSN = "2.0.0"
DEFAULT_TIMEOUT = 10.0
DEFAULT_HEARTBEAT_INTERVAL = 30.0
WS_CLOSE_NORMAL = 1000
# Code a browser reports when the connection ended without a close frame.
WS_CLOSE_ABNORMAL = 1006
AUTH_TOKEN_PREFIX = "base64url.bearer.phx."

PHX_JOIN = "phx_join"
PHX_LEAVE = "phx_leave"
PHX_REPLY = "phx_reply"
PHX_ERROR = "phx_error"
PHX_CLOSE = "phx_close"

ChannelState = Literal["closed", "errored", "joined", "joining", "leaving"]
Frame = str | bytes


# --------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Message:
    """One message on the wire, in either direction.

    Attributes:
        topic: The topic, e.g. ``"room:lobby"``; ``"phoenix"`` for heartbeats.
        event: The event, e.g. ``"phx_join"``, ``"phx_reply"`` or ``"new_msg"``.
        payload: A JSON value (usually a ``dict``) or ``bytes`` for binary frames.
        ref: The ref the client chose for a message it expects a reply to;
            ``None`` in server pushes and broadcasts.
        join_ref: The ref of the join the message belongs to; ``None`` in
            broadcasts and heartbeats.
    """

    topic: str
    event: str
    payload: Any
    ref: str | None = None
    join_ref: str | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """The server's answer to a :class:`Push`.

    Attributes:
        status: ``"ok"`` or ``"error"`` (a server may use other short strings).
        response: The reply's ``response``: a JSON value, or ``bytes`` when the
            server replied with a binary frame.
    """

    status: str
    response: Any


@dataclass(frozen=True, slots=True)
class CloseEvent:
    """What :meth:`Socket.on_close` callbacks receive, like a browser CloseEvent.

    Attributes:
        code: The close code the server sent, or 1006 when the connection
            ended without a close frame.
        reason: The close reason the server sent, often empty.
    """

    code: int
    reason: str


class PushTimeout(TimeoutError):
    """Raised by ``await push`` when no reply arrived within the push's timeout.

    Attributes:
        topic: The channel's topic.
        event: The event that was pushed.
        timeout: The timeout, in seconds.
    """

    def __init__(self, topic: str, event: str, timeout: float) -> None:
        super().__init__(f"no reply to {event!r} on {topic!r} within {timeout:g} s")
        self.topic = topic
        self.event = event
        self.timeout = timeout


# --------------------------------------------------------------------------
# Wire format: pure functions, no I/O
# --------------------------------------------------------------------------


def endpoint_url(
    url: str, params: Mapping[str, Any] | None = None, vsn: str = DEFAULT_VSN
) -> str:
    """Builds the URL the socket connects to, like phoenix.js's ``endPointURL``.

    The endpoint's socket path gets the WebSocket transport's own path
    (``/websocket``) appended, then the connect params, then ``vsn``, which
    tells the server which serializer to use.

    Args:
        url: The socket path, e.g. ``"ws://127.0.0.1:4000/socket"``.
        params: Connect params, sent as the query string. Nested mappings and
            lists become ``key[sub]=value`` pairs, as in phoenix.js.
        vsn: The serializer version.

    Returns:
        For example ``"ws://127.0.0.1:4000/socket/websocket?token=t&vsn=2.0.0"``.
    """
    return _append_params(_append_params(f"{url}/websocket", params or {}), {"vsn": vsn})


def _append_params(url: str, params: Mapping[str, Any]) -> str:
    query = _serialize_params(params)
    if not query:
        return url
    return f"{url}{'&' if '?' in url else '?'}{query}"


def _serialize_params(params: Mapping[Any, Any], parent: str | None = None) -> str:
    parts = []
    for key, value in params.items():
        name = f"{parent}[{key}]" if parent is not None else str(key)
        if isinstance(value, Mapping):
            parts.append(_serialize_params(value, name))
        elif isinstance(value, (list, tuple)):
            # JavaScript walks an array like an object keyed by index.
            parts.append(_serialize_params(dict(enumerate(value)), name))
        elif value is None:
            # phoenix.js treats null as an empty object: it adds no pair.
            continue
        else:
            parts.append(f"{_uri_component(name)}={_uri_component(_js_string(value))}")
    return "&".join(part for part in parts if part)


def _uri_component(text: str) -> str:
    # The characters JavaScript's encodeURIComponent leaves alone.
    return quote(text, safe="-_.!~*'()")


def _js_string(value: Any) -> str:
    # Spell values the way JavaScript's String() would, so the server sees the
    # same query string from this client as from a browser.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def auth_token_subprotocol(token: str) -> str:
    """Encodes an auth token as the WebSocket subprotocol phoenix.js 1.8 sends.

    Browsers cannot set headers on a WebSocket handshake, so phoenix.js smuggles
    the token in ``Sec-WebSocket-Protocol``, next to ``phoenix``.

    The token is base64url-encoded without padding. phoenix.js uses the standard
    alphabet (``btoa``) despite the prefix's name; that alphabet can produce
    ``/``, which is not allowed in a subprotocol name (and which the websockets
    package rejects), while the url-safe one cannot. For tokens whose encoding
    has no ``+`` or ``/`` the two agree.

    Args:
        token: The token, e.g. a signed user id.

    Returns:
        For example ``"base64url.bearer.phx.c2VjcmV0"`` for ``"secret"``.
    """
    encoded = base64.urlsafe_b64encode(token.encode("utf-8")).rstrip(b"=")
    return AUTH_TOKEN_PREFIX + encoded.decode("ascii")


_KIND_PUSH = 0
_KIND_REPLY = 1
_KIND_BROADCAST = 2


def _field(value: str | None, name: str) -> bytes:
    data = (value or "").encode("utf-8")
    if len(data) > 255:
        # The length of every field is written in one byte.
        raise ValueError(f"binary frames need {name} of at most 255 bytes, got {len(data)}")
    return data


def encode_binary_push(message: Message) -> bytes:
    """Encodes a client push with a ``bytes`` payload as a binary frame.

    Layout: kind ``0``, then one length byte each for join_ref, ref, topic and
    event, then those four fields, then the payload.

    Args:
        message: The message; its payload must be bytes-like.

    Returns:
        The frame.

    Raises:
        ValueError: If a field is longer than 255 bytes.
    """
    join_ref = _field(message.join_ref, "join_ref")
    ref = _field(message.ref, "ref")
    topic = _field(message.topic, "topic")
    event = _field(message.event, "event")
    header = bytes([_KIND_PUSH, len(join_ref), len(ref), len(topic), len(event)])
    return header + join_ref + ref + topic + event + bytes(message.payload)


def decode_binary(frame: bytes) -> Message:
    """Decodes a binary frame sent by the server.

    Three kinds exist. A push (``0``) carries join_ref, topic and event but no
    ref, as the client never answers it. A reply (``1``) carries join_ref, ref,
    topic and status, and decodes to a ``phx_reply`` message whose payload is
    ``{"status": status, "response": data}``, like a JSON reply. A broadcast
    (``2``) carries only topic and event, because the same frame goes to every
    subscriber.

    Args:
        frame: The frame.

    Returns:
        The message; its payload (or its payload's ``response``) is ``bytes``.

    Raises:
        ValueError: If the frame is truncated or of an unknown kind.
    """
    if not frame:
        raise ValueError("empty binary frame")
    kind = frame[0]
    if kind == _KIND_PUSH:
        (join_ref, topic, event), data = _read_fields(frame, 3)
        return Message(topic, event, data, None, join_ref)
    if kind == _KIND_REPLY:
        (join_ref, ref, topic, status), data = _read_fields(frame, 4)
        return Message(topic, PHX_REPLY, {"status": status, "response": data}, ref, join_ref)
    if kind == _KIND_BROADCAST:
        (topic, event), data = _read_fields(frame, 2)
        return Message(topic, event, data, None, None)
    raise ValueError(f"unknown binary frame kind {kind}")


def _read_fields(frame: bytes, count: int) -> tuple[list[str], bytes]:
    # One length byte per field follows the kind byte, then the fields, then
    # the payload, which runs to the end of the frame.
    offset = 1 + count
    if len(frame) < offset:
        raise ValueError("truncated binary frame header")
    fields = []
    for size in frame[1:offset]:
        if len(frame) < offset + size:
            raise ValueError("truncated binary frame")
        fields.append(frame[offset : offset + size].decode("utf-8"))
        offset += size
    return fields, frame[offset:]


def _dumps(value: Any) -> str:
    # Compact, non-ASCII kept as is: the same text JSON.stringify produces.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def encode_v2(message: Message) -> Frame:
    """Encodes a message for the ``2.0.0`` serializer.

    Args:
        message: The message.

    Returns:
        A binary frame (see :func:`encode_binary_push`) if the payload is
        bytes-like, otherwise the JSON array
        ``[join_ref, ref, topic, event, payload]``.
    """
    if isinstance(message.payload, (bytes, bytearray, memoryview)):
        return encode_binary_push(message)
    return _dumps([message.join_ref, message.ref, message.topic, message.event, message.payload])


def decode_v2(frame: Frame) -> Message:
    """Decodes a frame from a server speaking the ``2.0.0`` serializer.

    Args:
        frame: A text frame holding ``[join_ref, ref, topic, event, payload]``,
            or a binary frame (see :func:`decode_binary`).

    Returns:
        The message.

    Raises:
        ValueError: If the frame is not a valid V2 frame.
    """
    if isinstance(frame, (bytes, bytearray, memoryview)):
        return decode_binary(bytes(frame))
    value = json.loads(frame)
    if not isinstance(value, list) or len(value) != 5:
        raise ValueError(f"expected a 5-element JSON array, got {frame!r}")
    join_ref, ref, topic, event, payload = value
    return Message(topic, event, payload, ref, join_ref)


def encode_v1(message: Message) -> str:
    """Encodes a message for the ``1.0.0`` serializer, a JSON object.

    ``join_ref`` is included as phoenix.js did; V1 servers ignore it.

    Args:
        message: The message.

    Returns:
        ``{"topic": ..., "event": ..., "payload": ..., "ref": ..., "join_ref": ...}``.

    Raises:
        TypeError: If the payload is bytes: V1 has no binary frames.
    """
    if isinstance(message.payload, (bytes, bytearray, memoryview)):
        raise TypeError("the 1.0.0 serializer cannot carry binary payloads; use vsn='2.0.0'")
    return _dumps(
        {
            "topic": message.topic,
            "event": message.event,
            "payload": message.payload,
            "ref": message.ref,
            "join_ref": message.join_ref,
        }
    )


def decode_v1(frame: Frame) -> Message:
    """Decodes a frame from a server speaking the ``1.0.0`` serializer.

    Args:
        frame: A text frame holding a JSON object.

    Returns:
        The message; ``join_ref`` is ``None`` unless the server sent one.

    Raises:
        ValueError: If the frame is binary or not a JSON object.
    """
    if isinstance(frame, (bytes, bytearray, memoryview)):
        raise ValueError("the 1.0.0 serializer has no binary frames")
    value = json.loads(frame)
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {frame!r}")
    return Message(
        value.get("topic"),
        value.get("event"),
        value.get("payload"),
        value.get("ref"),
        value.get("join_ref"),
    )


class _Serializer(NamedTuple):
    encode: Callable[[Message], Frame]
    decode: Callable[[Frame], Message]
    binary: bool


def _serializer_for(vsn: str) -> _Serializer:
    # Phoenix picks a serializer by version requirement ("~> 2.0.0"), so any
    # 2.x speaks V2 and any 1.x speaks V1.
    major = vsn.split(".", 1)[0]
    if major == "2":
        return _Serializer(encode_v2, decode_v2, binary=True)
    if major == "1":
        return _Serializer(encode_v1, decode_v1, binary=False)
    raise ValueError(f"unsupported serializer version {vsn!r}; use '2.0.0' or '1.0.0'")


# --------------------------------------------------------------------------
# Backoff
# --------------------------------------------------------------------------

_RECONNECT_STEPS = (0.01, 0.05, 0.1, 0.15, 0.2, 0.25, 0.5, 1.0, 2.0)
_REJOIN_STEPS = (1.0, 2.0, 5.0)


def default_reconnect_after(tries: int) -> float:
    """Seconds to wait before reconnect attempt number ``tries`` (from 1).

    phoenix.js's steps: quick at first, because most drops are blips, then
    settling at 5 s so that a server that is down is not hammered.
    """
    return _RECONNECT_STEPS[tries - 1] if 1 <= tries <= len(_RECONNECT_STEPS) else 5.0


def default_rejoin_after(tries: int) -> float:
    """Seconds to wait before rejoin attempt number ``tries`` (from 1).

    phoenix.js's steps. They are slower than reconnects: a channel that crashed
    on the server will likely crash again if rejoined at once.
    """
    return _REJOIN_STEPS[tries - 1] if 1 <= tries <= len(_REJOIN_STEPS) else 10.0


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def _closure(value: Any) -> Callable[[], Any]:
    # Like phoenix.js, params and tokens may be given as functions, evaluated
    # at every (re)connect or (re)join, so that they can be refreshed.
    return value if callable(value) else (lambda: value)


def _invoke(what: str, callback: Callable[..., Any], *args: Any) -> None:
    # A faulty callback must not kill the task that reads the connection.
    try:
        callback(*args)
    except Exception:
        logger.exception("%s callback %r raised", what, callback)


async def _cancel_and_wait(*tasks: asyncio.Task[Any] | None) -> None:
    # Never cancel the task we run in: it is on its way out already.
    current = asyncio.current_task()
    pending = {task for task in tasks if task is not None and task is not current}
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)


class _Timer:
    """Runs a callback after a delay that grows with each try: phoenix.js's Timer.

    ``schedule_timeout`` replaces any scheduled run; ``reset`` cancels it and
    starts counting tries from one again. The callback may be a coroutine
    function.
    """

    def __init__(
        self, callback: Callable[[], Any], after: Callable[[int], float], name: str
    ) -> None:
        self.tries = 0
        self._callback = callback
        self._after = after
        self._name = name
        self._task: asyncio.Task[None] | None = None
        self._cancelled: set[asyncio.Task[None]] = set()

    def schedule_timeout(self) -> None:
        self._cancel()
        delay = self._after(self.tries + 1)
        self._task = asyncio.get_running_loop().create_task(self._fire(delay), name=self._name)

    def reset(self) -> None:
        self.tries = 0
        self._cancel()

    async def stop(self) -> None:
        """Resets, then waits until no run of the callback is left."""
        self.reset()
        cancelled, self._cancelled = self._cancelled, set()
        await _cancel_and_wait(*cancelled)

    def _cancel(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
            # Keep it until it has unwound, so that stop() can wait for it.
            self._cancelled.add(task)
            task.add_done_callback(self._cancelled.discard)

    async def _fire(self, delay: float) -> None:
        await asyncio.sleep(delay)
        self.tries += 1
        result = self._callback()
        if inspect.isawaitable(result):
            await result


# --------------------------------------------------------------------------
# Inbox
# --------------------------------------------------------------------------


class Inbox(Sequence[Message]):
    """Every message a channel received, in order, and a way to wait for more.

    It is a read-only sequence (``len``, indexing, iteration) of the whole
    history, which is what a notebook wants to show. :meth:`get` consumes
    messages one at a time, which is what a test wants: a message that arrived
    before the test asked for it is not missed, and is returned once only.
    """

    def __init__(self, topic: str) -> None:
        self._topic = topic
        self._history: list[Message] = []
        self._unread: deque[Message] = deque()
        self._waiters: list[asyncio.Future[None]] = []

    def __len__(self) -> int:
        return len(self._history)

    @overload
    def __getitem__(self, index: int) -> Message: ...

    @overload
    def __getitem__(self, index: slice) -> list[Message]: ...

    def __getitem__(self, index: int | slice) -> Message | list[Message]:
        return self._history[index]

    def __iter__(self) -> Iterator[Message]:
        return iter(list(self._history))

    def __repr__(self) -> str:
        return (
            f"<Inbox {self._topic!r}: {len(self._history)} messages,"
            f" {len(self._unread)} unread>"
        )

    @property
    def unread(self) -> list[Message]:
        """Messages not yet returned by :meth:`get`, oldest first."""
        return list(self._unread)

    async def get(self, event: str | None = None, timeout: float | None = 5.0) -> Message:
        """Returns the oldest unread message, waiting for one if needed.

        Args:
            event: Only consider messages with this event. Unread messages with
                other events are left for later calls.
            timeout: Seconds to wait; ``None`` waits forever.

        Returns:
            The message, which is then no longer unread.

        Raises:
            TimeoutError: If no such message arrived in time.
        """
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                while (message := self._take(event)) is None:
                    waiter = loop.create_future()
                    self._waiters.append(waiter)
                    try:
                        await waiter
                    finally:
                        if waiter in self._waiters:
                            self._waiters.remove(waiter)
                return message
        except TimeoutError:
            what = f"{event!r} message" if event is not None else "message"
            raise TimeoutError(f"no {what} on {self._topic!r} within {timeout:g} s") from None

    def _take(self, event: str | None) -> Message | None:
        for index, message in enumerate(self._unread):
            if event is None or message.event == event:
                del self._unread[index]
                return message
        return None

    def _append(self, message: Message) -> None:
        self._history.append(message)
        self._unread.append(message)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


# --------------------------------------------------------------------------
# Push
# --------------------------------------------------------------------------


class Push:
    """One message sent on a channel, and its reply once the server sends one.

    Created by :meth:`Channel.join`, :meth:`Channel.push` and
    :meth:`Channel.leave`. Register hooks with :meth:`receive`, or await it::

        channel.push("ping", {}).receive("ok", print).receive("timeout", warn)
        reply = await channel.push("ping", {})

    A push gets a fresh ``ref`` every time it is (re)sent; the reply carries the
    same ref, which is how it finds its way back here.

    Attributes:
        channel: The channel it is sent on.
        event: The event, e.g. ``"phx_join"`` or ``"new_msg"``.
        timeout: Seconds to wait for the reply.
        ref: The ref of the latest send, or ``None`` before the first one.
        sent: Whether it went to the socket (which may still buffer it).
    """

    def __init__(
        self, channel: Channel, event: str, payload: Callable[[], Any], timeout: float
    ) -> None:
        self.channel = channel
        self.event = event
        self.timeout = timeout
        self.ref: str | None = None
        self.sent = False
        self._payload = payload
        self._received: dict[str, Any] | None = None
        self._hooks: list[tuple[str, Callable[[Any], None]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._waiter: asyncio.Future[dict[str, Any]] | None = None

    def __repr__(self) -> str:
        status = self._received.get("status") if self._received else None
        return (
            f"<Push {self.event!r} on {self.channel.topic!r}"
            f" ref={self.ref!r} status={status!r}>"
        )

    def receive(self, status: str, callback: Callable[[Any], None]) -> Push:
        """Calls ``callback(response)`` when the outcome has the given status.

        If that outcome has already happened, the callback runs at once.

        Args:
            status: ``"ok"``, ``"error"`` or ``"timeout"`` (whose response is ``{}``).
            callback: Called with the reply's ``response``.

        Returns:
            The push itself, so that calls can be chained.
        """
        if self._has_received(status):
            assert self._received is not None
            _invoke(f"receive({status!r})", callback, self._received.get("response"))
        self._hooks.append((status, callback))
        return self

    def __await__(self) -> Generator[Any, None, Reply]:
        return self._wait().__await__()

    async def _wait(self) -> Reply:
        received = self._received
        if received is None:
            if self._waiter is None or self._waiter.done():
                self._waiter = asyncio.get_running_loop().create_future()
            # Shielded, so that one cancelled awaiter does not cancel the others.
            received = await asyncio.shield(self._waiter)
        if received.get("status") == "timeout":
            raise PushTimeout(self.channel.topic, self.event, self.timeout)
        return Reply(received.get("status"), received.get("response"))

    def _send(self) -> None:
        # A push that already timed out (for example while buffered) is dead.
        if self._has_received("timeout"):
            return
        self._start_timeout()
        self.sent = True
        self.channel.socket.push(
            Message(
                self.channel.topic, self.event, self._payload(), self.ref, self.channel.join_ref
            )
        )

    def _resend(self, timeout: float) -> None:
        self.timeout = timeout
        self._reset()
        self._send()

    def _reset(self) -> None:
        self._cancel_ref_event()
        # phoenix.js leaves the timer running here and lets it fire into the
        # void; cancelling it says the same thing more plainly.
        self._cancel_timeout()
        self.ref = None
        self.sent = False
        # Whoever awaits an unfinished attempt keeps waiting for the next one.
        self._forget()

    def _forget(self) -> None:
        self._received = None
        if self._waiter is not None and self._waiter.done():
            self._waiter = None

    def _start_timeout(self) -> None:
        self._cancel_timeout()
        self._cancel_ref_event()
        self.ref = self.channel.socket.make_ref()
        self.channel._replies[self.ref] = self
        self._timer = asyncio.get_running_loop().call_later(
            self.timeout, self._trigger, "timeout", {}
        )

    def _cancel_timeout(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _cancel_ref_event(self) -> None:
        # Stop listening for replies; the ref itself is kept, because the join
        # push's ref is the channel's join_ref.
        if self.ref is not None and self.channel._replies.get(self.ref) is self:
            del self.channel._replies[self.ref]

    def _trigger(self, status: str, response: Any) -> None:
        # A local outcome (timeout, or a leave answered locally) goes the same
        # way as a reply, but only while the push still waits for one.
        if self.ref is not None and self.channel._replies.get(self.ref) is self:
            self._on_reply({"status": status, "response": response})

    def _on_reply(self, payload: Any) -> None:
        self._cancel_ref_event()
        self._cancel_timeout()
        received = dict(payload) if isinstance(payload, Mapping) else {"response": payload}
        self._received = received
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(received)
        status = received.get("status")
        for hook_status, callback in list(self._hooks):
            if hook_status == status:
                _invoke(f"receive({status!r})", callback, received.get("response"))

    def _has_received(self, status: str) -> bool:
        return self._received is not None and self._received.get("status") == status


# --------------------------------------------------------------------------
# Channel
# --------------------------------------------------------------------------


class Channel:
    """The client's side of one topic, created by :meth:`Socket.channel`.

    States: ``"closed"`` (not joined, or left), ``"joining"``, ``"joined"``,
    ``"leaving"`` and ``"errored"`` (the join failed, or the channel or the
    connection crashed; a rejoin is scheduled).

    Attributes:
        topic: The topic, e.g. ``"room:lobby"``.
        socket: The socket it lives on.
        state: The current state.
        timeout: Default timeout of pushes, in seconds.
        messages: Every message this channel received (see :class:`Inbox`).
    """

    def __init__(self, topic: str, params: Any, socket: Socket) -> None:
        self.topic = topic
        self.socket = socket
        self.state: ChannelState = "closed"
        self.timeout = socket.timeout
        self.messages = Inbox(topic)
        self._params = _closure(params if params is not None else {})
        self._bindings: list[tuple[str, int, Callable[[Any], None]]] = []
        self._binding_ref = 0
        self._joined_once = False
        self._join_push = Push(self, PHX_JOIN, self._params, self.timeout)
        self._push_buffer: list[Push] = []
        self._replies: dict[str, Push] = {}
        self._rejoin_timer = _Timer(
            self._rejoin_if_connected,
            socket._rejoin_after,
            name=f"channels_core.client rejoin {topic}",
        )
        # The socket's state drives the channel's: a reconnect rejoins it.
        self._socket_refs = [
            socket.on_error(lambda _error: self._rejoin_timer.reset()),
            socket.on_open(self._on_socket_open),
        ]
        self._join_push.receive("ok", self._on_join_ok)
        self._join_push.receive("error", self._on_join_error)
        self._join_push.receive("timeout", self._on_join_timeout)
        self.on_close(self._on_close)
        self.on_error(self._on_error)

    def __repr__(self) -> str:
        return f"<Channel {self.topic!r} state={self.state!r} join_ref={self.join_ref!r}>"

    @property
    def params(self) -> Any:
        """The join params, as they will be sent on the next (re)join."""
        return self._params()

    @property
    def join_ref(self) -> str | None:
        """The ref of the latest join; it tags every message of this membership."""
        return self._join_push.ref

    @property
    def join_push(self) -> Push:
        """The join push, reused by every rejoin.

        Awaiting it returns the outcome of the latest join attempt, waiting for
        it if needed. Once a joined channel errors, the old outcome is
        forgotten, so ``await channel.join_push`` then waits for the rejoin.
        """
        return self._join_push

    # Public API ----------------------------------------------------------

    def join(self, timeout: float | None = None) -> Push:
        """Joins the topic.

        The channel rejoins by itself after errors and reconnects, so this is
        called once per channel; to join again after :meth:`leave`, create a
        new channel.

        Args:
            timeout: Seconds to wait for the join reply; also becomes the
                channel's default timeout.

        Returns:
            The join push. Awaiting it returns the join :class:`Reply`.

        Raises:
            RuntimeError: If called a second time.
        """
        if self._joined_once:
            raise RuntimeError(
                "tried to join multiple times: join() can only be called once per "
                "Channel; create a new one with socket.channel()"
            )
        if timeout is not None:
            self.timeout = timeout
        self._joined_once = True
        self._rejoin()
        return self._join_push

    def leave(self, timeout: float | None = None) -> Push:
        """Leaves the topic; the channel ends up ``"closed"``.

        Args:
            timeout: Seconds to wait for the server's acknowledgement.

        Returns:
            The leave push. Awaiting it returns the server's reply, or
            ``Reply("ok", {})`` when there was nothing to wait for.
        """
        timeout = self.timeout if timeout is None else timeout
        self._rejoin_timer.reset()
        self._join_push._cancel_timeout()
        # phoenix.js checks canPush() after switching to "leaving", when it can
        # no longer be true, so it always closes at once and never sees the
        # server's reply. Checking before the switch does what its docs say:
        # wait for the acknowledgement, or for the timeout.
        could_push = self._can_push()
        self.state = "leaving"
        leave_push = Push(self, PHX_LEAVE, lambda: {}, timeout)

        def close(_response: Any) -> None:
            logger.debug("leave %s", self.topic)
            self._trigger(PHX_CLOSE, "leave")

        leave_push.receive("ok", close).receive("error", close).receive("timeout", close)
        if self.socket.is_connected():
            # Sent even while joining, so that a join that is about to succeed
            # on the server does not leave a channel process behind.
            leave_push._send()
        else:
            # Without a connection there is no server-side channel left to
            # leave. phoenix.js buffers the leave anyway and sends it after the
            # next connect, where it can only earn an error.
            leave_push._start_timeout()
        if not could_push:
            leave_push._trigger("ok", {})
        return leave_push

    def push(
        self,
        event: str,
        payload: Mapping[str, Any] | bytes | None = None,
        timeout: float | None = None,
    ) -> Push:
        """Pushes an event to the server's ``handle_in``.

        Before the join has succeeded the push is held back and sent once it
        has (its timeout already runs).

        Args:
            event: The event, e.g. ``"new_msg"``.
            payload: A JSON-serialisable mapping, or bytes for a binary frame.
            timeout: Seconds to wait for a reply; defaults to the channel's.

        Returns:
            The push. Awaiting it returns the :class:`Reply`.

        Raises:
            RuntimeError: If :meth:`join` was not called yet.
            TypeError: If the payload is bytes and the serializer is V1.
        """
        if not self._joined_once:
            raise RuntimeError(
                f"tried to push {event!r} to {self.topic!r} before joining; "
                "call channel.join() first"
            )
        if payload is None:
            payload = {}
        if isinstance(payload, (bytes, bytearray, memoryview)):
            if not self.socket._serializer.binary:
                raise TypeError(f"vsn {self.socket.vsn!r} cannot carry binary payloads")
            payload = bytes(payload)
        data = payload
        push = Push(self, event, lambda: data, self.timeout if timeout is None else timeout)
        if self._can_push():
            push._send()
        else:
            push._start_timeout()
            self._push_buffer.append(push)
        return push

    def on(self, event: str, callback: Callable[[Any], None]) -> int:
        """Calls ``callback(payload)`` for every ``event`` this channel receives.

        Args:
            event: The event, e.g. ``"new_msg"``.
            callback: Called with the message's payload.

        Returns:
            A ref for :meth:`off`.
        """
        ref = self._binding_ref
        self._binding_ref += 1
        self._bindings.append((event, ref, callback))
        return ref

    def off(self, event: str, ref: int | None = None) -> None:
        """Removes the callback ``ref`` of ``event``, or all of them if ``ref`` is None."""
        self._bindings = [
            binding
            for binding in self._bindings
            if not (binding[0] == event and (ref is None or binding[1] == ref))
        ]

    def on_error(self, callback: Callable[[Any], None]) -> int:
        """Calls ``callback(reason)`` when the channel errors.

        ``reason`` is the ``phx_error`` payload, or
        ``{"source": "transport", "reason": ...}`` when the connection failed.
        """
        return self.on(PHX_ERROR, callback)

    def on_close(self, callback: Callable[[Any], None]) -> int:
        """Calls ``callback(payload)`` when the channel closes (left or closed by the server)."""
        return self.on(PHX_CLOSE, callback)

    async def next_message(self, event: str | None = None, timeout: float | None = 5.0) -> Message:
        """Waits for the next unread message; see :meth:`Inbox.get`.

        Replies (``phx_reply``) are messages too: pass ``event`` to skip them.

        Raises:
            TimeoutError: If none arrived in time.
        """
        return await self.messages.get(event, timeout)

    # Internals -----------------------------------------------------------

    def _can_push(self) -> bool:
        return self.socket.is_connected() and self.state == "joined"

    def _is_member(self, message: Message) -> bool:
        if message.topic != self.topic:
            return False
        # A message tagged with another join_ref belongs to an earlier
        # membership of this topic (before a rejoin): drop it, whatever the
        # event. Untagged messages (broadcasts) are always for us.
        if message.join_ref and message.join_ref != self.join_ref:
            logger.debug(
                "dropping outdated message %s %s (join_ref %s, ours %s)",
                message.topic, message.event, message.join_ref, self.join_ref,
            )
            return False
        return True

    def _receive(self, message: Message) -> None:
        self.messages._append(message)
        self._trigger(message.event, message.payload, message.ref)

    def _trigger(self, event: str, payload: Any, ref: str | None = None) -> None:
        if event == PHX_REPLY and ref is not None:
            push = self._replies.get(ref)
            if push is not None:
                push._on_reply(payload)
        for bound_event, _ref, callback in list(self._bindings):
            if bound_event == event:
                _invoke(f"on({event!r})", callback, payload)

    def _rejoin(self, timeout: float | None = None) -> None:
        if self.state == "leaving":
            return
        self.socket._leave_open_topic(self.topic, keep=self)
        self.state = "joining"
        self._join_push._resend(self.timeout if timeout is None else timeout)

    def _rejoin_if_connected(self) -> None:
        if self.socket.is_connected():
            self._rejoin()

    def _on_socket_open(self) -> None:
        self._rejoin_timer.reset()
        if self.state == "errored":
            self._rejoin()

    def _on_join_ok(self, _response: Any) -> None:
        self.state = "joined"
        self._rejoin_timer.reset()
        buffered, self._push_buffer = self._push_buffer, []
        for push in buffered:
            push._send()

    def _on_join_error(self, _response: Any) -> None:
        # Like phoenix.js, a refused join is retried with backoff too: the
        # reason (say, a missing resource) may go away.
        self.state = "errored"
        if self.socket.is_connected():
            self._rejoin_timer.schedule_timeout()

    def _on_join_timeout(self, _response: Any) -> None:
        logger.debug("join timeout %s (%s) after %g s", self.topic, self.join_ref, self.timeout)
        # The server may still join us late; tell it not to bother. (phoenix.js
        # also buffers this leave while disconnected; there is nothing to leave
        # then.)
        if self.socket.is_connected():
            Push(self, PHX_LEAVE, lambda: {}, self.timeout)._send()
        self.state = "errored"
        self._join_push._reset()
        if self.socket.is_connected():
            self._rejoin_timer.schedule_timeout()

    def _on_close(self, _payload: Any) -> None:
        self._rejoin_timer.reset()
        logger.debug("close %s %s", self.topic, self.join_ref)
        self.state = "closed"
        self.socket.remove(self)

    def _on_error(self, reason: Any) -> None:
        logger.debug("error %s %r", self.topic, reason)
        if self.state == "joining":
            self._join_push._reset()
        elif self.state == "joined":
            # The old "ok" no longer describes the channel: forget it, so that
            # awaiting the join push waits for the rejoin.
            self._join_push._forget()
        self.state = "errored"
        if self.socket.is_connected():
            self._rejoin_timer.schedule_timeout()


# --------------------------------------------------------------------------
# Socket
# --------------------------------------------------------------------------


class Socket:
    """One WebSocket connection to a Phoenix endpoint, shared by many channels.

    Args:
        url: The endpoint's socket path, e.g. ``"ws://127.0.0.1:4000/socket"``;
            ``/websocket`` and the query string are appended.
        params: Connect params, sent in the query string; a function returning
            them is called at every connect.
        vsn: Serializer version, ``"2.0.0"`` (JSON arrays, binary frames) or
            ``"1.0.0"`` (JSON objects).
        heartbeat_interval: Seconds between heartbeats; a heartbeat still
            unanswered when the next one is due closes the connection.
        timeout: Default timeout of pushes, and of opening the connection.
        reconnect_after: Maps the reconnect attempt number (from 1) to a delay
            in seconds; defaults to :func:`default_reconnect_after`.
        rejoin_after: Maps a channel's rejoin attempt number (from 1) to a
            delay in seconds; defaults to :func:`default_rejoin_after`.
        auth_token: A token sent in the ``Sec-WebSocket-Protocol`` header (see
            :func:`auth_token_subprotocol`), or a function returning it.
        headers: Extra HTTP headers for the handshake (a browser cannot send
            these; it is handy for tests and tools).

    Attributes:
        channels: The channels created on this socket and not closed yet.
        frames: Every frame sent (``"↑"``) and received (``"↓"``), in order,
            as ``(direction, raw)`` pairs: the wire log. It is never trimmed.
    """

    def __init__(
        self,
        url: str,
        *,
        params: Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None = None,
        vsn: str = DEFAULT_VSN,
        heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL,
        timeout: float = DEFAULT_TIMEOUT,
        reconnect_after: Callable[[int], float] | None = None,
        rejoin_after: Callable[[int], float] | None = None,
        auth_token: str | Callable[[], str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if heartbeat_interval <= 0:
            raise ValueError(f"heartbeat_interval must be positive, got {heartbeat_interval}")
        self.url = url
        self.vsn = vsn
        self.timeout = timeout
        self.heartbeat_interval = heartbeat_interval
        self.channels: list[Channel] = []
        self.frames: list[tuple[str, Frame]] = []
        self._serializer = _serializer_for(vsn)
        self._params = _closure(params if params is not None else {})
        self._reconnect_after = reconnect_after or default_reconnect_after
        self._rejoin_after = rejoin_after or default_rejoin_after
        self._auth_token = _closure(auth_token) if auth_token is not None else None
        self._headers = dict(headers or {})
        self._ref = 0
        self._callback_ref = 0
        self._callbacks: dict[str, list[tuple[int, Callable[..., None]]]] = {
            "open": [], "close": [], "error": [], "message": []
        }
        # Frames pushed while disconnected, sent on the next open.
        self._send_buffer: list[Frame] = []
        self._conn: ClientConnection | None = None
        self._connecting = False
        self._connect_lock = asyncio.Lock()
        self._outbox: asyncio.Queue[Frame] | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._writer_task: asyncio.Task[None] | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._pending_heartbeat_ref: str | None = None
        self._heartbeat_reply: asyncio.Future[None] | None = None
        # True until the first open and after disconnect(): a close then is
        # wanted, and must not be answered with a reconnect.
        self._close_was_clean = True
        self._heartbeat_timed_out = False
        self._reconnect_timer = _Timer(
            self._reconnect,
            self._reconnect_after,
            name="channels_core.client reconnect",
        )

    def __repr__(self) -> str:
        return f"<Socket {self.url!r} {self.connection_state()}>"

    async def __aenter__(self) -> Socket:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.disconnect()

    # Connection ----------------------------------------------------------

    def endpoint_url(self) -> str:
        """The URL connected to, with the current params and ``vsn``."""
        return endpoint_url(self.url, self._params(), self.vsn)

    async def connect(self) -> None:
        """Opens the connection; does nothing if it is open already.

        Raises:
            OSError: If the server cannot be reached.
            websockets.exceptions.InvalidHandshake: If the server refused the
                connection, e.g. with HTTP 403 when ``connect`` rejected the params.
            TimeoutError: If the handshake took longer than ``timeout``.
        """
        # Two concurrent connect() calls must not open two connections.
        async with self._connect_lock:
            if self._conn is not None:
                return
            # Connecting now supersedes a reconnect that is waiting for its turn.
            await self._reconnect_timer.stop()
            try:
                await self._open()
            except (OSError, TimeoutError, WebSocketException) as exc:
                # phoenix.js would keep retrying in the background; an explicit
                # connect() that fails is more useful as an exception, so it
                # is not retried.
                self._emit("error", exc)
                raise

    async def disconnect(self, code: int = WS_CLOSE_NORMAL, reason: str = "") -> None:
        """Closes the connection and stops every background task; no reconnect follows.

        Channels that were joined become ``"errored"`` (and rejoin if
        :meth:`connect` is called again), as in phoenix.js.

        Args:
            code: The WebSocket close code.
            reason: The close reason.
        """
        self._close_was_clean = True
        self._heartbeat_timed_out = False
        await self._reconnect_timer.stop()
        conn, reader = self._conn, self._reader_task
        if conn is not None:
            await conn.close(code, reason)
        if reader is not None and reader is not asyncio.current_task():
            # The reader sees the close and runs the close bookkeeping, which
            # also stops the heartbeat and the writer.
            await reader
        for channel in list(self.channels):
            await channel._rejoin_timer.stop()

    def is_connected(self) -> bool:
        """Whether the connection is open."""
        return self._conn is not None and self._conn.state is State.OPEN

    def connection_state(self) -> str:
        """``"connecting"``, ``"open"``, ``"closing"`` or ``"closed"``."""
        if self._conn is None:
            return "connecting" if self._connecting else "closed"
        return {
            State.CONNECTING: "connecting",
            State.OPEN: "open",
            State.CLOSING: "closing",
        }.get(self._conn.state, "closed")

    # Channels ------------------------------------------------------------

    def channel(
        self, topic: str, params: Mapping[str, Any] | Callable[[], Any] | None = None
    ) -> Channel:
        """Creates a channel for ``topic``; call :meth:`Channel.join` on it.

        Args:
            topic: The topic, e.g. ``"room:lobby"``.
            params: Join params; a function returning them is called at every (re)join.
        """
        channel = Channel(topic, params, self)
        self.channels.append(channel)
        return channel

    def remove(self, channel: Channel) -> None:
        """Forgets a channel; closed channels remove themselves."""
        self.off(channel._socket_refs)
        if channel in self.channels:
            self.channels.remove(channel)

    # Callbacks -----------------------------------------------------------

    def on_open(self, callback: Callable[[], None]) -> int:
        """Calls ``callback()`` whenever the connection opens. Returns a ref for :meth:`off`."""
        return self._register("open", callback)

    def on_close(self, callback: Callable[[CloseEvent], None]) -> int:
        """Calls ``callback(CloseEvent)`` whenever the connection closes."""
        return self._register("close", callback)

    def on_error(self, callback: Callable[[BaseException], None]) -> int:
        """Calls ``callback(exception)`` when connecting fails or the connection drops."""
        return self._register("error", callback)

    def on_message(self, callback: Callable[[Message], None]) -> int:
        """Calls ``callback(Message)`` for every message received."""
        return self._register("message", callback)

    def off(self, refs: Iterable[int]) -> None:
        """Removes callbacks registered with the ``on_*`` methods."""
        refs = set(refs)
        for kind, callbacks in self._callbacks.items():
            self._callbacks[kind] = [entry for entry in callbacks if entry[0] not in refs]

    def _register(self, kind: str, callback: Callable[..., None]) -> int:
        # phoenix.js draws these refs from the message ref counter; a separate
        # counter keeps the refs on the wire starting at "1", which makes wire
        # logs easier to read.
        self._callback_ref += 1
        self._callbacks[kind].append((self._callback_ref, callback))
        return self._callback_ref

    def _emit(self, kind: str, *args: Any) -> None:
        for _ref, callback in list(self._callbacks[kind]):
            _invoke(f"socket on_{kind}", callback, *args)

    # Sending -------------------------------------------------------------

    def make_ref(self) -> str:
        """Returns the next message ref: ``"1"``, ``"2"``, ..."""
        self._ref += 1
        return str(self._ref)

    def push(self, message: Message) -> None:
        """Sends a message as is; while disconnected it waits for the next open.

        This is the low-level path every push, join, leave and heartbeat takes.
        Use it to put arbitrary frames on the wire; prefer :meth:`Channel.push`.
        """
        logger.debug(
            "push %s %s (%s, %s) %r",
            message.topic, message.event, message.join_ref, message.ref, message.payload,
        )
        raw = self._serializer.encode(message)
        if self.is_connected() and self._outbox is not None:
            self._outbox.put_nowait(raw)
        else:
            self._send_buffer.append(raw)

    # Internals -----------------------------------------------------------

    async def _open(self) -> None:
        url = self.endpoint_url()
        subprotocols = None
        token = self._auth_token() if self._auth_token is not None else None
        if token:
            # The server must pick one of the offered subprotocols, so the
            # token travels with "phoenix", which the server picks.
            subprotocols = [Subprotocol("phoenix"), Subprotocol(auth_token_subprotocol(token))]
        logger.debug("connecting to %s", url)
        self._connecting = True
        try:
            conn = await ws_connect(
                url,
                subprotocols=subprotocols,
                additional_headers=self._headers or None,
                open_timeout=self.timeout,
                # Phoenix's own heartbeat is the liveness check, as in a
                # browser, which sends no WebSocket pings.
                ping_interval=None,
            )
        finally:
            self._connecting = False
        logger.info("connected to %s", url)
        self._conn = conn
        self._close_was_clean = False
        self._heartbeat_timed_out = False
        # One writer task sends frames in the order they were pushed, while
        # push() itself stays synchronous, as in phoenix.js.
        self._outbox = asyncio.Queue()
        self._writer_task = asyncio.create_task(
            self._write_loop(conn, self._outbox), name="channels_core.client writer"
        )
        self._reader_task = asyncio.create_task(
            self._read_loop(conn), name="channels_core.client reader"
        )
        buffered, self._send_buffer = self._send_buffer, []
        for raw in buffered:
            self._outbox.put_nowait(raw)
        self._reconnect_timer.reset()
        self._heartbeat_task = asyncio.create_task(
            self._heartbeat_loop(conn), name="channels_core.client heartbeat"
        )
        self._emit("open")

    async def _reconnect(self) -> None:
        try:
            await self._open()
        except (OSError, TimeoutError, WebSocketException) as exc:
            logger.info("reconnect attempt %d failed: %s", self._reconnect_timer.tries, exc)
            self._emit("error", exc)
            self._trigger_chan_error("connection_error")
            self._reconnect_timer.schedule_timeout()

    async def _write_loop(self, conn: ClientConnection, outbox: asyncio.Queue[Frame]) -> None:
        while True:
            raw = await outbox.get()
            if conn.state is not State.OPEN:
                # Closing: the reader is about to notice. Do not log a frame
                # that never reaches the wire.
                logger.debug("dropping frame on a closing connection: %r", raw)
                continue
            self.frames.append(("↑", raw))
            try:
                await conn.send(raw)
            except ConnectionClosed:
                return

    async def _read_loop(self, conn: ClientConnection) -> None:
        while True:
            try:
                raw = await conn.recv()
            except ConnectionClosed as exc:
                await self._on_conn_close(conn, exc)
                return
            self.frames.append(("↓", raw))
            try:
                self._on_conn_message(raw)
            except Exception:
                # Keep reading: one bad message must not take the socket down.
                logger.exception("error while handling %r", raw)

    def _on_conn_message(self, raw: Frame) -> None:
        try:
            message = self._serializer.decode(raw)
        except (ValueError, TypeError) as exc:
            logger.warning("dropping a frame that does not decode (%s): %r", exc, raw)
            return
        if message.ref is not None and message.ref == self._pending_heartbeat_ref:
            self._pending_heartbeat_ref = None
            if self._heartbeat_reply is not None and not self._heartbeat_reply.done():
                self._heartbeat_reply.set_result(None)
        if logger.isEnabledFor(logging.DEBUG):
            payload = message.payload
            status = payload.get("status", "") if isinstance(payload, Mapping) else ""
            logger.debug(
                "receive %s %s %s (%s) %r",
                status, message.topic, message.event, message.ref, message.payload,
            )
        for channel in list(self.channels):
            if channel._is_member(message):
                channel._receive(message)
        self._emit("message", message)

    async def _heartbeat_loop(self, conn: ClientConnection) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            ref = self.make_ref()
            reply = loop.create_future()
            self._pending_heartbeat_ref, self._heartbeat_reply = ref, reply
            self.push(Message("phoenix", "heartbeat", {}, ref, None))
            try:
                # The next heartbeat is due one interval later; the reply must
                # be in by then.
                await asyncio.wait_for(reply, self.heartbeat_interval)
            except TimeoutError:
                break
        self._pending_heartbeat_ref = None
        logger.warning("heartbeat timeout; closing the connection to reconnect")
        self._trigger_chan_error("heartbeat_timeout")
        self._close_was_clean = False
        # A close with code 1000 is never answered with a reconnect (see
        # _on_conn_close), so remember that this one must be.
        self._heartbeat_timed_out = True
        await conn.close(WS_CLOSE_NORMAL, "heartbeat timeout")

    async def _on_conn_close(self, conn: ClientConnection, exc: ConnectionClosed) -> None:
        code = conn.close_code if conn.close_code is not None else WS_CLOSE_ABNORMAL
        reason = conn.close_reason or ""
        logger.info("connection closed: code %d %r", code, reason)
        if self._conn is conn:
            self._conn = None
        if self._reader_task is asyncio.current_task():
            self._reader_task = None
        self._pending_heartbeat_ref = None
        await _cancel_and_wait(self._heartbeat_task, self._writer_task)
        self._heartbeat_task = self._writer_task = self._outbox = None
        if code == WS_CLOSE_ABNORMAL:
            # A browser fires "error" before "close" only when the connection
            # failed; a close frame, whatever its code, is not an error.
            self._emit("error", exc)
            self._trigger_chan_error("connection_error")
        self._trigger_chan_error("connection_closed")
        # phoenix.js's rule, exactly: reconnect unless the close was asked for
        # with disconnect(), or the close code is 1000. So a server that closes
        # with 1000 is taken at its word and the socket stays closed; 1001
        # (server going away), 1006 (connection lost) or any other code
        # reconnects. A heartbeat timeout closes with 1000 but reconnects:
        # phoenix.js schedules that reconnect from its teardown instead.
        if self._heartbeat_timed_out or (not self._close_was_clean and code != WS_CLOSE_NORMAL):
            self._reconnect_timer.schedule_timeout()
        self._emit("close", CloseEvent(code, reason))

    def _trigger_chan_error(self, reason: str) -> None:
        for channel in list(self.channels):
            if channel.state not in ("errored", "leaving", "closed"):
                channel._trigger(PHX_ERROR, {"source": "transport", "reason": reason})

    def _leave_open_topic(self, topic: str, keep: Channel) -> None:
        # Two members of one topic on one socket would get each other's
        # messages; the newer join wins.
        for channel in list(self.channels):
            if channel is keep or channel.topic != topic:
                continue
            if channel.state in ("joined", "joining"):
                logger.debug("leaving duplicate topic %r", topic)
                channel.leave()
                return
