"""Every frame the server sends and accepts, made by the package's own serializers.

The protocol reference page shows these frames; nothing on it is typed by hand.
Each :class:`FrameKind` holds a ``Message``, ``Reply`` or ``Broadcast`` value,
and :func:`render` turns it into the bytes on the wire by calling
``V1JSONSerializer`` / ``V2JSONSerializer`` exactly as the server does:
``encode`` for pushes and replies, ``fastlane`` for broadcasts. Frames a client
sends are made the way a client makes them (the serializer's text layout, or the
Python client's binary push encoder) and then read back with ``decode``, which
must give the same ``Message``: that is what "the server accepts it" means.

The example values follow the golden transcripts recorded from a real Phoenix
server (``../shared/golden``), frame for frame, so that a test can hold the two
side by side.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from channels_core import client
from channels_core.channel import push
from channels_core.channel_server import ChannelServer
from channels_core.message import Broadcast, Message, Reply
from channels_core.pubsub.fastlane import fastlane_dispatch
from channels_core.serializers import V1JSONSerializer, V2JSONSerializer
from channels_core.serializers import v2_json
from channels_core.socket import SocketState

__all__ = ["FRAME_KINDS", "PROTOCOLS", "BinaryField", "FrameKind", "Rendered", "binary_fields", "kind", "render"]

UP = "↑"
DOWN = "↓"

#: The two protocol versions, newest first: what a client asks for with ``?vsn=``.
PROTOCOLS: dict[str, V1JSONSerializer | V2JSONSerializer] = {
    "2.0.0": V2JSONSerializer(),
    "1.0.0": V1JSONSerializer(),
}

Value = Message | Reply | Broadcast


@dataclass(frozen=True)
class FrameKind:
    """One kind of frame, with an example value.

    Attributes:
        key: The name the reference page uses for it, e.g. ``"join-reply-ok"``.
        direction: ``"↑"`` (client to server) or ``"↓"`` (server to client).
        event: The event name on the wire, e.g. ``"phx_reply"``.
        build: Makes the example value, given the join_ref of the connection's
            protocol: ``"1"`` under V2, None under V1, whose clients send none.
        code: The function of ``channels_core`` that makes this frame (↓) or acts
            on it (↑); a rename breaks the book's build, not the page.
        binary: A V2 binary frame (V1 has none).
        golden: Where the same frame is in the golden transcripts, per protocol
            version: ``(transcript name, seq)``.
    """

    key: str
    direction: str
    event: str
    build: Callable[[str | None], Value]
    code: Callable[..., Any]
    binary: bool = False
    golden: tuple[tuple[str, str, int], ...] = ()

    @property
    def protocols(self) -> tuple[str, ...]:
        return ("2.0.0",) if self.binary else tuple(PROTOCOLS)


@dataclass(frozen=True)
class Rendered:
    """A frame kind made under one protocol version.

    Attributes:
        vsn: ``"2.0.0"`` or ``"1.0.0"``.
        value: The value that was encoded, or that decoding the frame gave.
        call: The serializer call that made (↓) or read (↑) the frame, as Python.
        result: What that call returned: a ``SocketPush``, or the decoded ``Message``.
        opcode: ``"text"`` or ``"binary"``.
        data: The frame: ``str`` for text, ``bytes`` for binary.
    """

    vsn: str
    value: Value
    call: str
    result: Any
    opcode: str
    data: str | bytes


TOPIC = "room:lobby"


def _reply(status: str, payload: Any, ref: str, topic: str = TOPIC) -> Callable[[str | None], Value]:
    return lambda join_ref: Reply(topic=topic, status=status, payload=payload, ref=ref, join_ref=join_ref)


FRAME_KINDS: tuple[FrameKind, ...] = (
    # Client to server
    FrameKind(
        "join", UP, "phx_join",
        lambda j: Message(topic=TOPIC, event="phx_join", payload={"user": "alice"}, ref="1", join_ref=j),
        SocketState._join,
        golden=(("2.0.0", "ws_v2_join_ok", 3), ("1.0.0", "ws_v1_join_ok", 3)),
    ),
    FrameKind(
        "message", UP, "new_msg",
        lambda j: Message(topic=TOPIC, event="new_msg", payload={"body": "hi!"}, ref="2", join_ref=j),
        ChannelServer._handle_in,
        golden=(("2.0.0", "ws_v2_new_msg_reply_broadcast", 7), ("1.0.0", "ws_v1_new_msg_reply_broadcast", 7)),
    ),
    FrameKind(
        "heartbeat", UP, "heartbeat",
        # A heartbeat belongs to no join: its join_ref is null under V2 too.
        lambda j: Message(topic="phoenix", event="heartbeat", payload={}, ref="1", join_ref=None),
        SocketState._handle_in,
        golden=(("2.0.0", "ws_v2_heartbeat", 3), ("1.0.0", "ws_v1_heartbeat", 3)),
    ),
    FrameKind(
        "leave", UP, "phx_leave",
        lambda j: Message(topic=TOPIC, event="phx_leave", payload={}, ref="2", join_ref=j),
        ChannelServer._handle,
        golden=(("2.0.0", "ws_v2_leave", 7), ("1.0.0", "ws_v1_leave", 7)),
    ),
    FrameKind(
        "binary-message", UP, "binary_event",
        lambda j: Message(topic=TOPIC, event="binary_event", payload=b"\x01\x02", ref="2", join_ref=j),
        ChannelServer._handle_in,
        binary=True,
        golden=(("2.0.0", "ws_v2_binary", 7),),
    ),
    # Server to client: replies
    FrameKind(
        "join-reply-ok", DOWN, "phx_reply", _reply("ok", {}, "1"), SocketState._join,
        golden=(("2.0.0", "ws_v2_join_ok", 4), ("1.0.0", "ws_v1_join_ok", 4)),
    ),
    FrameKind(
        "join-reply-error", DOWN, "phx_reply", _reply("error", {"reason": "unauthorized"}, "1", "room:private"),
        SocketState._join,
        golden=(("2.0.0", "ws_v2_join_error", 4), ("1.0.0", "ws_v1_join_error", 4)),
    ),
    FrameKind(
        "too-many-channels", DOWN, "phx_reply",
        lambda j: Reply(topic="room:limit-101", status="error", payload={"reason": "too many channels joined"},
                        ref="101", join_ref="101" if j else None),
        SocketState._join,
        golden=(("2.0.0", "ws_v2_too_many_channels", 404),),
    ),
    FrameKind(
        "unmatched-topic", DOWN, "phx_reply",
        # No join, so no join_ref to echo: null under both protocols.
        lambda j: Reply(topic="room:nojoin", status="error", payload={"reason": "unmatched topic"}, ref="1"),
        SocketState._encode_ignore,
        golden=(("2.0.0", "ws_v2_unmatched_topic", 4), ("1.0.0", "ws_v1_unmatched_topic", 4)),
    ),
    FrameKind(
        "reply", DOWN, "phx_reply", _reply("ok", {}, "2"), ChannelServer._reply,
        golden=(("2.0.0", "ws_v2_new_msg_reply_broadcast", 8), ("1.0.0", "ws_v1_new_msg_reply_broadcast", 8)),
    ),
    FrameKind(
        "heartbeat-reply", DOWN, "phx_reply",
        lambda j: Reply(topic="phoenix", status="ok", payload={}, ref="1"),
        SocketState._handle_in,
        golden=(("2.0.0", "ws_v2_heartbeat", 4), ("1.0.0", "ws_v1_heartbeat", 4)),
    ),
    FrameKind(
        "leave-reply", DOWN, "phx_reply", _reply("ok", {}, "2"), ChannelServer._reply,
        golden=(("2.0.0", "ws_v2_leave", 8), ("1.0.0", "ws_v1_leave", 8)),
    ),
    # Server to client: pushes and broadcasts
    FrameKind(
        "push", DOWN, "joined",
        lambda j: Message(topic=TOPIC, event="joined", payload={"status": "connected", "user_id": "u1"},
                          join_ref=j),
        push,
        golden=(("2.0.0", "ws_v2_join_ok", 6), ("1.0.0", "ws_v1_join_ok", 6)),
    ),
    FrameKind(
        "broadcast", DOWN, "user_entered",
        lambda j: Broadcast(topic=TOPIC, event="user_entered", payload={"user": "alice"}),
        fastlane_dispatch,
        golden=(("2.0.0", "ws_v2_join_ok", 5), ("1.0.0", "ws_v1_join_ok", 5)),
    ),
    # Server to client: the channel's end
    FrameKind(
        "phx-close", DOWN, "phx_close",
        lambda j: Message(topic=TOPIC, event="phx_close", payload={}, ref=j, join_ref=j),
        SocketState._socket_close,
        golden=(("2.0.0", "ws_v2_leave", 9), ("1.0.0", "ws_v1_leave", 9)),
    ),
    FrameKind(
        "phx-error", DOWN, "phx_error",
        lambda j: Message(topic=TOPIC, event="phx_error", payload={"reason": "channel_crash"}, ref=j, join_ref=j),
        SocketState._channel_down,
        golden=(("2.0.0", "ws_v2_boom_phx_error", 9), ("1.0.0", "ws_v1_boom_phx_error", 9)),
    ),
    # Server to client: binary
    FrameKind(
        "binary-push", DOWN, "binary_event",
        lambda j: Message(topic=TOPIC, event="binary_event", payload=b"\x00\x01", join_ref=j),
        push,
        binary=True,
        golden=(("2.0.0", "ws_v2_binary", 8),),
    ),
    FrameKind(
        "binary-reply", DOWN, "phx_reply", _reply("ok", b"\x01\x02\x03\x04", "2"), ChannelServer._reply,
        binary=True,
        golden=(("2.0.0", "ws_v2_binary", 9),),
    ),
    FrameKind(
        "binary-broadcast", DOWN, "binary_event",
        lambda j: Broadcast(topic=TOPIC, event="binary_event", payload=b"\x05\x06"),
        fastlane_dispatch,
        binary=True,
    ),
)


def kind(key: str) -> FrameKind:
    """The frame kind called ``key``.

    Raises:
        KeyError: no such kind; the message lists the ones there are.
    """
    for candidate in FRAME_KINDS:
        if candidate.key == key:
            return candidate
    raise KeyError(f"no frame kind {key!r}; there are: {', '.join(k.key for k in FRAME_KINDS)}")


def render(frame_kind: FrameKind, vsn: str) -> Rendered:
    """Make ``frame_kind``'s frame under protocol ``vsn`` with the real serializer.

    Raises:
        ValueError: ``vsn`` is not a protocol this kind exists in.
        AssertionError: a client frame does not decode back to its value.
    """
    if vsn not in frame_kind.protocols:
        raise ValueError(f"frame kind {frame_kind.key!r} has no {vsn} form")
    serializer = PROTOCOLS[vsn]
    name = type(serializer).__name__
    value = frame_kind.build("1" if vsn == "2.0.0" else None)
    if frame_kind.direction == DOWN:
        if isinstance(value, Broadcast):
            push, call = serializer.fastlane(value), f"{name}().fastlane({value!r})"
        else:
            push, call = serializer.encode(value), f"{name}().encode({value!r})"
        return Rendered(vsn, value, call, push, push.opcode, push.data)

    assert isinstance(value, Message)
    if frame_kind.binary:
        # The server never writes a client's binary push; the client's encoder does.
        data: str | bytes = client.encode_binary_push(
            client.Message(value.topic, value.event, value.payload, value.ref, value.join_ref)
        )
        opcode = "binary"
    else:
        # A client's text frame has the very layout the serializer writes.
        pushed = serializer.encode(value)
        data, opcode = pushed.data, pushed.opcode
    decoded = serializer.decode(data, opcode)  # type: ignore[arg-type]
    assert decoded == value, f"{frame_kind.key} under {vsn}: {data!r} decodes to {decoded!r}, not {value!r}"
    return Rendered(vsn, decoded, f"{name}().decode({data!r}, {opcode!r})", decoded, opcode, data)


@dataclass(frozen=True)
class BinaryField:
    """A stretch of a binary frame: its bytes and what they mean."""

    data: bytes
    meaning: str


#: V2 binary layouts: the string fields after the kind byte, by (direction, kind).
_LAYOUTS = {
    (UP, v2_json.PUSH): ("join_ref", "ref", "topic", "event"),
    (DOWN, v2_json.PUSH): ("join_ref", "topic", "event"),
    (DOWN, v2_json.REPLY): ("join_ref", "ref", "topic", "status"),
    (DOWN, v2_json.BROADCAST): ("topic", "event"),
}
_KIND_NAMES = {v2_json.PUSH: "push", v2_json.REPLY: "reply", v2_json.BROADCAST: "broadcast"}


def binary_fields(direction: str, data: bytes) -> list[BinaryField]:
    """Split a V2 binary frame into its parts, reading the sizes from the frame itself.

    Raises:
        ValueError: the frame is not a V2 binary frame of that direction.
    """
    if not data:
        raise ValueError("empty binary frame")
    names = _LAYOUTS.get((direction, data[0]))
    if names is None:
        raise ValueError(f"no {direction} binary frame of kind {data[0]}")
    sizes = data[1 : 1 + len(names)]
    fields = [
        BinaryField(data[:1], f"kind {data[0]}: {_KIND_NAMES[data[0]]}"),
        BinaryField(sizes, "sizes of " + ", ".join(f"{n} ({s})" for n, s in zip(names, sizes))),
    ]
    offset = 1 + len(names)
    for name, size in zip(names, sizes):
        chunk = data[offset : offset + size]
        if len(chunk) != size:
            raise ValueError(f"binary frame ends inside its {name} field")
        fields.append(BinaryField(chunk, f"{name} {chunk.decode()!r}"))
        offset += size
    fields.append(BinaryField(data[offset:], f"payload, {len(data) - offset} raw bytes"))
    return fields
