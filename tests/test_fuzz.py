"""Fuzzing: arbitrary frames into the serializers and into a live socket, and
arbitrary join / leave / push / crash sequences against the socket's topic map.

Three properties, each checked with hypothesis:

1. **decode** takes any text or bytes and returns a ``Message`` or raises
   ``DecodeError``; nothing else. And whatever it admits can be encoded back, in a
   reply, a push and a broadcast. That second half is what keeps one client's frame
   from reaching its neighbours: a value that decodes but cannot be encoded (NaN, a
   number that overflows to infinity, a lone UTF-16 surrogate) would crash the
   channel of every subscriber a chat message is broadcast to. Phoenix's Jason
   refuses those values, so the connection that sent one crashes, alone.
2. **a live socket** answers every frame of an arbitrary sequence the way the
   golden README says Phoenix does (:class:`Oracle`): a frame that does not decode
   closes its connection with 1011; a non-string topic is an ``unmatched topic``;
   extra array elements are ignored; a stale ``join_ref`` is dropped. A neighbour
   joined to the same topic sees only what it is owed, every process the
   connection started exits, and nothing but the expected lines is logged.
3. **the topic map** (``channels`` and ``channels_inverse``) stays consistent with
   the live channel processes, their monitors and their PubSub subscriptions,
   whatever sequence of joins, leaves, pushes, crashes, kills, clean stops and
   refused or crashing joins one socket goes through (a rule-based state machine,
   in-process, with the test playing the transport process).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, NamedTuple

import pytest
import websockets
from helpers import RawClient, seconds
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test
from test_integration import closed

from channels_core import process
from channels_core import socket as socket_module
from channels_core.channel import Channel, broadcast
from channels_core.endpoint import Endpoint, socket
from channels_core.exceptions import DecodeError
from channels_core.message import Broadcast, Message, Reply
from channels_core.process import Pid
from channels_core.pubsub.fastlane import Fastlane
from channels_core.serializers import SocketPush, V1JSONSerializer, V2JSONSerializer
from channels_core.server import Server
from channels_core.socket import Socket, SocketState, SocketStruct, channel
from channels_core.transports.transport import WEBSOCKET_DEFAULTS, load_config

V1 = V1JSONSerializer()
V2 = V2JSONSerializer()
OK_EMPTY = {"response": {}, "status": "ok"}


# --------------------------------------------------------------------------
# The application under fuzz: one channel whose every answer is predictable
# --------------------------------------------------------------------------


class EchoChannel(Channel):
    """``echo:*``: answers every event, so the oracle can say exactly what comes back.

    ``join`` refuses ``{"refuse": true}`` and raises on ``{"crash": true}``;
    ``crash`` raises; ``stop`` stops cleanly; ``shout`` broadcasts an object
    payload; anything else is echoed in the reply.
    """

    def join(self, topic: str, payload: Any, socket: SocketStruct) -> tuple[Any, ...]:
        if isinstance(payload, dict) and payload.get("crash") is True:
            raise RuntimeError("join crash requested")
        if isinstance(payload, dict) and payload.get("refuse") is True:
            return ("error", {"reason": "refused"})
        return ("ok", socket)

    def handle_in(self, event: Any, payload: Any, socket: SocketStruct) -> tuple[Any, ...]:
        if event == "crash":
            raise RuntimeError("crash requested")
        if event == "stop":
            return ("stop", ("shutdown", "stop requested"), socket)
        if isinstance(payload, bytes):
            return ("reply", ("ok", {"event": event, "bytes": payload.hex()}), socket)
        if event == "shout":
            if not isinstance(payload, dict):
                return ("reply", ("error", {"reason": "shout needs an object"}), socket)
            broadcast(socket, "shout", payload)
        return ("reply", ("ok", {"event": event, "payload": payload}), socket)


class FuzzSocket(Socket):
    channels = [channel("echo:*", EchoChannel)]


class FuzzEndpoint(Endpoint):
    sockets = [socket("/socket", FuzzSocket, websocket={"check_origin": False})]


# --------------------------------------------------------------------------
# Strict JSON, as Jason reads it (the oracle's own reading, not the package's)
# --------------------------------------------------------------------------


class NotJSON(Exception):
    """The text is not JSON as Jason reads it."""


def _no_constants(name: str) -> Any:
    raise NotJSON(name)


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise NotJSON(text)
    return value


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return any(0xD800 <= ord(char) <= 0xDFFF for char in value)
    if isinstance(value, list):
        return any(_has_lone_surrogate(item) for item in value)
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    return False


def strict_json(data: str | bytes) -> Any:
    """Parse as Jason does: no NaN or Infinity, no overflowing number, no lone surrogate.

    Raises:
        NotJSON: when Jason would refuse the text.
    """
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        value = json.loads(text, parse_constant=_no_constants, parse_float=_finite)
    except (ValueError, RecursionError) as exc:
        raise NotJSON(str(exc)) from None
    if _has_lone_surrogate(value):
        raise NotJSON("lone surrogate")
    return value


# --------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------

json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)

#: JSON text Python's json module accepts and Jason does not: each must crash its sender.
POISON = [
    "NaN", "Infinity", "-Infinity", "1e400", "-2E+999",
    '"\\ud800"', '"tail \\udfff"', '"\\ud83d then not its pair"', '{"\\udc00": 1}',
    '[' * 3000 + ']' * 3000,
]

# Mostly the values a real client sends, so that joins, leaves and echoes happen;
# sometimes any JSON value at all in the same place.
refs = st.one_of(st.sampled_from([None, "1", "2", "3"]), st.sampled_from([None, "1", "2", "3"]), json_values)
topics = st.one_of(*[st.sampled_from(["echo:a", "echo:b", "phoenix", "other:x"])] * 3, json_values)
events = st.one_of(
    *[st.sampled_from(["phx_join", "phx_join", "phx_leave", "heartbeat", "ping", "shout", "crash", "stop"])] * 3,
    json_values,
)
payloads = st.one_of(json_values, st.dictionaries(st.text(max_size=5), json_values, max_size=3),
                     st.sampled_from([{"refuse": True}, {"crash": True}, {"body": "hi"}]))


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


@st.composite
def v2_array_text(draw: st.DrawFn, *, poison: bool = False) -> str:
    """``[join_ref, ref, topic, event, payload, *extra]`` or a shorter array; with ``poison``,
    one element is replaced by a value only Python's json accepts."""
    parts = [dumps(draw(refs)), dumps(draw(refs)), dumps(draw(topics)), dumps(draw(events)), dumps(draw(payloads))]
    parts += [dumps(value) for value in draw(st.lists(json_values, max_size=2))]
    parts = parts[: draw(st.sampled_from([len(parts)] * 4 + [0, 1, 4]))]
    if poison:
        position = draw(st.integers(min_value=0, max_value=max(len(parts) - 1, 0)))
        parts[position:position + 1] = [draw(st.sampled_from(POISON))]
    return "[" + ",".join(parts) + "]"


@st.composite
def v1_object_text(draw: st.DrawFn, *, poison: bool = False) -> str:
    """``{topic, event, payload, ref}`` with an optional join_ref, sometimes a key short."""
    fields = {"topic": dumps(draw(topics)), "event": dumps(draw(events)), "payload": dumps(draw(payloads)),
              "ref": dumps(draw(refs))}
    if draw(st.booleans()):
        fields["join_ref"] = dumps(draw(refs))
    if draw(st.integers(min_value=0, max_value=5)) == 0:
        del fields[draw(st.sampled_from(sorted(fields)))]
    if poison:
        fields[draw(st.sampled_from(sorted(fields)))] = draw(st.sampled_from(POISON))
    return "{" + ",".join(f"{json.dumps(key)}:{value}" for key, value in fields.items()) + "}"


short_strings = st.sampled_from(["", "1", "2", "echo:a", "echo:b", "phoenix", "heartbeat", "ping", "phx_join"])


@st.composite
def v2_binary_push(draw: st.DrawFn) -> bytes:
    """A well-formed client binary push, or one whose header lies (kind, sizes, UTF-8)."""
    fields = [draw(short_strings).encode() for _ in range(4)]
    data = draw(st.binary(max_size=16))
    header = [0, *(len(field) for field in fields)]
    frame = bytes(header) + b"".join(fields) + data
    damage = draw(st.sampled_from(["none"] * 6 + ["kind", "short", "utf8", "truncate"]))
    if damage == "kind":
        frame = bytes([draw(st.integers(min_value=1, max_value=255))]) + frame[1:]
    elif damage == "short":
        frame = frame[: draw(st.integers(min_value=0, max_value=4))]
    elif damage == "utf8":
        frame = bytes([0, 1, 0, 0, 0]) + b"\xff" + data
    elif damage == "truncate":
        frame = bytes([0, 200, 0, 0, 0]) + fields[0]
    return frame


def text_frames(vsn: str) -> st.SearchStrategy[str]:
    structured = v2_array_text if vsn == "2.0.0" else v1_object_text
    return st.one_of(
        structured(),
        structured(),
        structured(),
        structured(poison=True),
        st.text(max_size=40),
        json_values.map(dumps),
    )


def binary_frames(vsn: str) -> st.SearchStrategy[bytes]:
    if vsn == "2.0.0":
        return v2_binary_push() | st.binary(max_size=24)
    # V1 reads a binary frame as JSON text, as Phoenix's V1 serializer does.
    return text_frames(vsn).map(lambda text: text.encode("utf-8", "surrogatepass")) | st.binary(max_size=24)


# --------------------------------------------------------------------------
# 1. decode: a Message or a DecodeError, and what it admits encodes back
# --------------------------------------------------------------------------


def assert_encodable(serializer: Any, message: Message) -> None:
    """Every frame the server could make from ``message`` encodes without error."""
    if isinstance(message.payload, bytes):
        serializer.encode(Reply(topic=message.topic, status="ok", payload=message.payload,
                                ref=message.ref, join_ref=message.join_ref))
        return
    serializer.encode(Reply(topic=message.topic, status="ok", payload={"echo": message.payload},
                            ref=message.ref, join_ref=message.join_ref))
    serializer.encode(Message(topic=message.topic, event=message.event, payload={"echo": message.payload},
                              ref=None, join_ref=message.join_ref))
    serializer.fastlane(Broadcast(message.topic, message.event, {"echo": message.payload}))


@pytest.mark.parametrize("serializer", [V1, V2], ids=["v1", "v2"])
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_decode_returns_a_message_or_raises_decode_error_and_never_admits_what_it_cannot_encode(
    serializer: Any, data: st.DataObject
) -> None:
    vsn = serializer.vsn
    frame = data.draw(text_frames(vsn) | binary_frames(vsn))
    opcode = "binary" if isinstance(frame, bytes) else "text"
    try:
        message = serializer.decode(frame, opcode)
    except DecodeError:
        return
    assert isinstance(message, Message)
    assert_encodable(serializer, message)


@pytest.mark.parametrize("serializer", [V1, V2], ids=["v1", "v2"])
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_json_that_only_python_accepts_is_a_decode_error(serializer: Any, data: st.DataObject) -> None:
    structured = v2_array_text if serializer is V2 else v1_object_text
    frame = data.draw(structured(poison=True))
    with pytest.raises(DecodeError) as refused:
        serializer.decode(frame, "text")
    what = "v2 text frame" if serializer is V2 else "v1 frame"
    assert str(refused.value).startswith((f"{what} is not valid JSON: ", f"{what} nests too deeply"))


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('["1","1","t","e",{"x":NaN}]', "v2 text frame is not valid JSON: NaN is not a JSON value"),
        ('["1","1","t","e",{"x":-Infinity}]', "v2 text frame is not valid JSON: -Infinity is not a JSON value"),
        ('["1","1","t","e",{"x":1e400}]', "v2 text frame is not valid JSON: number 1e400 is out of range"),
        ('["1","1","t","e",{"x":"\\ud800"}]',
         "v2 text frame is not valid JSON: a string holds an unpaired UTF-16 surrogate"),
        ("[" * 5000 + "]" * 5000, "v2 text frame nests too deeply to decode"),
    ],
    ids=["nan", "infinity", "overflow", "lone-surrogate", "deep"],
)
def test_each_kind_of_json_jason_refuses_is_named_in_the_decode_error(text: str, error: str) -> None:
    with pytest.raises(DecodeError) as refused:
        V2.decode(text, "text")
    assert str(refused.value) == error


def test_a_surrogate_pair_escape_is_one_character_and_accepted() -> None:
    message = V2.decode('["1","1","t","e",{"x":"\\ud83d\\ude00"}]', "text")
    assert message.payload == {"x": "\U0001F600"}
    assert V2.encode(Reply(topic="t", status="ok", payload=message.payload, ref="1", join_ref="1")).data == (
        '["1","1","t","phx_reply",{"response":{"x":"\U0001F600"},"status":"ok"}]'
    )


@pytest.mark.parametrize(
    "poison", ['"\\ud800"', "1e400", "NaN"], ids=["lone-surrogate", "overflow", "nan"]
)
async def test_a_chat_message_jason_would_refuse_closes_its_sender_only(
    demo_server: Server, raw_ws: Callable[..., Awaitable[RawClient]], caplog: pytest.LogCaptureFixture, poison: str
) -> None:
    # The bug this guards against: the demo's new_msg is intercepted, so a value that
    # decodes but cannot be encoded reached every subscriber's handle_out. A lone
    # surrogate then made every subscriber's write fail, and their connections
    # dropped without a close frame or a log line.
    neighbour, sender = await raw_ws("vsn=2.0.0&user_id=n"), await raw_ws("vsn=2.0.0&user_id=s")
    for client, user in ((neighbour, "n"), (sender, "s")):
        await client.send(["1", "1", "room:lobby", "phx_join", {"user": user}])
        assert (await client.recv_n(3))[0] == ["1", "1", "room:lobby", "phx_reply", OK_EMPTY]
    assert await neighbour.recv() == [None, None, "room:lobby", "user_entered", {"user": "s"}]

    await sender.connection.send('["1","2","room:lobby","new_msg",{"body":' + poison + "}]")

    assert await closed(sender) == (1011, "")
    assert [r.getMessage().split(": ", 1)[1] for r in caplog.records if r.name == "channels_core.adapter"] == [
        "v2 text frame is not valid JSON: " + {
            '"\\ud800"': "a string holds an unpaired UTF-16 surrogate",
            "1e400": "number 1e400 is out of range",
            "NaN": "NaN is not a JSON value",
        }[poison]
    ]
    await neighbour.expect_silence()
    await neighbour.send(["1", "3", "room:lobby", "new_msg", {"body": "still here"}])
    assert await neighbour.recv_n(2) == [
        ["1", "3", "room:lobby", "phx_reply", OK_EMPTY],
        ["1", None, "room:lobby", "new_msg", {"body": "still here", "transport": ":websocket"}],
    ]


# --------------------------------------------------------------------------
# 2. A live socket: every frame answered as Phoenix would, neighbours untouched
# --------------------------------------------------------------------------

FATAL = object()


class Frame(NamedTuple):
    """A frame the server sends, before it is rendered in V1 or V2 framing."""

    join_ref: Any
    ref: Any
    topic: Any
    event: Any
    payload: Any


def reply(join_ref: Any, ref: Any, topic: Any, status: str, response: Any) -> Frame:
    return Frame(join_ref, ref, topic, "phx_reply", {"response": response, "status": status})


class Joined(NamedTuple):
    stored_join_ref: Any  # the join message's join_ref: phx_close and phx_error carry it
    channel_join_ref: Any  # join_ref, or the join's ref when join_ref was null: replies carry it


class Oracle:
    """What a socket serving :class:`FuzzSocket` answers, following the golden README.

    It reads frames on its own (:func:`strict_json`, its own binary parser) and keeps
    its own idea of which topics are joined; the server has to agree frame by frame.
    """

    def __init__(self, vsn: str) -> None:
        self.vsn = vsn
        self.joined: dict[str, Joined] = {}
        self.crashes = 0  # handle_in raised: logged once
        self.join_crashes = 0  # join raised: logged by the channel and by the socket

    def decode(self, data: str | bytes) -> Message | object:
        if self.vsn == "2.0.0" and isinstance(data, bytes):
            return self._decode_binary(data)
        try:
            value = strict_json(data)
        except NotJSON:
            return FATAL
        if self.vsn == "2.0.0":
            if not isinstance(value, list) or len(value) < 5:
                return FATAL
            join_ref, ref, topic, event, payload = value[:5]  # the rest is ignored
            return Message(topic=topic, event=event, payload=payload, ref=ref, join_ref=join_ref)
        if not isinstance(value, dict) or not {"topic", "event", "payload", "ref"} <= value.keys():
            return FATAL
        return Message(topic=value["topic"], event=value["event"], payload=value["payload"],
                       ref=value["ref"], join_ref=value.get("join_ref"))

    @staticmethod
    def _decode_binary(data: bytes) -> Message | object:
        if len(data) < 5 or data[0] != 0 or 5 + sum(data[1:5]) > len(data):
            return FATAL
        fields, offset = [], 5
        for size in data[1:5]:
            try:
                fields.append(data[offset:offset + size].decode("utf-8"))
            except UnicodeDecodeError:
                return FATAL
            offset += size
        join_ref, ref, topic, event = fields
        return Message(topic=topic, event=event, payload=data[offset:], ref=ref, join_ref=join_ref)

    def answer(self, message: Message) -> list[Frame]:
        """The frames the server sends back for ``message``, in order; updates the joined topics."""
        topic, event, ref, join_ref = message.topic, message.event, message.ref, message.join_ref
        if topic == "phoenix" and event == "heartbeat":
            return [reply(None, ref, "phoenix", "ok", {})]
        current = self.joined.get(topic) if isinstance(topic, str) else None
        if event == "phx_join":
            closing = []
            if current is not None:  # a duplicate join: the new reply first, then the old close
                del self.joined[topic]
                closing = [Frame(current.stored_join_ref, current.stored_join_ref, topic, "phx_close", {})]
            if not (isinstance(topic, str) and topic.startswith("echo:")):
                return [reply(None, ref, topic, "error", {"reason": "unmatched topic"}), *closing]
            payload = message.payload
            if isinstance(payload, dict) and payload.get("crash") is True:
                self.join_crashes += 1
                return [reply(join_ref, ref, topic, "error", {"reason": "join crashed"}), *closing]
            if isinstance(payload, dict) and payload.get("refuse") is True:
                return [reply(join_ref, ref, topic, "error", {"reason": "refused"}), *closing]
            self.joined[topic] = Joined(join_ref, join_ref if join_ref is not None else ref)
            return [reply(join_ref, ref, topic, "ok", {}), *closing]
        if current is None:
            if event == "phx_leave":
                return [reply(join_ref, ref, topic, "ok", {})]
            return [reply(None, ref, topic, "error", {"reason": "unmatched topic"})]
        if join_ref is not None and join_ref != current.stored_join_ref:
            return []  # a stale message for an earlier join: dropped
        close = Frame(current.stored_join_ref, current.stored_join_ref, topic, "phx_close", {})
        if event == "phx_leave":
            del self.joined[topic]
            return [reply(current.channel_join_ref, ref, topic, "ok", {}), close]
        if event == "crash":
            del self.joined[topic]
            self.crashes += 1
            return [Frame(current.stored_join_ref, current.stored_join_ref, topic, "phx_error",
                          {"reason": "channel_crash"})]
        if event == "stop":
            del self.joined[topic]
            return [close]
        if isinstance(message.payload, bytes):
            return [reply(current.channel_join_ref, ref, topic, "ok",
                          {"event": event, "bytes": message.payload.hex()})]
        if event == "shout":
            if not isinstance(message.payload, dict):
                return [reply(current.channel_join_ref, ref, topic, "error", {"reason": "shout needs an object"})]
            return [Frame(None, None, topic, "shout", message.payload),
                    reply(current.channel_join_ref, ref, topic, "ok", {"event": event, "payload": message.payload})]
        return [reply(current.channel_join_ref, ref, topic, "ok", {"event": event, "payload": message.payload})]

    def render(self, frame: Frame) -> Any:
        """``frame`` in this connection's protocol version, as JSON values (either way round)."""
        if self.vsn == "2.0.0":
            return list(frame)
        return {"event": frame.event, "payload": frame.payload, "ref": frame.ref, "topic": frame.topic}


async def wait_for_exits(pids: Iterable[Pid], timeout: float = 2.0) -> None:
    """Wait until every pid has exited (an exit hook per pid, no polling)."""
    done = []
    for pid in pids:
        exited = asyncio.Event()
        process.on_exit(pid, lambda _pid, exited=exited: exited.set())
        done.append(exited.wait())
    await asyncio.wait_for(asyncio.gather(*done), seconds(timeout))


@pytest.fixture
async def fuzz_server(start_server: Callable[..., Awaitable[Server]]) -> Server:
    return await start_server(FuzzEndpoint())


NEIGHBOUR_TOPIC = "echo:a"
#: Numbers the broadcast that ends each example, so the neighbour's frames tell examples apart.
TICKS = itertools.count()


@pytest.fixture
async def neighbour(fuzz_server: Server) -> Any:
    """A V2 client joined to echo:a for the whole test, beside every fuzzed connection."""
    client = RawClient(await websockets.connect(f"{fuzz_server.ws_url}/socket/websocket?vsn=2.0.0"))
    await client.send(["n1", "n1", NEIGHBOUR_TOPIC, "phx_join", {}])
    assert await client.recv() == ["n1", "n1", NEIGHBOUR_TOPIC, "phx_reply", OK_EMPTY]
    yield client
    await client.close()


def describe(frame: Frame) -> str:
    """A label for hypothesis's statistics: which of the oracle's answers this is."""
    if frame.event != "phx_reply":
        return frame.event
    response = frame.payload["response"]
    if isinstance(response, dict) and "reason" in response:
        return f"{frame.payload['status']}: {response['reason']}"
    return "echo" if response else f"{frame.payload['status']} (join, leave or heartbeat)"


def error_records(caplog: pytest.LogCaptureFixture, start: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records[start:] if r.levelno >= logging.ERROR]


async def play(server: Server, neighbour: RawClient, vsn: str, frames: list[str | bytes],
               caplog: pytest.LogCaptureFixture, tick: int) -> None:
    """Send ``frames`` on a fresh connection, checking each answer against the oracle."""
    oracle = Oracle(vsn)
    log_start = len(caplog.records)
    pids_before = set(process.processes())
    client = RawClient(await websockets.connect(f"{server.ws_url}/socket/websocket?vsn={vsn}"))
    owed_to_neighbour: list[Any] = []
    fatal = False
    try:
        for number, data in enumerate(frames):
            await client.connection.send(data)
            message = oracle.decode(data)
            if message is FATAL:
                # Phoenix's transport process crashes on decode: close 1011, empty reason.
                assert await closed(client) == (1011, "")
                event("frame: fatal")
                fatal = True
                break
            expected = oracle.answer(message)  # type: ignore[arg-type]
            for frame in expected:
                event(f"answer: {describe(frame)}")
            if not expected:
                event("answer: nothing (stale join_ref)")
            if not expected:
                # Nothing comes back; a heartbeat proves that nothing did in between.
                expected = oracle.answer(Message(topic="phoenix", event="heartbeat", payload={},
                                                 ref=f"barrier-{number}", join_ref=None))
                await client.send(oracle.render(Frame(None, f"barrier-{number}", "phoenix", "heartbeat", {})))
            assert await client.recv_n(len(expected)) == [oracle.render(frame) for frame in expected]
            owed_to_neighbour += [list(frame) for frame in expected
                                  if frame.event == "shout" and frame.topic == NEIGHBOUR_TOPIC]
    finally:
        await client.close()

    # Everything this connection started (its transport, its channels) exits.
    await wait_for_exits([pid for pid in process.processes() if pid not in pids_before])
    # The neighbour got the shouts on its topic, in order, and then this tick: nothing else.
    server.app.broadcast(NEIGHBOUR_TOPIC, "tick", {"n": tick})
    owed_to_neighbour.append([None, None, NEIGHBOUR_TOPIC, "tick", {"n": tick}])
    assert await neighbour.recv_n(len(owed_to_neighbour)) == owed_to_neighbour
    # Only the expected lines were logged: the connection's crash, each channel's crash.
    errors = [(r.name, r.getMessage()) for r in error_records(caplog, log_start)]
    expected_loggers = (["channels_core.adapter"] * fatal
                        + ["channels_core.channel_server"] * (oracle.crashes + 2 * oracle.join_crashes))
    assert sorted(name for name, _ in errors) == sorted(expected_loggers), errors


@st.composite
def well_formed_message(draw: st.DrawFn, vsn: str) -> str | bytes:
    """A frame that decodes, with values that are mostly a real client's and sometimes anything."""
    if vsn == "2.0.0" and draw(st.integers(min_value=0, max_value=5)) == 0:
        fields = [draw(st.sampled_from(["", "1", "2"])), draw(short_strings),
                  draw(st.sampled_from(["echo:a", "echo:b", "phoenix", "x"])),
                  draw(st.sampled_from(["phx_join", "phx_leave", "heartbeat", "ping", "crash"]))]
        encoded = [field.encode() for field in fields]
        return bytes([0, *(len(field) for field in encoded)]) + b"".join(encoded) + draw(st.binary(max_size=8))
    usual_join_refs = st.sampled_from(["1", "1", None]) | refs  # as often the joined one as not
    echo_topics = st.sampled_from(["echo:a", "echo:b"])
    shape = draw(st.sampled_from(["join", "to a channel", "anything"]))
    if shape == "join":
        join_ref, ref, topic, event = draw(usual_join_refs), draw(refs), draw(echo_topics), "phx_join"
        payload = draw(st.sampled_from([{}, {}, {}, {"refuse": True}, {"crash": True}]) | payloads)
    elif shape == "to a channel":
        join_ref, ref, topic = draw(usual_join_refs), draw(refs), draw(echo_topics)
        event = draw(st.sampled_from(["ping", "ping", "shout", "crash", "stop", "phx_leave"]) | events)
        payload = draw(payloads)
    else:
        join_ref, ref, topic, event, payload = draw(refs), draw(refs), draw(topics), draw(events), draw(payloads)
    if vsn == "2.0.0":
        extra = draw(st.lists(json_values, max_size=2))  # ignored, as Phoenix ignores them
        return dumps([join_ref, ref, topic, event, payload, *extra])
    fields = {"topic": topic, "event": event, "payload": payload, "ref": ref}
    if draw(st.booleans()):
        fields["join_ref"] = join_ref
    return dumps(fields)


@st.composite
def frame_sequences(draw: st.DrawFn, vsn: str) -> list[str | bytes]:
    """Frames that decode, then maybe one frame of any kind (most of which do not)."""
    frames = draw(st.lists(well_formed_message(vsn), min_size=1, max_size=12))
    if draw(st.booleans()):
        frames.append(draw(text_frames(vsn) | binary_frames(vsn)))
    return frames


@pytest.mark.parametrize("vsn", ["2.0.0", "1.0.0"])
@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
async def test_a_live_socket_answers_arbitrary_frames_as_phoenix_does_and_its_neighbour_sees_nothing_of_it(
    fuzz_server: Server, neighbour: RawClient, caplog: pytest.LogCaptureFixture, vsn: str, data: st.DataObject
) -> None:
    caplog.set_level(logging.WARNING)
    frames = data.draw(frame_sequences(vsn))
    tick = next(TICKS)
    await play(fuzz_server, neighbour, vsn, frames, caplog, tick)
    # The neighbour's own channel is untouched: it still answers.
    await neighbour.send(["n1", "ping", NEIGHBOUR_TOPIC, "ping", {"tick": tick}])
    assert await neighbour.recv() == ["n1", "ping", NEIGHBOUR_TOPIC, "phx_reply",
                                      {"response": {"event": "ping", "payload": {"tick": tick}}, "status": "ok"}]


# --------------------------------------------------------------------------
# 3. The topic map stays consistent with the live channel processes
# --------------------------------------------------------------------------

MACHINE_TOPICS = st.sampled_from(["echo:a", "echo:b", "echo:c"])


class EndTransport(NamedTuple):
    """Tells the test's transport process to end, as a closed connection does."""


class TopicMapMachine(RuleBasedStateMachine):
    """One socket, several topics, every way a channel can come and go.

    The machine owns an event loop; the transport process on it does what the
    WebSocket adapter does (a frame → ``handle_in``, anything else →
    ``handle_info``) and records what it would write. Each rule sends one frame
    or kills one channel, waits for the frames the model predicts and for the
    channels it ended to exit; the invariant then compares the socket's maps
    with the processes, monitors and subscriptions that exist.
    """

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.endpoint = FuzzEndpoint()
        self.model: dict[str, Joined] = {}
        self.wire: list[Any] = []
        self.read = 0
        self.refs = 0
        self.pids_before = set(process.processes())
        self.state: SocketState | None = None
        self.transport: Pid | None = None
        self.run(self._start())

    # Driving the loop

    def run(self, coroutine: Awaitable[Any]) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(coroutine, seconds(5)))

    async def _start(self) -> None:
        self.wrote = asyncio.Event()
        ready = asyncio.Event()
        self.transport = process.spawn(self._transport, ready, role="test transport")
        await ready.wait()

    async def _transport(self, ready: asyncio.Event) -> Any:
        config = load_config({"check_origin": False}, WEBSOCKET_DEFAULTS)
        state = socket_module.connect(FuzzSocket, self.endpoint, "websocket", config, {"vsn": "2.0.0"}, {})
        assert isinstance(state, SocketState)
        state.init(process.current())
        self.state = state
        ready.set()
        while True:
            message = await process.receive()
            if isinstance(message, EndTransport):
                return "normal"
            if isinstance(message, tuple) and message[0] == "frame":
                action = await state.handle_in(message[1], "text")
            else:
                action = await state.handle_info(message)
            if isinstance(action, SocketPush):
                self.wire.append(json.loads(action.data))
                self.wrote.set()

    def send(self, frame: list[Any]) -> None:
        process.send(self.transport, ("frame", json.dumps(frame)))  # type: ignore[arg-type]

    def expect(self, frames: list[Frame]) -> None:
        """Wait for exactly ``frames``, then for the channels no longer mapped to exit."""

        async def arrived() -> None:
            while len(self.wire) < self.read + len(frames):
                self.wrote.clear()
                await self.wrote.wait()

        self.run(arrived())
        assert self.wire[self.read:self.read + len(frames)] == [list(frame) for frame in frames]
        self.read += len(frames)
        mapped = {entry.pid for entry in self.state.channels.values()}  # type: ignore[union-attr]
        self.run(wait_for_exits(p for p in self.endpoint.supervisor.which_children() if p not in mapped))

    def next_ref(self) -> str:
        self.refs += 1
        return str(self.refs)

    # Rules

    @rule(topic=MACHINE_TOPICS, outcome=st.sampled_from(["ok", "ok", "refuse", "crash"]))
    def join(self, topic: str, outcome: str) -> None:
        ref = self.next_ref()
        payload = {"ok": {}, "refuse": {"refuse": True}, "crash": {"crash": True}}[outcome]
        old = self.model.pop(topic, None)
        closing = [] if old is None else [Frame(old.stored_join_ref, old.stored_join_ref, topic, "phx_close", {})]
        self.send([ref, ref, topic, "phx_join", payload])
        if outcome == "ok":
            self.model[topic] = Joined(ref, ref)
            self.expect([reply(ref, ref, topic, "ok", {}), *closing])
        elif outcome == "refuse":
            self.expect([reply(ref, ref, topic, "error", {"reason": "refused"}), *closing])
        else:
            self.expect([reply(ref, ref, topic, "error", {"reason": "join crashed"}), *closing])

    @rule(topic=MACHINE_TOPICS)
    def leave(self, topic: str) -> None:
        ref = self.next_ref()
        joined = self.model.pop(topic, None)
        if joined is None:
            self.send([None, ref, topic, "phx_leave", {}])
            self.expect([reply(None, ref, topic, "ok", {})])
            return
        self.send([joined.stored_join_ref, ref, topic, "phx_leave", {}])
        self.expect([reply(joined.channel_join_ref, ref, topic, "ok", {}),
                     Frame(joined.stored_join_ref, joined.stored_join_ref, topic, "phx_close", {})])

    @rule(topic=MACHINE_TOPICS, stale=st.booleans())
    def push(self, topic: str, stale: bool) -> None:
        ref = self.next_ref()
        joined = self.model.get(topic)
        if joined is None:
            self.send([None, ref, topic, "ping", {"n": ref}])
            self.expect([reply(None, ref, topic, "error", {"reason": "unmatched topic"})])
        elif stale:
            # A message for an earlier join of the topic is dropped: a heartbeat comes back alone.
            self.send(["stale", ref, topic, "ping", {"n": ref}])
            self.send([None, ref, "phoenix", "heartbeat", {}])
            self.expect([reply(None, ref, "phoenix", "ok", {})])
        else:
            self.send([joined.stored_join_ref, ref, topic, "ping", {"n": ref}])
            self.expect([reply(joined.channel_join_ref, ref, topic, "ok", {"event": "ping", "payload": {"n": ref}})])

    @precondition(lambda self: self.model)
    @rule(data=st.data(), how=st.sampled_from(["crash", "stop", "kill"]))
    def end_a_channel(self, data: st.DataObject, how: str) -> None:
        topic = data.draw(st.sampled_from(sorted(self.model)))
        joined = self.model.pop(topic)
        ref = self.next_ref()
        error = Frame(joined.stored_join_ref, joined.stored_join_ref, topic, "phx_error", {"reason": "channel_crash"})
        if how == "crash":  # handle_in raises
            self.send([joined.stored_join_ref, ref, topic, "crash", {}])
            self.expect([error])
        elif how == "stop":  # handle_in returns stop with a clean reason
            self.send([joined.stored_join_ref, ref, topic, "stop", {}])
            self.expect([Frame(joined.stored_join_ref, joined.stored_join_ref, topic, "phx_close", {})])
        else:  # killed from outside, as an unclean exit signal would
            pid = self.state.channels[topic].pid  # type: ignore[union-attr]
            process.exit(pid, "killed by the test")
            self.expect([error])

    # The invariant

    @invariant()
    def topic_map_matches_the_live_channels(self) -> None:
        state = self.state
        assert state is not None
        transport = process.lookup(self.transport)  # type: ignore[arg-type]
        assert transport is not None
        assert set(state.channels) == set(self.model)
        pids = {entry.pid for entry in state.channels.values()}
        assert len(pids) == len(state.channels)
        # The inverse map is exactly the inverse, with the join_ref of the live join.
        assert state.channels_inverse == {
            entry.pid: (topic, self.model[topic].stored_join_ref) for topic, entry in state.channels.items()
        }
        # Every mapped channel is alive, and every live channel is mapped: no orphan, no ghost.
        assert set(self.endpoint.supervisor.which_children()) == pids
        assert all(process.is_alive(pid) for pid in pids)
        # One monitor per channel, from the transport, and the channel knows of it.
        assert transport._monitoring == {entry.monitor: entry.pid for entry in state.channels.values()}
        for entry in state.channels.values():
            channel_process = process.lookup(entry.pid)
            assert channel_process is not None
            assert channel_process._monitored_by.get(entry.monitor) == self.transport
        # One fastlane subscription per joined topic, pointing back at this transport.
        assert sorted(self.endpoint.pubsub.topics()) == sorted(state.channels)
        for topic, entry in state.channels.items():
            ((pid, metadata),) = self.endpoint.pubsub.subscribers(topic)
            assert pid == entry.pid
            assert isinstance(metadata, Fastlane) and metadata.transport_pid == self.transport
        assert all(entry.status == "joined" for entry in state.channels.values())

    def teardown(self) -> None:
        try:
            if self.transport is not None and process.is_alive(self.transport):
                process.send(self.transport, EndTransport())
                self.run(wait_for_exits([p for p in process.processes() if p not in self.pids_before]))
            # The transport's exit ends every channel; nothing is left behind.
            assert [p for p in process.processes() if p not in self.pids_before] == []
            assert self.endpoint.pubsub.topics() == []
            assert self.endpoint.supervisor.which_children() == []
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()


def test_the_topic_map_stays_consistent_with_the_live_channels_through_any_sequence(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Crashes are expected here and logged by the hundred; they are not the point.
    caplog.set_level(logging.CRITICAL)
    run_state_machine_as_test(
        TopicMapMachine,
        settings=settings(max_examples=40, stateful_step_count=30, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture]),
    )
