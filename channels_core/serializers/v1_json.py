"""Protocol version 1: one JSON object per frame.

Mirrors ``Phoenix.Socket.V1.JSONSerializer``. A frame is
``{"topic": ..., "event": ..., "payload": ..., "ref": ...}``; the client may add
``join_ref`` but the server never writes it, so a V1 client cannot tell one join of
a topic from the next. That gap is why V2 exists. A ``vsn`` of ``1.0.0``, or no
``vsn`` at all, selects this serializer.
"""

from __future__ import annotations

from typing import Any

from .. import tracing
from ..exceptions import DecodeError, EncodeError
from ..message import Broadcast, Message, Reply
from .serializer import Opcode, SocketPush, decode_json, encode_json

_REQUIRED_KEYS = ("topic", "event", "payload", "ref")
_BINARY_REFUSED = "v1 frames cannot carry a binary payload; connect with vsn=2.0.0"


class V1JSONSerializer:
    """Object frames: ``{"topic", "event", "payload", "ref"}``."""

    vsn = "1.0.0"

    def __repr__(self) -> str:
        return "V1JSONSerializer()"

    def fastlane(self, broadcast: Broadcast) -> SocketPush:
        if tracing.active is not None:
            tracing.hop("serializer", "V1JSONSerializer.fastlane", topic=broadcast.topic, event=broadcast.event)
        return self._encode_fields(broadcast.topic, broadcast.event, broadcast.payload, None)

    def encode(self, message: Message | Reply) -> SocketPush:
        if tracing.active is not None:
            tracing.hop("serializer", "V1JSONSerializer.encode", topic=message.topic,
                        event="phx_reply" if isinstance(message, Reply) else message.event)
        if isinstance(message, Reply):
            # Checked here: once wrapped in the reply's object, bytes would reach json.dumps.
            if isinstance(message.payload, (bytes, bytearray)):
                raise EncodeError(_BINARY_REFUSED)
            payload = {"response": message.payload, "status": message.status}
            return self._encode_fields(message.topic, "phx_reply", payload, message.ref)
        return self._encode_fields(message.topic, message.event, message.payload, message.ref)

    def decode(self, data: str | bytes, opcode: Opcode) -> Message:
        # Like Phoenix's V1 serializer, the opcode is not looked at: a binary frame
        # holding a JSON object is decoded just the same.
        fields = decode_json(data, "v1 frame")
        if not isinstance(fields, dict):
            raise DecodeError(f"v1 frame must be a JSON object, got {type(fields).__name__}")
        missing = [key for key in _REQUIRED_KEYS if key not in fields]
        if missing:
            raise DecodeError(f"v1 frame is missing key(s) {', '.join(missing)}")
        return Message(
            topic=fields["topic"],
            event=fields["event"],
            payload=fields["payload"],
            ref=fields["ref"],
            join_ref=fields.get("join_ref"),
        )

    # Private methods

    def _encode_fields(self, topic: Any, event: Any, payload: Any, ref: Any) -> SocketPush:
        if isinstance(payload, (bytes, bytearray)):
            raise EncodeError(_BINARY_REFUSED)
        # Keys in sorted order, as Phoenix writes them, so frames read alike.
        fields = {"event": event, "payload": payload, "ref": ref, "topic": topic}
        return SocketPush("text", encode_json(fields))
