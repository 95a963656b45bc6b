"""The Redis adapter: broadcasts that reach every node through one Redis channel.

Mirrors ``Phoenix.PubSub.Redis`` (the ``phoenix_pubsub_redis`` package). Every node
subscribes to one Redis channel per PubSub and publishes each broadcast there once.
Every node receives every message, its own included, and keeps only what is meant
for it:

* a broadcast carries the name of the node that sent it; the sender ignores its own
  copy, because :class:`~channels_core.pubsub.PubSub` already dispatched it to the
  local subscribers before the adapter saw it;
* a direct broadcast carries the name of the one node that must deliver it; every
  other node ignores it.

The node that receives a broadcast dispatches it to its own subscribers with the
dispatcher the sender named. For channels that is the fastlane: what crosses Redis
is the :class:`~channels_core.message.Broadcast`, not encoded frames, and each node
encodes it once per serializer for its own clients. ``broadcast_from`` excludes the
sending channel on the sending node only; the pid means nothing anywhere else, so
it does not travel. ``local_broadcast`` never reaches the adapter at all.

What travels, and why JSON
--------------------------
Phoenix sends ``:erlang.term_to_binary({vsn, mode, node, topic, message,
dispatcher})``: any Erlang term, with the dispatcher as a module name. Python's
equivalent, pickle, runs code on load, so a message here is JSON, and nothing in it
is ever evaluated or imported. One message is one JSON object::

    {"v": 1, "from": "a", "instance": "9f2c41d07b3e", "to": null,
     "topic": "room:lobby",
     "dispatcher": "channels_core.pubsub.fastlane:fastlane_dispatch",
     "message": {"type": "broadcast", "topic": "room:lobby",
                 "event": "new_msg", "payload": {"body": "hi"}}}

``to`` is null for a broadcast and the target node for a direct broadcast (Phoenix
packs the same two cases into ``:except``/``:only`` and one node field). A
``bytes`` payload travels base64-encoded with ``"binary": true`` beside it. Any
other message travels as ``{"type": "json", "value": ...}`` and must be made of
dicts with string keys, lists, strings, numbers, booleans and None, so that it
arrives equal to what was sent; anything else (a tuple, a set, a datetime) is
refused with :class:`TypeError` when it is broadcast, before any node, this one
included, delivers it. ``instance`` tells two adapters that were given the same
node name apart, so that the mistake is logged instead of silently losing
broadcasts.

The dispatcher travels as ``"module:qualname"`` and is looked up on arrival in
an allow-list: :func:`~channels_core.pubsub.default_dispatch`,
:func:`~channels_core.pubsub.fastlane.fastlane_dispatch`, and whatever module-level
functions the adapter was given as ``dispatchers=``. A name that is not on the
list is logged and the message dropped; a dispatcher that is not on it is refused
when broadcasting, so the mistake shows on the sender.

Delivery: at most once, in order
--------------------------------
Broadcasting never blocks and never fails because of Redis: :meth:`RedisAdapter.
broadcast` encodes the message and puts it in a bounded outgoing queue, and one task
publishes from it, in order. When Redis is away the sockets stay up and local
delivery goes on; what would have gone to other nodes is dropped and counted
(:attr:`RedisAdapter.dropped`), not kept for later. The adapter reconnects with
exponential backoff, logging the loss and the recovery, and the first broadcast
after it has resubscribed reaches every node again. So delivery across nodes is
*at most once*, exactly as with Phoenix's Redis adapter (Redis PubSub itself keeps
nothing for a subscriber that is not connected): a broadcast made during an outage
reaches this node's subscribers and no other node's, ever. An application that
needs more (chat history, say) keeps its state elsewhere and lets clients catch up
on rejoin. While connected, broadcasts from one node arrive at every other node
exactly once and in the order they were made; :meth:`RedisAdapter.stop` publishes
what is still queued before it closes its connections.

Phoenix publishes inside ``broadcast`` itself, through a pool of Redix connections,
and hands a Redis error back to the caller. Here ``broadcast`` is a plain function
called from channel code, so it only queues, and the failures it cannot report are
counted and logged instead. The one thing it does raise for is a mistake in the
call itself (a message JSON cannot carry, a dispatcher not on the list), which
would fail the same way on every attempt.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import math
import os
import re
import secrets
import socket
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from .. import tracing
from ..message import Broadcast
from ..process import Pid
from .adapter import Dispatcher, default_dispatch
from .fastlane import fastlane_dispatch

__all__ = ["DEFAULT_CHANNEL", "DEFAULT_URL", "RedisAdapter", "dispatcher_name", "redact_url"]

logger = logging.getLogger("channels_core.pubsub.redis")

DEFAULT_URL = "redis://127.0.0.1:6379/0"
DEFAULT_CHANNEL = "channels_core"

#: The wire format's version; a message with another one is ignored (and logged).
WIRE_VERSION = 1

_URL_SCHEMES = ("redis", "rediss", "unix")
_STOP = object()  # ends the publisher once the queue before it has been flushed
_BATCH = 256  # broadcasts sent in one pipeline round trip at most


def dispatcher_name(dispatcher: Callable[..., Any]) -> str:
    """The name a dispatcher crosses the wire under: ``"module:qualname"``."""
    return f"{dispatcher.__module__}:{dispatcher.__qualname__}"


class RedisAdapter:
    """A PubSub adapter that carries broadcasts to other nodes through Redis.

    Use it as ``PubSub(adapter=RedisAdapter.from_url("redis://127.0.0.1:6379/0",
    node_name="a"))``; every node that shares broadcasts uses the same URL and
    channel and a name of its own.

    Args:
        url: Where Redis is: ``redis://[[user]:password@]host[:port][/db]``,
            ``rediss://`` for TLS, or ``unix:///path/to/socket``.
        node_name: This node's name, unique among the nodes on ``channel``;
            ``<host>-<pid>-<random>`` by default.
        channel: The Redis channel every node publishes to and subscribes to.
        dispatchers: Module-level dispatcher functions allowed to cross the wire,
            besides ``default_dispatch`` and ``fastlane_dispatch``. Every node must
            list the same ones.
        queue_size: Broadcasts waiting to be published at most; more are dropped.
        backoff_initial: Seconds before the first reconnection attempt; doubled
            after each failure...
        backoff_max: ...up to this many seconds.
        connect_timeout: Seconds one connection attempt (and one publish) may take.
        flush_timeout: Seconds :meth:`stop` waits for queued broadcasts to go out.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        node_name: str | None = None,
        channel: str = DEFAULT_CHANNEL,
        dispatchers: Iterable[Callable[..., Any]] = (),
        queue_size: int = 10_000,
        backoff_initial: float = 0.05,
        backoff_max: float = 2.0,
        connect_timeout: float = 2.0,
        flush_timeout: float = 1.0,
    ) -> None:
        scheme = urlsplit(url).scheme
        if scheme not in _URL_SCHEMES:
            raise ValueError(f"not a Redis URL: {redact_url(url)!r} (expected redis://, rediss:// or unix://)")
        if node_name is not None and (not isinstance(node_name, str) or not node_name):
            raise ValueError(f"node_name must be a non-empty string, got {node_name!r}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, got {queue_size}")
        if not 0 < backoff_initial <= backoff_max:
            raise ValueError(f"need 0 < backoff_initial <= backoff_max, got {backoff_initial} and {backoff_max}")
        self.url = url
        self.channel = channel
        self._name = node_name if node_name is not None else _default_node_name()
        self._instance = secrets.token_hex(6)
        self._queue_size = queue_size
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._connect_timeout = connect_timeout
        self._flush_timeout = flush_timeout

        # The allow-list, both ways: function -> wire name to send, name -> function on arrival.
        self._dispatchers: dict[str, Dispatcher] = {}
        for dispatcher in (default_dispatch, fastlane_dispatch, *dispatchers):
            name = dispatcher_name(dispatcher)
            if "<" in name:  # <lambda>, <locals>: no other node could name the same function
                raise ValueError(f"dispatcher {name!r} must be a module-level function to be named across nodes")
            self._dispatchers[name] = dispatcher
        self._names: dict[Any, str] = {fn: name for name, fn in self._dispatchers.items()}

        #: Broadcasts handed to Redis / dropped (Redis away, queue full, PUBLISH refused)
        #: / received from other nodes and dispatched here.
        self.published = 0
        self.dropped = 0
        self.received = 0

        self._pubsub: Any = None
        self._client: aioredis.Redis | None = None
        self._listener: aioredis.client.PubSub | None = None
        self._outbox: asyncio.Queue[Any] | None = None
        self._connection_task: asyncio.Task[None] | None = None
        self._publisher_task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._disconnected = asyncio.Event()
        self._disconnected.set()
        self._overflowing = False
        self._duplicates_seen: set[str] = set()

    @classmethod
    def from_url(
        cls, url: str, node_name: str | None = None, channel: str = DEFAULT_CHANNEL, **options: Any
    ) -> RedisAdapter:
        """An adapter for the Redis at ``url``; ``options`` as for the constructor."""
        return cls(url, node_name=node_name, channel=channel, **options)

    @property
    def url_for_logs(self) -> str:
        """:attr:`url` with its password masked."""
        return redact_url(self.url)

    def __repr__(self) -> str:
        state = "connected" if self.connected else "disconnected"
        return f"<RedisAdapter node={self._name!r} {redact_url(self.url)} channel={self.channel!r} {state}>"

    # The adapter contract

    def node_name(self) -> str:
        return self._name

    async def start(self, pubsub: Any) -> None:
        """Connect and subscribe; if Redis is away, keep trying in the background.

        Returns once the first attempt has succeeded or failed: a node whose Redis
        is down still starts, and serves its own subscribers meanwhile.
        """
        if self._connection_task is not None:
            return
        self._pubsub = pubsub
        # Fresh events and queue: they belong to the running loop.
        self._connected = asyncio.Event()
        self._disconnected = asyncio.Event()
        self._disconnected.set()
        self._outbox = asyncio.Queue(self._queue_size)
        self._overflowing = False
        self._client = aioredis.Redis.from_url(
            self.url,
            client_name=_client_name(self._name),
            socket_connect_timeout=self._connect_timeout,
            socket_timeout=self._connect_timeout,
            # No hidden retries: a failed command fails, the adapter counts and logs it,
            # and reconnecting is this module's job, with its own backoff and log lines.
            retry=Retry(NoBackoff(), 0),
        )
        first_attempt = asyncio.get_running_loop().create_future()
        self._connection_task = asyncio.create_task(
            self._stay_connected(first_attempt), name=f"redis-pubsub connection {self._name}"
        )
        self._publisher_task = asyncio.create_task(self._publish_loop(), name=f"redis-pubsub publisher {self._name}")
        await asyncio.wait({first_attempt, self._connection_task}, return_when=asyncio.FIRST_COMPLETED)

    async def stop(self) -> None:
        """Flush what is queued (for up to ``flush_timeout``), then close every connection."""
        connection_task, publisher_task, outbox = self._connection_task, self._publisher_task, self._outbox
        if connection_task is None or publisher_task is None or outbox is None:
            return
        self._connection_task = self._publisher_task = None
        self._outbox = None  # from now on broadcasts are dropped, so _STOP stays last
        try:
            outbox.put_nowait(_STOP)
        except asyncio.QueueFull:
            publisher_task.cancel()
        await asyncio.wait({publisher_task}, timeout=self._flush_timeout)
        for task in (publisher_task, connection_task):
            task.cancel()
        await asyncio.wait({publisher_task, connection_task})
        await self._close_listener()
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        self._connected.clear()
        self._disconnected.set()
        logger.info(
            "redis pubsub: node %r stopped (%d published, %d dropped, %d received)",
            self._name, self.published, self.dropped, self.received,
        )

    def broadcast(self, topic: str, message: Any, dispatcher: Dispatcher, from_pid: Pid | None) -> None:
        """Queue ``message`` for every other node; ``from_pid`` stays here (see the module docstring).

        Raises:
            TypeError: ``message`` cannot cross as JSON (nothing is delivered anywhere).
            ValueError: ``dispatcher`` is not on this adapter's allow-list.
        """
        self._enqueue(self._encode(None, topic, message, dispatcher), topic)

    def direct_broadcast(self, node_name: str, topic: str, message: Any, dispatcher: Dispatcher) -> None:
        """Queue ``message`` for the node named ``node_name``; a name no node has reaches no one."""
        self._enqueue(self._encode(node_name, topic, message, dispatcher), topic)

    # State, for operators and tests

    @property
    def connected(self) -> bool:
        """True while subscribed: broadcasts are being carried to other nodes."""
        return self._connected.is_set()

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Return once subscribed (again); raise :class:`TimeoutError` after ``timeout`` s."""
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def wait_disconnected(self, timeout: float | None = None) -> None:
        """Return once the adapter knows Redis is away; raise :class:`TimeoutError` after ``timeout`` s."""
        await asyncio.wait_for(self._disconnected.wait(), timeout)

    # Sending

    def _encode(self, to: str | None, topic: str, message: Any, dispatcher: Dispatcher) -> bytes:
        name = self._names.get(dispatcher)
        if name is None:
            raise ValueError(
                f"dispatcher {dispatcher_name(dispatcher)!r} cannot cross nodes: it is not registered with this "
                "RedisAdapter; pass it in RedisAdapter(..., dispatchers=[...]) on every node"
            )
        if isinstance(message, Broadcast):
            _check_str(message.topic, "Broadcast topic")
            _check_str(message.event, "Broadcast event")
            body: dict[str, Any] = {"type": "broadcast", "topic": message.topic, "event": message.event}
            payload = message.payload
            if isinstance(payload, (bytes, bytearray)):
                body["payload"] = base64.b64encode(payload).decode("ascii")
                body["binary"] = True
            else:
                _check_json(payload, "Broadcast payload")
                body["payload"] = payload
        else:
            _check_json(message, "message")
            body = {"type": "json", "value": message}
        envelope = {
            "v": WIRE_VERSION,
            "from": self._name,
            "instance": self._instance,
            "to": to,
            "topic": topic,
            "dispatcher": name,
            "message": body,
        }
        return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()

    def _enqueue(self, data: bytes, topic: str) -> None:
        outbox = self._outbox
        if outbox is None or not self._connected.is_set():
            # Not started, stopped, or Redis away: at most once means not later either.
            self.dropped += 1
            return
        try:
            outbox.put_nowait(data)
        except asyncio.QueueFull:
            self.dropped += 1
            if not self._overflowing:
                self._overflowing = True
                logger.warning(
                    "redis pubsub: node %r outgoing queue is full (%d broadcasts waiting); "
                    "dropping broadcasts to other nodes until it drains",
                    self._name, self._queue_size,
                )
            return
        if tracing.active is not None:
            tracing.hop("pubsub", "RedisAdapter.broadcast", topic=topic, node=self._name)

    async def _publish_loop(self) -> None:
        assert self._outbox is not None and self._client is not None
        outbox, client = self._outbox, self._client
        while True:
            batch = [await outbox.get()]
            while len(batch) < _BATCH and not outbox.empty():
                batch.append(outbox.get_nowait())
            stop = batch[-1] is _STOP
            if stop:
                batch.pop()
            if batch:
                await self._publish(client, batch)
            if outbox.empty():
                self._overflowing = False
            if stop:
                return

    async def _publish(self, client: aioredis.Redis, batch: list[bytes]) -> None:
        if not self._connected.is_set():
            self.dropped += len(batch)  # queued before the outage was noticed
            return
        if tracing.active is not None:
            tracing.hop("pubsub", "RedisAdapter.publish", channel=self.channel, broadcasts=len(batch), node=self._name)
        try:
            if len(batch) == 1:
                results: list[Any] = [await client.publish(self.channel, batch[0])]
            else:
                pipe = client.pipeline(transaction=False)
                for data in batch:
                    pipe.publish(self.channel, data)
                results = await pipe.execute(raise_on_error=False)
        except Exception as exc:  # noqa: BLE001 - the publisher must outlive any failure
            results = [exc] * len(batch)
        failures = [result for result in results if isinstance(result, Exception)]
        self.published += len(batch) - len(failures)
        if failures:
            self.dropped += len(failures)
            logger.warning(
                "redis pubsub: node %r dropped %d broadcast%s: PUBLISH to %s failed: %s",
                self._name, len(failures), "" if len(failures) == 1 else "s", redact_url(self.url),
                _describe(failures[0]),
            )

    # Receiving

    async def _stay_connected(self, first_attempt: asyncio.Future[None]) -> None:
        """Connect, listen until the connection is lost, back off, and again, until stopped."""
        delay = self._backoff_initial
        attempts = 0  # failed attempts since the connection was last up
        dropped_before = self.dropped
        ever_connected = False
        while True:
            try:
                await self._connect()
            except Exception as exc:  # noqa: BLE001 - whatever it was, the node must keep serving
                await self._close_listener()
                attempts += 1
                if not first_attempt.done():
                    first_attempt.set_result(None)
                    logger.warning(
                        "redis pubsub: node %r could not connect to %s: %s; serving this node's "
                        "subscribers only, and retrying",
                        self._name, redact_url(self.url), _describe(exc),
                    )
                else:
                    logger.debug(
                        "redis pubsub: node %r reconnection attempt %d failed: %s; next in %.2f s",
                        self._name, attempts, _describe(exc), delay,
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._backoff_max)
                continue
            if ever_connected:
                lost = self.dropped - dropped_before
                logger.info(
                    "redis pubsub: node %r reconnected to %s after %d failed attempt%s; "
                    "%d broadcast%s to other nodes dropped meanwhile",
                    self._name, redact_url(self.url), attempts, "" if attempts == 1 else "s",
                    lost, "" if lost == 1 else "s",
                )
            else:
                logger.info(
                    "redis pubsub: node %r connected to %s, channel %r",
                    self._name, redact_url(self.url), self.channel,
                )
            ever_connected = True
            attempts = 0
            delay = self._backoff_initial
            self._disconnected.clear()
            self._connected.set()
            if not first_attempt.done():
                first_attempt.set_result(None)
            try:
                await self._listen()
            except Exception as exc:  # noqa: BLE001 - a lost connection, or a bug: reconnect either way
                self._connected.clear()
                self._disconnected.set()
                dropped_before = self.dropped
                logger.warning(
                    "redis pubsub: node %r lost its connection to %s: %s; broadcasts to other nodes "
                    "are dropped until it reconnects",
                    self._name, redact_url(self.url), _describe(_first_failure(exc)),
                )
            finally:
                await self._close_listener()

    async def _connect(self) -> None:
        assert self._client is not None
        # Start from clean connections: after an outage the pooled ones are dead.
        await self._client.connection_pool.disconnect()
        self._listener = listener = self._client.pubsub()
        async with asyncio.timeout(self._connect_timeout):
            await listener.subscribe(self.channel)
            confirmation = await listener.get_message(timeout=None)
            if not confirmation or confirmation.get("type") != "subscribe":
                raise RedisError(f"expected a subscribe confirmation, got {confirmation!r}")
            # The publisher's connection, so that "connected" means both ways.
            await self._client.ping()

    async def _listen(self) -> None:
        listener = self._listener
        assert listener is not None
        while True:
            message = await listener.get_message(timeout=None)
            if message is not None and message.get("type") == "message":
                self._receive(message["data"])

    async def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                await listener.aclose()
            except (RedisError, OSError):
                pass  # it is being thrown away because the connection failed

    def _receive(self, data: bytes) -> None:
        try:
            envelope = json.loads(data)
            sender, to, topic, name, message = _decode(envelope)
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            logger.warning(
                "redis pubsub: node %r ignored a malformed message on channel %r: %s (%r)",
                self._name, self.channel, exc, bytes(data[:120]),
            )
            return
        if sender == self._name:
            instance = envelope.get("instance")
            if instance != self._instance and instance not in self._duplicates_seen:
                self._duplicates_seen.add(instance)
                logger.error(
                    "redis pubsub: another node also calls itself %r on channel %r; node names must be "
                    "unique, and this node ignores its broadcasts",
                    self._name, self.channel,
                )
            return  # our own broadcast: the local subscribers have it already
        if to is not None and to != self._name:
            return
        dispatcher = self._dispatchers.get(name)
        if dispatcher is None:
            logger.warning(
                "redis pubsub: node %r ignored a broadcast from node %r with unregistered dispatcher %r; "
                "register it with RedisAdapter(..., dispatchers=[...]) on every node",
                self._name, sender, name,
            )
            return
        self.received += 1
        if tracing.active is not None:
            tracing.hop("pubsub", "RedisAdapter.receive", topic=topic, sender=sender, node=self._name)
        try:
            self._pubsub.dispatch_local(topic, message, None, dispatcher)
        except Exception:
            logger.exception(
                "redis pubsub: node %r: dispatcher %r raised on a broadcast to %r from node %r",
                self._name, name, topic, sender,
            )


# Helpers


def _decode(envelope: Any) -> tuple[str, str | None, str, str, Any]:
    """``(sender, target, topic, dispatcher name, message)``; ValueError if it is not one of ours."""
    if not isinstance(envelope, dict):
        raise ValueError("not a JSON object")
    if envelope.get("v") != WIRE_VERSION:
        raise ValueError(f"wire version {envelope.get('v')!r}, this node speaks {WIRE_VERSION}")
    sender, to, topic, name, body = (
        envelope["from"], envelope["to"], envelope["topic"], envelope["dispatcher"], envelope["message"]
    )
    for field, value in (("from", sender), ("topic", topic), ("dispatcher", name)):
        if not isinstance(value, str):
            raise ValueError(f"{field!r} is not a string")
    if to is not None and not isinstance(to, str):
        raise ValueError("'to' is neither null nor a string")
    if not isinstance(body, dict):
        raise ValueError("'message' is not an object")
    kind = body.get("type")
    if kind == "broadcast":
        payload = body["payload"]
        if body.get("binary") is True:
            payload = base64.b64decode(payload, validate=True)
        message: Any = Broadcast(topic=body["topic"], event=body["event"], payload=payload)
    elif kind == "json":
        message = body["value"]
    else:
        raise ValueError(f"unknown message type {kind!r}")
    return sender, to, topic, name, message


def _check_str(value: Any, where: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"RedisAdapter cannot carry a {where} of type {type(value).__name__}: it must be a str")


def _check_json(value: Any, where: str) -> None:
    """Refuse what JSON would not bring back equal: the receiver must get what was sent."""
    if value is None or isinstance(value, (str, bool, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(
                f"RedisAdapter cannot carry {where} = {value!r} to other nodes: JSON has no NaN or infinity"
            )
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check_json(item, f"{where}[{index}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(
                    f"RedisAdapter cannot carry {where} to other nodes: its key {key!r} is not a str, "
                    "and JSON object keys are strings"
                )
            _check_json(item, f"{where}[{key!r}]")
        return
    hint = "; use a list" if isinstance(value, tuple) else ""
    raise TypeError(
        f"RedisAdapter cannot carry {where} to other nodes: its type, {type(value).__name__}, does not cross "
        "Redis as JSON (dict with str keys, list, str, int, float, bool, None; bytes only as a whole "
        f"Broadcast payload){hint}"
    )


def _describe(exc: BaseException) -> str:
    """``"ConnectionError: Error 111 connecting to …"``: the kind of failure, then redis-py's words."""
    text = str(exc).rstrip(".")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _first_failure(exc: BaseException) -> BaseException:
    """What went wrong first: redis-py tries one reconnection itself, and its error hides the real one."""
    while isinstance(exc.__context__, (RedisError, OSError)):
        exc = exc.__context__
    return exc


def _default_node_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def _client_name(node_name: str) -> str:
    # CLIENT SETNAME refuses spaces; the name makes each node's connections easy to spot in CLIENT LIST.
    return "channels_core:" + re.sub(r"[^A-Za-z0-9_.:@-]", "_", node_name)


def redact_url(url: str) -> str:
    """``url`` without its password, fit for a log line."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))
