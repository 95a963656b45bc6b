"""Integration tests over a real uvicorn server on 127.0.0.1, frame by frame.

The golden transcripts (replayed in ``test_golden.py``) pin down what one
connection sees in the scenarios real Phoenix was recorded in. These tests cover
what those transcripts do not: several connections and several channels at once
(a crash, a malformed frame or an oversized frame stays with its own connection
or channel), the server closing connections on its own (``disconnect`` on a
socket id, the idle timeout), the transport's exit reaching every channel, the
connect pipeline's refusals (origin, ``connect`` errors, a custom error handler),
V1 and V2 clients sharing a topic, and the promise that nothing outlives its
connection.

Every test talks raw WebSocket frames to a real server and asserts them exactly.
Nothing sleeps to synchronise: tests wait for frames, closes, log lines and
process exits, always with a timeout. Channel processes are watched the Erlang
way, with monitors from a process of the test's own (:class:`ExitWatch`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import pytest
import websockets
from helpers import RawClient, seconds

from channels_core import process
from channels_core.channel import Channel, push
from channels_core.demo import create_app
from channels_core.demo.app import DemoEndpoint, UserSocket
from channels_core.endpoint import Endpoint, socket
from channels_core.exceptions import DecodeError
from channels_core.process import Down, Pid
from channels_core.server import Server
from channels_core.socket import Socket, SocketStruct, assign, channel

StartServer = Callable[..., Awaitable[Server]]
Connect = Callable[..., Awaitable[RawClient]]

OK_EMPTY = {"response": {}, "status": "ok"}
UNMATCHED = {"response": {"reason": "unmatched topic"}, "status": "error"}


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def compact(frame: Any) -> str:
    """A frame as phoenix.js writes it: JSON with no spaces, so its size is exact."""
    return json.dumps(frame, separators=(",", ":"))


def log_messages(caplog: pytest.LogCaptureFixture, logger: str) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == logger]


async def join_room(client: RawClient, topic: str, join_ref: str, user: str | None = None) -> None:
    """Join a demo ``room:*`` topic and check the three frames the demo answers with."""
    await client.send([join_ref, join_ref, topic, "phx_join", {"user": user}])
    assert await client.recv_n(3) == [
        [join_ref, join_ref, topic, "phx_reply", OK_EMPTY],
        [None, None, topic, "user_entered", {"user": user}],
        [join_ref, None, topic, "joined", {"status": "connected", "user_id": "u1"}],
    ]


async def closed(client: RawClient, timeout: float = 2.0, *, skip_frames: bool = False) -> tuple[int, str]:
    """Wait until the server closes ``client``; return the close code and reason it sent.

    A frame arriving first fails the test, unless ``skip_frames``.
    """
    try:
        while True:
            frame = await asyncio.wait_for(client.connection.recv(), seconds(timeout))
            assert skip_frames, f"unexpected frame before the close: {frame!r}"
    except websockets.ConnectionClosed:
        pass
    received = client.connection.protocol.close_rcvd
    assert received is not None, "the connection ended without a close frame from the server"
    return received.code, received.reason


async def heartbeat(client: RawClient, ref: str) -> None:
    await client.send([None, ref, "phoenix", "heartbeat", {}])
    assert await client.recv() == [None, ref, "phoenix", "phx_reply", OK_EMPTY]


class ExitWatch:
    """Monitors processes from a process of the test's own, the way Erlang code waits for exits.

    Create it with :meth:`start` before the exits can happen: the monitors are in
    place when ``start`` returns, so no exit is missed.
    """

    def __init__(self, pids: Iterable[Pid]) -> None:
        self.pids = list(pids)
        self._reasons: dict[Pid, Any] = {}
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, pids: Iterable[Pid]) -> ExitWatch:
        watch = cls(pids)
        watcher = process.spawn(watch._watch, role="test watcher")
        watch._task = process.lookup(watcher).task  # type: ignore[union-attr]
        await asyncio.wait_for(watch._ready.wait(), seconds(2))
        return watch

    async def _watch(self) -> None:
        refs = {process.monitor(pid): pid for pid in self.pids}
        self._ready.set()
        while refs:
            down = await process.receive(lambda m: isinstance(m, Down) and m.ref in refs)
            self._reasons[refs.pop(down.ref)] = down.reason

    async def reasons(self, timeout: float = 2.0) -> dict[Pid, Any]:
        """Wait until every watched process has exited; return each one's exit reason."""
        assert self._task is not None
        # On a timeout wait_for cancels the watcher, so it does not outlive the test.
        await asyncio.wait_for(self._task, seconds(timeout))
        return dict(self._reasons)


class Recorder:
    """Collects what test channels report, and lets a test wait until enough arrived."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self._changed = asyncio.Event()

    def record(self, *event: Any) -> None:
        self.events.append(event)
        self._changed.set()

    def of(self, kind: str) -> list[tuple[Any, ...]]:
        return [event[1:] for event in self.events if event[0] == kind]

    async def wait_for(self, kind: str, count: int, timeout: float = 2.0) -> list[tuple[Any, ...]]:
        """Wait until ``count`` events of ``kind`` were recorded; return them."""

        async def enough() -> None:
            while len(self.of(kind)) < count:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(enough(), seconds(timeout))
        return self.of(kind)


def recording_channel(recorder: Recorder) -> type[Channel]:
    """A channel that reports its joins (with its pid) and its terminate reasons."""

    class RecordingChannel(Channel):
        def join(self, topic: str, payload: Any, socket: SocketStruct) -> tuple[Any, ...]:
            recorder.record("join", topic, socket.channel_pid)
            return ("ok", socket)

        def handle_in(self, event: str, payload: Any, socket: SocketStruct) -> tuple[Any, ...]:
            return ("reply", ("ok", payload), socket)

        def terminate(self, reason: Any, socket: SocketStruct) -> None:
            recorder.record("terminate", socket.topic, reason)

    return RecordingChannel


class ParamsSocket(Socket):
    """Takes ``user_id`` from the query; the socket id is ``user_sockets:<user_id>``."""

    def connect(self, params: dict[str, Any], socket: SocketStruct) -> Any:
        return ("ok", assign(socket, user_id=params.get("user_id")))

    def id(self, socket: SocketStruct) -> str | None:
        user_id = socket.assigns.get("user_id")
        return f"user_sockets:{user_id}" if user_id else None


def endpoint_for(*routes: Any, base: type[Socket] = ParamsSocket, **websocket: Any) -> Endpoint:
    """An endpoint serving ``routes`` at ``/socket`` (origin checks off unless given)."""
    socket_class = type("TestSocket", (base,), {"channels": list(routes)})
    options = {"check_origin": False, **websocket}
    endpoint_class = type("TestEndpoint", (Endpoint,), {"sockets": [socket("/socket", socket_class, websocket=options)]})
    return endpoint_class()


@pytest.fixture
async def connect(start_server: StartServer) -> AsyncIterator[Connect]:
    """Open raw WebSocket connections to any server: ``await connect(server, query)``.

    Depends on ``start_server`` so that clients are closed before servers stop.
    """
    clients: list[RawClient] = []

    async def open_connection(server: Server, query: str = "vsn=2.0.0&user_id=u1", **kwargs: Any) -> RawClient:
        connection = await websockets.connect(f"{server.ws_url}/socket/websocket?{query}", **kwargs)
        client = RawClient(connection)
        clients.append(client)
        return client

    yield open_connection
    for client in clients:
        await client.close()


async def refusal(server: Server, query: str = "vsn=2.0.0", **kwargs: Any) -> tuple[int, bytes]:
    """Attempt a handshake that must be refused; return the HTTP status and body."""
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(f"{server.ws_url}/socket/websocket?{query}", **kwargs)
    response = refused.value.response
    return response.status_code, response.body


# --------------------------------------------------------------------------
# A crash stays in its channel
# --------------------------------------------------------------------------


async def test_a_crashed_channel_leaves_the_socket_and_its_other_channels_up(
    demo_server: Server, raw_ws: Callable[..., Awaitable[RawClient]], caplog: pytest.LogCaptureFixture
) -> None:
    client = await raw_ws()
    await join_room(client, "room:a", "1")
    await join_room(client, "room:b", "2")

    await client.send(["1", "3", "room:a", "boom", {}])
    # terminate's push, then the error: for room:a only.
    assert await client.recv_n(2) == [
        ["1", None, "room:a", "you_left", {"message": "bye!"}],
        ["1", "1", "room:a", "phx_error", {"reason": "channel_crash"}],
    ]
    await client.expect_silence()

    await client.send(["2", "4", "room:b", "ping", {"still": "here"}])
    assert await client.recv() == ["2", "4", "room:b", "phx_reply", {"response": {"still": "here"}, "status": "ok"}]
    demo_server.app.broadcast("room:b", "news", {"n": 1})
    assert await client.recv() == [None, None, "room:b", "news", {"n": 1}]
    # room:a is gone from the socket's topic map, room:b is not.
    await client.send(["1", "5", "room:a", "ping", {}])
    assert await client.recv() == [None, "5", "room:a", "phx_reply", UNMATCHED]
    await client.expect_silence()

    assert log_messages(caplog, "channels_core.channel_server") == [
        "channel RoomChannel for 'room:a' crashed handling event 'boom': RuntimeError('boom')"
    ]


# --------------------------------------------------------------------------
# A channel that sends itself a message from join
# --------------------------------------------------------------------------


class GreetingChannel(Channel):
    """Sends itself two messages from ``join``; ``handle_info`` pushes each one."""

    def join(self, topic: str, payload: Any, socket: SocketStruct) -> tuple[Any, ...]:
        me = process.current()
        process.send(me, ("greet", payload["name"]))
        process.send(me, ("greet", "again"))
        return ("ok", {"welcome": payload["name"]}, assign(socket, name=payload["name"]))

    def handle_info(self, message: Any, socket: SocketStruct) -> tuple[Any, ...]:
        _, who = message
        push(socket, "greeting", {"hello": who, "name": socket.assigns["name"]})
        return ("noreply", socket)


class PushInJoinChannel(Channel):
    """Pushes from ``join``, before the socket has joined: Phoenix raises there."""

    def join(self, topic: str, payload: Any, socket: SocketStruct) -> tuple[Any, ...]:
        push(socket, "too_early", {})
        return ("ok", socket)


async def test_messages_a_channel_sends_itself_in_join_arrive_after_the_join_reply(
    start_server: StartServer, connect: Connect
) -> None:
    server = await start_server(endpoint_for(channel("greet:*", GreetingChannel)))
    client = await connect(server)

    await client.send(["7", "8", "greet:x", "phx_join", {"name": "ada"}])
    assert await client.recv_n(3) == [
        ["7", "8", "greet:x", "phx_reply", {"response": {"welcome": "ada"}, "status": "ok"}],
        # The process existed before join ran, so its own messages waited in its mailbox.
        ["7", None, "greet:x", "greeting", {"hello": "ada", "name": "ada"}],
        ["7", None, "greet:x", "greeting", {"hello": "again", "name": "ada"}],
    ]
    await client.expect_silence()


async def test_a_push_from_join_crashes_the_join_and_only_the_join(
    start_server: StartServer, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    server = await start_server(endpoint_for(
        channel("early:*", PushInJoinChannel), channel("greet:*", GreetingChannel),
    ))
    client = await connect(server)

    await client.send(["1", "1", "early:x", "phx_join", {}])
    assert await client.recv() == ["1", "1", "early:x", "phx_reply",
                                   {"response": {"reason": "join crashed"}, "status": "error"}]
    # The topic was never joined, and the socket carries on.
    await client.send(["1", "2", "early:x", "ping", {}])
    assert await client.recv() == [None, "2", "early:x", "phx_reply", UNMATCHED]
    await client.send(["3", "3", "greet:y", "phx_join", {"name": "bo"}])
    assert (await client.recv_n(3))[0] == ["3", "3", "greet:y", "phx_reply",
                                           {"response": {"welcome": "bo"}, "status": "ok"}]

    assert log_messages(caplog, "channels_core.channel_server") == [
        "channel PushInJoinChannel crashed in join/3 for 'early:x': "
        "ChannelsError('push/3 can only be called after the socket has joined')",
        "channel PushInJoinChannel crashed while joining 'early:x': "
        "ChannelsError('push/3 can only be called after the socket has joined')",
    ]


# --------------------------------------------------------------------------
# disconnect on a socket id
# --------------------------------------------------------------------------


async def test_disconnect_closes_every_connection_of_one_socket_id_and_no_other(
    demo_server: Server, raw_ws: Callable[..., Awaitable[RawClient]]
) -> None:
    u1_v2 = await raw_ws("vsn=2.0.0&user_id=u1")
    u1_v1 = await raw_ws("vsn=1.0.0&user_id=u1")
    u2 = await raw_ws("vsn=2.0.0&user_id=u2")
    await join_room(u1_v2, "room:lobby", "1")
    (u1_channel,) = process.iter_processes("channel room:lobby")
    await u2.send(["1", "1", "room:lobby", "phx_join", {"user": "bob"}])
    assert await u2.recv_n(3) == [
        ["1", "1", "room:lobby", "phx_reply", OK_EMPTY],
        [None, None, "room:lobby", "user_entered", {"user": "bob"}],
        ["1", None, "room:lobby", "joined", {"status": "connected", "user_id": "u2"}],
    ]
    assert await u1_v2.recv() == [None, None, "room:lobby", "user_entered", {"user": "bob"}]
    # A reply proves each connection is up, and so subscribed to its socket id.
    await heartbeat(u1_v2, "2")
    await u1_v1.send({"topic": "phoenix", "event": "heartbeat", "payload": {}, "ref": "1"})
    assert await u1_v1.recv() == {"topic": "phoenix", "event": "phx_reply", "payload": OK_EMPTY, "ref": "1"}
    watcher = await ExitWatch.start([u1_channel])

    demo_server.app.disconnect("user_sockets:u1")

    # 1001 "going away", as Phoenix 1.8 sends: phoenix.js reconnects after it.
    assert await closed(u1_v2) == (1001, "")
    assert await closed(u1_v1) == (1001, "")
    # The connection exits normally, as Cowboy's does, so the channel stops {shutdown, closed}.
    assert await watcher.reasons() == {u1_channel: ("shutdown", "closed")}
    # u2's connection and channel never noticed.
    await heartbeat(u2, "2")
    await u2.send(["1", "3", "room:lobby", "ping", {"after": "disconnect"}])
    assert await u2.recv() == ["1", "3", "room:lobby", "phx_reply",
                               {"response": {"after": "disconnect"}, "status": "ok"}]
    await u2.expect_silence()


# --------------------------------------------------------------------------
# The transport's exit ends every channel
# --------------------------------------------------------------------------


async def test_closing_the_connection_terminates_every_channel_with_shutdown_closed(
    start_server: StartServer, connect: Connect
) -> None:
    recorder = Recorder()
    server = await start_server(endpoint_for(channel("rec:*", recording_channel(recorder))))
    client = await connect(server)
    topics = ["rec:1", "rec:2", "rec:3"]
    for number, topic in enumerate(topics, start=1):
        await client.send([str(number), str(number), topic, "phx_join", {}])
        assert await client.recv() == [str(number), str(number), topic, "phx_reply", OK_EMPTY]
    channel_pids = [pid for _, pid in recorder.of("join")]
    assert len(set(channel_pids)) == 3
    watcher = await ExitWatch.start(channel_pids)

    await client.close()

    terminated = await recorder.wait_for("terminate", 3)
    assert sorted(terminated) == [(topic, ("shutdown", "closed")) for topic in topics]
    assert await watcher.reasons() == {pid: ("shutdown", "closed") for pid in channel_pids}
    assert not any(process.is_alive(pid) for pid in channel_pids)
    assert server.app.supervisor.which_children() == []
    assert server.app.pubsub.topics() == []


async def test_stopping_the_server_closes_connections_with_1012_and_terminates_their_channels(
    start_server: StartServer, connect: Connect
) -> None:
    recorder = Recorder()
    server = await start_server(endpoint_for(channel("rec:*", recording_channel(recorder))))
    clients = [await connect(server, f"vsn=2.0.0&user_id=u{number}") for number in (1, 2)]
    for number, client in enumerate(clients, start=1):
        await client.send(["1", "1", f"rec:{number}", "phx_join", {}])
        assert await client.recv() == ["1", "1", f"rec:{number}", "phx_reply", OK_EMPTY]
    watcher = await ExitWatch.start(pid for _, pid in recorder.of("join"))

    stopping = asyncio.ensure_future(server.stop())

    # 1012 "service restart", as Phoenix's socket drainer closes with.
    assert [await closed(client) for client in clients] == [(1012, "")] * 2
    await asyncio.wait_for(stopping, seconds(5))
    assert set((await watcher.reasons()).values()) == {("shutdown", "closed")}
    assert sorted(recorder.of("terminate")) == [("rec:1", ("shutdown", "closed")), ("rec:2", ("shutdown", "closed"))]


# --------------------------------------------------------------------------
# Idle timeout
# --------------------------------------------------------------------------


async def test_the_idle_timeout_closes_a_silent_connection_but_not_a_heartbeating_one(
    start_server: StartServer, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="channels_core.adapter")
    recorder = Recorder()
    idle_ms = round(seconds(0.3) * 1000)  # 300 ms unless the machine is slow
    server = await start_server(endpoint_for(channel("rec:*", recording_channel(recorder)), timeout=idle_ms))
    steady = await connect(server)
    silent = await connect(server)
    await silent.send(["1", "1", "rec:silent", "phx_join", {}])
    assert await silent.recv() == ["1", "1", "rec:silent", "phx_reply", OK_EMPTY]
    silent_closed = asyncio.ensure_future(closed(silent, timeout=5))

    # Heartbeat every 100 ms from this loop, on the connection opened first: until the
    # silent one, opened later, has timed out, and for three beats more. So the
    # steady connection outlives a connection that lived the whole idle timeout.
    beats_after_close = 0
    ref = 0
    while beats_after_close < 3:
        if silent_closed.done():
            beats_after_close += 1
        ref += 1
        await heartbeat(steady, str(ref))
        await asyncio.sleep(idle_ms / 3000)

    # Cowboy closes an idle connection with 1000, and so do we.
    assert silent_closed.result() == (1000, "")
    assert await recorder.wait_for("terminate", 1) == [("rec:silent", ("shutdown", "closed"))]
    (message,) = log_messages(caplog, "channels_core.adapter")
    assert re.fullmatch(rf"x closing idle connection \d+ after {idle_ms} ms without a frame", message)
    await heartbeat(steady, "last")


# --------------------------------------------------------------------------
# The connect pipeline's refusals
# --------------------------------------------------------------------------


async def test_an_origin_from_another_host_is_refused_with_403_and_logged(
    demo_server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    status, body = await refusal(demo_server, origin="http://evil.example")
    assert (status, body) == (403, b"")
    assert log_messages(caplog, "channels_core.transport") == [
        "could not check origin for socket transport: origin of the request is http://evil.example. "
        "Configure check_origin on the socket (e.g. check_origin=['//127.0.0.1']) or the endpoint's url_host."
    ]


@pytest.mark.parametrize(
    "origin",
    [
        "https://127.0.0.1:{port}",  # another scheme
        "http://localhost:{port}",  # another host name for the same machine
        "http://127.0.0.1:1",  # another port
        "http://127.0.0.1",  # the default port, which is not ours
    ],
)
async def test_check_origin_conn_refuses_anything_but_the_requests_own_origin(
    demo_server: Server, origin: str
) -> None:
    status, body = await refusal(demo_server, origin=origin.format(port=demo_server.port))
    assert (status, body) == (403, b"")


async def test_check_origin_conn_accepts_the_same_origin(
    demo_server: Server, raw_ws: Callable[..., Awaitable[RawClient]]
) -> None:
    client = await raw_ws(origin=f"http://127.0.0.1:{demo_server.port}")
    assert client.connection.response.status_code == 101
    await heartbeat(client, "1")


@pytest.mark.parametrize(
    ("origin", "accepted"),
    [
        ("https://example.com", True),
        ("http://example.com", True),  # no scheme in the allowed origin: any scheme
        ("http://example.com:8080", True),  # no port in the allowed origin: any port
        (None, True),  # no Origin header: not a browser, nothing to check
        ("https://www.example.com", False),  # subdomains need //*.example.com
        ("https://example.org", False),
        ("https://notexample.com", False),
        ("null", False),  # an opaque origin has no host
    ],
)
async def test_check_origin_with_a_list_of_origins(
    start_server: StartServer, connect: Connect, origin: str | None, accepted: bool
) -> None:
    server = await start_server(endpoint_for(check_origin=["//example.com"]))
    if accepted:
        client = await connect(server, origin=origin)
        await heartbeat(client, "1")
    else:
        assert await refusal(server, origin=origin) == (403, b"")


@pytest.mark.parametrize(
    ("query", "log"),
    [
        ("vsn=2.0.0&reject=true", None),
        (
            "vsn=3.0.0",
            'the client\'s requested transport version "3.0.0" does not match the server\'s '
            "version requirements of ['~> 1.0.0', '~> 2.0.0']",
        ),
        ("vsn=banana", 'client sent invalid transport version "banana"'),
    ],
)
async def test_a_refused_connect_is_http_403_with_an_empty_body(
    demo_server: Server, caplog: pytest.LogCaptureFixture, query: str, log: str | None
) -> None:
    assert await refusal(demo_server, query) == (403, b"")
    assert log_messages(caplog, "channels_core.transport") == ([log] if log else [])


class BanningSocket(ParamsSocket):
    """Refuses ``banned=true`` with a reason, for the transport's error handler."""

    def connect(self, params: dict[str, Any], socket: SocketStruct) -> Any:
        if params.get("banned") == "true":
            return ("error", "banned")
        return super().connect(params, socket)


async def test_a_connect_error_goes_through_the_sockets_error_handler(
    start_server: StartServer, connect: Connect
) -> None:
    reasons: list[Any] = []

    def error_handler(reason: Any) -> tuple[int, str]:
        reasons.append(reason)
        return (418, "go away")

    server = await start_server(endpoint_for(base=BanningSocket, error_handler=error_handler))
    assert await refusal(server, "vsn=2.0.0&banned=true") == (418, b"go away")
    assert reasons == ["banned"]
    # The handler is for refusals only.
    await heartbeat(await connect(server, "vsn=2.0.0&banned=false"), "1")
    assert reasons == ["banned"]


async def test_a_connect_error_without_an_error_handler_is_403(start_server: StartServer) -> None:
    server = await start_server(endpoint_for(base=BanningSocket))
    assert await refusal(server, "vsn=2.0.0&banned=true") == (403, b"")


# --------------------------------------------------------------------------
# Frames that end their connection, and only their connection
# --------------------------------------------------------------------------


class SmallFramesEndpoint(DemoEndpoint):
    sockets = [socket("/socket", UserSocket, websocket={"check_origin": False, "max_frame_size": 1024})]


def ping_of_size(size: int, ref: str) -> tuple[str, dict[str, str]]:
    """A V2 ``ping`` on room:lobby whose text is exactly ``size`` bytes, and its payload."""
    empty = compact(["1", ref, "room:lobby", "ping", {"pad": ""}])
    payload = {"pad": "x" * (size - len(empty))}
    frame = compact(["1", ref, "room:lobby", "ping", payload])
    assert len(frame.encode()) == size
    return frame, payload


async def test_a_frame_over_max_frame_size_closes_its_connection_with_1009(
    start_server: StartServer, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    server = await start_server(create_app(endpoint_class=SmallFramesEndpoint))
    neighbour = await connect(server)
    await join_room(neighbour, "room:lobby", "1", user="n")
    big = await connect(server)
    await join_room(big, "room:lobby", "1", user="b")
    assert await neighbour.recv() == [None, None, "room:lobby", "user_entered", {"user": "b"}]

    # The limit itself is allowed; one byte more is not.
    frame, payload = ping_of_size(1024, "2")
    await big.connection.send(frame)
    assert await big.recv() == ["1", "2", "room:lobby", "phx_reply", {"response": payload, "status": "ok"}]
    await big.connection.send(ping_of_size(1025, "3")[0])

    assert await closed(big) == (1009, "")
    (message,) = log_messages(caplog, "channels_core.adapter")
    assert re.fullmatch(r"x closing connection \d+: a 1025-byte frame exceeds max_frame_size 1024", message)
    # The neighbour on the same topic: no frame about it, and broadcasts still arrive.
    await neighbour.expect_silence()
    server.app.broadcast("room:lobby", "news", {"n": 1})
    assert await neighbour.recv() == [None, None, "room:lobby", "news", {"n": 1}]
    frame, payload = ping_of_size(1024, "4")
    await neighbour.connection.send(frame)
    assert await neighbour.recv() == ["1", "4", "room:lobby", "phx_reply", {"response": payload, "status": "ok"}]


def json_error(text: str) -> str:
    try:
        json.loads(text)
    except ValueError as exc:
        return str(exc)
    raise AssertionError(f"{text!r} is valid JSON")


NOT_JSON = '["1","2","room:lobby"'

MALFORMED = {
    # push, 1-byte join_ref, 1-byte ref, but a 200-byte topic: only 8 bytes follow.
    "binary lying about its lengths": (
        bytes([0, 1, 1, 200, 4]) + b"11room:lobby"[:8],
        "v2 binary frame declares 206 bytes of fields, but only 8 follow the header",
    ),
    "binary of a server-only kind": (
        bytes([1, 1, 1, 10, 4]) + b"11room:lobbyping",
        "v2 binary frame kind 1 is not a push (0)",
    ),
    "binary shorter than its header": (bytes([0, 1, 1]), "v2 binary frame too short for a header: 3 bytes"),
    "binary with a field that is not UTF-8": (
        bytes([0, 1, 1, 2, 4]) + b"11\xff\xfeping",
        "v2 binary frame field is not UTF-8: 'utf-8' codec can't decode byte 0xff in position 0: invalid start byte",
    ),
    "text that is not JSON": (NOT_JSON, "v2 text frame is not valid JSON: " + json_error(NOT_JSON)),
}


@pytest.mark.parametrize(("frame", "error"), list(MALFORMED.values()), ids=list(MALFORMED))
async def test_a_malformed_frame_closes_its_connection_with_1011_and_never_touches_a_neighbour(
    demo_server: Server,
    raw_ws: Callable[..., Awaitable[RawClient]],
    caplog: pytest.LogCaptureFixture,
    frame: str | bytes,
    error: str,
) -> None:
    neighbour = await raw_ws()
    await join_room(neighbour, "room:lobby", "1", user="n")
    sender = await raw_ws()
    await join_room(sender, "room:lobby", "1", user="s")
    assert await neighbour.recv() == [None, None, "room:lobby", "user_entered", {"user": "s"}]
    (sender_channel,) = [pid for pid in process.iter_processes("channel room:lobby")][1:]
    watcher = await ExitWatch.start([sender_channel])

    await sender.send(frame)

    assert await closed(sender) == (1011, "")
    (message,) = log_messages(caplog, "channels_core.adapter")
    assert re.fullmatch(rf"! socket <pid \d+ socket> crashed: {re.escape(error)}", message)
    # The crash reaches the sender's channel, which stops with it, and not the neighbour's.
    (reason,) = (await watcher.reasons()).values()
    assert isinstance(reason, DecodeError) and str(reason) == error
    await neighbour.expect_silence()
    await neighbour.send(["1", "2", "room:lobby", "new_msg", {"body": "still here"}])
    assert await neighbour.recv_n(2) == [
        ["1", "2", "room:lobby", "phx_reply", OK_EMPTY],
        ["1", None, "room:lobby", "new_msg", {"body": "still here", "transport": ":websocket"}],
    ]
    demo_server.app.broadcast("room:lobby", "news", {"n": 2})
    assert await neighbour.recv() == [None, None, "room:lobby", "news", {"n": 2}]
    await neighbour.expect_silence()


# --------------------------------------------------------------------------
# V1 and V2 clients on one topic
# --------------------------------------------------------------------------


def v1(topic: str, event: str, payload: Any, ref: str | None) -> dict[str, Any]:
    return {"topic": topic, "event": event, "payload": payload, "ref": ref}


async def test_v1_and_v2_clients_share_a_topic_each_in_its_own_framing(
    raw_ws: Callable[..., Awaitable[RawClient]],
) -> None:
    old = await raw_ws("vsn=1.0.0&user_id=u1")
    new = await raw_ws("vsn=2.0.0&user_id=u1")

    await old.send(v1("room:lobby", "phx_join", {"user": "old"}, "1"))
    assert await old.recv_n(3) == [
        v1("room:lobby", "phx_reply", OK_EMPTY, "1"),
        v1("room:lobby", "user_entered", {"user": "old"}, None),
        v1("room:lobby", "joined", {"status": "connected", "user_id": "u1"}, None),
    ]
    await join_room(new, "room:lobby", "1", user="new")
    assert await old.recv() == v1("room:lobby", "user_entered", {"user": "new"}, None)

    # A V1 message gets a V1 reply; the intercepted broadcast reaches each client in its framing.
    await old.send(v1("room:lobby", "new_msg", {"body": "hi"}, "2"))
    assert await old.recv_n(2) == [
        v1("room:lobby", "phx_reply", OK_EMPTY, "2"),
        v1("room:lobby", "new_msg", {"body": "hi", "transport": ":websocket"}, None),
    ]
    assert await new.recv() == ["1", None, "room:lobby", "new_msg", {"body": "hi", "transport": ":websocket"}]

    # Fastlane broadcasts, encoded once per serializer, arrive before the reply.
    await new.send(["1", "2", "room:lobby", "bench_broadcast", {"n": 2}])
    assert await new.recv_n(3) == [
        [None, None, "room:lobby", "bench_msg", {"i": 1}],
        [None, None, "room:lobby", "bench_msg", {"i": 2}],
        ["1", "2", "room:lobby", "phx_reply", OK_EMPTY],
    ]
    assert await old.recv_n(2) == [
        v1("room:lobby", "bench_msg", {"i": 1}, None),
        v1("room:lobby", "bench_msg", {"i": 2}, None),
    ]

    # Leave, V1: reply, close (ref null in V1), then terminate's push.
    await old.send(v1("room:lobby", "phx_leave", {}, "3"))
    assert await old.recv_n(3) == [
        v1("room:lobby", "phx_reply", OK_EMPTY, "3"),
        v1("room:lobby", "phx_close", {}, None),
        v1("room:lobby", "you_left", {"message": "bye!"}, None),
    ]
    await old.expect_silence()
    await new.expect_silence()


# --------------------------------------------------------------------------
# Nothing outlives its connection
# --------------------------------------------------------------------------


async def _churn(server: Server, number: int) -> None:
    """One client's life: join a topic of its own and a shared one, then end one of four ways."""
    client = RawClient(await websockets.connect(f"{server.ws_url}/socket/websocket?vsn=2.0.0&user_id=u1"))
    topic = f"room:own-{number}"
    try:
        await join_room(client, topic, "1", user=str(number))
        await client.send(["2", "2", "room:shared", "phx_join", {"user": str(number)}])
        ending = number % 4
        if ending == 0:  # leave, then close
            await client.send(["1", "3", topic, "phx_leave", {}])
            await _expect_on_topic(client, topic, [
                ["1", "3", topic, "phx_reply", OK_EMPTY],
                ["1", "1", topic, "phx_close", {}],
                ["1", None, topic, "you_left", {"message": "bye!"}],
            ])
        elif ending == 1:  # crash the channel, then close
            await client.send(["1", "3", topic, "boom", {}])
            await _expect_on_topic(client, topic, [
                ["1", None, topic, "you_left", {"message": "bye!"}],
                ["1", "1", topic, "phx_error", {"reason": "channel_crash"}],
            ])
        elif ending == 2:  # crash the connection
            await client.send("not json")
            assert await closed(client, timeout=5, skip_frames=True) == (1011, "")
        # ending 3: close with both channels joined
    finally:
        await client.close()


async def _expect_on_topic(client: RawClient, topic: str, expected: list[Any]) -> None:
    """Receive until ``expected`` arrived on ``topic``, skipping other topics' frames."""
    seen: list[Any] = []
    while len(seen) < len(expected):
        frame = await client.recv(timeout=5)
        if frame[2] == topic:
            seen.append(frame)
    assert seen == expected


async def test_many_clients_joining_leaving_and_crashing_leave_nothing_behind(
    demo_server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    pids_before = set(process.processes())
    tasks_before = set(asyncio.all_tasks())

    await asyncio.gather(*(_churn(demo_server, number) for number in range(24)))

    # Wait for what is still winding down (transports seeing the close, channels
    # seeing their transport go) by monitoring it, then for the last tasks.
    leftover = [pid for pid in process.processes() if pid not in pids_before]
    await (await ExitWatch.start(leftover)).reasons(timeout=5)
    current = asyncio.current_task()
    pending = [t for t in asyncio.all_tasks() if t not in tasks_before and t is not current and not t.done()]
    if pending:
        await asyncio.wait(pending, timeout=seconds(5))
    assert set(process.processes()) == pids_before
    assert [t for t in asyncio.all_tasks() if t not in tasks_before and t is not current and not t.done()] == []
    assert demo_server.app.pubsub.topics() == []
    assert demo_server.app.supervisor.which_children() == []
    # Six channel crashes and six connection crashes, each logged once.
    assert len(log_messages(caplog, "channels_core.channel_server")) == 6
    assert len(log_messages(caplog, "channels_core.adapter")) == 6


async def test_websocket_upgrade_on_a_path_no_socket_serves_gets_404(demo_server: Server) -> None:
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(f"{demo_server.ws_url}/nowhere/websocket?vsn=2.0.0")
    assert refused.value.response.status_code == 404
    assert refused.value.response.body == b"not found"
