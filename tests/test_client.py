"""Tests for ``channels_core.client``, the phoenix.js-shaped asyncio client.

The client is the subject. Its peer is a real ``websockets`` server on
127.0.0.1 (:class:`Peer`) that records every frame it receives and sends only
what each test tells it to, the way a Phoenix endpoint would answer. Frames are
asserted exactly: the refs, the order, the bytes.

Nothing here sleeps to synchronise: tests wait on the peer's queues, on the
client's futures and on callbacks, always with a timeout.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket as std_socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from channels_core.client import (
    Channel,
    CloseEvent,
    Message,
    PushTimeout,
    Reply,
    Socket,
    auth_token_subprotocol,
    decode_binary,
    decode_v1,
    decode_v2,
    default_reconnect_after,
    default_rejoin_after,
    encode_binary_push,
    encode_v1,
    encode_v2,
    endpoint_url,
)

#: Scale every wait by this factor on a slow machine.
WAIT = 5.0 * float(os.environ.get("CHANNELS_TEST_TIMEOUT_SCALE", "1"))
TOPIC = "room:lobby"
NEVER = 3600.0  # a backoff delay that no test lives to see


def compact(value: Any) -> str:
    """JSON the way Phoenix (and JSON.stringify) writes it."""
    return json.dumps(value, separators=(",", ":"))


# --------------------------------------------------------------------------
# The peer
# --------------------------------------------------------------------------


class PeerConnection:
    """One client connection, as the scripted peer sees it."""

    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws
        self.received: list[str | bytes] = []
        self.heartbeats: list[Any] = []
        self.heartbeat_seen = asyncio.Event()
        self.closed = asyncio.Event()
        self._frames: asyncio.Queue[str | bytes] = asyncio.Queue()

    @property
    def path(self) -> str:
        assert self.ws.request is not None
        return self.ws.request.path

    def header(self, name: str) -> str | None:
        assert self.ws.request is not None
        return self.ws.request.headers.get(name)

    async def recv(self) -> str | bytes:
        """The next frame the client sent, raw."""
        return await asyncio.wait_for(self._frames.get(), WAIT)

    async def recv_json(self) -> Any:
        raw = await self.recv()
        assert isinstance(raw, str), raw
        return json.loads(raw)

    async def send(self, raw: str | bytes) -> None:
        await self.ws.send(raw)

    async def send_json(self, value: Any) -> None:
        await self.send(compact(value))

    async def reply(self, frame: list[Any], status: str = "ok", response: Any = None) -> None:
        """Answers a V2 frame the way Phoenix does: same join_ref, ref and topic."""
        join_ref, ref, topic = frame[0], frame[1], frame[2]
        payload = {"status": status, "response": {} if response is None else response}
        await self.send_json([join_ref, ref, topic, "phx_reply", payload])

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.ws.close(code, reason)

    def abort(self) -> None:
        """Drops the TCP connection without a close frame."""
        self.ws.transport.abort()

    async def wait_closed(self) -> None:
        await asyncio.wait_for(self.closed.wait(), WAIT)


class Peer:
    """A WebSocket server on 127.0.0.1 that answers only as each test scripts."""

    def __init__(self) -> None:
        #: Answer heartbeats without queueing them, like Phoenix always does.
        self.answer_heartbeats = False
        self.connections: list[PeerConnection] = []
        self.tasks: list[asyncio.Task[Any]] = []
        self.url = ""
        self._accepted: asyncio.Queue[PeerConnection] = asyncio.Queue()

    async def start(self) -> None:
        self._server = await serve(
            self._handler, "127.0.0.1", 0, select_subprotocol=self._select_subprotocol
        )
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}/socket"

    async def stop(self) -> None:
        self._server.close()
        await self._server.wait_closed()

    async def accept(self) -> PeerConnection:
        """The next connection a client opened."""
        return await asyncio.wait_for(self._accepted.get(), WAIT)

    async def wait_idle(self) -> None:
        """Waits until every connection handler, close handshake included, has ended."""
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=WAIT)

    @staticmethod
    def _select_subprotocol(
        _connection: ServerConnection, offered: Any
    ) -> Subprotocol | None:
        # Like Phoenix with auth_token enabled: accept "phoenix" if offered.
        return Subprotocol("phoenix") if "phoenix" in offered else None

    @staticmethod
    def _is_heartbeat(raw: str | bytes) -> bool:
        return isinstance(raw, str) and raw.startswith('[null,') and '"phoenix","heartbeat"' in raw

    async def _handler(self, ws: ServerConnection) -> None:
        connection = PeerConnection(ws)
        task = asyncio.current_task()
        assert task is not None
        self.tasks.append(task)
        self.connections.append(connection)
        self._accepted.put_nowait(connection)
        try:
            async for raw in ws:
                connection.received.append(raw)
                if self.answer_heartbeats and self._is_heartbeat(raw):
                    frame = json.loads(raw)
                    connection.heartbeats.append(frame)
                    connection.heartbeat_seen.set()
                    await connection.reply(frame)
                    continue
                connection._frames.put_nowait(raw)
        except ConnectionClosed:
            pass
        finally:
            connection.closed.set()


@pytest_asyncio.fixture
async def peer() -> AsyncIterator[Peer]:
    peer = Peer()
    await peer.start()
    yield peer
    await peer.stop()


async def join(conn: PeerConnection, channel: Channel, response: Any = None) -> list[Any]:
    """Joins ``channel``, letting the peer accept; returns the join frame."""
    push = channel.join()
    frame = await conn.recv_json()
    await conn.reply(frame, "ok", response)
    assert await push == Reply("ok", {} if response is None else response)
    return frame


def future_callback() -> tuple[asyncio.Future[Any], Any]:
    """A future and a callback that resolves it with its first argument."""
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def callback(value: Any = None) -> None:
        if not future.done():
            future.set_result(value)

    return future, callback


# --------------------------------------------------------------------------
# Wire format: pure functions
# --------------------------------------------------------------------------


def test_endpoint_url_appends_transport_params_and_vsn() -> None:
    assert endpoint_url("ws://127.0.0.1:4000/socket") == (
        "ws://127.0.0.1:4000/socket/websocket?vsn=2.0.0"
    )
    assert endpoint_url("wss://example.com/socket", {"token": "abc"}, "1.0.0") == (
        "wss://example.com/socket/websocket?token=abc&vsn=1.0.0"
    )
    # Escaped like encodeURIComponent; nested values as key[sub]; null dropped.
    params = {"token": "a b&c/é", "user": {"id": 7}, "tags": ["x", "y"], "admin": False, "n": None}
    assert endpoint_url("ws://h/socket", params) == (
        "ws://h/socket/websocket?token=a%20b%26c%2F%C3%A9&user%5Bid%5D=7"
        "&tags%5B0%5D=x&tags%5B1%5D=y&admin=false&vsn=2.0.0"
    )


def test_socket_params_may_be_a_function_evaluated_at_each_connect() -> None:
    tokens = iter(["t1", "t2"])
    socket = Socket("ws://h/socket", params=lambda: {"token": next(tokens)})
    assert socket.endpoint_url() == "ws://h/socket/websocket?token=t1&vsn=2.0.0"
    assert socket.endpoint_url() == "ws://h/socket/websocket?token=t2&vsn=2.0.0"


def test_make_ref_counts_up_from_one() -> None:
    socket = Socket("ws://h/socket")
    assert [socket.make_ref() for _ in range(3)] == ["1", "2", "3"]


def test_auth_token_subprotocol_is_unpadded_base64url() -> None:
    assert auth_token_subprotocol("secret") == "base64url.bearer.phx.c2VjcmV0"
    # Standard base64 would give "dG9rPz4+"; the url-safe alphabet has no + or /.
    assert auth_token_subprotocol("tok?>>") == "base64url.bearer.phx.dG9rPz4-"


def test_default_backoffs_follow_phoenix_js() -> None:
    assert [default_reconnect_after(n) for n in range(1, 12)] == [
        0.01, 0.05, 0.1, 0.15, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 5.0
    ]
    assert [default_rejoin_after(n) for n in range(1, 6)] == [1.0, 2.0, 5.0, 10.0, 10.0]


def test_v2_text_frames_are_compact_arrays() -> None:
    message = Message(TOPIC, "new_msg", {"body": "zoë"}, "2", "1")
    assert encode_v2(message) == '["1","2","room:lobby","new_msg",{"body":"zoë"}]'
    assert encode_v2(Message("phoenix", "heartbeat", {}, "3")) == (
        '[null,"3","phoenix","heartbeat",{}]'
    )
    assert decode_v2('[null,null,"room:lobby","tick",{"n":1}]') == Message(TOPIC, "tick", {"n": 1})
    with pytest.raises(ValueError):
        decode_v2('{"topic":"room:lobby"}')


def test_v2_binary_push_encoding() -> None:
    frame = encode_binary_push(Message(TOPIC, "upload", b"\x00\xff", "12", "3"))
    assert frame == (
        bytes([0, 1, 2, 10, 6]) + b"3" + b"12" + b"room:lobby" + b"upload" + b"\x00\xff"
    )
    assert encode_v2(Message(TOPIC, "upload", b"\x00\xff", "12", "3")) == frame
    with pytest.raises(ValueError, match="topic"):
        encode_binary_push(Message("t" * 256, "e", b"", "1", "1"))


def test_v2_binary_decoding_of_push_reply_and_broadcast() -> None:
    push = bytes([0, 1, 10, 5]) + b"1" + b"room:lobby" + b"image" + b"\x89PNG"
    assert decode_binary(push) == Message(TOPIC, "image", b"\x89PNG", None, "1")

    reply = bytes([1, 1, 2, 10, 2]) + b"1" + b"12" + b"room:lobby" + b"ok" + b"\xca\xfe"
    assert decode_v2(reply) == Message(
        TOPIC, "phx_reply", {"status": "ok", "response": b"\xca\xfe"}, "12", "1"
    )

    broadcast = bytes([2, 10, 4]) + b"room:lobby" + b"tick" + b"\x00"
    assert decode_binary(broadcast) == Message(TOPIC, "tick", b"\x00", None, None)

    with pytest.raises(ValueError, match="kind"):
        decode_binary(b"\x07")
    with pytest.raises(ValueError, match="truncated"):
        decode_binary(bytes([2, 10, 4]) + b"room")


def test_v1_frames_are_json_objects() -> None:
    assert encode_v1(Message(TOPIC, "phx_join", {}, "1", "1")) == (
        '{"topic":"room:lobby","event":"phx_join","payload":{},"ref":"1","join_ref":"1"}'
    )
    assert decode_v1('{"topic":"room:lobby","event":"tick","payload":{},"ref":null}') == (
        Message(TOPIC, "tick", {}, None, None)
    )
    with pytest.raises(TypeError):
        encode_v1(Message(TOPIC, "upload", b"\x00", "2", "1"))


# --------------------------------------------------------------------------
# Connecting
# --------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_connect_uses_endpoint_url_with_params_and_vsn(peer: Peer) -> None:
    opened, on_open = future_callback()
    socket = Socket(peer.url, params={"token": "abc"})
    socket.on_open(on_open)
    async with socket:
        conn = await peer.accept()
        await asyncio.wait_for(opened, WAIT)
        assert conn.path == "/socket/websocket?token=abc&vsn=2.0.0"
        assert socket.is_connected()
        assert socket.connection_state() == "open"
        # Without an auth token no subprotocol is offered.
        assert conn.header("Sec-WebSocket-Protocol") is None
    assert not socket.is_connected()
    assert socket.connection_state() == "closed"


@pytest.mark.asyncio
async def test_auth_token_is_sent_as_subprotocol_next_to_phoenix(peer: Peer) -> None:
    socket = Socket(peer.url, auth_token="tok?>>", headers={"X-Trace": "t1"})
    async with socket:
        conn = await peer.accept()
        assert conn.header("Sec-WebSocket-Protocol") == "phoenix, base64url.bearer.phx.dG9rPz4-"
        assert conn.header("X-Trace") == "t1"
        assert conn.ws.subprotocol == "phoenix"


@pytest.mark.asyncio
async def test_connect_failure_raises_and_does_not_retry() -> None:
    # A port that was free a moment ago: nothing listens there.
    with std_socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    tries: list[int] = []
    errors: list[BaseException] = []
    socket = Socket(
        f"ws://127.0.0.1:{port}/socket", reconnect_after=lambda n: tries.append(n) or 0.01
    )
    socket.on_error(errors.append)
    with pytest.raises(OSError):
        await socket.connect()
    assert len(errors) == 1 and isinstance(errors[0], OSError)
    assert tries == []
    assert socket.connection_state() == "closed"


# --------------------------------------------------------------------------
# Joining, pushing, replies
# --------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_join_ok_resolves_await_and_receive_callbacks(peer: Peer) -> None:
    async with Socket(peer.url) as socket:
        conn = await peer.accept()
        channel = socket.channel(TOPIC, {"user": "ann"})
        oks: list[Any] = []
        errors: list[Any] = []
        push = channel.join().receive("ok", oks.append).receive("error", errors.append)
        assert channel.state == "joining"

        frame = await conn.recv_json()
        assert frame == ["1", "1", TOPIC, "phx_join", {"user": "ann"}]
        await conn.reply(frame, "ok", {"welcome": True})

        assert await push == Reply("ok", {"welcome": True})
        assert oks == [{"welcome": True}] and errors == []
        assert channel.state == "joined"
        assert channel.join_ref == "1"
        # A hook added after the fact runs at once, like in phoenix.js.
        late: list[Any] = []
        push.receive("ok", late.append)
        assert late == [{"welcome": True}]
        assert socket.frames == [
            ("↑", '["1","1","room:lobby","phx_join",{"user":"ann"}]'),
            ("↓", '["1","1","room:lobby","phx_reply",{"status":"ok","response":{"welcome":true}}]'),
        ]
        with pytest.raises(RuntimeError, match="join multiple times"):
            channel.join()


@pytest.mark.asyncio
async def test_join_error_resolves_with_error_reply(peer: Peer) -> None:
    async with Socket(peer.url, rejoin_after=lambda _n: NEVER) as socket:
        conn = await peer.accept()
        channel = socket.channel(TOPIC)
        errors: list[Any] = []
        push = channel.join().receive("error", errors.append)
        frame = await conn.recv_json()
        assert frame == ["1", "1", TOPIC, "phx_join", {}]
        await conn.reply(frame, "error", {"reason": "unauthorized"})

        assert await push == Reply("error", {"reason": "unauthorized"})
        assert errors == [{"reason": "unauthorized"}]
        # As in phoenix.js, a refused join is retried later.
        assert channel.state == "errored"


@pytest.mark.asyncio
async def test_push_before_join_raises(peer: Peer) -> None:
    async with Socket(peer.url) as socket:
        with pytest.raises(RuntimeError, match="before joining"):
            socket.channel(TOPIC).push("ping", {})


@pytest.mark.asyncio
async def test_replies_are_matched_to_pushes_by_ref(peer: Peer) -> None:
    async with Socket(peer.url) as socket:
        conn = await peer.accept()
        channel = socket.channel(TOPIC)
        await join(conn, channel)

        first = channel.push("add", {"n": 1})
        second = channel.push("add", {"n": 2})
        frame_1 = await conn.recv_json()
        frame_2 = await conn.recv_json()
        assert frame_1 == ["1", "2", TOPIC, "add", {"n": 1}]
        assert frame_2 == ["1", "3", TOPIC, "add", {"n": 2}]

        # A reply for a ref nobody waits for is ignored; the others arrive out of order.
        await conn.send_json(["1", "99", TOPIC, "phx_reply", {"status": "ok", "response": {}}])
        await conn.reply(frame_2, "ok", {"sum": 20})
        await conn.reply(frame_1, "error", {"sum": 10})
        assert await second == Reply("ok", {"sum": 20})
        assert await first == Reply("error", {"sum": 10})


@pytest.mark.asyncio
async def test_push_before_join_reply_is_buffered_then_sent(peer: Peer) -> None:
    async with Socket(peer.url) as socket:
        conn = await peer.accept()
        channel = socket.channel(TOPIC)
        join_push = channel.join()
        early = channel.push("early", {"n": 1})
        join_frame = await conn.recv_json()
        assert join_frame == ["1", "1", TOPIC, "phx_join", {}]
        await conn.reply(join_frame)
        await join_push

        # Sent only after the join reply; as in phoenix.js, it took ref "2"
        # when buffered and a fresh ref when actually sent.
        frame = await conn.recv_json()
        assert frame == ["1", "3", TOPIC, "early", {"n": 1}]
        await conn.reply(frame, "ok", {"pong": True})
        assert await early == Reply("ok", {"pong": True})


@pytest.mark.asyncio
async def test_join_before_connect_is_sent_on_open(peer: Peer) -> None:
    socket = Socket(peer.url)
    channel = socket.channel(TOPIC)
    push = channel.join()
    assert channel.state == "joining"
    async with socket:
        conn = await peer.accept()
        frame = await conn.recv_json()
        assert frame == ["1", "1", TOPIC, "phx_join", {}]
        await conn.reply(frame)
        assert await push == Reply("ok", {})


@pytest.mark.asyncio
async def test_join_timeout_leaves_then_rejoins(peer: Peer) -> None:
    async with Socket(peer.url, rejoin_after=lambda _n: 0.01) as socket:
        conn = await peer.accept()
        channel = socket.channel(TOPIC)
        push = channel.join(timeout=0.05)
        assert await conn.recv_json() == ["1", "1", TOPIC, "phx_join", {}]
        with pytest.raises(PushTimeout):
            await push
        # Tell the server to drop a join that may still succeed, then retry.
        assert await conn.recv_json() == ["1", "2", TOPIC, "phx_leave", {}]
        frame = await conn.recv_json()
        assert frame == ["3", "3", TOPIC, "phx_join", {}]
        await conn.reply(frame)
        assert await channel.join_push == Reply("ok", {})
        assert channel.state == "joined"


@pytest.mark.asyncio
async def test_joining_a_topic_twice_leaves_the_older_channel(peer: Peer) -> None:
    async with Socket(peer.url) as socket:
        conn = await peer.accept()
        older = socket.channel(TOPIC)
        await join(conn, older)
        newer = socket.channel(TOPIC)
        newer.join()
        assert await conn.recv_json() == ["1", "2", TOPIC, "phx_leave", {}]
        assert await conn.recv_json() == ["3", "3", TOPIC, "phx_join", {}]
        assert older.state == "leaving"


@pytest.mark.asyncio
async def test_leave_without_a_connection_closes_at_once() -> None:
    socket = Socket("ws://127.0.0.1:9/socket")
    channel = socket.channel(TOPIC)
    channel.join()
    leave = channel.leave()
    assert await leave == Reply("ok", {})
    assert channel.state == "closed"
    assert socket.channels == []
    # Only the join waits for a connection; there is nothing to leave.
    assert len(socket._send_buffer) == 1


@pytest.mark.asyncio
async def test_concurrent_connects_open_one_connection(peer: Peer) -> None:
    socket = Socket(peer.url)
    await asyncio.gather(socket.connect(), socket.connect())
    try:
        await peer.accept()
        assert socket.is_connected()
        assert len(peer.connections) == 1
    finally:
        await socket.disconnect()


@pytest.mark.asyncio
async def test_push_timeout_raises_and_runs_timeout_hooks(peer: Peer) -> None:
    async with Socket(peer.url) as socket:
        conn = await peer.accept()
        channel = socket.channel(TOPIC)
        await join(conn, channel)

        timeouts: list[Any] = []
        oks: list[Any] = []
        push = channel.push("slow", {}, timeout=0.05)
        push.receive("timeout", timeouts.append).receive("ok", oks.append)
        frame = await conn.recv_json()
        assert frame == ["1", "2", TOPIC, "slow", {}]

        with pytest.raises(PushTimeout) as info:
            await push
        assert isinstance(info.value, TimeoutError)
        assert (info.value.topic, info.value.event, info.value.timeout) == (TOPIC, "slow", 0.05)
        assert timeouts == [{}]

        # A reply after the timeout changes nothing.
        await conn.reply(frame, "ok", {"late": True})
        marker = channel.push("marker", {})
        await conn.reply(await conn.recv_json())
        await marker
        assert oks == []
        with pytest.raises(PushTimeout):
            await push


@pytest.mark.asyncio
async def test_leave_waits_for_the_server_ack(peer: Peer) -> None:
    async with Socket(peer.url) as socket:
        conn = await peer.accept()
        channel = socket.channel(TOPIC)
        closes: list[Any] = []
        channel.on_close(closes.append)
        await join(conn, channel)

        leave = channel.leave()
        assert channel.state == "leaving"
        frame = await conn.recv_json()
        assert frame == ["1", "2", TOPIC, "phx_leave", {}]
        await conn.reply(frame)

        assert await leave == Reply("ok", {})
        assert channel.state == "closed"
        assert closes == ["leave"]
        assert channel not in socket.channels


@pytest.mark.asyncio
async def test_phx_close_from_the_server_closes_the_channel(peer: Peer) -> None:
    async with Socket(peer.url) as socket:
        conn = await peer.accept()
        channel = socket.channel(TOPIC)
        await join(conn, channel)
        await conn.send_json(["1", None, TOPIC, "phx_close", {}])
        assert await channel.next_message("phx_close") == Message(TOPIC, "phx_close", {}, None, "1")
        assert channel.state == "closed"
        assert channel not in socket.channels


# --------------------------------------------------------------------------
# Incoming messages
# --------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_on_ignores_messages_of_another_join_ref(peer: Peer) -> None:
    seen: list[Message] = []
    async with Socket(peer.url) as socket:
        socket.on_message(seen.append)
        conn = await peer.accept()
        channel = socket.channel(TOPIC)
        await join(conn, channel)
        got: list[Any] = []
        ref = channel.on("new_msg", got.append)

        await conn.send_json(["99", None, TOPIC, "new_msg", {"n": 0}])  # an older membership
        await conn.send_json([None, None, TOPIC, "new_msg", {"n": 1}])  # a broadcast
        await conn.send_json(["1", None, TOPIC, "new_msg", {"n": 2}])  # ours
        await conn.send_json([None, None, "room:other", "new_msg", {"n": 3}])  # another topic
        await conn.send_json(["1", None, TOPIC, "done", {}])
        await channel.next_message("done")

        assert got == [{"n": 1}, {"n": 2}]
        assert await channel.next_message("new_msg") == Message(TOPIC, "new_msg", {"n": 1})
        assert await channel.next_message("new_msg") == Message(
            TOPIC, "new_msg", {"n": 2}, None, "1"
        )
        # The socket itself sees every message.
        assert [m.payload.get("n") for m in seen if m.event == "new_msg"] == [0, 1, 2, 3]

        channel.off("new_msg", ref)
        await conn.send_json(["1", None, TOPIC, "new_msg", {"n": 4}])
        await conn.send_json(["1", None, TOPIC, "done", {}])
        await channel.next_message("done")
        assert got == [{"n": 1}, {"n": 2}]
        assert [m.event for m in channel.messages] == [
            "phx_reply", "new_msg", "new_msg", "done", "new_msg", "done"
        ]


@pytest.mark.asyncio
async def test_next_message_times_out(peer: Peer) -> None:
    async with Socket(peer.url) as socket:
        conn = await peer.accept()
        channel = socket.channel(TOPIC)
        await join(conn, channel)
        with pytest.raises(TimeoutError, match="'new_msg'"):
            await channel.next_message("new_msg", timeout=0.05)
        # The join reply is still unread.
        assert await channel.next_message(timeout=0.05) == Message(
            TOPIC, "phx_reply", {"status": "ok", "response": {}}, "1", "1"
        )


@pytest.mark.asyncio
async def test_v1_serializer_uses_object_frames(peer: Peer) -> None:
    async with Socket(peer.url, vsn="1.0.0") as socket:
        conn = await peer.accept()
        assert conn.path == "/socket/websocket?vsn=1.0.0"
        channel = socket.channel(TOPIC)
        push = channel.join()
        assert await conn.recv() == (
            '{"topic":"room:lobby","event":"phx_join","payload":{},"ref":"1","join_ref":"1"}'
        )
        await conn.send(
            '{"topic":"room:lobby","event":"phx_reply",'
            '"payload":{"status":"ok","response":{"v":1}},"ref":"1"}'
        )
        assert await push == Reply("ok", {"v": 1})

        await conn.send(
            '{"topic":"room:lobby","event":"new_msg","payload":{"body":"hi"},"ref":null}'
        )
        assert await channel.next_message("new_msg") == Message(TOPIC, "new_msg", {"body": "hi"})
        with pytest.raises(TypeError):
            channel.push("upload", b"\x00")


@pytest.mark.asyncio
async def test_v2_binary_frames_on_a_live_connection(peer: Peer) -> None:
    async with Socket(peer.url) as socket:
        conn = await peer.accept()
        channel = socket.channel(TOPIC)
        await join(conn, channel)

        push = channel.push("upload", b"\x00\x01\xff")
        raw = await conn.recv()
        expected = (
            bytes([0, 1, 1, 10, 6]) + b"1" + b"2" + b"room:lobby" + b"upload" + b"\x00\x01\xff"
        )
        assert raw == expected
        assert socket.frames[-1] == ("↑", expected)

        await conn.send(bytes([1, 1, 1, 10, 2]) + b"1" + b"2" + b"room:lobby" + b"ok" + b"\xca\xfe")
        assert await push == Reply("ok", b"\xca\xfe")

        await conn.send(bytes([0, 1, 10, 5]) + b"1" + b"room:lobby" + b"image" + b"\x89PNG")
        assert await channel.next_message("image") == Message(TOPIC, "image", b"\x89PNG", None, "1")

        await conn.send(bytes([2, 10, 4]) + b"room:lobby" + b"tick" + b"\x00")
        assert await channel.next_message("tick") == Message(TOPIC, "tick", b"\x00", None, None)


# --------------------------------------------------------------------------
# Heartbeats, errors, reconnects
# --------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_heartbeat_is_sent_every_interval(peer: Peer) -> None:
    async with Socket(peer.url, heartbeat_interval=0.2) as socket:
        conn = await peer.accept()
        for ref in ("1", "2"):
            frame = await conn.recv_json()
            assert frame == [None, ref, "phoenix", "heartbeat", {}]
            await conn.reply(frame)
        assert socket.is_connected()
        assert len(peer.connections) == 1


@pytest.mark.asyncio
async def test_heartbeat_timeout_closes_and_reconnects(peer: Peer) -> None:
    closes: list[CloseEvent] = []
    channel_errors: list[Any] = []
    socket = Socket(
        peer.url,
        heartbeat_interval=0.1,
        reconnect_after=lambda _n: 0.01,
        rejoin_after=lambda _n: NEVER,
    )
    socket.on_close(closes.append)
    async with socket:
        conn = await peer.accept()
        channel = socket.channel(TOPIC)
        channel.on_error(channel_errors.append)
        await join(conn, channel)

        # Left unanswered: when the next one is due, the client gives up.
        assert await conn.recv_json() == [None, "2", "phoenix", "heartbeat", {}]
        await conn.wait_closed()
        assert (conn.ws.close_code, conn.ws.close_reason) == (1000, "heartbeat timeout")
        assert closes == [CloseEvent(1000, "heartbeat timeout")]
        assert channel_errors == [{"source": "transport", "reason": "heartbeat_timeout"}]

        again = await peer.accept()
        frame = await again.recv_json()
        assert frame == ["3", "3", TOPIC, "phx_join", {}]
        await again.reply(frame)
        assert await channel.join_push == Reply("ok", {})
        assert channel.state == "joined"


@pytest.mark.asyncio
async def test_phx_error_rejoins_with_a_new_join_ref(peer: Peer) -> None:
    async with Socket(peer.url, rejoin_after=lambda _n: 0.01) as socket:
        conn = await peer.accept()
        channel = socket.channel(TOPIC)
        errored, on_error = future_callback()
        channel.on_error(on_error)
        got: list[Any] = []
        channel.on("new_msg", got.append)
        await join(conn, channel)

        await conn.send_json(["1", "1", TOPIC, "phx_error", {}])
        assert await asyncio.wait_for(errored, WAIT) == {}
        # The old "ok" is forgotten: awaiting the join push waits for the rejoin.
        rejoined = asyncio.ensure_future(channel.join_push)
        frame = await conn.recv_json()
        assert frame == ["2", "2", TOPIC, "phx_join", {}]
        await conn.reply(frame, "ok", {"again": True})
        assert await asyncio.wait_for(rejoined, WAIT) == Reply("ok", {"again": True})
        assert channel.state == "joined"
        assert channel.join_ref == "2"

        # Messages of the crashed membership no longer reach the callbacks.
        await conn.send_json(["1", None, TOPIC, "new_msg", {"stale": True}])
        await conn.send_json(["2", None, TOPIC, "new_msg", {"fresh": True}])
        await channel.next_message("new_msg")
        assert got == [{"fresh": True}]


@pytest.mark.asyncio
async def test_abnormal_close_reconnects_and_rejoins(peer: Peer) -> None:
    tries: list[int] = []
    closes: list[CloseEvent] = []
    errors: list[BaseException] = []

    def reconnect_after(n: int) -> float:
        tries.append(n)
        return 0.01

    socket = Socket(peer.url, reconnect_after=reconnect_after, rejoin_after=lambda _n: NEVER)
    socket.on_close(closes.append)
    socket.on_error(errors.append)
    async with socket:
        conn = await peer.accept()
        channel = socket.channel(TOPIC, {"user": "ann"})
        await join(conn, channel)

        conn.abort()
        again = await peer.accept()
        assert closes == [CloseEvent(1006, "")]
        assert len(errors) == 1 and isinstance(errors[0], ConnectionClosed)
        assert tries == [1]

        frame = await again.recv_json()
        assert frame == ["2", "2", TOPIC, "phx_join", {"user": "ann"}]
        await again.reply(frame)
        assert await channel.join_push == Reply("ok", {})
        assert channel.state == "joined"


@pytest.mark.asyncio
@pytest.mark.parametrize(("code", "reconnects"), [(1000, False), (1001, True), (4000, True)])
async def test_server_close_reconnects_unless_code_1000(
    peer: Peer, code: int, reconnects: bool
) -> None:
    tries: list[int] = []

    def reconnect_after(n: int) -> float:
        tries.append(n)
        return 0.01

    socket = Socket(peer.url, reconnect_after=reconnect_after, rejoin_after=lambda _n: NEVER)
    closed, on_close = future_callback()
    socket.on_close(on_close)
    async with socket:
        conn = await peer.accept()
        channel = socket.channel(TOPIC)
        await join(conn, channel)

        await conn.close(code, "bye")
        assert await asyncio.wait_for(closed, WAIT) == CloseEvent(code, "bye")
        # The decision is taken before the close callbacks run.
        assert tries == ([1] if reconnects else [])
        assert channel.state == "errored"
        if reconnects:
            again = await peer.accept()
            assert await again.recv_json() == ["2", "2", TOPIC, "phx_join", {}]
        else:
            assert not socket.is_connected()


@pytest.mark.asyncio
async def test_disconnect_stops_every_task(peer: Peer) -> None:
    before = asyncio.all_tasks()
    peer.answer_heartbeats = True
    tries: list[int] = []
    closes: list[CloseEvent] = []
    socket = Socket(
        peer.url,
        heartbeat_interval=0.05,
        reconnect_after=lambda n: tries.append(n) or 0.01,
        rejoin_after=lambda _n: NEVER,
    )
    socket.on_close(closes.append)
    await socket.connect()
    conn = await peer.accept()

    joined = socket.channel(TOPIC)
    await join(conn, joined)
    refused = socket.channel("room:secret")
    refused_push = refused.join()
    frame = await conn.recv_json()
    await conn.reply(frame, "error", {"reason": "unauthorized"})
    await refused_push  # now a rejoin is scheduled
    pending = joined.push("never_answered", {})
    assert (await conn.recv_json())[3] == "never_answered"
    await asyncio.wait_for(conn.heartbeat_seen.wait(), WAIT)  # the heartbeat runs

    await socket.disconnect()
    await conn.wait_closed()
    assert conn.ws.close_code == 1000
    await peer.wait_idle()

    assert asyncio.all_tasks() - before == set()
    assert not socket.is_connected()
    assert closes == [CloseEvent(1000, "")]
    assert tries == []
    assert len(peer.connections) == 1
    assert pending.sent
