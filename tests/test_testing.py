"""channels_core.testing itself: the block, the socket and channel helpers, and every failure text.

The demo's channels are tested through this module in test_demo_channels.py;
here a small EchoChannel does whatever a test asks, so that each helper and each
way an assertion can fail is exercised on purpose. Failure messages are part of
the API (they are what a user reads when a test goes red), so they are
asserted word for word.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from helpers import run_in_process

from channels_core import process
from channels_core.channel import Channel
from channels_core.channel import push as channel_push
from channels_core.endpoint import Endpoint
from channels_core.endpoint import socket as declare_socket
from channels_core.exceptions import EncodeError
from channels_core.socket import Socket, SocketStruct, assign, channel
from channels_core.testing import (
    ANY,
    ChannelCase,
    ConnectRefused,
    JoinRefused,
    assert_broadcast,
    assert_exit,
    assert_push,
    assert_reply,
    broadcast_from,
    build_socket,
    channel_test,
    close,
    connect,
    join,
    leave,
    push,
    refute_broadcast,
    refute_push,
    refute_reply,
    subscribe_and_join,
)

pytestmark = pytest.mark.usefixtures("leak_check")

#: (topic, reason) for every terminate, in order.
TERMINATED: list[tuple[str, Any]] = []


class EchoChannel(Channel):
    """Does what the test asks: join by its payload, handle_in by event name."""

    intercept = ["shout"]

    async def join(self, topic: str, payload: Any, socket: SocketStruct) -> Any:
        if payload.get("refuse"):
            return ("error", {"reason": "refused"})
        if payload.get("raise"):
            raise ValueError("join blew up")
        if payload.get("hang"):
            await asyncio.Event().wait()
        return ("ok", {"joined": topic}, assign(socket, joined_with=payload))

    def handle_in(self, event: str, payload: Any, socket: SocketStruct) -> Any:
        if event == "echo":
            return ("reply", ("ok", payload), socket)
        if event == "refuse":
            return ("reply", ("error", {"why": "no"}), socket)
        if event == "push":
            channel_push(socket, payload["event"], payload["payload"])
            return ("noreply", socket)
        if event == "many":
            for i in range(payload["n"]):
                channel_push(socket, "item", {"i": i})
            return ("noreply", socket)
        if event == "when":
            channel_push(socket, "when", {"at": datetime.datetime(2024, 1, 2)})
            return ("noreply", socket)
        if event == "assigns":
            return ("reply", ("ok", socket.assigns), socket)
        if event == "crash":
            raise RuntimeError("asked to crash")
        raise ValueError(f"no clause for {event!r}")

    def handle_out(self, event: str, payload: Any, socket: SocketStruct) -> Any:
        channel_push(socket, event, {**payload, "out": True})
        return ("noreply", socket)

    def terminate(self, reason: Any, socket: SocketStruct) -> None:
        TERMINATED.append((socket.topic, reason))
        if socket.joined:  # a refused join terminates too, with no client to push to
            channel_push(socket, "bye", {})


class EchoSocket(Socket):
    channels = [channel("echo:*", EchoChannel)]

    def connect(self, params: dict[str, Any], socket: SocketStruct) -> Any:
        if params.get("deny") == "plain":
            return "error"
        if params.get("deny") == "reason":
            return ("error", {"why": "denied"})
        return ("ok", assign(socket, name=params.get("name")))

    def id(self, socket: SocketStruct) -> str | None:
        return f"echo:{socket.assigns['name']}" if socket.assigns.get("name") else None


class EchoEndpoint(Endpoint):
    sockets = [declare_socket("/socket", EchoSocket)]


@pytest.fixture(autouse=True)
def _clear_terminated() -> None:
    TERMINATED.clear()


async def join_echo(topic: str = "echo:1", payload: Any = None) -> Any:
    socket = connect(EchoSocket, {"name": "ada"})
    return await subscribe_and_join(socket, EchoChannel, topic, payload or {})


# The block


async def test_the_block_makes_the_test_task_a_process_and_releases_it() -> None:
    assert process.current_pid_or_none() is None
    async with channel_test(EchoEndpoint()) as case:
        assert isinstance(case, ChannelCase)
        assert process.current() == case.pid
        assert case.pid.role == "channel test"
    assert process.current_pid_or_none() is None
    assert not process.is_alive(case.pid)


async def test_the_block_closes_the_channels_still_running_as_a_disconnect_would() -> None:
    async with channel_test(EchoEndpoint()):
        _, one = await join_echo("echo:1")
        _, two = await join_echo("echo:2")
    assert TERMINATED == [("echo:1", ("shutdown", "closed")), ("echo:2", ("shutdown", "closed"))]
    assert not process.is_alive(one.pid) and not process.is_alive(two.pid)


async def test_the_block_starts_an_idle_endpoint_and_shuts_down_only_what_it_started() -> None:
    endpoint = EchoEndpoint()
    async with channel_test(endpoint):
        assert endpoint.started
    assert not endpoint.started
    await endpoint.startup()
    async with channel_test(endpoint):
        pass
    assert endpoint.started  # started before the block: left running
    await endpoint.shutdown()


async def test_an_endpoint_class_is_instantiated() -> None:
    async with channel_test(EchoEndpoint) as case:
        assert isinstance(case.endpoint, EchoEndpoint)
        assert connect(EchoSocket, {"name": "ada"}).endpoint is case.endpoint


async def test_the_helpers_refuse_to_run_outside_a_block() -> None:
    with pytest.raises(RuntimeError) as raised:
        connect(EchoSocket, {})
    assert str(raised.value) == (
        "channels_core.testing.connect() must be called inside `async with channel_test(endpoint):` "
        "(or in a test that uses the channel_case fixture)"
    )
    with pytest.raises(RuntimeError, match=r"assert_push\(\) must be called inside"):
        await assert_push("x")


async def test_blocks_do_not_nest() -> None:
    async with channel_test(EchoEndpoint()):
        with pytest.raises(RuntimeError, match="channel_test blocks do not nest"):
            async with channel_test(EchoEndpoint()):
                pass


async def test_a_test_that_already_runs_in_a_process_keeps_it() -> None:
    endpoint = EchoEndpoint()

    async def body() -> None:
        me = process.current()
        async with channel_test(endpoint) as case:
            assert case.pid == me
            await join_echo("echo:1")
        # Still a process, but no longer subscribed to anything the block subscribed it to.
        assert process.current() == me
        assert endpoint.pubsub.subscribers("echo:1") == []
        assert endpoint.pubsub.subscribers("echo:ada") == []

    await run_in_process(body)
    assert TERMINATED == [("echo:1", ("shutdown", "closed"))]


# Sockets


async def test_connect_refusals_carry_what_connect_returned() -> None:
    async with channel_test(EchoEndpoint()):
        with pytest.raises(ConnectRefused) as plain:
            connect(EchoSocket, {"deny": "plain"})
        with pytest.raises(ConnectRefused) as reason:
            connect(EchoSocket, {"deny": "reason"})
    assert (plain.value.result, plain.value.reason) == ("error", None)
    assert (reason.value.result, reason.value.reason) == (("error", {"why": "denied"}), {"why": "denied"})
    assert str(reason.value) == "EchoSocket.connect refused the connection: ('error', {'why': 'denied'})"


async def test_connect_negotiates_v1_when_asked_and_frames_decode_alike() -> None:
    async with channel_test(EchoEndpoint()):
        socket = connect(EchoSocket, {"name": "ada", "vsn": "1.0.0"})
        assert socket.serializer.vsn == "1.0.0"
        _, echo = await subscribe_and_join(socket, EchoChannel, "echo:1")
        await assert_reply(push(echo, "echo", {"v": 1}), "ok", {"v": 1})
        push(echo, "push", {"event": "note", "payload": {"n": 1}})
        await assert_push("note", {"n": 1})


async def test_build_socket_skips_connect_and_defaults_to_the_first_socket() -> None:
    async with channel_test(EchoEndpoint()) as case:
        socket = build_socket(id="users:1", assigns={"name": "bob"})
        assert (socket.handler, socket.id, socket.assigns) == (EchoSocket, "users:1", {"name": "bob"})
        assert socket.transport_pid == case.pid
        reply, echo = await join(socket, None, "echo:1", {"x": 1})
        assert reply == {"joined": "echo:1"}
        await assert_reply(push(echo, "assigns"), "ok", {"name": "bob", "joined_with": {"x": 1}})


async def test_build_socket_needs_a_socket_class_when_the_endpoint_declares_none() -> None:
    class Bare(Endpoint):
        pass

    async with channel_test(Bare()):
        with pytest.raises(ValueError, match="Bare declares no socket; pass the socket class"):
            build_socket()


# Joins


async def test_join_refused_and_join_crashed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="channels_core.channel_server")
    async with channel_test(EchoEndpoint()):
        socket = connect(EchoSocket, {"name": "ada"})
        with pytest.raises(JoinRefused) as refused:
            await join(socket, EchoChannel, "echo:1", {"refuse": True})
        with pytest.raises(JoinRefused) as crashed:
            await join(socket, EchoChannel, "echo:2", {"raise": True})
        # Neither leaves a Down behind in the test's mailbox.
        await refute_push("bye")
    assert refused.value.reply == {"reason": "refused"}
    assert str(refused.value) == "EchoChannel refused to join 'echo:1': {'reason': 'refused'}"
    assert crashed.value.reply == {"reason": "join crashed"}
    messages = [r.getMessage() for r in caplog.records if r.name == "channels_core.channel_server"]
    assert messages == [
        "channel EchoChannel crashed in join/3 for 'echo:2': ValueError('join blew up')",
        "channel EchoChannel crashed while joining 'echo:2': ValueError('join blew up')",
    ]


async def test_a_join_that_hangs_fails_after_its_timeout_and_is_stopped() -> None:
    async with channel_test(EchoEndpoint()):
        socket = connect(EchoSocket, {"name": "ada"})
        before = set(process.processes())
        with pytest.raises(AssertionError) as raised:
            await join(socket, EchoChannel, "echo:1", {"hang": True}, timeout=0.05)
        assert set(process.processes()) == before
    assert str(raised.value) == "EchoChannel.join did not answer within 0.05 s for 'echo:1'"


async def test_subscribe_and_join_subscribes_once_per_topic() -> None:
    async with channel_test(EchoEndpoint()) as case:
        socket = connect(EchoSocket, {"name": "ada"})
        await subscribe_and_join(socket, EchoChannel, "echo:1")
        await subscribe_and_join(socket, EchoChannel, "echo:1")  # a second channel, same topic
        case.endpoint.broadcast("echo:1", "news", {"n": 1})
        await assert_broadcast("news", {"n": 1})
        await refute_broadcast("news")


# Pushes, payloads and patterns


async def test_pushed_payloads_reach_the_channel_as_a_client_would_send_them() -> None:
    async with channel_test(EchoEndpoint()):
        _, echo = await join_echo()
        assert await assert_reply(push(echo, "echo", {1: (2, 3)}), "ok") == {"1": [2, 3]}
        with pytest.raises(TypeError) as raised:
            push(echo, "echo", {"at": datetime.date(2024, 1, 2)})
    assert str(raised.value).startswith(
        "a client could not send this payload, it is not JSON: {'at': datetime.date(2024, 1, 2)}"
    )


async def test_patterns_any_nested_and_predicates() -> None:
    async with channel_test(EchoEndpoint()):
        _, echo = await join_echo()
        push(echo, "push", {"event": "note", "payload": {"id": 7, "body": "x"}})
        payload = await assert_push("note", {"id": ANY, "body": "x"})
        assert payload == {"id": 7, "body": "x"}
        push(echo, "push", {"event": "note", "payload": {"id": 8}})
        await assert_push("note", lambda p: p["id"] > 7)
        ref = push(echo, "echo", {"n": 1})
        await assert_reply(ref, "ok")  # any payload


async def test_refs_count_up_from_the_join() -> None:
    async with channel_test(EchoEndpoint()):
        _, echo = await join_echo()
        assert echo.join_ref == "1"
        assert [push(echo, "echo"), push(echo, "echo"), leave(echo)] == ["2", "3", "4"]
        await assert_exit(echo, ("shutdown", "left"))


async def test_a_payload_no_client_could_read_crashes_the_channel_as_in_production(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="channels_core.channel_server")
    async with channel_test(EchoEndpoint()):
        _, echo = await join_echo()
        push(echo, "when")
        # The channel pushes through the real serializer, which refuses a datetime.
        reason = await assert_exit(echo, EncodeError)
    assert str(reason).startswith("payload is not JSON-encodable:")


async def test_broadcast_from_skips_the_test_but_reaches_the_channels() -> None:
    async with channel_test(EchoEndpoint()):
        _, echo = await join_echo()
        broadcast_from(echo, "shout", {"n": 1})  # intercepted: handle_out adds "out"
        broadcast_from(echo, "plain", {"n": 2})  # not intercepted: the fastlane pushes it as is
        await assert_push("shout", {"n": 1, "out": True})
        await assert_push("plain", {"n": 2})
        await refute_broadcast("shout")


async def test_close_returns_the_exit_reason_and_terminate_still_pushes() -> None:
    async with channel_test(EchoEndpoint()):
        _, echo = await join_echo()
        assert await close(echo) == ("shutdown", "closed")
        await assert_push("bye", {})
    assert TERMINATED == [("echo:1", ("shutdown", "closed"))]


# Failures and what they say


async def test_assert_push_on_an_empty_mailbox() -> None:
    async with channel_test(EchoEndpoint()):
        with pytest.raises(AssertionError) as raised:
            await assert_push("note", {"n": 1}, timeout=0.01)
    assert str(raised.value) == (
        "assert_push('note', {'n': 1}) failed: no matching push within 0.01 s.\n"
        "The test process's mailbox is empty."
    )


async def test_assert_push_lists_what_arrived_and_points_at_the_closest() -> None:
    async with channel_test(EchoEndpoint()):
        _, echo = await join_echo()
        push(echo, "push", {"event": "note", "payload": {"n": 2}})
        ref = push(echo, "echo", {"e": 1})
        await assert_reply(ref, "ok")
        endpoint_broadcast = echo.socket.endpoint.broadcast
        endpoint_broadcast("echo:1", "news", {"k": "v"})
        with pytest.raises(AssertionError) as raised:
            await assert_push("note", {"n": 1}, timeout=0.01)
    assert str(raised.value) == (
        "assert_push('note', {'n': 1}) failed: no matching push within 0.01 s.\n"
        "Closest: push 'note' on 'echo:1': {'n': 2}\n"
        "The test process's mailbox holds 3 message(s), oldest first:\n"
        "  push 'note' on 'echo:1': {'n': 2}\n"
        "  broadcast 'news' on 'echo:1': {'k': 'v'}\n"
        "  push 'news' on 'echo:1': {'k': 'v'}"
    )


async def test_assert_reply_with_the_wrong_status() -> None:
    async with channel_test(EchoEndpoint()):
        _, echo = await join_echo()
        ref = push(echo, "refuse")
        with pytest.raises(AssertionError) as raised:
            await assert_reply(ref, "ok", timeout=0.01)
    assert str(raised.value) == (
        "assert_reply('2', 'ok', ANY) failed: no matching reply within 0.01 s.\n"
        "Closest: reply 'error' to ref '2' on 'echo:1': {'why': 'no'}\n"
        "The test process's mailbox holds 1 message(s), oldest first:\n"
        "  reply 'error' to ref '2' on 'echo:1': {'why': 'no'}"
    )


async def test_assert_reply_to_a_ref_nobody_answered() -> None:
    async with channel_test(EchoEndpoint()):
        _, echo = await join_echo()
        await assert_reply(push(echo, "echo", {}), "ok")
        push(echo, "echo", {"second": True})
        with pytest.raises(AssertionError) as raised:
            await assert_reply("99", "ok", {}, timeout=0.01)
    assert str(raised.value) == (
        "assert_reply('99', 'ok', {}) failed: no matching reply within 0.01 s.\n"
        "The test process's mailbox holds 1 message(s), oldest first:\n"
        "  reply 'ok' to ref '3' on 'echo:1': {'second': True}"
    )


async def test_assert_broadcast_with_another_payload() -> None:
    async with channel_test(EchoEndpoint()) as case:
        await join_echo()
        case.endpoint.broadcast("echo:1", "news", {"n": 2})
        with pytest.raises(AssertionError) as raised:
            await assert_broadcast("news", {"n": 1}, timeout=0.01)
    assert str(raised.value).startswith(
        "assert_broadcast('news', {'n': 1}) failed: no matching broadcast within 0.01 s.\n"
        "Closest: broadcast 'news' on 'echo:1': {'n': 2}\n"
    )


async def test_a_long_mailbox_is_cut_short_and_other_messages_are_shown_as_they_are() -> None:
    async with channel_test(EchoEndpoint()) as case:
        process.send(case.pid, ("hello", 1))
        _, echo = await join_echo()
        push(echo, "many", {"n": 12})
        await assert_push("item", {"i": 11})
        with pytest.raises(AssertionError) as raised:
            await assert_push("nothing", timeout=0.01)
    lines = str(raised.value).splitlines()
    assert lines[1] == "The test process's mailbox holds 12 message(s), showing the first 10, oldest first:"
    assert lines[2] == "  message ('hello', 1)"
    assert lines[3:] == [f"  push 'item' on 'echo:1': {{'i': {i}}}" for i in range(9)]


async def test_refute_push_says_what_arrived() -> None:
    async with channel_test(EchoEndpoint()):
        _, echo = await join_echo()
        push(echo, "push", {"event": "note", "payload": {"n": 1}})
        with pytest.raises(AssertionError) as raised:
            await refute_push("note")
    assert str(raised.value) == (
        "refute_push('note', ANY) failed: within 0.1 s, the test process received push 'note' on 'echo:1': {'n': 1}"
    )


async def test_refute_reply_and_refute_broadcast_say_what_arrived() -> None:
    async with channel_test(EchoEndpoint(), refute_timeout=0.05) as case:
        _, echo = await join_echo()
        ref = push(echo, "echo", {"n": 1})
        with pytest.raises(AssertionError) as reply:
            await refute_reply(ref, "ok")
        case.endpoint.broadcast("echo:1", "news", {})
        with pytest.raises(AssertionError) as broadcast:
            await refute_broadcast("news", {})
        # And when nothing matching comes, they pass.
        await refute_reply(ref, "error")
        await refute_push("note")
    assert str(reply.value) == (
        "refute_reply('2', 'ok', ANY) failed: within 0.05 s, the test process received "
        "reply 'ok' to ref '2' on 'echo:1': {'n': 1}"
    )
    assert str(broadcast.value) == (
        "refute_broadcast('news', {}) failed: within 0.05 s, the test process received broadcast 'news' on 'echo:1': {}"
    )


async def test_assert_exit_on_a_running_channel_and_with_another_reason() -> None:
    async with channel_test(EchoEndpoint()):
        _, echo = await join_echo()
        with pytest.raises(AssertionError) as running:
            await assert_exit(echo, ("shutdown", "left"), timeout=0.01)
        leave(echo)
        with pytest.raises(AssertionError) as other:
            await assert_exit(echo, RuntimeError)
    assert str(running.value) == (
        "assert_exit(EchoChannel on 'echo:1', ('shutdown', 'left')) failed: "
        "the channel is still running after 0.01 s.\n"
        "The test process's mailbox is empty."
    )
    assert str(other.value) == (
        "assert_exit(EchoChannel on 'echo:1', <class 'RuntimeError'>) failed: "
        "the channel exited with ('shutdown', 'left')."
    )


async def test_a_crash_fails_the_next_assertion_at_once_with_its_reason(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL, logger="channels_core.channel_server")
    with pytest.raises(AssertionError) as raised:
        async with channel_test(EchoEndpoint()):
            _, echo = await join_echo()
            push(echo, "crash")
            # terminate's push came before the crash: it still matches.
            await assert_push("bye", {})
            # Far longer than the test is allowed to run: only the crash can end this wait.
            await assert_push("never", timeout=3600)
    assert str(raised.value) == (
        "assert_push('never', ANY) failed: EchoChannel on 'echo:1' crashed with RuntimeError('asked to crash').\n"
        "A crash ends the test, as a linked channel process does in Phoenix; if it is expected, "
        "`await assert_exit(channel, reason)` first.\n"
        "The test process's mailbox is empty.\n"
        "Channel EchoChannel on 'echo:1' exited with RuntimeError('asked to crash')."
    )


async def test_a_crash_nobody_expected_fails_the_block(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL, logger="channels_core.channel_server")
    with pytest.raises(AssertionError) as raised:
        async with channel_test(EchoEndpoint()):
            _, echo = await join_echo()
            push(echo, "crash")
            await assert_push("bye", {})
    assert str(raised.value) == (
        "a channel crashed during the test and nothing expected it:\n"
        "  EchoChannel on 'echo:1' crashed with RuntimeError('asked to crash')\n"
        "(expect a crash with `await assert_exit(channel, reason)`)"
    )


async def test_an_expected_crash_passes_and_a_failing_body_is_not_masked(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL, logger="channels_core.channel_server")
    async with channel_test(EchoEndpoint()):
        _, echo = await join_echo()
        push(echo, "crash")
        await assert_exit(echo, RuntimeError("asked to crash"))
    with pytest.raises(KeyError):
        async with channel_test(EchoEndpoint()):
            _, echo = await join_echo()
            push(echo, "crash")
            raise KeyError("the test's own failure")


# The pytest plugin, in a project of its own


def test_the_channel_case_fixture_in_a_fresh_project(tmp_path: Path) -> None:
    """A user's project: no conftest of ours, only the installed plugin and an endpoint fixture."""
    (tmp_path / "test_user.py").write_text(textwrap.dedent('''
        import pytest
        from channels_core.demo.app import RoomChannel, UserSocket, create_app
        from channels_core.testing import assert_push, assert_reply, connect, push, subscribe_and_join

        @pytest.fixture
        def endpoint():
            return create_app()

        async def test_ping(channel_case):
            socket = connect(UserSocket, {"user_id": "u1"})
            _, room = await subscribe_and_join(socket, RoomChannel, "room:lobby", {"user": "ada"})
            await assert_reply(push(room, "ping", {"n": 1}), "ok", {"n": 1})

        async def test_wrong_push(channel_case):
            socket = connect(UserSocket, {"user_id": "u1"})
            await subscribe_and_join(socket, RoomChannel, "room:lobby", {"user": "ada"})
            await assert_push("joined", {"status": "connected", "user_id": "u2"}, timeout=0.05)
    '''))
    # Autoload off keeps the notebook plugins' slow imports out; `-p channels_core` then
    # loads our plugin by its entry-point name, so the registration is what is tested.
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "asyncio", "-p", "channels_core",
         "-o", "asyncio_mode=auto", "-o", "asyncio_default_fixture_loop_scope=function",
         "--rootdir", str(tmp_path), str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env,
    )
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "1 failed, 1 passed" in out
    assert ("E       AssertionError: assert_push('joined', {'status': 'connected', 'user_id': 'u2'}) "
            "failed: no matching push within 0.05 s.") in out
    assert "E       Closest: push 'joined' on 'room:lobby': {'status': 'connected', 'user_id': 'u1'}" in out
