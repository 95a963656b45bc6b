"""Unit tests for the channel process (channels_core/channel_server.py) and the Channel API.

Every return form of every callback, driven through a real :class:`SocketState`
in-process: the test is the transport process, channels are real processes under
the endpoint's supervisor, and what the client would read is checked frame by
frame. Channels report ``terminate`` by sending ``("terminated", topic, reason)``
to the transport, where the test reads it in order with the frames.
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
from channels_core.channel import (
    Channel,
    broadcast,
    broadcast_from,
    local_broadcast,
    local_broadcast_from,
    push,
    reply,
    socket_ref,
)
from channels_core.channel_server import Close
from channels_core.endpoint import Endpoint
from channels_core.endpoint import socket as declare_socket
from channels_core.exceptions import CallbackError, ChannelsError
from channels_core.process import Down, Pid
from channels_core.pubsub.fastlane import Fastlane
from channels_core.serializers import SocketPush
from channels_core.socket import Socket, SocketState, SocketStruct, assign, channel
from channels_core.transports.transport import V1, V2, WEBSOCKET_DEFAULTS, load_config

pytestmark = pytest.mark.usefixtures("leak_check")


# Channels under test


def terminated(socket: SocketStruct, reason: Any) -> None:
    """Tell the transport (the test) that terminate ran, and why."""
    process.send(socket.transport_pid, ("terminated", socket.topic, reason))  # type: ignore[arg-type]


class FormsChannel(Channel):
    """Returns the form the test asks for: join by its payload, handle_in by event name."""

    intercept = ["shout", "shout_stop", "shout_invalid"]

    def join(self, topic: str, payload: Any, socket: SocketStruct) -> Any:
        form = payload.get("form", "ok")
        if payload.get("send_self"):
            # The process exists before join runs, so this waits in its own mailbox.
            process.send(process.current(), ("after_join", socket.joined))
        if form == "raise":
            raise ValueError("join blew up")
        if form == "push":
            push(socket, "too_early", {})
        return {
            "ok": ("ok", assign(socket, joined_with=payload)),
            "ok_reply": ("ok", {"welcome": "in"}, socket),
            "error": ("error", {"reason": "nope"}),
            "invalid": "let me in",
        }[form]

    def handle_in(self, event: str, payload: Any, socket: SocketStruct) -> Any:
        if event == "noreply":
            push(socket, "seen", payload)
            return ("noreply", assign(socket, last=payload))
        if event == "assigns":
            return ("reply", ("ok", socket.assigns), socket)
        if event == "reply_status":
            return ("reply", "ok", socket)
        if event == "reply_pair":
            return ("reply", ("error", {"why": "because"}), socket)
        if event == "stop":
            return ("stop", ("shutdown", "bye"), socket)
        if event == "stop_reply":
            return ("stop", ("shutdown", "done"), ("ok", {"last": True}), socket)
        if event == "stop_crash":
            return ("stop", "gave up", socket)
        if event == "invalid":
            return {"not": "a tuple"}
        if event == "bad_reply":
            return ("reply", 42, socket)
        if event == "deferred":
            process.send(process.current(), ("reply_later", socket_ref(socket)))
            return ("noreply", socket)
        if event == "broadcast":
            broadcast(socket, payload["event"], payload["payload"])
            return ("reply", "ok", socket)
        if event == "broadcast_from":
            broadcast_from(socket, payload["event"], payload["payload"])
            return ("reply", "ok", socket)
        if event == "local_broadcast":
            local_broadcast(socket, payload["event"], payload["payload"])
            return ("reply", "ok", socket)
        if event == "local_broadcast_from":
            local_broadcast_from(socket, payload["event"], payload["payload"])
            return ("reply", "ok", socket)
        if event == "binary":
            return ("reply", ("ok", b"\x01\x02"), socket)
        raise ValueError(f"no clause for {event!r}")

    def handle_out(self, event: str, payload: Any, socket: SocketStruct) -> Any:
        if event == "shout":
            push(socket, event, {**payload, "via": "handle_out"})
            return ("noreply", socket)
        if event == "shout_stop":
            return ("stop", ("shutdown", "out"), socket)
        return None  # shout_invalid

    def handle_info(self, message: Any, socket: SocketStruct) -> Any:
        kind = message[0]
        if kind == "after_join":
            push(socket, "after_join", {"joined_when_sent": message[1], "joined_now": socket.joined})
            return ("noreply", socket)
        if kind == "reply_later":
            reply(message[1], ("ok", {"later": True}))
            return ("noreply", socket)
        if kind == "info_push":
            push(socket, "info", {"got": message[1]})
            return ("noreply", assign(socket, info=message[1]))
        if kind == "info_stop":
            return ("stop", ("shutdown", "info"), socket)
        if kind == "info_ref":
            socket_ref(socket)  # outside handle_in there is no message ref: raises
        return "whatever"

    def terminate(self, reason: Any, socket: SocketStruct) -> None:
        terminated(socket, reason)


class AsyncChannel(Channel):
    """Every callback is a coroutine that really awaits."""

    async def join(self, topic: str, payload: Any, socket: SocketStruct) -> Any:
        await asyncio.sleep(0)
        return ("ok", {"async": True}, socket)

    async def handle_in(self, event: str, payload: Any, socket: SocketStruct) -> Any:
        await asyncio.sleep(0)
        return ("reply", ("ok", {"echo": payload}), socket)

    async def handle_info(self, message: Any, socket: SocketStruct) -> Any:
        await asyncio.sleep(0)
        push(socket, "info", {"message": message})
        return ("noreply", socket)

    async def handle_out(self, event: str, payload: Any, socket: SocketStruct) -> Any:
        await asyncio.sleep(0)
        push(socket, event, {"async_out": True})
        return ("noreply", socket)

    async def terminate(self, reason: Any, socket: SocketStruct) -> None:
        await asyncio.sleep(0)
        terminated(socket, reason)

    intercept = ["out"]


class DuckChannel:
    """Follows the contract without inheriting from Channel: no handle_info,
    no handle_out, no terminate (the talk's LiveView aside)."""

    intercept = ["quack"]

    def join(self, topic: str, payload: Any, socket: SocketStruct) -> Any:
        return ("ok", socket)

    def handle_in(self, event: str, payload: Any, socket: SocketStruct) -> Any:
        return ("reply", ("ok", {"duck": event}), socket)


class BrokenTerminateChannel(Channel):
    def join(self, topic: str, payload: Any, socket: SocketStruct) -> Any:
        return ("ok", socket)

    def handle_in(self, event: str, payload: Any, socket: SocketStruct) -> Any:
        return ("stop", ("shutdown", "bye"), socket)

    def terminate(self, reason: Any, socket: SocketStruct) -> None:
        raise RuntimeError("terminate failed")


class WitnessChannel(Channel):
    """Reports terminate to a process other than its transport."""

    witness: Pid | None = None

    def join(self, topic: str, payload: Any, socket: SocketStruct) -> Any:
        return ("ok", socket)

    def terminate(self, reason: Any, socket: SocketStruct) -> None:
        process.send(self.witness, ("terminated", socket.topic, reason))  # type: ignore[arg-type]


class FormsSocket(Socket):
    channels = [
        channel("witness:*", WitnessChannel),
        channel("forms:*", FormsChannel, assigns={"route": "forms"}),
        channel("async:*", AsyncChannel),
        channel("duck:*", DuckChannel),
        channel("broken:*", BrokenTerminateChannel),
    ]


class FormsEndpoint(Endpoint):
    sockets = [declare_socket("/socket", FormsSocket)]


# Helpers


CONFIG = load_config({"check_origin": False}, WEBSOCKET_DEFAULTS)


class Client:
    """The transport side of one connection, driven by hand from the test process."""

    def __init__(self, endpoint: FormsEndpoint, vsn: str = "2.0.0") -> None:
        state = socket_module.connect(FormsSocket, endpoint, "websocket", CONFIG, {"vsn": vsn}, {})
        assert isinstance(state, SocketState)
        state.init(process.current())
        self.state = state
        self.endpoint = endpoint

    async def send(self, frame: list[Any]) -> Any:
        """Send ``[join_ref, ref, topic, event, payload]`` (as an object over V1);
        return the frame the socket answers with at once, or None."""
        data: Any = frame
        if self.state.socket.serializer is V1:
            data = dict(zip(("join_ref", "ref", "topic", "event", "payload"), frame))
        return self._wire(await self.state.handle_in(json.dumps(data), "text"))

    async def join(self, topic: str, payload: dict[str, Any] | None = None, join_ref: str = "1") -> Any:
        return await self.send([join_ref, join_ref, topic, "phx_join", payload or {}])

    async def next(self, timeout: float = 2.0) -> Any:
        """The next mailbox message through ``handle_info``, as the transport handles it:
        the frame it writes, or the message itself when there is nothing to write."""
        message = await process.receive(timeout=timeout)
        action = await self.state.handle_info(message)
        return message if action is None else self._wire(action)

    def pid(self, topic: str) -> Pid:
        return self.state.channels[topic].pid

    @staticmethod
    def _wire(push: SocketPush | None) -> Any:
        if push is None:
            return None
        return json.loads(push.data) if push.opcode == "text" else push.data


def mailbox() -> list[Any]:
    return list(process.lookup(process.current()).mailbox)  # type: ignore[union-attr]


def ok(ref: str, response: Any = None, topic: str = "forms:x", join_ref: str = "1") -> list[Any]:
    return [join_ref, ref, topic, "phx_reply", {"response": {} if response is None else response, "status": "ok"}]


def error_reply(ref: str, response: Any, topic: str = "forms:x", join_ref: str = "1") -> list[Any]:
    return [join_ref, ref, topic, "phx_reply", {"response": response, "status": "error"}]


async def wait_exit(pid: Pid) -> Any:
    ref = process.monitor(pid)
    down = await process.receive(lambda m: isinstance(m, Down) and m.ref == ref, timeout=2)
    return down.reason


# join


@in_process
async def test_join_ok() -> None:
    client = Client(FormsEndpoint())
    assert await client.join("forms:x") == ok("1")
    assert process.is_alive(client.pid("forms:x"))


@in_process
async def test_join_ok_with_a_reply() -> None:
    client = Client(FormsEndpoint())
    assert await client.join("forms:x", {"form": "ok_reply"}) == ok("1", {"welcome": "in"})


@in_process
async def test_join_socket_carries_route_assigns_and_join_assigns() -> None:
    client = Client(FormsEndpoint())
    await client.join("forms:x", {"form": "ok", "n": 1})
    assert await client.send(["1", "2", "forms:x", "assigns", {}]) is None
    assert await client.next() == ok("2", {"route": "forms", "joined_with": {"form": "ok", "n": 1}})


@in_process
async def test_join_error_with_a_reply_runs_terminate_and_stops() -> None:
    endpoint = FormsEndpoint()
    client = Client(endpoint)
    reply_frame = await client.join("forms:x", {"form": "error"})
    assert reply_frame == error_reply("1", {"reason": "nope"})
    assert await client.next() == ("terminated", "forms:x", "shutdown")
    assert client.state.channels == {}


@in_process
async def test_join_invalid_return_is_a_callback_error(caplog: pytest.LogCaptureFixture) -> None:
    client = Client(FormsEndpoint())
    with caplog.at_level(logging.ERROR, logger="channels_core.channel_server"):
        reply_frame = await client.join("forms:x", {"form": "invalid"})
    assert reply_frame == error_reply("1", {"reason": "join crashed"})
    crash = next(r for r in caplog.records if "crashed in join/3" in r.getMessage())
    error = crash.exc_info[1]  # type: ignore[index]
    assert isinstance(error, CallbackError)
    assert str(error) == (
        "channel FormsChannel.join/3 is expected to return one of:\n\n"
        "    ('ok', socket) |\n    ('ok', reply, socket) |\n    ('error', reply)\n\n"
        "got 'let me in'"
    )
    assert crash.getMessage() == f"channel FormsChannel crashed in join/3 for 'forms:x': {error!r}"
    assert f"channel FormsChannel crashed while joining 'forms:x': {error!r}" in caplog.messages
    assert client.state.channels == {}
    # No terminate: the channel never had a joined state to clean up.
    assert mailbox() == []


@in_process
async def test_join_that_raises_is_join_crashed(caplog: pytest.LogCaptureFixture) -> None:
    client = Client(FormsEndpoint())
    with caplog.at_level(logging.ERROR, logger="channels_core.channel_server"):
        reply_frame = await client.join("forms:x", {"form": "raise"})
    assert reply_frame[4] == {"response": {"reason": "join crashed"}, "status": "error"}
    assert caplog.messages == [
        "channel FormsChannel crashed in join/3 for 'forms:x': ValueError('join blew up')",
        "channel FormsChannel crashed while joining 'forms:x': ValueError('join blew up')",
    ]


@in_process
async def test_push_before_join_raises(caplog: pytest.LogCaptureFixture) -> None:
    client = Client(FormsEndpoint())
    with caplog.at_level(logging.ERROR, logger="channels_core.channel_server"):
        reply_frame = await client.join("forms:x", {"form": "push"})
    assert reply_frame[4] == {"response": {"reason": "join crashed"}, "status": "error"}
    assert caplog.messages[0] == (
        "channel FormsChannel crashed in join/3 for 'forms:x': "
        "ChannelsError('push/3 can only be called after the socket has joined')"
    )


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda s: push(s, "e", {}), "push/3"),
        (lambda s: socket_ref(s), "socket_ref/1"),
        (lambda s: broadcast(s, "e", {}), "broadcast/3"),
        (lambda s: broadcast_from(s, "e", {}), "broadcast_from/3"),
        (lambda s: local_broadcast(s, "e", {}), "local_broadcast/3"),
        (lambda s: local_broadcast_from(s, "e", {}), "local_broadcast_from/3"),
    ],
)
def test_channel_api_before_join_raises(call: Callable[[SocketStruct], Any], name: str) -> None:
    with pytest.raises(ChannelsError) as caught:
        call(SocketStruct(joined=False))
    assert str(caught.value) == f"{name} can only be called after the socket has joined"


@in_process
async def test_a_message_sent_to_itself_in_join_is_handled_after_the_join_reply() -> None:
    client = Client(FormsEndpoint())
    assert await client.join("forms:x", {"send_self": True}) == ok("1")
    # Sent while join ran (not joined yet), handled once joined, after the reply.
    assert await client.next() == ["1", None, "forms:x", "after_join", {"joined_when_sent": False, "joined_now": True}]


@in_process
async def test_init_join_subscribes_with_fastlane_metadata_and_monitors_the_transport() -> None:
    endpoint = FormsEndpoint()
    client = Client(endpoint)
    await client.join("forms:x")
    pid = client.pid("forms:x")
    assert endpoint.pubsub.subscribers("forms:x") == [
        (pid, Fastlane(process.current(), V2, frozenset({"shout", "shout_stop", "shout_invalid"})))
    ]


# handle_in


@in_process
async def test_handle_in_noreply_keeps_the_new_socket() -> None:
    client = Client(FormsEndpoint())
    await client.join("forms:x")
    assert await client.send(["1", "2", "forms:x", "noreply", {"n": 1}]) is None
    assert await client.next() == ["1", None, "forms:x", "seen", {"n": 1}]
    await client.send(["1", "3", "forms:x", "assigns", {}])
    assert (await client.next())[4]["response"]["last"] == {"n": 1}


@in_process
async def test_handle_in_reply_with_a_status() -> None:
    client = Client(FormsEndpoint())
    await client.join("forms:x")
    await client.send(["1", "2", "forms:x", "reply_status", {}])
    assert await client.next() == ok("2")


@in_process
async def test_handle_in_reply_with_status_and_payload() -> None:
    client = Client(FormsEndpoint())
    await client.join("forms:x")
    await client.send(["1", "2", "forms:x", "reply_pair", {}])
    assert await client.next() == error_reply("2", {"why": "because"})


@in_process
async def test_handle_in_binary_reply() -> None:
    client = Client(FormsEndpoint())
    await client.join("forms:x")
    await client.send(["1", "2", "forms:x", "binary", {}])
    assert await client.next() == b"\x01\x01\x01\x07\x02" + b"12forms:xok" + b"\x01\x02"


@in_process
async def test_handle_in_stop_closes_and_terminates() -> None:
    client = Client(FormsEndpoint())
    await client.join("forms:x")
    pid = client.pid("forms:x")
    await client.send(["1", "2", "forms:x", "stop", {}])
    assert await client.next() == ["1", "1", "forms:x", "phx_close", {}]
    assert await client.next() == ("terminated", "forms:x", ("shutdown", "bye"))
    assert client.state.channels == {}
    assert not process.is_alive(pid)
    assert mailbox() == []


@in_process
async def test_handle_in_stop_with_a_reply() -> None:
    client = Client(FormsEndpoint())
    await client.join("forms:x")
    await client.send(["1", "2", "forms:x", "stop_reply", {}])
    assert await client.next() == ok("2", {"last": True})
    assert await client.next() == ["1", "1", "forms:x", "phx_close", {}]
    assert await client.next() == ("terminated", "forms:x", ("shutdown", "done"))


@in_process
async def test_handle_in_stop_with_an_unclean_reason_is_an_error_for_the_client() -> None:
    client = Client(FormsEndpoint())
    await client.join("forms:x")
    await client.send(["1", "2", "forms:x", "stop_crash", {}])
    assert await client.next() == ("terminated", "forms:x", "gave up")
    assert await client.next() == ["1", "1", "forms:x", "phx_error", {"reason": "channel_crash"}]


@in_process
async def test_handle_in_invalid_return_crashes_with_a_callback_error(caplog: pytest.LogCaptureFixture) -> None:
    client = Client(FormsEndpoint())
    await client.join("forms:x")
    with caplog.at_level(logging.ERROR, logger="channels_core.channel_server"):
        await client.send(["1", "2", "forms:x", "invalid", {}])
        terminate = await client.next()
    error = terminate[2]
    assert terminate == ("terminated", "forms:x", error)
    assert isinstance(error, CallbackError)
    assert str(error) == (
        "expected handle_in to return one of:\n\n"
        "    ('noreply', socket) |\n"
        "    ('reply', status | (status, response), socket) |\n"
        "    ('stop', reason, socket) |\n"
        "    ('stop', reason, status | (status, response), socket)\n\n"
        "got {'not': 'a tuple'}"
    )
    assert caplog.messages == [f"channel FormsChannel for 'forms:x' crashed handling event 'invalid': {error!r}"]
    assert await client.next() == ["1", "1", "forms:x", "phx_error", {"reason": "channel_crash"}]


@in_process
async def test_handle_in_reply_of_the_wrong_shape_is_a_callback_error() -> None:
    client = Client(FormsEndpoint())
    await client.join("forms:x")
    await client.send(["1", "2", "forms:x", "bad_reply", {}])
    _, _, error = await client.next()
    assert isinstance(error, CallbackError)
    assert str(error) == (
        "channel replies from handle_in/3 are expected to be one of:\n\n"
        "    status\n    (status, response)\n\n"
        "for example ('reply', 'ok', socket) or ('reply', ('ok', {}), socket)\n\n"
        "got 42"
    )
    assert (await client.next())[3] == "phx_error"


# Deferred replies


@in_process
async def test_socket_ref_and_a_deferred_reply() -> None:
    client = Client(FormsEndpoint())
    await client.join("forms:x")
    assert await client.send(["1", "7", "forms:x", "deferred", {}]) is None
    # Replied from handle_info, after handle_in returned, to the ref of the message.
    assert await client.next() == ok("7", {"later": True})


@in_process
async def test_socket_ref_outside_handle_in_raises() -> None:
    client = Client(FormsEndpoint())
    await client.join("forms:x")
    process.send(client.pid("forms:x"), ("info_ref",))
    _, _, error = await client.next()
    assert isinstance(error, ChannelsError)
    assert str(error) == "socket refs can only be generated for a socket with a message ref"
    assert (await client.next())[3] == "phx_error"


# handle_info


@in_process
async def test_handle_info_noreply() -> None:
    client = Client(FormsEndpoint())
    await client.join("forms:x")
    process.send(client.pid("forms:x"), ("info_push", 42))
    assert await client.next() == ["1", None, "forms:x", "info", {"got": 42}]


@in_process
async def test_handle_info_stop() -> None:
    client = Client(FormsEndpoint())
    await client.join("forms:x")
    process.send(client.pid("forms:x"), ("info_stop",))
    assert await client.next() == ["1", "1", "forms:x", "phx_close", {}]
    assert await client.next() == ("terminated", "forms:x", ("shutdown", "info"))


@in_process
async def test_handle_info_invalid_return(caplog: pytest.LogCaptureFixture) -> None:
    client = Client(FormsEndpoint())
    await client.join("forms:x")
    with caplog.at_level(logging.ERROR, logger="channels_core.channel_server"):
        process.send(client.pid("forms:x"), ("unknown",))
        _, _, error = await client.next()
    assert str(error) == (
        "expected handle_info to return one of:\n\n"
        "    ('noreply', socket) |\n    ('stop', reason, socket)\n\n"
        "got 'whatever'"
    )
    assert caplog.messages == [f"channel FormsChannel for 'forms:x' crashed handling ('unknown',): {error!r}"]
    assert (await client.next())[3] == "phx_error"


@in_process
async def test_close_stops_the_channel_as_if_the_client_had_gone() -> None:
    client = Client(FormsEndpoint())
    await client.join("forms:x")
    process.send(client.pid("forms:x"), Close())
    assert await client.next() == ["1", "1", "forms:x", "phx_close", {}]
    assert await client.next() == ("terminated", "forms:x", ("shutdown", "closed"))


# handle_out and intercepts


@in_process
async def test_intercepted_events_go_through_handle_out_others_take_the_fastlane() -> None:
    endpoint = FormsEndpoint()
    client = Client(endpoint)
    await client.join("forms:x")
    # Intercepted: the broadcast goes to the channel process, so it queues behind the
    # reply being made, and handle_out's push carries the join_ref.
    await client.send(["1", "2", "forms:x", "broadcast", {"event": "shout", "payload": {"n": 1}}])
    assert await client.next() == ok("2")
    assert await client.next() == ["1", None, "forms:x", "shout", {"n": 1, "via": "handle_out"}]
    # Not intercepted: encoded once and sent straight to the transport, before the reply.
    await client.send(["1", "3", "forms:x", "broadcast", {"event": "plain", "payload": {"n": 2}}])
    assert await client.next() == [None, None, "forms:x", "plain", {"n": 2}]
    assert await client.next() == ok("3")


@in_process
async def test_handle_out_stop() -> None:
    client = Client(FormsEndpoint())
    await client.join("forms:x")
    client.endpoint.broadcast("forms:x", "shout_stop", {})
    assert await client.next() == ["1", "1", "forms:x", "phx_close", {}]
    assert await client.next() == ("terminated", "forms:x", ("shutdown", "out"))


@in_process
async def test_handle_out_invalid_return(caplog: pytest.LogCaptureFixture) -> None:
    client = Client(FormsEndpoint())
    await client.join("forms:x")
    with caplog.at_level(logging.ERROR, logger="channels_core.channel_server"):
        client.endpoint.broadcast("forms:x", "shout_invalid", {})
        _, _, error = await client.next()
    assert str(error) == (
        "expected handle_out to return one of:\n\n"
        "    ('noreply', socket) |\n    ('stop', reason, socket)\n\n"
        "got None"
    )
    assert caplog.messages == [
        f"channel FormsChannel for 'forms:x' crashed handling "
        f"Broadcast(topic='forms:x', event='shout_invalid', payload={{}}): {error!r}"
    ]
    assert (await client.next())[3] == "phx_error"


@in_process
async def test_broadcast_from_excludes_the_sender() -> None:
    endpoint = FormsEndpoint()
    sender = Client(endpoint)  # V2
    other = Client(endpoint, vsn="1.0.0")  # V1, so its frames are told apart
    await sender.join("forms:x")
    await other.join("forms:x", join_ref="7")
    assert endpoint.pubsub.subscribers("forms:x")[1][1].serializer is V1

    await sender.send(["1", "2", "forms:x", "broadcast_from", {"event": "hello", "payload": {}}])
    # Only the other client's frame, then the sender's reply: nothing for the sender itself.
    assert await sender.next() == {"event": "hello", "payload": {}, "ref": None, "topic": "forms:x"}
    assert await sender.next() == ok("2")

    await sender.send(["1", "3", "forms:x", "broadcast", {"event": "hello", "payload": {}}])
    frames = [await sender.next() for _ in range(3)]
    assert frames == [
        [None, None, "forms:x", "hello", {}],
        {"event": "hello", "payload": {}, "ref": None, "topic": "forms:x"},
        ok("3"),
    ]


@in_process
async def test_local_broadcasts_behave_as_broadcasts_on_one_node() -> None:
    endpoint = FormsEndpoint()
    sender = Client(endpoint)
    other = Client(endpoint, vsn="1.0.0")
    await sender.join("forms:x")
    await other.join("forms:x", join_ref="7")
    await sender.send(["1", "2", "forms:x", "local_broadcast_from", {"event": "e", "payload": {}}])
    assert await sender.next() == {"event": "e", "payload": {}, "ref": None, "topic": "forms:x"}
    assert await sender.next() == ok("2")
    await sender.send(["1", "3", "forms:x", "local_broadcast", {"event": "e", "payload": {}}])
    assert [await sender.next() for _ in range(3)] == [
        [None, None, "forms:x", "e", {}],
        {"event": "e", "payload": {}, "ref": None, "topic": "forms:x"},
        ok("3"),
    ]


# terminate


@in_process
async def test_terminate_on_leave() -> None:
    client = Client(FormsEndpoint())
    await client.join("forms:x")
    await client.send(["1", "2", "forms:x", "phx_leave", {}])
    assert await client.next() == ok("2")
    assert await client.next() == ["1", "1", "forms:x", "phx_close", {}]
    assert await client.next() == ("terminated", "forms:x", ("shutdown", "left"))


@in_process
async def test_terminate_on_crash(caplog: pytest.LogCaptureFixture) -> None:
    client = Client(FormsEndpoint())
    await client.join("forms:x")
    with caplog.at_level(logging.ERROR, logger="channels_core.channel_server"):
        await client.send(["1", "2", "forms:x", "no such event", {}])
        _, _, reason = await client.next()
    assert isinstance(reason, ValueError) and str(reason) == "no clause for 'no such event'"
    assert await client.next() == ["1", "1", "forms:x", "phx_error", {"reason": "channel_crash"}]


@in_process
async def test_no_terminate_when_killed_by_a_duplicate_join() -> None:
    client = Client(FormsEndpoint())
    await client.join("forms:x")
    old = client.pid("forms:x")
    assert await client.join("forms:x", join_ref="2") == ok("2", join_ref="2")
    assert not process.is_alive(old)
    assert await client.next() == ["1", "1", "forms:x", "phx_close", {}]
    # The old channel is gone, so anything it sent is already here: no terminate.
    assert mailbox() == []


@in_process
async def test_terminate_when_the_transport_exits() -> None:
    # A second transport joins, then its process ends, as when a client disconnects.
    WitnessChannel.witness = process.current()
    endpoint = FormsEndpoint()

    async def transport() -> None:
        client = Client(endpoint)
        assert await client.join("witness:1") == ok("1", topic="witness:1")

    pid = process.spawn(transport, role="transport")
    # The channel monitors its transport: a normal exit stops it as ("shutdown", "closed").
    message = await process.receive(timeout=2)
    assert message == ("terminated", "witness:1", ("shutdown", "closed"))
    assert not process.is_alive(pid)


@in_process
async def test_terminate_that_raises_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    client = Client(FormsEndpoint())
    await client.join("broken:x")
    pid = client.pid("broken:x")
    with caplog.at_level(logging.ERROR, logger="channels_core.channel_server"):
        await client.send(["1", "2", "broken:x", "anything", {}])
        assert await wait_exit(pid) == ("shutdown", "bye")
    assert caplog.messages == ["channel BrokenTerminateChannel raised in terminate/2: RuntimeError('terminate failed')"]
    assert await client.next() == ["1", "1", "broken:x", "phx_close", {}]


# Async callbacks


@in_process
async def test_async_callbacks_are_awaited() -> None:
    client = Client(FormsEndpoint())
    assert await client.join("async:1") == ok("1", {"async": True}, topic="async:1")
    await client.send(["1", "2", "async:1", "ping", {"x": 1}])
    assert await client.next() == ok("2", {"echo": {"x": 1}}, topic="async:1")
    process.send(client.pid("async:1"), "hello")
    assert await client.next() == ["1", None, "async:1", "info", {"message": "hello"}]
    client.endpoint.broadcast("async:1", "out", {})
    assert await client.next() == ["1", None, "async:1", "out", {"async_out": True}]
    await client.send(["1", "3", "async:1", "phx_leave", {}])
    assert await client.next() == ok("3", topic="async:1")
    assert await client.next() == ["1", "1", "async:1", "phx_close", {}]
    assert await client.next() == ("terminated", "async:1", ("shutdown", "left"))


# A channel that does not inherit from Channel


@in_process
async def test_duck_typed_channel(caplog: pytest.LogCaptureFixture) -> None:
    client = Client(FormsEndpoint())
    assert not issubclass(DuckChannel, Channel)
    assert await client.join("duck:1") == ok("1", topic="duck:1")
    await client.send(["1", "2", "duck:1", "quack", {}])
    assert await client.next() == ok("2", {"duck": "quack"}, topic="duck:1")
    # Intercepted without a handle_out: the default pushes it unchanged, through the channel.
    client.endpoint.broadcast("duck:1", "quack", {"loud": True})
    assert await client.next() == ["1", None, "duck:1", "quack", {"loud": True}]
    # No handle_info: an unexpected message is logged and dropped, the channel lives on.
    with caplog.at_level(logging.WARNING, logger="channels_core.channel_server"):
        process.send(client.pid("duck:1"), ("hello",))
        await client.send(["1", "3", "duck:1", "still there?", {}])
        assert await client.next() == ok("3", {"duck": "still there?"}, topic="duck:1")
    assert caplog.messages == ["DuckChannel received unexpected message in handle_info/2: ('hello',)"]
    # No terminate: leaving still closes cleanly.
    await client.send(["1", "4", "duck:1", "phx_leave", {}])
    assert await client.next() == ok("4", topic="duck:1")
    assert await client.next() == ["1", "1", "duck:1", "phx_close", {}]


