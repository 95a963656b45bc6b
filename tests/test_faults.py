"""Faults: what breaks stays broken alone.

Phoenix's promise, kept here and checked over a real server: a channel that
crashes, in whichever callback, costs its own topic on its own connection, and
nothing else. Its client gets ``phx_error`` (or a ``join crashed`` reply), its
``terminate`` runs where Phoenix runs it, the log says what happened, and the same
socket's other channels, and every other client on the same topic, carry on
exactly as before. The same holds for a connection that drops in the middle of a
stream of broadcasts, for a broadcast that cannot be encoded, and for a server
that shuts down while a channel is busy.

What ``test_integration.py`` already shows is not repeated: a crash in
``handle_in`` beside a second channel, a push from ``join``, closing a connection,
stopping the server (1012), a malformed or oversized frame. The slow consumer, a
client that stops reading, is at the end of this file.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
import websockets
from helpers import RawClient, seconds
from test_integration import ExitWatch, ParamsSocket, Recorder, closed, endpoint_for, heartbeat, log_messages

from channels_core import process
from channels_core.channel import Channel, broadcast, push
from channels_core.endpoint import Endpoint, socket
from channels_core.exceptions import EncodeError
from channels_core.server import Server
from channels_core.socket import SocketStruct, assign, channel

StartServer = Callable[..., Awaitable[Server]]

OK_EMPTY = {"response": {}, "status": "ok"}
UNMATCHED = {"response": {"reason": "unmatched topic"}, "status": "error"}
CRASH = {"reason": "channel_crash"}


def fault_channel(recorder: Recorder) -> type[Channel]:
    """``fault:*``: crashes in the callback its join payload names (``{"crash_in": ...}``).

    It intercepts ``news``, so that a broadcast of it goes through every
    subscriber's ``handle_out``; it records its joins and terminates.
    """

    class FaultChannel(Channel):
        intercept = ["news"]

        def join(self, topic: str, payload: Any, socket: SocketStruct) -> tuple[Any, ...]:
            crash_in = payload.get("crash_in")
            recorder.record("join", topic, socket.channel_pid, crash_in)
            if crash_in == "join":
                raise RuntimeError("crash in join")
            if crash_in == "handle_info":
                process.send(process.current(), "poke")  # handled right after the join reply
            return ("ok", assign(socket, crash_in=crash_in))

        def handle_in(self, event: str, payload: Any, socket: SocketStruct) -> tuple[Any, ...]:
            if event == "boom" and socket.assigns["crash_in"] == "handle_in":
                raise RuntimeError("crash in handle_in")
            if event == "explode":
                raise RuntimeError("explode")
            if event == "broadcast_nan":
                # A value the fastlane cannot encode: the broadcast fails in this channel.
                broadcast(socket, "numbers", {"x": float("nan")})
            return ("reply", ("ok", payload), socket)

        def handle_out(self, event: str, payload: Any, socket: SocketStruct) -> tuple[Any, ...]:
            if socket.assigns["crash_in"] == "handle_out":
                raise RuntimeError("crash in handle_out")
            push(socket, event, payload)
            return ("noreply", socket)

        def handle_info(self, message: Any, socket: SocketStruct) -> tuple[Any, ...]:
            if socket.assigns["crash_in"] == "handle_info":
                raise RuntimeError("crash in handle_info")
            return ("noreply", socket)

        def terminate(self, reason: Any, socket: SocketStruct) -> None:
            recorder.record("terminate", socket.topic, reason)
            if socket.assigns.get("crash_in") == "terminate":
                raise RuntimeError("crash in terminate")

    return FaultChannel


@pytest.fixture
async def fault_server(start_server: StartServer) -> tuple[Server, Recorder]:
    recorder = Recorder()
    server = await start_server(endpoint_for(channel("fault:*", fault_channel(recorder))))
    return server, recorder


@pytest.fixture
async def open_client(fault_server: tuple[Server, Recorder]) -> Any:
    clients: list[RawClient] = []

    async def open_connection(user: str) -> RawClient:
        server, _ = fault_server
        url = f"{server.ws_url}/socket/websocket?vsn=2.0.0&user_id={user}"
        client = RawClient(await websockets.connect(url))
        clients.append(client)
        return client

    yield open_connection
    for client in clients:
        await client.close()


@pytest.fixture
async def ws() -> Any:
    """Open WebSocket clients that are cut off at the end of the test, however it ends.

    A client that stopped reading would take its close_timeout (10 s) to close.
    """
    clients: list[RawClient] = []

    async def open_connection(url: str, **options: Any) -> RawClient:
        client = RawClient(await websockets.connect(url, max_size=None, compression=None, **options))
        clients.append(client)
        return client

    yield open_connection
    for client in clients:
        client.connection.transport.abort()
        await client.connection.wait_closed()


async def join(client: RawClient, topic: str, join_ref: str, crash_in: str | None = None) -> None:
    await client.send([join_ref, join_ref, topic, "phx_join", {"crash_in": crash_in}])
    assert await client.recv() == [join_ref, join_ref, topic, "phx_reply", OK_EMPTY]


async def ping(client: RawClient, topic: str, join_ref: str, ref: str) -> None:
    await client.send([join_ref, ref, topic, "ping", {"ref": ref}])
    assert await client.recv() == [join_ref, ref, topic, "phx_reply", {"response": {"ref": ref}, "status": "ok"}]


# --------------------------------------------------------------------------
# A crash in any callback costs its own channel only
# --------------------------------------------------------------------------

TRIGGERS = {
    # What the victim sees after the trigger, and what the channel server logs.
    "join": (
        [["2", "2", "fault:room", "phx_reply", {"response": {"reason": "join crashed"}, "status": "error"}]],
        [r"channel FaultChannel crashed in join/3 for 'fault:room': RuntimeError\('crash in join'\)",
         r"channel FaultChannel crashed while joining 'fault:room': RuntimeError\('crash in join'\)"],
    ),
    "handle_in": (
        [["2", "2", "fault:room", "phx_error", CRASH]],
        [r"channel FaultChannel for 'fault:room' crashed handling event 'boom': RuntimeError\('crash in handle_in'\)"],
    ),
    "handle_out": (
        [["2", "2", "fault:room", "phx_error", CRASH]],
        [r"channel FaultChannel for 'fault:room' crashed handling Broadcast\(.*'news'.*\): "
         r"RuntimeError\('crash in handle_out'\)"],
    ),
    "handle_info": (
        [["2", "2", "fault:room", "phx_reply", OK_EMPTY], ["2", "2", "fault:room", "phx_error", CRASH]],
        [r"channel FaultChannel for 'fault:room' crashed handling 'poke': RuntimeError\('crash in handle_info'\)"],
    ),
}


@pytest.mark.parametrize("callback", list(TRIGGERS))
async def test_a_crash_in_any_callback_costs_only_that_channel(
    fault_server: tuple[Server, Recorder], open_client: Any, caplog: pytest.LogCaptureFixture, callback: str
) -> None:
    server, recorder = fault_server
    neighbour = await open_client("neighbour")
    await join(neighbour, "fault:room", "1")
    victim = await open_client("victim")
    await join(victim, "fault:other", "1")  # a second channel on the victim's socket
    channels_before = set(server.app.supervisor.which_children())

    await victim.send(["2", "2", "fault:room", "phx_join", {"crash_in": callback}])
    if callback == "handle_in":
        assert await victim.recv() == ["2", "2", "fault:room", "phx_reply", OK_EMPTY]
        await victim.send(["2", "3", "fault:room", "boom", {}])
    elif callback == "handle_out":
        assert await victim.recv() == ["2", "2", "fault:room", "phx_reply", OK_EMPTY]
        server.app.broadcast("fault:room", "news", {"n": 1})
        # The neighbour's handle_out runs in its own channel process, untouched.
        assert await neighbour.recv() == ["1", None, "fault:room", "news", {"n": 1}]
    expected_frames, expected_logs = TRIGGERS[callback]

    assert await victim.recv_n(len(expected_frames)) == expected_frames
    # The crashed channel's process is gone; the others are exactly those there before.
    crashed = [pid for _, pid, crash_in in recorder.of("join") if crash_in == callback]
    if crashed:
        await (await ExitWatch.start(crashed)).reasons()
    assert set(server.app.supervisor.which_children()) == channels_before
    messages = log_messages(caplog, "channels_core.channel_server")
    assert len(messages) == len(expected_logs)
    for message, pattern in zip(messages, expected_logs):
        assert re.fullmatch(pattern, message), message
    # terminate runs after a crash in handle_in, handle_out or handle_info (with the
    # exception as its reason), never after a crash in join: nothing was joined.
    terminated = [(topic, type(reason).__name__) for topic, reason in recorder.of("terminate")]
    assert terminated == ([] if callback == "join" else [("fault:room", "RuntimeError")])

    # The victim's topic is gone from its socket; its other channel and its socket are not.
    await victim.send(["2", "4", "fault:room", "ping", {}])
    assert await victim.recv() == [None, "4", "fault:room", "phx_reply", UNMATCHED]
    await ping(victim, "fault:other", "1", "5")
    await heartbeat(victim, "6")
    # The neighbour on the same topic saw nothing of it, and still gets every broadcast.
    server.app.broadcast("fault:room", "news", {"n": 2})
    assert await neighbour.recv() == ["1", None, "fault:room", "news", {"n": 2}]
    await ping(neighbour, "fault:room", "1", "7")
    await neighbour.expect_silence()
    # And the victim may rejoin: the topic's route is not poisoned by the crash.
    await join(victim, "fault:room", "8")
    await ping(victim, "fault:room", "8", "9")


@pytest.mark.parametrize("ending", ["leave", "close", "crash"])
async def test_a_crash_in_terminate_is_logged_and_the_channel_still_ends(
    fault_server: tuple[Server, Recorder], open_client: Any, caplog: pytest.LogCaptureFixture, ending: str
) -> None:
    server, recorder = fault_server
    client = await open_client("u1")
    await client.send(["1", "1", "fault:t", "phx_join", {"crash_in": "terminate"}])
    assert await client.recv() == ["1", "1", "fault:t", "phx_reply", OK_EMPTY]
    ((_, pid, _),) = recorder.of("join")
    watch = await ExitWatch.start([pid])

    if ending == "leave":
        await client.send(["1", "2", "fault:t", "phx_leave", {}])
        # Phoenix replies and closes before terminate runs; terminate's crash changes neither.
        assert await client.recv_n(2) == [["1", "2", "fault:t", "phx_reply", OK_EMPTY],
                                          ["1", "1", "fault:t", "phx_close", {}]]
        expected_reason: Any = ("shutdown", "left")
    elif ending == "close":
        await client.close()
        expected_reason = ("shutdown", "closed")
    else:
        # A crash in handle_in runs terminate, which crashes in turn: both are logged.
        await client.send(["1", "2", "fault:t", "explode", {}])
        assert await client.recv() == ["1", "1", "fault:t", "phx_error", CRASH]
        expected_reason = None  # the RuntimeError from handle_in, checked below

    reasons = await watch.reasons()
    if ending == "crash":
        assert [repr(reason) for reason in reasons.values()] == ["RuntimeError('explode')"]
        expected_reason = reasons[pid]
    else:
        assert reasons == {pid: expected_reason}
    assert server.app.supervisor.which_children() == []
    assert recorder.of("terminate") == [("fault:t", expected_reason)]
    assert log_messages(caplog, "channels_core.channel_server") == [
        *(["channel FaultChannel for 'fault:t' crashed handling event 'explode': RuntimeError('explode')"]
          if ending == "crash" else []),
        "channel FaultChannel raised in terminate/2: RuntimeError('crash in terminate')",
    ]
    if ending != "close":
        await heartbeat(client, "3")


# --------------------------------------------------------------------------
# A broadcast that cannot be encoded fails where it was sent, not where it goes
# --------------------------------------------------------------------------


@pytest.mark.parametrize("payload", [{"x": float("nan")}, {"x": "\ud800"}], ids=["nan", "lone-surrogate"])
async def test_a_broadcast_that_cannot_be_encoded_raises_for_its_sender_and_reaches_no_one(
    fault_server: tuple[Server, Recorder], open_client: Any, payload: dict[str, Any]
) -> None:
    server, _ = fault_server
    clients = [await open_client(f"u{n}") for n in range(3)]
    for client in clients:
        await join(client, "fault:room", "1")

    with pytest.raises(EncodeError, match="payload is not JSON-encodable"):
        server.app.broadcast("fault:room", "numbers", payload)

    # Before the fix for lone surrogates, every subscriber's connection dropped here.
    server.app.broadcast("fault:room", "numbers", {"x": 1})
    for client in clients:
        assert await client.recv() == [None, None, "fault:room", "numbers", {"x": 1}]
        await heartbeat(client, "2")


async def test_a_channel_whose_broadcast_cannot_be_encoded_crashes_alone(
    fault_server: tuple[Server, Recorder], open_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server, _ = fault_server
    sender, neighbour = await open_client("sender"), await open_client("neighbour")
    await join(sender, "fault:room", "1")
    await join(neighbour, "fault:room", "1")

    await sender.send(["1", "2", "fault:room", "broadcast_nan", {}])

    assert await sender.recv() == ["1", "1", "fault:room", "phx_error", CRASH]
    (message,) = log_messages(caplog, "channels_core.channel_server")
    assert message == ("channel FaultChannel for 'fault:room' crashed handling event 'broadcast_nan': "
                       "EncodeError('payload is not JSON-encodable: Out of range float values are not JSON compliant')")
    await neighbour.expect_silence()
    await ping(neighbour, "fault:room", "1", "3")


# --------------------------------------------------------------------------
# A connection that drops in the middle of a stream of broadcasts
# --------------------------------------------------------------------------


async def test_a_connection_that_drops_mid_broadcast_costs_no_one_else_a_message(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()
    server = await start_server(endpoint_for(channel("fault:*", fault_channel(recorder))))
    url = f"{server.ws_url}/socket/websocket?vsn=2.0.0"
    neighbours = [RawClient(await websockets.connect(url)) for _ in range(4)]
    dropper = RawClient(await websockets.connect(url))
    for client in [*neighbours, dropper]:
        await join(client, "fault:stream", "1")
    (dropper_channel,) = [pid for _, pid, _ in recorder.of("join")][-1:]
    watch = await ExitWatch.start([dropper_channel])

    for i in range(100):
        server.app.broadcast("fault:stream", "tick", {"i": i})
    # The dropper has read a little of the stream; the server is still writing the rest.
    assert await dropper.recv_n(20) == [[None, None, "fault:stream", "tick", {"i": i}] for i in range(20)]
    dropper.connection.transport.abort()  # no close frame: the TCP connection just goes
    for i in range(100, 300):
        server.app.broadcast("fault:stream", "tick", {"i": i})

    expected = [[None, None, "fault:stream", "tick", {"i": i}] for i in range(300)]
    for neighbour in neighbours:
        assert await neighbour.recv_n(300) == expected
        await neighbour.expect_silence(0.05)
    # The dropped connection exits normally, as Cowboy's does, and so its channel stops cleanly.
    assert await watch.reasons() == {dropper_channel: ("shutdown", "closed")}
    assert recorder.of("terminate") == [("fault:stream", ("shutdown", "closed"))]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert len(server.app.pubsub.subscribers("fault:stream")) == 4
    for neighbour in neighbours:
        await neighbour.close()


# --------------------------------------------------------------------------
# Shutdown while a channel is busy
# --------------------------------------------------------------------------


class BusyChannel(Channel):
    """``busy:*``: ``work`` waits until the test releases it, then replies."""

    release: asyncio.Event
    recorder: Recorder

    def join(self, topic: str, payload: Any, socket: SocketStruct) -> tuple[Any, ...]:
        return ("ok", socket)

    async def handle_in(self, event: str, payload: Any, socket: SocketStruct) -> tuple[Any, ...]:
        self.recorder.record("working", socket.channel_pid)
        await self.release.wait()
        self.recorder.record("worked")
        return ("reply", "ok", socket)

    def terminate(self, reason: Any, socket: SocketStruct) -> None:
        self.recorder.record("terminate", reason)


async def test_shutdown_closes_a_connection_whose_channel_is_busy_and_terminate_runs_when_it_is_done(
    start_server: StartServer,
) -> None:
    recorder, release = Recorder(), asyncio.Event()
    busy = type("BusyChannel", (BusyChannel,), {"release": release, "recorder": recorder})
    server = await start_server(endpoint_for(channel("busy:*", busy)))
    client = RawClient(await websockets.connect(f"{server.ws_url}/socket/websocket?vsn=2.0.0"))
    await join(client, "busy:1", "1")
    await client.send(["1", "2", "busy:1", "work", {}])
    ((pid,),) = await recorder.wait_for("working", 1)
    watch = await ExitWatch.start([pid])

    stopping = asyncio.ensure_future(server.stop())
    # The client is told at once; it does not wait for the channel's work.
    assert await closed(client) == (1012, "")
    assert recorder.of("terminate") == []
    release.set()
    await asyncio.wait_for(stopping, seconds(5))
    # The work finished, then the channel saw its transport go and ran terminate.
    assert await watch.reasons() == {pid: ("shutdown", "closed")}
    assert [event[0] for event in recorder.events] == ["working", "worked", "terminate"]
    assert recorder.of("terminate") == [(("shutdown", "closed"),)]


# --------------------------------------------------------------------------
# A client that stops reading: the slow consumer
# --------------------------------------------------------------------------
#
# Phoenix puts no bound on what waits for a socket's process; this server does
# (the transport's max_queue, 1000 messages by default). A client that stops
# reading fills its TCP buffers, then uvicorn's write buffer (64 KiB), and from
# then on every frame for it waits in its transport's mailbox, because the
# transport is stuck in a write that waits for the client. The runtime bounds that
# mailbox: the message that finds it full is dropped, and the adapter closes the
# connection with 1013 ("try again later") and a log line.


async def test_a_bounded_mailbox_drops_what_does_not_fit_and_tells_its_owner_once() -> None:
    told: list[Any] = []
    release = asyncio.Event()

    async def busy() -> list[Any]:
        await release.wait()  # not receiving: the mailbox fills
        return [await process.receive(timeout=1) for _ in range(3)]

    pid = process.spawn(busy, role="busy")
    proc = process.lookup(pid)
    assert proc is not None and proc.task is not None
    proc.max_mailbox, proc.on_mailbox_full = 3, told.append
    for n in range(6):
        process.send(pid, n)

    assert told == [pid]  # once, for the first message that did not fit
    assert list(proc.mailbox) == [0, 1, 2]
    release.set()
    await asyncio.wait_for(proc.task, seconds(2))
    assert proc.exit_reason == [0, 1, 2]


async def test_a_client_that_stops_reading_is_closed_with_1013_and_its_neighbour_keeps_receiving(
    start_server: StartServer, ws: Any, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()
    server = await start_server(endpoint_for(channel("fault:*", fault_channel(recorder)), max_queue=10))
    url = f"{server.ws_url}/socket/websocket?vsn=2.0.0"
    # No per-message deflate (see ws): a frame of "x"s would shrink to nothing on the wire.
    neighbour = await ws(url)
    await join(neighbour, "fault:room", "1")
    # max_queue=1: once a frame waits unread, the client stops reading its socket.
    slow = await ws(url, max_queue=1)
    await join(slow, "fault:room", "1")
    (_, slow_channel, _) = recorder.of("join")[-1]
    watch = await ExitWatch.start([slow_channel])

    pad = "x" * (256 * 1024)  # big frames fill the TCP buffers in a few dozen broadcasts
    sent = 0
    while process.is_alive(slow_channel):
        assert sent < 400, "the slow client was never closed"
        server.app.broadcast("fault:room", "big", {"i": sent, "pad": pad})
        # The neighbour gets every frame, in order, while the slow client falls behind.
        assert await neighbour.recv(timeout=5) == [None, None, "fault:room", "big", {"i": sent, "pad": pad}]
        sent += 1

    # The slow connection's process exited normally, as for any close, so its channel
    # stopped cleanly and ran terminate.
    assert await watch.reasons() == {slow_channel: ("shutdown", "closed")}
    assert recorder.of("terminate") == [("fault:room", ("shutdown", "closed"))]
    (message,) = log_messages(caplog, "channels_core.adapter")
    assert re.fullmatch(r"x closing connection \d+ with 1013: 10 messages wait for it \(max_queue\); "
                        r"its client is not keeping up", message)
    # When the client reads again, it finds what was written before the close, in
    # order and without a gap, then the close: what waited in the mailbox is gone.
    received = []
    with pytest.raises(websockets.ConnectionClosed):
        while True:
            received.append(await slow.recv(timeout=5))
    assert received == [[None, None, "fault:room", "big", {"i": i, "pad": pad}] for i in range(len(received))]
    assert 0 < len(received) < sent
    assert (slow.connection.protocol.close_rcvd.code, slow.connection.protocol.close_rcvd.reason) == (1013, "")
    # The neighbour carries on.
    server.app.broadcast("fault:room", "small", {"n": 1})
    assert await neighbour.recv() == [None, None, "fault:room", "small", {"n": 1}]
    await heartbeat(neighbour, "2")


async def test_stopping_the_server_does_not_wait_for_a_client_that_stopped_reading(
    start_server: StartServer, ws: Any
) -> None:
    recorder = Recorder()
    # No max_queue: the slow client is still connected, its transport stuck in a write,
    # when the server is asked to stop.
    server = await start_server(endpoint_for(channel("fault:*", fault_channel(recorder)), max_queue=None))
    url = f"{server.ws_url}/socket/websocket?vsn=2.0.0"
    neighbour, slow = await ws(url), await ws(url, max_queue=1)
    for client in (neighbour, slow):
        await join(client, "fault:room", "1")
    channels = [pid for _, pid, _ in recorder.of("join")]
    watch = await ExitWatch.start(channels)
    pad = "x" * (256 * 1024)
    for i in range(80):  # 20 MB: far more than the TCP buffers of a client that does not read
        server.app.broadcast("fault:room", "big", {"i": i, "pad": pad})
        assert (await neighbour.recv(timeout=5))[4]["i"] == i
    (slow_transport,) = [pid for pid in process.iter_processes("socket") if len(process.lookup(pid).mailbox) > 0]

    await asyncio.wait_for(server.stop(), seconds(5))

    # Both channels saw their transport go and ran terminate; nothing is left waiting.
    assert set((await watch.reasons()).values()) == {("shutdown", "closed")}
    assert sorted(recorder.of("terminate")) == [("fault:room", ("shutdown", "closed"))] * 2
    assert not process.is_alive(slow_transport)
    assert await closed(neighbour) == (1012, "")


async def test_a_long_poll_session_whose_client_does_not_poll_ends_at_max_queue(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()
    socket_class = type("FaultSocket", (ParamsSocket,), {"channels": [channel("fault:*", fault_channel(recorder))]})
    endpoint_class = type("LongPollOnly", (Endpoint,), {"sockets": [
        socket("/socket", socket_class, websocket=False, longpoll={"check_origin": False, "max_queue": 3}),
    ]})
    server = await start_server(endpoint_class())
    async with httpx.AsyncClient(base_url=server.url, timeout=seconds(5)) as http:
        token = (await http.get("/socket/longpoll?vsn=2.0.0")).json()["token"]
        join_frame = json.dumps(["1", "1", "fault:room", "phx_join", {}])
        assert (await http.post(f"/socket/longpoll?vsn=2.0.0&token={token}", content=join_frame)).json() == {
            "status": 200}
        ((_, channel_pid, _),) = recorder.of("join")
        watch = await ExitWatch.start([channel_pid])

        # The join reply waits for a poll that does not come; two broadcasts join it...
        for n in range(3):
            server.app.broadcast("fault:room", "news", {"n": n})
        # ...and the third finds the buffer full: the session ends, and its channel with it.
        assert await watch.reasons() == {channel_pid: ("shutdown", "slow_consumer")}
        assert recorder.of("terminate") == [("fault:room", ("shutdown", "slow_consumer"))]
        (message,) = log_messages(caplog, "channels_core.transports.longpoll")
        assert re.fullmatch(r"x long-poll session longpoll-\d+ ended: 3 frames wait for its next poll \(max_queue\)",
                            message)
        # The client's next poll learns that its session is gone, and gets a new one.
        polled = (await http.get(f"/socket/longpoll?vsn=2.0.0&token={token}")).json()
        assert polled["status"] == 410 and polled["token"] != token
