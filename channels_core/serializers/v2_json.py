"""Protocol version 2: JSON arrays for text frames, a compact layout for binary ones.

Mirrors ``Phoenix.Socket.V2.JSONSerializer``, the protocol phoenix.js speaks by
default (``vsn=2.0.0``). A text frame is a five-element array::

    [join_ref, ref, topic, event, payload]

An array, not an object, because position is cheaper to send than keys. Extra
elements are ignored; fewer than five is an error. A binary frame starts with a
kind byte and the sizes of its string fields, then the fields, then the raw data::

    push      (client → server)  0, len(join_ref), len(ref), len(topic), len(event), ...
    push      (server → client)  0, len(join_ref), len(topic), len(event), ...
    reply     (server → client)  1, len(join_ref), len(ref), len(topic), len(status), ...
    broadcast (server → client)  2, len(topic), len(event), ...

Each size is one byte, so each field is at most 255 bytes.
"""

from __future__ import annotations

from typing import Any

from .. import tracing
from ..exceptions import DecodeError, EncodeError
from ..message import Broadcast, Message, Reply
from .serializer import Opcode, SocketPush, decode_json, encode_json

PUSH = 0
REPLY = 1
BROADCAST = 2

MAX_FIELD_SIZE = 255


def _field(value: Any, kind: str) -> bytes:
    """A string field of a binary frame, checked against the one-byte size limit."""
    data = ("" if value is None else str(value)).encode()
    if len(data) > MAX_FIELD_SIZE:
        raise EncodeError(
            f"unable to encode {kind} in a binary frame: it must be at most "
            f"{MAX_FIELD_SIZE} bytes, but is {len(data)} bytes"
        )
    return data


class V2JSONSerializer:
    """Array frames ``[join_ref, ref, topic, event, payload]`` and binary frames."""

    vsn = "2.0.0"

    def __repr__(self) -> str:
        return "V2JSONSerializer()"

    def fastlane(self, broadcast: Broadcast) -> SocketPush:
        if tracing.active is not None:
            tracing.hop("serializer", "V2JSONSerializer.fastlane", topic=broadcast.topic, event=broadcast.event)
        payload = broadcast.payload
        if isinstance(payload, (bytes, bytearray)):
            topic = _field(broadcast.topic, "topic")
            event = _field(broadcast.event, "event")
            header = bytes((BROADCAST, len(topic), len(event)))
            return SocketPush("binary", header + topic + event + payload)
        if not isinstance(payload, dict):
            raise EncodeError(f"expected broadcast payload to be a map, got {payload!r}")
        return SocketPush("text", encode_json([None, None, broadcast.topic, broadcast.event, payload]))

    def encode(self, message: Message | Reply) -> SocketPush:
        if tracing.active is not None:
            tracing.hop("serializer", "V2JSONSerializer.encode", topic=message.topic,
                        event="phx_reply" if isinstance(message, Reply) else message.event)
        if isinstance(message, Reply):
            return self._encode_reply(message)
        payload = message.payload
        if isinstance(payload, (bytes, bytearray)):
            join_ref = _field(message.join_ref, "join_ref")
            topic = _field(message.topic, "topic")
            event = _field(message.event, "event")
            # A server push carries no ref: nothing on the client waits for it.
            header = bytes((PUSH, len(join_ref), len(topic), len(event)))
            return SocketPush("binary", header + join_ref + topic + event + payload)
        if not isinstance(payload, dict):
            raise EncodeError(f"expected payload to be a map, got {payload!r}")
        fields = [message.join_ref, message.ref, message.topic, message.event, payload]
        return SocketPush("text", encode_json(fields))

    def decode(self, data: str | bytes, opcode: Opcode) -> Message:
        if opcode == "binary":
            return self._decode_binary(bytes(data) if not isinstance(data, bytes) else data)
        fields = decode_json(data, "v2 text frame")
        if not isinstance(fields, list) or len(fields) < 5:
            got = f"{len(fields)} elements" if isinstance(fields, list) else type(fields).__name__
            raise DecodeError(
                f"v2 text frame must be an array [join_ref, ref, topic, event, payload], got {got}"
            )
        join_ref, ref, topic, event, payload = fields[:5]
        return Message(topic=topic, event=event, payload=payload, ref=ref, join_ref=join_ref)

    # Private methods

    def _encode_reply(self, reply: Reply) -> SocketPush:
        payload = reply.payload
        if isinstance(payload, (bytes, bytearray)):
            join_ref = _field(reply.join_ref, "join_ref")
            ref = _field(reply.ref, "ref")
            topic = _field(reply.topic, "topic")
            status = _field(reply.status, "status")
            header = bytes((REPLY, len(join_ref), len(ref), len(topic), len(status)))
            return SocketPush("binary", header + join_ref + ref + topic + status + payload)
        fields = [
            reply.join_ref,
            reply.ref,
            reply.topic,
            "phx_reply",
            {"response": payload, "status": reply.status},
        ]
        return SocketPush("text", encode_json(fields))

    def _decode_binary(self, data: bytes) -> Message:
        if len(data) < 5:
            raise DecodeError(f"v2 binary frame too short for a header: {len(data)} bytes")
        if data[0] != PUSH:
            raise DecodeError(f"v2 binary frame kind {data[0]} is not a push (0)")
        sizes = data[1:5]
        end = 5 + sum(sizes)
        if end > len(data):
            raise DecodeError(
                f"v2 binary frame declares {sum(sizes)} bytes of fields, "
                f"but only {len(data) - 5} follow the header"
            )
        fields = []
        offset = 5
        for size in sizes:
            try:
                fields.append(data[offset : offset + size].decode())
            except UnicodeDecodeError as exc:
                raise DecodeError(f"v2 binary frame field is not UTF-8: {exc}") from exc
            offset += size
        join_ref, ref, topic, event = fields
        return Message(topic=topic, event=event, payload=data[end:], ref=ref, join_ref=join_ref)
