"""Unit tests for SocketState: each clause of Phoenix.Socket's handle_in and handle_info.

No network: the test itself plays the transport process. It builds a
:class:`SocketState` with :func:`channels_core.socket.connect`, as the WebSocket
pipeline does, calls ``state.init(current())``, and then feeds frames to
``handle_in`` and mailbox messages to ``handle_info``, exactly as the adapter
would. What a transport would write to the wire is either returned by those calls
or arrives in the test process's mailbox (channel pushes, replies, broadcasts).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from helpers import in_process

from channels_core import process
from channels_core import socket as socket_module
from channels_core.demo.app import DemoEndpoint, RoomChannel, UserSocket
from channels_core.exceptions import DecodeError
from channels_core.message import Broadcast
from channels_core.process import Down, Pid
from channels_core.serializers import SocketPush
from channels_core.socket import ChannelEntry, SocketClose, SocketState
from channels_core.transports.transport import WEBSOCKET_DEFAULTS, Stop, load_config

pytestmark = pytest.mark.usefixtures("leak_check")


# Helpers


def connect(
    params: dict[str, str] | None = None, *, endpoint: DemoEndpoint | None = None, **options: Any
) -> SocketState:
    """Connect the demo's UserSocket and make the calling process its transport."""
    config = load_config({"check_origin": False, **options}, WEBSOCKET_DEFAULTS)
    params = {"vsn": "2.0.0", "user_id": "u1"} if params is None else params
    state = socket_module.connect(UserSocket, endpoint or DemoEndpoint(), "websocket", config, params, {})
    assert isinstance(state, SocketState)
    state.init(process.current())
    return state


def wire(push: SocketPush | None) -> Any:
    """What the client would read: parsed JSON for a text frame, bytes for a binary one."""
    if push is None:
        return None
    assert isinstance(push, SocketPush), push
    return json.loads(push.data) if push.opcode == "text" else push.data


async def send(state: SocketState, frame: list[Any]) -> Any:
    """The client sends ``frame``; return the frame the socket answers with at once, if any."""
    return wire(await state.handle_in(json.dumps(frame), "text"))


async def next_frame(state: SocketState, timeout: float = 2.0) -> Any:
    """Take the next mailbox message, hand it to ``handle_info`` as the transport does,
    and return the frame it produces."""
    message = await process.receive(timeout=timeout)
    return wire(await state.handle_info(message))  # type: ignore[arg-type]


def unmatched(ref: str, topic: Any) -> list[Any]:
    """The reply to a message for a topic the socket has not joined: no join_ref."""
    return [None, ref, topic, "phx_reply", {"response": {"reason": "unmatched topic"}, "status": "error"}]


def mailbox() -> list[Any]:
    return list(process.lookup(process.current()).mailbox)  # type: ignore[union-attr]


async def join_lobby(state: SocketState, join_ref: str = "1", user: str | None = None) -> Pid:
    """Join room:lobby and read the two frames RoomChannel sends after its join."""
    reply = await send(state, [join_ref, join_ref, "room:lobby", "phx_join", {"user": user}])
    assert reply == [join_ref, join_ref, "room:lobby", "phx_reply", {"response": {}, "status": "ok"}]
    assert await next_frame(state) == [None, None, "room:lobby", "user_entered", {"user": user}]
    assert await next_frame(state) == [join_ref, None, "room:lobby", "joined", {"status": "connected", "user_id": "u1"}]
    return state.channels["room:lobby"].pid


# Transport callbacks


@in_process
async def test_init_records_the_transport_and_subscribes_to_the_socket_id() -> None:
    endpoint = DemoEndpoint()
    state = connect(endpoint=endpoint)
    assert state.socket.transport_pid == process.current()
    assert endpoint.pubsub.subscribers("user_sockets:u1") == [(process.current(), None)]


@in_process
async def test_init_without_an_id_subscribes_to_nothing() -> None:
    endpoint = DemoEndpoint()
    state = connect({"vsn": "2.0.0"}, endpoint=endpoint)
    assert state.socket.id is None
    assert endpoint.pubsub.topics() == []


@in_process
async def test_heartbeat() -> None:
    state = connect()
    reply = await send(state, [None, "5", "phoenix", "heartbeat", {"ignored": True}])
    assert reply == [None, "5", "phoenix", "phx_reply", {"response": {}, "status": "ok"}]


@in_process
async def test_a_malformed_frame_raises_for_the_transport_to_crash_on() -> None:
    state = connect()
    with pytest.raises(DecodeError, match="got 4 elements"):
        await state.handle_in('["1","1","room:lobby","phx_join"]', "text")


# Join


@in_process
async def test_join_ok_fills_both_maps() -> None:
    endpoint = DemoEndpoint()
    state = connect(endpoint=endpoint)
    reply = await send(state, ["1", "1", "room:lobby", "phx_join", {"user": "alice"}])
    assert reply == ["1", "1", "room:lobby", "phx_reply", {"response": {}, "status": "ok"}]

    entry = state.channels["room:lobby"]
    assert isinstance(entry, ChannelEntry)
    assert entry.status == "joined"
    assert process.is_alive(entry.pid)
    assert entry.pid.role == "channel room:lobby"
    assert endpoint.supervisor.which_children() == [entry.pid]
    assert list(state.channels) == ["room:lobby"]
    assert state.channels_inverse == {entry.pid: ("room:lobby", "1")}

    # RoomChannel's after_join: a broadcast (fastlane, no join_ref), then a push.
    assert await next_frame(state) == [None, None, "room:lobby", "user_entered", {"user": "alice"}]
    assert await next_frame(state) == ["1", None, "room:lobby", "joined", {"status": "connected", "user_id": "u1"}]


@in_process
async def test_join_error_leaves_the_maps_empty() -> None:
    endpoint = DemoEndpoint()
    state = connect(endpoint=endpoint)
    reply = await send(state, ["1", "1", "room:private", "phx_join", {}])
    assert reply == ["1", "1", "room:private", "phx_reply", {"response": {"reason": "unauthorized"}, "status": "error"}]
    assert state.channels == {} and state.channels_inverse == {}
    # A later message to that topic is an unmatched topic, with a null join_ref.
    assert await send(state, ["1", "2", "room:private", "new_msg", {}]) == unmatched("2", "room:private")


@in_process
async def test_join_of_a_topic_no_route_matches(caplog: pytest.LogCaptureFixture) -> None:
    state = connect()
    with caplog.at_level(logging.WARNING, logger="channels_core.socket"):
        reply = await send(state, ["1", "1", "nowhere:1", "phx_join", {}])
    assert reply == unmatched("1", "nowhere:1")
    assert caplog.messages == ['ignoring unmatched topic "nowhere:1" in UserSocket']
    assert state.channels == {}


@in_process
async def test_a_non_string_topic_is_an_unmatched_topic() -> None:
    state = connect()
    assert await send(state, [None, "1", 123, "phx_join", {}]) == unmatched("1", 123)
    # An unhashable topic cannot be a key of the channel map: unmatched as well.
    assert await send(state, [None, "2", ["room:lobby"], "new_msg", {}]) == unmatched("2", ["room:lobby"])


@in_process
async def test_too_many_channels(caplog: pytest.LogCaptureFixture) -> None:
    state = connect(max_channels_per_transport=2)
    for n in ("1", "2"):
        assert (await send(state, [n, n, f"bench:{n}", "phx_join", {}]))[4]["status"] == "ok"
    with caplog.at_level(logging.ERROR, logger="channels_core.socket"):
        reply = await send(state, ["3", "3", "bench:3", "phx_join", {}])
    too_many = {"response": {"reason": "too many channels joined"}, "status": "error"}
    assert reply == ["3", "3", "bench:3", "phx_reply", too_many]
    assert caplog.messages == ["reached max channels per transport limit of 2 for socket 'user_sockets:u1'"]
    assert list(state.channels) == ["bench:1", "bench:2"]
    # The socket lives on: a heartbeat still works.
    assert (await send(state, [None, "4", "phoenix", "heartbeat", {}]))[4] == {"response": {}, "status": "ok"}


@in_process
async def test_the_default_limit_is_100() -> None:
    assert connect().max_channels == 100


# Messages


@in_process
async def test_message_to_an_unjoined_topic() -> None:
    state = connect()
    reply = await send(state, ["1", "2", "room:lobby", "new_msg", {"body": "hi"}])
    assert reply == unmatched("2", "room:lobby")


@in_process
async def test_message_to_a_joined_topic_reaches_the_channel() -> None:
    state = connect()
    await join_lobby(state)
    assert await send(state, ["1", "2", "room:lobby", "ping", {"a": 1}]) is None
    assert await next_frame(state) == ["1", "2", "room:lobby", "phx_reply", {"response": {"a": 1}, "status": "ok"}]


@in_process
async def test_message_without_a_join_ref_is_routed() -> None:
    # V1 clients send no join_ref at all.
    state = connect()
    await join_lobby(state)
    assert await send(state, [None, "2", "room:lobby", "ping", {}]) is None
    assert await next_frame(state) == ["1", "2", "room:lobby", "phx_reply", {"response": {}, "status": "ok"}]


@in_process
async def test_message_with_a_stale_join_ref_is_dropped() -> None:
    state = connect()
    await join_lobby(state)
    assert await send(state, ["9", "2", "room:lobby", "ping", {"stale": True}]) is None
    assert await send(state, ["1", "3", "room:lobby", "ping", {"fresh": True}]) is None
    # The channel handles messages in order: had "2" reached it, its reply would come first.
    fresh = {"response": {"fresh": True}, "status": "ok"}
    assert await next_frame(state) == ["1", "3", "room:lobby", "phx_reply", fresh]


# Leave


@in_process
async def test_leave_marks_the_channel_leaving_and_the_channel_answers() -> None:
    state = connect()
    pid = await join_lobby(state)
    assert await send(state, ["1", "2", "room:lobby", "phx_leave", {}]) is None
    assert state.channels["room:lobby"].status == "leaving"

    assert await next_frame(state) == ["1", "2", "room:lobby", "phx_reply", {"response": {}, "status": "ok"}]
    close = await process.receive(timeout=2)
    assert close == SocketClose(pid, ("shutdown", "left"))
    assert wire(await state.handle_info(close)) == ["1", "1", "room:lobby", "phx_close", {}]
    assert state.channels == {} and state.channels_inverse == {}
    # terminate ran, after the close.
    assert await next_frame(state) == ["1", None, "room:lobby", "you_left", {"message": "bye!"}]
    # The channel's exit is not reported as an error: its Down was flushed.
    assert not process.is_alive(pid)
    assert mailbox() == []


@in_process
async def test_leave_with_a_stale_join_ref_is_ignored() -> None:
    state = connect()
    await join_lobby(state)
    assert await send(state, ["9", "2", "room:lobby", "phx_leave", {}]) is None
    assert state.channels["room:lobby"].status == "joined"
    assert await send(state, ["1", "3", "room:lobby", "ping", {}]) is None
    assert await next_frame(state) == ["1", "3", "room:lobby", "phx_reply", {"response": {}, "status": "ok"}]


@in_process
async def test_leave_of_an_unjoined_topic_is_answered_ok() -> None:
    state = connect()
    assert await send(state, ["1", "2", "room:lobby", "phx_leave", {}]) == [
        "1", "2", "room:lobby", "phx_reply", {"response": {}, "status": "ok"}
    ]


@in_process
async def test_leave_over_v1_closes_with_a_null_ref() -> None:
    state = connect({"vsn": "1.0.0", "user_id": "u1"})
    reply = await state.handle_in('{"topic":"room:lobby","event":"phx_join","payload":{},"ref":"1"}', "text")
    assert json.loads(reply.data) == {  # type: ignore[union-attr]
        "event": "phx_reply", "payload": {"response": {}, "status": "ok"}, "ref": "1", "topic": "room:lobby"
    }
    await next_frame(state)  # user_entered
    await next_frame(state)  # joined
    await state.handle_in('{"topic":"room:lobby","event":"phx_leave","payload":{},"ref":"2"}', "text")
    assert (await next_frame(state))["ref"] == "2"
    assert await next_frame(state) == {"event": "phx_close", "payload": {}, "ref": None, "topic": "room:lobby"}
    assert (await next_frame(state))["event"] == "you_left"


# Channel exits and other messages


@in_process
async def test_channel_down_is_phx_error_and_cleans_the_maps(caplog: pytest.LogCaptureFixture) -> None:
    state = connect()
    pid = await join_lobby(state)
    with caplog.at_level(logging.ERROR, logger="channels_core.channel_server"):
        assert await send(state, ["1", "2", "room:lobby", "boom", {}]) is None
        # terminate still runs on a crash, before the exit is seen.
        assert await next_frame(state) == ["1", None, "room:lobby", "you_left", {"message": "bye!"}]
        down = await process.receive(timeout=2)
    assert isinstance(down, Down) and down.pid == pid
    assert isinstance(down.reason, RuntimeError) and str(down.reason) == "boom"
    assert wire(await state.handle_info(down)) == ["1", "1", "room:lobby", "phx_error", {"reason": "channel_crash"}]
    assert state.channels == {} and state.channels_inverse == {}
    assert caplog.messages == [
        "channel RoomChannel for 'room:lobby' crashed handling event 'boom': RuntimeError('boom')"
    ]
    # The socket lives on and the topic can be joined again.
    assert (await send(state, [None, "3", "phoenix", "heartbeat", {}]))[4]["status"] == "ok"
    await join_lobby(state, join_ref="4")


@in_process
async def test_down_of_an_unknown_process_is_ignored() -> None:
    state = connect()
    stranger = Down(process.make_ref(), process.spawn(asyncio.sleep, 0), "normal")
    assert await state.handle_info(stranger) is None


@in_process
async def test_socket_close_of_an_unknown_pid_is_ignored() -> None:
    state = connect()
    assert await state.handle_info(SocketClose(process.current(), "shutdown")) is None


@in_process
async def test_disconnect_broadcast_on_the_socket_id_stops_with_1001() -> None:
    endpoint = DemoEndpoint()
    state = connect(endpoint=endpoint)
    endpoint.disconnect("user_sockets:u1")
    message = await process.receive(timeout=2)
    assert message == Broadcast("user_sockets:u1", "disconnect", {})
    assert await state.handle_info(message) == Stop(("shutdown", "disconnected"), 1001)


@in_process
async def test_socket_push_is_written_as_is_and_anything_else_is_ignored() -> None:
    state = connect()
    push = SocketPush("binary", b"\x00")
    assert await state.handle_info(push) is push
    assert await state.handle_info(("stray", 1)) is None
    assert await state.handle_info(Broadcast("user_sockets:u1", "other", {})) is None


@in_process
async def test_terminate_leaves_channels_to_notice_on_their_own() -> None:
    state = connect()
    pid = await join_lobby(state)
    assert state.terminate(("shutdown", "closed")) is None
    assert process.is_alive(pid)  # it stops when the transport process exits


# Duplicate join


@in_process
async def test_duplicate_join_replies_first_then_closes_the_old_channel() -> None:
    endpoint = DemoEndpoint()
    state = connect(endpoint=endpoint)
    old = await join_lobby(state)

    reply = await send(state, ["2", "2", "room:lobby", "phx_join", {}])
    assert reply == ["2", "2", "room:lobby", "phx_reply", {"response": {}, "status": "ok"}]
    assert not process.is_alive(old)
    new = state.channels["room:lobby"].pid
    assert new != old
    assert state.channels_inverse == {new: ("room:lobby", "2")}
    assert endpoint.supervisor.which_children() == [new]

    # The old join's close was queued before the new channel's first frames,
    # and the old channel, killed from outside, never said you_left.
    assert await next_frame(state) == ["1", "1", "room:lobby", "phx_close", {}]
    assert await next_frame(state) == [None, None, "room:lobby", "user_entered", {"user": None}]
    assert await next_frame(state) == ["2", None, "room:lobby", "joined", {"status": "connected", "user_id": "u1"}]
    assert mailbox() == []


@in_process
async def test_duplicate_join_during_a_leave_still_rejoins() -> None:
    state = connect()
    await join_lobby(state)
    await send(state, ["1", "2", "room:lobby", "phx_leave", {}])
    assert state.channels["room:lobby"].status == "leaving"
    reply = await send(state, ["3", "3", "room:lobby", "phx_join", {}])
    assert reply == ["3", "3", "room:lobby", "phx_reply", {"response": {}, "status": "ok"}]
    assert state.channels["room:lobby"].status == "joined"
    assert list(state.channels_inverse.values()) == [("room:lobby", "3")]


def test_room_channel_is_what_the_demo_routes_room_topics_to() -> None:
    # These tests lean on RoomChannel's behaviour; make the dependency explicit.
    assert UserSocket.__channel__("room:lobby").channel is RoomChannel  # type: ignore[union-attr]
