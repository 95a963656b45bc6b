"""The demo's RoomChannel and BenchChannel, tested as a user tests their own channels.

Every test here goes through :mod:`channels_core.testing` and the ``channel_case``
fixture of :mod:`channels_core.pytest_plugin`, the way the book page
``book/testing-channels.md`` shows: the test process plays the transport, the
channel processes, the supervisor and PubSub are real, and there is no network.
What a client would read is asserted event by event and payload by payload.
"""

from __future__ import annotations

import logging

import pytest

from channels_core import process
from channels_core.demo.app import BenchChannel, DemoEndpoint, RoomChannel, UserSocket, create_app, sign_user_token
from channels_core.testing import (
    ANY,
    ConnectRefused,
    JoinRefused,
    assert_broadcast,
    assert_exit,
    assert_push,
    assert_reply,
    close,
    connect,
    leave,
    push,
    refute_push,
    subscribe_and_join,
)

pytestmark = pytest.mark.usefixtures("leak_check")


@pytest.fixture
def endpoint() -> DemoEndpoint:
    """What ``channel_case`` connects through: Phoenix's ``@endpoint``."""
    return create_app()


async def join_lobby(user_id: str = "u1", user: str = "ada", transport: str = "websocket"):
    socket = connect(UserSocket, {"user_id": user_id}, transport=transport)
    return await subscribe_and_join(socket, RoomChannel, "room:lobby", {"user": user})


def test_the_plugin_is_registered(pytestconfig: pytest.Config) -> None:
    # Installed with the package through the pytest11 entry point, not through conftest.
    assert pytestconfig.pluginmanager.has_plugin("channels_core")


# Connect


async def test_connect_remembers_the_user_and_names_the_socket(channel_case) -> None:
    socket = connect(UserSocket, {"user_id": "u1"})
    assert socket.assigns == {"user_id": "u1"}
    assert socket.id == "user_sockets:u1"
    assert socket.transport == "websocket"
    assert socket.serializer.vsn == "2.0.0"
    assert socket.transport_pid == channel_case.pid == process.current()


async def test_connect_refuses_reject_true_and_logs_it(channel_case, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="channels_core.socket")
    with pytest.raises(ConnectRefused) as refused:
        connect(UserSocket, {"reject": "true"})
    assert refused.value.result == "error"
    assert refused.value.reason is None
    assert str(refused.value) == "UserSocket.connect refused the connection: 'error'"
    assert [r.getMessage() for r in caplog.records if r.name == "channels_core.socket"] == [
        "refused connection to UserSocket (transport websocket, vsn 2.0.0)"
    ]


async def test_connect_with_a_signed_token_takes_the_user_from_the_token(channel_case) -> None:
    socket = connect(UserSocket, {"user_id": "mallory"}, connect_info={"auth_token": sign_user_token("u7")})
    assert socket.assigns == {"user_id": "u7"}
    reply, _room = await subscribe_and_join(socket, RoomChannel, "room:lobby", {"user": "ada"})
    assert reply == {}
    await assert_push("joined", {"status": "connected", "user_id": "u7"})


async def test_connect_with_a_forged_token_is_refused_and_logged(
    channel_case, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="channels_core.demo")
    with pytest.raises(ConnectRefused):
        connect(UserSocket, {}, connect_info={"auth_token": "forged"})
    assert [r.getMessage() for r in caplog.records if r.name == "channels_core.demo"] == [
        "refused a connection with a bad auth token: invalid token"
    ]


async def test_disconnecting_the_socket_id_reaches_its_transport(channel_case, endpoint: DemoEndpoint) -> None:
    # Connected, the test process listens on the socket's id, as a transport does.
    connect(UserSocket, {"user_id": "u1"})
    endpoint.disconnect("user_sockets:u1")
    await assert_broadcast("disconnect", {})


# Join


async def test_join_replies_ok_then_broadcasts_user_entered_and_pushes_joined(channel_case) -> None:
    reply, room = await join_lobby()
    assert reply == {}
    assert room.topic == "room:lobby"
    assert process.is_alive(room.pid)
    # after_join, sent to itself from join, runs once the reply is out.
    await assert_broadcast("user_entered", {"user": "ada"})
    # user_entered is not intercepted: the fastlane pushes it to the client unchanged.
    await assert_push("user_entered", {"user": "ada"})
    await assert_push("joined", {"status": "connected", "user_id": "u1"})


async def test_the_socket_routes_the_topic_when_no_channel_is_given(channel_case) -> None:
    socket = connect(UserSocket, {"user_id": "u1"})
    _, room = await subscribe_and_join(socket, None, "room:side", {"user": "ada"})
    _, bench = await subscribe_and_join(socket, None, "bench:1")
    assert (room.channel, bench.channel) == (RoomChannel, BenchChannel)


async def test_a_topic_no_route_serves_is_an_error_before_any_process_starts(channel_case) -> None:
    socket = connect(UserSocket, {"user_id": "u1"})
    before = set(process.processes())
    with pytest.raises(ValueError, match="no channel found for topic 'nope:1' in UserSocket; pass the channel class"):
        await subscribe_and_join(socket, None, "nope:1")
    assert set(process.processes()) == before


async def test_room_private_refuses_the_join(channel_case) -> None:
    socket = connect(UserSocket, {"user_id": "u1"})
    with pytest.raises(JoinRefused) as refused:
        await subscribe_and_join(socket, RoomChannel, "room:private", {})
    assert refused.value.reply == {"reason": "unauthorized"}
    assert str(refused.value) == "RoomChannel refused to join 'room:private': {'reason': 'unauthorized'}"
    # A refused join gets no after_join.
    await refute_push("joined")


async def test_a_join_payload_that_is_not_an_object_crashes_after_join(
    channel_case, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="channels_core.channel_server")
    reply, room = await subscribe_and_join(connect(UserSocket, {"user_id": "u1"}), RoomChannel, "room:lobby", "hi")
    # The join itself succeeds; the after_join message it sent itself crashes the channel.
    assert reply == {}
    reason = await assert_exit(room, AttributeError)
    assert str(reason) == "'str' object has no attribute 'get'"
    assert [r.getMessage() for r in caplog.records if r.name == "channels_core.channel_server"] == [
        "channel RoomChannel for 'room:lobby' crashed handling "
        "('after_join', 'hi'): AttributeError(\"'str' object has no attribute 'get'\")"
    ]


# Messages


@pytest.mark.parametrize("transport", ["websocket", "longpoll"])
async def test_new_msg_replies_ok_and_comes_back_through_handle_out_tagged(channel_case, transport: str) -> None:
    _, room = await join_lobby(transport=transport)
    ref = push(room, "new_msg", {"body": "hi"})
    await assert_reply(ref, "ok", {})
    await assert_broadcast("new_msg", {"body": "hi"})
    # new_msg is intercepted: handle_out tags it with the transport, as Elixir's inspect would.
    await assert_push("new_msg", {"body": "hi", "transport": f":{transport}"})
    await refute_push("new_msg", {"body": "hi"})


async def test_ping_echoes_its_payload(channel_case) -> None:
    _, room = await join_lobby()
    payload = {"text": "héllo ✓", "list": [1, 2.5, None, True], "nested": {"empty": {}}}
    assert await assert_reply(push(room, "ping", payload), "ok") == payload
    # Binary payloads stay bytes, both ways.
    assert await assert_reply(push(room, "ping", b"\x09\x08"), "ok") == b"\x09\x08"


async def test_binary_event_pushes_and_replies_bytes(channel_case) -> None:
    _, room = await join_lobby()
    ref = push(room, "binary_event", b"\x01\x02")
    await assert_push("binary_event", b"\x00\x01")
    await assert_reply(ref, "ok", b"\x01\x02\x03\x04")


@pytest.mark.parametrize("channel", [RoomChannel, BenchChannel])
async def test_bench_broadcast_broadcasts_n_messages_then_replies(channel_case, channel: type) -> None:
    socket = connect(UserSocket, {"user_id": "u1"})
    _, bench = await subscribe_and_join(socket, channel, "bench:1" if channel is BenchChannel else "room:bench",
                                        {"user": "ada"})
    ref = push(bench, "bench_broadcast", {"n": 3})
    await assert_reply(ref, "ok")
    for i in (1, 2, 3):
        await assert_broadcast("bench_msg", {"i": i})
        await assert_push("bench_msg", {"i": i})
    await refute_push("bench_msg")


async def test_bench_channel_pings_too(channel_case) -> None:
    _, bench = await subscribe_and_join(connect(UserSocket, {"user_id": "u1"}), BenchChannel, "bench:1")
    await assert_reply(push(bench, "ping", {"n": 1}), "ok", {"n": 1})


async def test_an_unknown_event_crashes_the_bench_channel(channel_case, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="channels_core.channel_server")
    _, bench = await subscribe_and_join(connect(UserSocket, {"user_id": "u1"}), BenchChannel, "bench:1")
    ref = push(bench, "dance", {})
    await assert_exit(bench, ValueError("BenchChannel has no handle_in clause for event 'dance'"))
    await refute_push("phx_reply")
    assert ref == "2"  # the join took ref 1


# Crash, leave, close


async def test_boom_crashes_the_channel_after_terminate_says_goodbye(
    channel_case, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="channels_core.channel_server")
    _, room = await join_lobby()
    ref = push(room, "boom", {})
    # terminate runs before the process ends, and pushes you_left; boom itself gets no reply.
    await assert_push("you_left", {"message": "bye!"})
    reason = await assert_exit(room, RuntimeError)
    assert reason.args == ("boom",)
    assert not process.is_alive(room.pid)
    await refute_push("phx_reply")
    assert ref.isdigit()
    assert [r.getMessage() for r in caplog.records if r.name == "channels_core.channel_server"] == [
        "channel RoomChannel for 'room:lobby' crashed handling event 'boom': RuntimeError('boom')"
    ]


async def test_leave_replies_ok_says_goodbye_and_stops_the_channel(channel_case) -> None:
    _, room = await join_lobby()
    ref = leave(room)
    await assert_reply(ref, "ok", {})
    await assert_push("you_left", {"message": "bye!"})
    assert await assert_exit(room, ("shutdown", "left")) == ("shutdown", "left")


async def test_close_stops_the_channel_as_a_disconnect_would(channel_case) -> None:
    _, room = await join_lobby()
    assert await close(room) == ("shutdown", "closed")
    # terminate ran and pushed to its transport, which is still the test process here.
    await assert_push("you_left", {"message": "bye!"})


async def test_two_users_in_one_room_see_each_other(channel_case) -> None:
    _, ada = await join_lobby("u1", "ada")
    _, bob = await join_lobby("u2", "bob")
    # Both channels push to the one test process: each joined push names its own user.
    await assert_push("joined", {"status": "connected", "user_id": "u1"})
    await assert_push("joined", {"status": "connected", "user_id": "u2"})
    push(bob, "new_msg", {"body": "hi ada"})
    # One broadcast, two subscribers, two handle_out pushes.
    await assert_push("new_msg", {"body": "hi ada", "transport": ":websocket"})
    await assert_push("new_msg", {"body": "hi ada", "transport": ":websocket"})
    await refute_push("new_msg", ANY)
    assert ada.pid != bob.pid
