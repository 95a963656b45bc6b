"""Two nodes, one Redis: the Redis PubSub adapter against a real redis-server.

Each test starts its own ``redis-server`` (Debian's binary) on 127.0.0.1 and a free
port, and two demo servers, nodes "a" and "b", whose PubSubs share broadcasts
through it. Clients are plain WebSocket connections, so every assertion is on the
exact frames a browser would get; one test drives phoenix.js in Node instead.

What the tests pin down: a broadcast from either node reaches every client on both
nodes exactly once and in order; ``broadcast_from`` skips only the sender;
``local_broadcast`` never touches Redis; ``direct_broadcast`` reaches one node; what
crosses Redis is JSON with a dispatcher *name* from an allow-list; and when Redis goes
away the sockets stay up, local delivery goes on, what was broadcast meanwhile is
lost to the other nodes (at most once), and the first broadcast after the adapter
has reconnected reaches everyone exactly once. Stopping a node leaves no Redis
connection and no task behind.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import logging
import math
import os
import shutil
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import websockets

from channels_core import process
from channels_core.__main__ import main as cli_main
from channels_core.demo import create_app
from channels_core.message import Broadcast
from channels_core.process import Pid
from channels_core.pubsub import PubSub, RedisAdapter, default_dispatch
from channels_core.pubsub.fastlane import Fastlane, fastlane_dispatch
from channels_core.pubsub.redis import dispatcher_name
from channels_core.server import Server
from helpers import REDIS_SERVER, ROOT, RawClient, RedisServer, free_port, node_available, seconds, wait_until

LOGGER = "channels_core.pubsub.redis"
TOPIC = "room:lobby"
CHANNEL = "channels_core"

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not os.path.exists(REDIS_SERVER), reason="needs Debian's redis-server"),
]


# A real redis-server (tests/helpers.py), started and stopped by the test


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    server = RedisServer(tmp_path)
    await server.start()
    yield server
    if server.process is not None:
        # Whatever the test did, every node it started has closed its connections.
        await server.wait_node_clients([])
    await server.stop()


# Logs, waited on as events


class LogWatch(logging.Handler):
    """Collect the adapter's log records and wake whoever waits for one."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self._changed.set()

    def lines(self, text: str) -> list[str]:
        return [r.getMessage() for r in self.records if text in r.getMessage()]

    async def wait_for(self, text: str, count: int = 1, timeout: float = 5.0) -> list[str]:
        async with asyncio.timeout(seconds(timeout)):
            while len(found := self.lines(text)) < count:
                self._changed.clear()
                await self._changed.wait()
        return found


@pytest.fixture
def redis_log(caplog: pytest.LogCaptureFixture) -> Any:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    watch = LogWatch()
    logging.getLogger(LOGGER).addHandler(watch)
    yield watch
    logging.getLogger(LOGGER).removeHandler(watch)


# Nodes and clients


@dataclass
class Node:
    name: str
    server: Server

    @property
    def endpoint(self) -> Any:
        return self.server.app

    @property
    def pubsub(self) -> PubSub:
        return self.endpoint.pubsub

    @property
    def adapter(self) -> RedisAdapter:
        return self.pubsub.adapter  # type: ignore[return-value]


def record_dispatch(subscribers: Sequence[tuple[Pid, Any]], from_pid: Pid | None, message: Any) -> None:
    """A custom dispatcher, registered by name on both nodes: tags what it delivers."""
    for pid, metadata in subscribers:
        if pid != from_pid:
            process.send(pid, ("via record_dispatch", metadata, message))


def exploding_dispatch(subscribers: Sequence[tuple[Pid, Any]], from_pid: Pid | None, message: Any) -> None:
    raise RuntimeError("this dispatcher always fails")


@pytest.fixture
async def start_node(
    redis_server: RedisServer, start_server: Callable[..., Awaitable[Server]]
) -> Callable[..., Awaitable[Node]]:
    async def start(name: str, **options: Any) -> Node:
        options = {"backoff_initial": 0.02, "backoff_max": 0.2, **options}
        adapter = RedisAdapter.from_url(redis_server.url, node_name=name, **options)
        return Node(name, await start_server(create_app(pubsub=PubSub(adapter))))

    return start


@pytest.fixture
async def ws_connect(start_server: Any) -> AsyncIterator[Callable[[Node | str, str], Awaitable[RawClient]]]:
    """Connect as ``user`` to a node (or to a ``ws://host:port`` of a server started otherwise)."""
    clients: list[RawClient] = []

    async def connect(node: Node | str, user: str) -> RawClient:
        base = node.server.ws_url if isinstance(node, Node) else node
        url = f"{base}/socket/websocket?vsn=2.0.0&user_id={user}"
        client = RawClient(await websockets.connect(url))
        clients.append(client)
        return client

    yield connect
    for client in clients:
        await client.close()


def user_entered(user: str) -> list[Any]:
    return [None, None, TOPIC, "user_entered", {"user": user}]


def new_msg(body: str) -> list[Any]:
    """``new_msg`` as every client gets it: intercepted, pushed by handle_out with the join_ref."""
    return ["1", None, TOPIC, "new_msg", {"body": body, "transport": ":websocket"}]


def fastlane(event: str, payload: dict[str, Any]) -> list[Any]:
    return [None, None, TOPIC, event, payload]


def ok_reply(ref: str) -> list[Any]:
    return ["1", ref, TOPIC, "phx_reply", {"status": "ok", "response": {}}]


async def join(client: RawClient, user: str) -> None:
    await client.send(["1", "1", TOPIC, "phx_join", {"user": user}])
    assert await client.recv_n(3) == [
        ok_reply("1"),
        user_entered(user),
        ["1", None, TOPIC, "joined", {"status": "connected", "user_id": user}],
    ]


class Observer:
    """A process subscribed to room:lobby on one node: it sees every broadcast that reached the node.

    Broadcasts reach other nodes a little later than their own; waiting until every
    node's observer has seen one is how a test knows that it has landed everywhere.
    """

    def __init__(self, node: Node) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.pid = process.spawn(collect, self.queue, role=f"test observer {node.name}")
        node.pubsub.subscribe(TOPIC, pid=self.pid)

    async def saw(self, event: str, payload: Any) -> None:
        async with asyncio.timeout(seconds(2)):
            while await self.queue.get() != Broadcast(TOPIC, event, payload):
                pass

    def stop(self) -> None:
        process.send(self.pid, "stop")


async def join_all(clients: dict[str, RawClient], observers: Sequence[Observer]) -> None:
    """Join in order; each earlier client sees each later one enter, from whichever node.

    Each join's user_entered has reached every node before the next client joins, so
    that no client sees one that was broadcast before it joined.
    """
    joined: list[RawClient] = []
    for user, client in clients.items():
        await join(client, user)
        await asyncio.gather(*(observer.saw("user_entered", {"user": user}) for observer in observers))
        for earlier in joined:
            assert await earlier.recv() == user_entered(user)
        joined.append(client)


async def silence(*clients: RawClient) -> None:
    """Nothing more arrives on any of ``clients``: what came was all there was."""
    await asyncio.gather(*(client.expect_silence() for client in clients))


@dataclass
class Cluster:
    a: Node
    b: Node
    clients: dict[str, RawClient]
    redis: RedisServer

    def __getattr__(self, user: str) -> RawClient:
        try:
            return self.clients[user]
        except KeyError:
            raise AttributeError(user) from None

    def all(self) -> list[RawClient]:
        return list(self.clients.values())


@pytest.fixture
async def cluster(
    redis_server: RedisServer,
    start_node: Callable[..., Awaitable[Node]],
    ws_connect: Callable[[Node, str], Awaitable[RawClient]],
) -> AsyncIterator[Cluster]:
    """Nodes a and b, with clients a1 and a2 on a, b1 and b2 on b, all joined to room:lobby."""
    a, b = await start_node("a"), await start_node("b")
    observers = [Observer(a), Observer(b)]
    clients = {user: await ws_connect(a if user[0] == "a" else b, user) for user in ("a1", "a2", "b1", "b2")}
    await join_all(clients, observers)
    yield Cluster(a, b, clients, redis_server)
    for observer in observers:
        observer.stop()


@pytest.fixture
async def cluster_with_dispatchers(
    redis_server: RedisServer,
    start_node: Callable[..., Awaitable[Node]],
    ws_connect: Callable[[Node, str], Awaitable[RawClient]],
) -> AsyncIterator[Cluster]:
    """Nodes a and b that both allow record_dispatch and exploding_dispatch; a1 and b1 joined."""
    dispatchers = [record_dispatch, exploding_dispatch]
    a, b = await start_node("a", dispatchers=dispatchers), await start_node("b", dispatchers=dispatchers)
    observers = [Observer(a), Observer(b)]
    clients = {"a1": await ws_connect(a, "a1"), "b1": await ws_connect(b, "b1")}
    await join_all(clients, observers)
    yield Cluster(a, b, clients, redis_server)
    for observer in observers:
        observer.stop()


class Spy:
    """A bare Redis subscriber on the adapters' channel: sees exactly what crosses the wire."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self.pubsub = client.pubsub()

    async def next(self, timeout: float = 2.0) -> Any:
        async with asyncio.timeout(seconds(timeout)):
            while True:
                message = await self.pubsub.get_message(timeout=None)
                if message and message["type"] == "message":
                    return json.loads(message["data"])


@pytest.fixture
async def spy(redis_server: RedisServer) -> AsyncIterator[Spy]:
    client = aioredis.Redis(host="127.0.0.1", port=redis_server.port, client_name="test-spy")
    spy = Spy(client)
    await spy.pubsub.subscribe(CHANNEL)
    yield spy
    await spy.pubsub.aclose()
    await client.aclose()


async def collect(queue: asyncio.Queue[Any]) -> None:
    """A process that hands everything it receives to the test, until told "stop"."""
    while (message := await process.receive()) != "stop":
        queue.put_nowait(message)


# Broadcasts across nodes


async def test_new_msg_from_either_node_reaches_every_client_exactly_once(cluster: Cluster) -> None:
    await cluster.a1.send(["1", "2", TOPIC, "new_msg", {"body": "hi from a1"}])
    assert await cluster.a1.recv_n(2) == [ok_reply("2"), new_msg("hi from a1")]
    for client in (cluster.a2, cluster.b1, cluster.b2):
        assert await client.recv() == new_msg("hi from a1")

    await cluster.b2.send(["1", "2", TOPIC, "new_msg", {"body": "hi from b2"}])
    assert await cluster.b2.recv_n(2) == [ok_reply("2"), new_msg("hi from b2")]
    for client in (cluster.a1, cluster.a2, cluster.b1):
        assert await client.recv() == new_msg("hi from b2")
    await silence(*cluster.all())
    # Each node published its own broadcasts and dispatched the other's: 2 joins + 1 message each.
    assert (cluster.a.adapter.published, cluster.a.adapter.received) == (3, 3)
    assert (cluster.b.adapter.published, cluster.b.adapter.received) == (3, 3)
    assert cluster.a.adapter.dropped == cluster.b.adapter.dropped == 0


async def test_bench_broadcast_arrives_in_order_on_both_nodes(cluster: Cluster) -> None:
    bench = [fastlane("bench_msg", {"i": i}) for i in range(1, 21)]
    await cluster.b1.send(["1", "2", TOPIC, "bench_broadcast", {"n": 20}])
    # On the sender's node the fastlane frames go out before the reply, as in Phoenix.
    assert await cluster.b1.recv_n(21) == [*bench, ok_reply("2")]
    for client in (cluster.b2, cluster.a1, cluster.a2):
        assert await client.recv_n(20) == bench
    await silence(*cluster.all())


async def test_broadcast_from_skips_only_the_sender(cluster: Cluster) -> None:
    # a1's channel process: the first channel subscribed to the topic on node a.
    channels = [pid for pid, metadata in cluster.a.pubsub.subscribers(TOPIC) if isinstance(metadata, Fastlane)]
    a1_channel, _a2_channel = channels
    cluster.a.endpoint.broadcast_from(a1_channel, TOPIC, "shout", {"from": "a1"})
    # The pid means nothing on node b, so both of b's clients get it.
    for client in (cluster.a2, cluster.b1, cluster.b2):
        assert await client.recv() == fastlane("shout", {"from": "a1"})
    await silence(*cluster.all())


async def test_local_broadcast_stays_on_its_node(cluster: Cluster, spy: Spy) -> None:
    cluster.a.endpoint.local_broadcast(TOPIC, "local_only", {"n": 1})
    cluster.a.endpoint.broadcast(TOPIC, "everywhere", {"n": 2})
    for client in (cluster.a1, cluster.a2):
        assert await client.recv_n(2) == [fastlane("local_only", {"n": 1}), fastlane("everywhere", {"n": 2})]
    for client in (cluster.b1, cluster.b2):
        assert await client.recv() == fastlane("everywhere", {"n": 2})
    # The first thing Redis carried is the second broadcast: the local one never left node a.
    assert (await spy.next())["message"]["event"] == "everywhere"
    await silence(*cluster.all())


async def test_direct_broadcast_reaches_only_the_named_node(cluster: Cluster) -> None:
    cluster.a.pubsub.direct_broadcast("b", TOPIC, Broadcast(TOPIC, "direct", {"to": "b"}), fastlane_dispatch)
    for client in (cluster.b1, cluster.b2):
        assert await client.recv() == fastlane("direct", {"to": "b"})
    # To its own name a node delivers at once, without Redis.
    cluster.b.pubsub.direct_broadcast("b", TOPIC, Broadcast(TOPIC, "direct", {"to": "b itself"}), fastlane_dispatch)
    for client in (cluster.b1, cluster.b2):
        assert await client.recv() == fastlane("direct", {"to": "b itself"})
    # A name no node has: published, and every node ignores it.
    cluster.b.pubsub.direct_broadcast("c", TOPIC, Broadcast(TOPIC, "direct", {"to": "c"}), fastlane_dispatch)
    cluster.b.pubsub.direct_broadcast("a", TOPIC, Broadcast(TOPIC, "direct", {"to": "a"}), fastlane_dispatch)
    for client in (cluster.a1, cluster.a2):
        assert await client.recv() == fastlane("direct", {"to": "a"})
    await silence(*cluster.all())


async def test_disconnect_by_socket_id_closes_connections_on_the_other_node(cluster: Cluster) -> None:
    cluster.a.endpoint.disconnect("user_sockets:b1")
    with pytest.raises(websockets.ConnectionClosed):
        await cluster.b1.recv()
    connection = cluster.b1.connection
    assert (connection.close_code, connection.close_reason) == (1001, "")
    cluster.b.endpoint.broadcast(TOPIC, "still_here", {})
    for client in (cluster.a1, cluster.a2, cluster.b2):
        assert await client.recv() == fastlane("still_here", {})
    await silence(cluster.a1, cluster.a2, cluster.b2)


async def test_binary_payloads_cross_as_flagged_base64(cluster: Cluster, spy: Spy) -> None:
    data = bytes(range(256))
    cluster.a.endpoint.broadcast(TOPIC, "blob", data)
    # A V2 binary broadcast frame: kind 2, sizes of topic and event, topic, event, data.
    frame = bytes((2, len(TOPIC), len("blob"))) + TOPIC.encode() + b"blob" + data
    for client in cluster.all():
        assert await client.recv() == frame
    message = (await spy.next())["message"]
    assert message == {
        "type": "broadcast", "topic": TOPIC, "event": "blob",
        "payload": base64.b64encode(data).decode(), "binary": True,
    }
    await silence(*cluster.all())


async def test_the_wire_format_is_json_naming_the_dispatcher(cluster: Cluster, spy: Spy) -> None:
    cluster.a.endpoint.broadcast(TOPIC, "hello", {"body": "hé", "n": [1, 2.5, True, None]})
    cluster.b.pubsub.direct_broadcast("a", TOPIC, {"plain": "json"}, default_dispatch)
    first, second = await spy.next(), await spy.next()
    assert isinstance(first.pop("instance"), str) and isinstance(second.pop("instance"), str)
    assert first == {
        "v": 1, "from": "a", "to": None, "topic": TOPIC,
        "dispatcher": "channels_core.pubsub.fastlane:fastlane_dispatch",
        "message": {"type": "broadcast", "topic": TOPIC, "event": "hello",
                    "payload": {"body": "hé", "n": [1, 2.5, True, None]}},
    }
    assert second == {
        "v": 1, "from": "b", "to": "a", "topic": TOPIC,
        "dispatcher": "channels_core.pubsub.adapter:default_dispatch",
        "message": {"type": "json", "value": {"plain": "json"}},
    }
    assert dispatcher_name(fastlane_dispatch) == "channels_core.pubsub.fastlane:fastlane_dispatch"


async def test_a_trace_shows_the_hop_through_redis(
    start_node: Callable[..., Awaitable[Node]], ws_connect: Callable[[Node, str], Awaitable[RawClient]]
) -> None:
    from channels_core.anatomy import trace

    a, b = await start_node("a"), await start_node("b")
    b1 = await ws_connect(b, "b1")
    await join(b1, "b1")
    async with trace() as recorded:
        a.endpoint.broadcast(TOPIC, "traced", {})
        assert await b1.recv() == fastlane("traced", {})
    hops = [(hop.function, hop.detail) for hop in recorded.hops("pubsub") if hop.function.startswith("RedisAdapter")]
    assert hops == [
        ("RedisAdapter.broadcast", {"topic": TOPIC, "node": "a"}),
        ("RedisAdapter.publish", {"channel": CHANNEL, "broadcasts": 1, "node": "a"}),
        ("RedisAdapter.receive", {"topic": TOPIC, "sender": "a", "node": "b"}),
    ]


# Messages and dispatchers: JSON only, names from an allow-list


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ({"at": datetime.date(2024, 1, 1)}, r"Broadcast payload\['at'\] to other nodes: its type, date, does not"),
        ({"pos": (1, 2)}, r"Broadcast payload\['pos'\] to other nodes: its type, tuple, .*; use a list"),
        ({"ids": [1, {2}]}, r"Broadcast payload\['ids'\]\[1\] to other nodes: its type, set, does not"),
        ({1: "one"}, r"Broadcast payload to other nodes: its key 1 is not a str, and JSON object keys are strings"),
        ({"x": math.nan}, r"Broadcast payload\['x'\] = nan to other nodes: JSON has no NaN or infinity"),
    ],
)
async def test_payloads_json_cannot_carry_are_refused_before_any_delivery(
    cluster: Cluster, payload: Any, error: str
) -> None:
    with pytest.raises(TypeError, match=error):
        cluster.a.endpoint.broadcast(TOPIC, "bad", payload)
    # Refused means refused everywhere, this node included; the next broadcast goes through.
    cluster.a.endpoint.broadcast(TOPIC, "good", {})
    for client in cluster.all():
        assert await client.recv() == fastlane("good", {})
    await silence(*cluster.all())
    assert cluster.a.adapter.dropped == 0


async def test_other_messages_cross_as_json_and_the_rest_is_refused(cluster_with_dispatchers: Cluster) -> None:
    cluster = cluster_with_dispatchers
    received: asyncio.Queue[Any] = asyncio.Queue()
    pid = process.spawn(collect, received, role="test collector")
    cluster.b.pubsub.subscribe("jobs", "meta", pid=pid)

    cluster.a.pubsub.broadcast("jobs", {"job": 7, "tags": ["x", "y"]})
    assert await asyncio.wait_for(received.get(), seconds(2)) == {"job": 7, "tags": ["x", "y"]}
    refused = r"cannot carry message to other nodes: its type, object, does not cross Redis as JSON"
    with pytest.raises(TypeError, match=refused):
        cluster.a.pubsub.broadcast("jobs", object())
    with pytest.raises(TypeError, match=r"cannot carry a Broadcast event of type int: it must be a str"):
        cluster.a.pubsub.broadcast("jobs", Broadcast("jobs", 42, {}))  # type: ignore[arg-type]

    # A dispatcher registered on both nodes crosses by name and runs on arrival.
    cluster.a.pubsub.broadcast("jobs", [1, "two"], record_dispatch)
    assert await asyncio.wait_for(received.get(), seconds(2)) == ("via record_dispatch", "meta", [1, "two"])
    # One that is not is refused on the sender, before anything is delivered.
    with pytest.raises(ValueError, match=r"dispatcher 'test_redis_pubsub:collect' cannot cross nodes"):
        cluster.a.pubsub.broadcast("jobs", {}, collect)  # type: ignore[arg-type]
    process.send(pid, "stop")
    assert received.empty()


async def test_a_dispatcher_that_raises_is_logged_and_the_node_keeps_listening(
    cluster_with_dispatchers: Cluster, redis_log: LogWatch
) -> None:
    cluster = cluster_with_dispatchers
    # On the sender the error is the caller's, as for any dispatcher; the message had been
    # queued for the other nodes already, where the adapter's listener must survive it.
    with pytest.raises(RuntimeError, match="this dispatcher always fails"):
        cluster.a.pubsub.broadcast(TOPIC, {"boom": True}, exploding_dispatch)
    [line] = await redis_log.wait_for("raised on a broadcast")
    assert line == (
        "redis pubsub: node 'b': dispatcher 'test_redis_pubsub:exploding_dispatch' raised on a broadcast "
        "to 'room:lobby' from node 'a'"
    )
    [record] = [r for r in redis_log.records if "raised on a broadcast" in r.getMessage()]
    assert record.levelno == logging.ERROR and "this dispatcher always fails" in str(record.exc_info[1])
    cluster.a.endpoint.broadcast(TOPIC, "after", {})
    assert await cluster.b1.recv() == fastlane("after", {})


async def test_what_arrives_is_never_evaluated(cluster: Cluster, redis_log: LogWatch, tmp_path: Path) -> None:
    assert cluster.redis.admin is not None
    marker = tmp_path / "pwned"
    evil = {
        "v": 1, "from": "mallory", "instance": "x", "to": None, "topic": TOPIC,
        "dispatcher": "os:system", "message": {"type": "json", "value": f"touch {marker}"},
    }
    await cluster.redis.admin.publish(CHANNEL, json.dumps(evil))
    await cluster.redis.admin.publish(CHANNEL, b"\x80 not json")
    await cluster.redis.admin.publish(CHANNEL, json.dumps({**evil, "v": 2}))
    await cluster.redis.admin.publish(CHANNEL, json.dumps({**evil, "message": {"type": "pickle", "value": "x"}}))
    await cluster.redis.admin.publish(CHANNEL, json.dumps({**evil, "topic": ["room:lobby"]}))
    await cluster.redis.admin.publish(CHANNEL, json.dumps([1, 2]))

    warnings = await redis_log.wait_for("node 'b' ignored", count=6)
    assert warnings[0] == (
        "redis pubsub: node 'b' ignored a broadcast from node 'mallory' with unregistered dispatcher "
        "'os:system'; register it with RedisAdapter(..., dispatchers=[...]) on every node"
    )
    malformed = "redis pubsub: node 'b' ignored a malformed message on channel 'channels_core': "
    assert [line.removeprefix(malformed).split(" (")[0] for line in warnings[1:]] == [
        "'utf-8' codec can't decode byte 0x80 in position 0: invalid start byte",
        "wire version 2, this node speaks 1",
        "unknown message type 'pickle'",
        "'topic' is not a string",
        "not a JSON object",
    ]
    assert not marker.exists()
    # The channel still works, and none of it reached a client.
    cluster.a.endpoint.broadcast(TOPIC, "fence", {})
    for client in cluster.all():
        assert await client.recv() == fastlane("fence", {})
    await silence(*cluster.all())


async def test_two_nodes_with_one_name_are_reported(
    start_node: Callable[..., Awaitable[Node]], redis_log: LogWatch
) -> None:
    first, second, other = await start_node("twin"), await start_node("twin"), await start_node("c")
    received: asyncio.Queue[Any] = asyncio.Queue()
    pid = process.spawn(collect, received, role="test collector")
    first.pubsub.subscribe("jobs", pid=pid)
    second.pubsub.broadcast("jobs", {"n": 1})
    second.pubsub.broadcast("jobs", {"n": 2})
    other.pubsub.broadcast("jobs", {"fence": True})
    # Redis delivers in publish order: once the fence is here, both twin messages were seen.
    assert await asyncio.wait_for(received.get(), seconds(2)) == {"fence": True}
    process.send(pid, "stop")
    assert redis_log.lines("another node also calls itself") == [
        "redis pubsub: another node also calls itself 'twin' on channel 'channels_core'; node names must be "
        "unique, and this node ignores its broadcasts"
    ]
    assert first.adapter.received == 1


# Faults: Redis goes away and comes back


async def test_a_redis_restart_loses_only_what_was_broadcast_meanwhile(
    cluster: Cluster, redis_log: LogWatch
) -> None:
    a, b = cluster.a.adapter, cluster.b.adapter
    await cluster.redis.stop()
    await asyncio.gather(a.wait_disconnected(seconds(5)), b.wait_disconnected(seconds(5)))
    assert not a.connected and not b.connected
    for node in ("a", "b"):
        [line] = redis_log.lines(f"node '{node}' lost its connection")
        assert line == (
            f"redis pubsub: node '{node}' lost its connection to {cluster.redis.url}: ConnectionError: "
            "Connection closed by server; broadcasts to other nodes are dropped until it reconnects"
        )

    # The sockets are still up, and node a's own clients still get node a's broadcasts.
    await cluster.a1.send(["1", "2", TOPIC, "new_msg", {"body": "during the outage"}])
    assert await cluster.a1.recv_n(2) == [ok_reply("2"), new_msg("during the outage")]
    assert await cluster.a2.recv() == new_msg("during the outage")
    assert a.dropped == 1

    await cluster.redis.start()  # the same port
    await asyncio.gather(a.wait_connected(seconds(5)), b.wait_connected(seconds(5)))
    [line] = redis_log.lines("node 'a' reconnected")
    assert line.startswith(f"redis pubsub: node 'a' reconnected to {cluster.redis.url} after ")
    assert line.endswith("; 1 broadcast to other nodes dropped meanwhile")
    [line] = redis_log.lines("node 'b' reconnected")
    assert line.endswith("; 0 broadcasts to other nodes dropped meanwhile")

    await cluster.b2.send(["1", "2", TOPIC, "new_msg", {"body": "after the outage"}])
    assert await cluster.b2.recv_n(2) == [ok_reply("2"), new_msg("after the outage")]
    for client in (cluster.a1, cluster.a2, cluster.b1):
        assert await client.recv() == new_msg("after the outage")
    # "during the outage" never reaches node b, not even now: at most once.
    await silence(*cluster.all())
    await cluster.redis.wait_node_clients(["channels_core:a"] * 2 + ["channels_core:b"] * 2)


async def test_a_node_starts_while_redis_is_down_and_joins_in_later(
    redis_server: RedisServer,
    start_node: Callable[..., Awaitable[Node]],
    ws_connect: Callable[[Node, str], Awaitable[RawClient]],
    redis_log: LogWatch,
) -> None:
    await redis_server.stop()
    a = await start_node("a")
    assert not a.adapter.connected
    [line] = redis_log.lines("node 'a' could not connect")
    assert line.startswith(
        f"redis pubsub: node 'a' could not connect to {redis_server.url}: ConnectionError: Error 111 connecting"
    )
    assert line.endswith("; serving this node's subscribers only, and retrying")
    a1 = await ws_connect(a, "a1")
    await join(a1, "a1")  # its user_entered was dropped for other nodes, delivered here
    assert a.adapter.dropped == 1

    await redis_server.start()
    await a.adapter.wait_connected(seconds(5))
    b = await start_node("b")
    b1 = await ws_connect(b, "b1")
    await join(b1, "b1")
    assert await a1.recv() == user_entered("b1")
    a.endpoint.broadcast(TOPIC, "hello", {})
    assert await b1.recv() == fastlane("hello", {})
    assert await a1.recv() == fastlane("hello", {})
    await silence(a1, b1)


async def test_a_refused_publish_is_dropped_and_logged(cluster: Cluster, redis_log: LogWatch) -> None:
    assert cluster.redis.admin is not None
    await cluster.redis.admin.execute_command("ACL", "SETUSER", "default", "-publish")
    cluster.a.endpoint.broadcast(TOPIC, "refused", {})
    [line] = await redis_log.wait_for("dropped 1 broadcast")
    assert line == (
        f"redis pubsub: node 'a' dropped 1 broadcast: PUBLISH to {cluster.redis.url} failed: "
        "NoPermissionError: this user has no permissions to run the 'publish' command"
    )
    assert cluster.a.adapter.dropped == 1
    for client in (cluster.a1, cluster.a2):
        assert await client.recv() == fastlane("refused", {})

    await cluster.redis.admin.execute_command("ACL", "SETUSER", "default", "+publish")
    cluster.a.endpoint.broadcast(TOPIC, "fence", {})
    for client in cluster.all():
        assert await client.recv() == fastlane("fence", {})
    await silence(*cluster.all())


async def test_a_full_outgoing_queue_drops_and_logs(
    start_node: Callable[..., Awaitable[Node]],
    ws_connect: Callable[[Node, str], Awaitable[RawClient]],
    redis_log: LogWatch,
) -> None:
    a, b = await start_node("a", queue_size=2), await start_node("b")
    b1 = await ws_connect(b, "b1")
    await join(b1, "b1")
    # Three broadcasts in one go: the publisher gets no turn before the third.
    for i in (1, 2, 3):
        a.endpoint.broadcast(TOPIC, "burst", {"i": i})
    assert a.adapter.dropped == 1
    assert redis_log.lines("outgoing queue is full") == [
        "redis pubsub: node 'a' outgoing queue is full (2 broadcasts waiting); "
        "dropping broadcasts to other nodes until it drains"
    ]
    assert await b1.recv_n(2) == [fastlane("burst", {"i": 1}), fastlane("burst", {"i": 2})]
    a.endpoint.broadcast(TOPIC, "fence", {})
    assert await b1.recv() == fastlane("fence", {})
    await silence(b1)


# Clean start and stop


async def test_stop_closes_every_connection_and_task(
    redis_server: RedisServer, start_node: Callable[..., Awaitable[Node]], redis_log: LogWatch
) -> None:
    def adapter_tasks(node: str) -> list[str]:
        names = (task.get_name() for task in asyncio.all_tasks())
        return sorted(name for name in names if name.startswith("redis-pubsub ") and name.endswith(f" {node}"))

    a, b = await start_node("a"), await start_node("b")
    # One connection to listen, one to publish, per node, named so in CLIENT LIST.
    assert await redis_server.node_clients() == ["channels_core:a"] * 2 + ["channels_core:b"] * 2
    assert adapter_tasks("a") == ["redis-pubsub connection a", "redis-pubsub publisher a"]

    await a.server.stop()
    await redis_server.wait_node_clients(["channels_core:b"] * 2)
    assert adapter_tasks("a") == []
    assert redis_log.lines("node 'a' stopped") == [
        "redis pubsub: node 'a' stopped (0 published, 0 dropped, 0 received)"
    ]
    await a.adapter.stop()  # a second stop does nothing

    # A node that stops while Redis is away stops its reconnection attempts too.
    await redis_server.stop()
    await b.adapter.wait_disconnected(seconds(5))
    await redis_log.wait_for("node 'b' reconnection attempt 1 failed")
    await b.server.stop()
    assert adapter_tasks("b") == []
    await redis_server.start()
    assert await redis_server.node_clients() == []


async def test_stop_flushes_what_is_already_queued(
    start_node: Callable[..., Awaitable[Node]], ws_connect: Callable[[Node, str], Awaitable[RawClient]]
) -> None:
    a, b = await start_node("a"), await start_node("b")
    b1 = await ws_connect(b, "b1")
    await join(b1, "b1")
    a.endpoint.broadcast(TOPIC, "last words", {})
    await a.adapter.stop()  # before the publisher has had a turn
    assert await b1.recv() == fastlane("last words", {})
    assert a.adapter.published == 1


def test_constructor_refuses_what_cannot_work() -> None:
    with pytest.raises(ValueError, match=r"not a Redis URL: 'http://u:\*\*\*@h:1/0' \(expected redis://"):
        RedisAdapter.from_url("http://u:secret@h:1/0")
    with pytest.raises(ValueError, match="node_name must be a non-empty string, got ''"):
        RedisAdapter.from_url("redis://127.0.0.1:1/0", node_name="")
    lambda_name = "test_redis_pubsub:test_constructor_refuses_what_cannot_work.<locals>.<lambda>"
    with pytest.raises(ValueError, match=f"dispatcher '{lambda_name}' must be a module-level function"):
        RedisAdapter(dispatchers=[lambda subscribers, from_pid, message: None])
    with pytest.raises(ValueError, match="need 0 < backoff_initial <= backoff_max, got 3 and 2"):
        RedisAdapter(backoff_initial=3, backoff_max=2)
    adapter = RedisAdapter.from_url("redis://:secret@127.0.0.1:1/0", node_name="x y")
    assert repr(adapter) == "<RedisAdapter node='x y' redis://:***@127.0.0.1:1/0 channel='channels_core' disconnected>"
    # Not started: broadcasts are dropped and counted, never raised.
    adapter.broadcast(TOPIC, Broadcast(TOPIC, "e", {}), fastlane_dispatch, None)
    assert adapter.dropped == 1


# The command line


def test_cli_refuses_inconsistent_pubsub_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["serve", "--node-name", "a"])
    assert exit_info.value.code == 2
    assert "error: --node-name needs --pubsub" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["serve", "--pubsub", "http://127.0.0.1:6379"])
    assert "error: --pubsub: not a Redis URL: 'http://127.0.0.1:6379'" in capsys.readouterr().err


async def test_cli_serve_joins_the_cluster(
    redis_server: RedisServer,
    start_node: Callable[..., Awaitable[Node]],
    ws_connect: Callable[[Node, str], Awaitable[RawClient]],
) -> None:
    a = await start_node("a")
    port = free_port()
    cli = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "channels_core", "serve", "--port", str(port),
        "--pubsub", redis_server.url, "--node-name", "cli", "--log-level", "warning",
        cwd=ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    try:
        async def cli_listening() -> bool:
            if cli.returncode is not None:
                raise AssertionError(f"the CLI exited with {cli.returncode}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                return False
            writer.close()
            await writer.wait_closed()
            return True

        await wait_until(cli_listening, "the CLI node to listen", timeout=20)
        await redis_server.wait_node_clients(["channels_core:a"] * 2 + ["channels_core:cli"] * 2)
        c1, a1 = await ws_connect(f"ws://127.0.0.1:{port}", "c1"), await ws_connect(a, "a1")
        observer = Observer(a)  # node a's side of the CLI node's broadcasts
        await join_all({"c1": c1, "a1": a1}, [observer])
        observer.stop()
        await c1.send(["1", "2", TOPIC, "new_msg", {"body": "from the CLI node"}])
        assert await c1.recv_n(2) == [ok_reply("2"), new_msg("from the CLI node")]
        assert await a1.recv() == new_msg("from the CLI node")
        await c1.close()
    finally:
        if cli.returncode is None:
            cli.terminate()
        _, stderr = await asyncio.wait_for(cli.communicate(), seconds(10))
    assert f"node 'cli' sharing broadcasts via {redis_server.url}" in stderr.decode()
    await redis_server.wait_node_clients(["channels_core:a"] * 2)


# phoenix.js, unchanged, on two nodes


@pytest.mark.node
@pytest.mark.skipif(not node_available(), reason="needs Node.js and node_modules")
async def test_phoenix_js_clients_on_two_nodes_share_a_broadcast(start_node: Callable[..., Awaitable[Node]]) -> None:
    a, b = await start_node("a"), await start_node("b")
    script = ROOT / "tests" / "js" / "redis_two_nodes.js"
    node = await asyncio.create_subprocess_exec(
        shutil.which("node") or "node", str(script), f"{a.server.ws_url}/socket", f"{b.server.ws_url}/socket",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(node.communicate(), seconds(20))
    assert node.returncode == 0, (stdout.decode(), stderr.decode())
    result = json.loads(stdout)
    expected = [
        {"event": "new_msg", "payload": {"body": "hello from a", "transport": ":websocket"}},
        {"event": "new_msg", "payload": {"body": "fence", "transport": ":websocket"}},
    ]
    assert result == {"a": expected, "b": expected, "connections": {"a": "WebSocket", "b": "WebSocket"}, "error": None}
