"""Unit tests for channels_core.serializers: every frame, byte for byte, and every error.

Serializers do no I/O, so each test is a plain function call. Expected text frames
are written out as the exact strings Phoenix sends (Jason writes atom keys sorted,
and so do we); binary frames are taken from the golden transcript of a real
Phoenix server (``ws_v2_binary.jsonl``).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from helpers import GOLDEN
from hypothesis import given
from hypothesis import strategies as st

from channels_core.exceptions import DecodeError, EncodeError, ProtocolError
from channels_core.message import Broadcast, Message, Reply
from channels_core.serializers import SocketPush, V1JSONSerializer, V2JSONSerializer
from channels_core.serializers.v2_json import MAX_FIELD_SIZE

V1 = V1JSONSerializer()
V2 = V2JSONSerializer()


def golden_binary_frames() -> dict[int, bytes]:
    """The binary frames of the golden transcript, by ``seq``."""
    frames = {}
    for line in (GOLDEN / "ws_v2_binary.jsonl").read_text().splitlines():
        entry = json.loads(line)
        if entry.get("opcode") == "binary":
            frames[entry["seq"]] = bytes.fromhex(entry["hex"])
    return frames


BINARY = golden_binary_frames()


def test_golden_binary_transcript_has_the_frames_we_use() -> None:
    assert sorted(BINARY) == [7, 8, 9, 10, 11]


def test_versions() -> None:
    assert (V1.vsn, V2.vsn) == ("1.0.0", "2.0.0")


# V2 text frames


def test_v2_reply() -> None:
    reply = Reply(topic="room:lobby", status="ok", payload={}, ref="2", join_ref="1")
    assert V2.encode(reply) == SocketPush(
        "text", '["1","2","room:lobby","phx_reply",{"response":{},"status":"ok"}]'
    )


def test_v2_error_reply_with_a_response() -> None:
    reply = Reply(topic="room:private", status="error", payload={"reason": "unauthorized"}, ref="1", join_ref="1")
    assert V2.encode(reply).data == (
        '["1","1","room:private","phx_reply",{"response":{"reason":"unauthorized"},"status":"error"}]'
    )


def test_v2_unmatched_topic_reply_has_a_null_join_ref() -> None:
    reply = Reply(topic="room:lobby", status="error", payload={"reason": "unmatched topic"}, ref="3")
    assert V2.encode(reply).data == (
        '[null,"3","room:lobby","phx_reply",{"response":{"reason":"unmatched topic"},"status":"error"}]'
    )


def test_v2_push() -> None:
    push = Message(topic="room:lobby", event="joined", payload={"status": "connected", "user_id": "u1"}, join_ref="1")
    assert V2.encode(push) == SocketPush(
        "text", '["1",null,"room:lobby","joined",{"status":"connected","user_id":"u1"}]'
    )


def test_v2_close_puts_the_join_ref_in_both_slots() -> None:
    close = Message(topic="room:lobby", event="phx_close", payload={}, ref="1", join_ref="1")
    assert V2.encode(close).data == '["1","1","room:lobby","phx_close",{}]'


def test_v2_broadcast() -> None:
    broadcast = Broadcast(topic="room:lobby", event="user_entered", payload={"user": None})
    assert V2.fastlane(broadcast) == SocketPush("text", '[null,null,"room:lobby","user_entered",{"user":null}]')


def test_v2_text_is_utf8_not_escaped() -> None:
    push = Message(topic="room:lobby", event="new_msg", payload={"body": "zoë ✓"})
    assert V2.encode(push).data == '[null,null,"room:lobby","new_msg",{"body":"zoë ✓"}]'


def test_v2_decode() -> None:
    message = V2.decode('["1","1","room:lobby","phx_join",{"user":"alice"}]', "text")
    assert message == Message(topic="room:lobby", event="phx_join", payload={"user": "alice"}, ref="1", join_ref="1")


def test_v2_decode_heartbeat_with_null_join_ref() -> None:
    message = V2.decode('[null,"5","phoenix","heartbeat",{}]', "text")
    assert message == Message(topic="phoenix", event="heartbeat", payload={}, ref="5", join_ref=None)


def test_v2_decode_ignores_extra_elements() -> None:
    # Phoenix matches [join_ref, ref, topic, event, payload | _]: a sixth element is fine.
    message = V2.decode('["1","2","room:lobby","ping",{"a":1},"extra"]', "text")
    assert message == Message(topic="room:lobby", event="ping", payload={"a": 1}, ref="2", join_ref="1")


def test_v2_decode_keeps_a_non_string_topic_for_the_socket_to_refuse() -> None:
    message = V2.decode('[null,"1",123,"ping",{}]', "text")
    assert message.topic == 123


def test_v2_decode_accepts_a_non_map_payload_for_the_channel_to_judge() -> None:
    assert V2.decode('["1","1","room:lobby","phx_join","str"]', "text").payload == "str"


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        ('["1","1","room:lobby"', "v2 text frame is not valid JSON: "),
        ("", "v2 text frame is not valid JSON: "),
        (
            '{"topic":"room:lobby","event":"phx_join","payload":{},"ref":"1"}',
            "v2 text frame must be an array [join_ref, ref, topic, event, payload], got dict",
        ),
        (
            '["1","1","room:lobby","phx_join"]',
            "v2 text frame must be an array [join_ref, ref, topic, event, payload], got 4 elements",
        ),
        ('"just a string"', "v2 text frame must be an array [join_ref, ref, topic, event, payload], got str"),
        ("null", "v2 text frame must be an array [join_ref, ref, topic, event, payload], got NoneType"),
    ],
    ids=["invalid-json", "empty", "object-not-array", "four-elements", "string", "null"],
)
def test_v2_decode_errors(frame: str, error: str) -> None:
    with pytest.raises(DecodeError) as caught:
        V2.decode(frame, "text")
    assert str(caught.value).startswith(error)


def test_decode_error_is_a_protocol_error_and_a_value_error() -> None:
    with pytest.raises(DecodeError) as caught:
        V2.decode("{", "text")
    assert isinstance(caught.value, ProtocolError) and isinstance(caught.value, ValueError)
    assert isinstance(caught.value.__cause__, json.JSONDecodeError)


@pytest.mark.parametrize("payload", ["str", 42, None, ["a"]])
def test_v2_encode_refuses_a_non_dict_push_payload(payload: Any) -> None:
    with pytest.raises(EncodeError) as caught:
        V2.encode(Message(topic="room:lobby", event="new_msg", payload=payload))
    assert str(caught.value) == f"expected payload to be a map, got {payload!r}"


@pytest.mark.parametrize("payload", ["str", 42, None, [1]])
def test_v2_fastlane_refuses_a_non_dict_broadcast_payload(payload: Any) -> None:
    with pytest.raises(EncodeError) as caught:
        V2.fastlane(Broadcast(topic="room:lobby", event="new_msg", payload=payload))
    assert str(caught.value) == f"expected broadcast payload to be a map, got {payload!r}"


# V2 binary frames


def test_v2_decode_client_binary_push_from_the_golden_transcript() -> None:
    # 0, len(join_ref), len(ref), len(topic), len(event), join_ref, ref, topic, event, data
    assert BINARY[7] == b"\x00\x01\x01\x0a\x0c" + b"12" + b"room:lobby" + b"binary_event" + b"\x01\x02"
    assert V2.decode(BINARY[7], "binary") == Message(
        topic="room:lobby", event="binary_event", payload=b"\x01\x02", ref="2", join_ref="1"
    )
    assert V2.decode(BINARY[10], "binary") == Message(
        topic="room:lobby", event="ping", payload=b"\xff\xfe", ref="3", join_ref="1"
    )


def test_v2_decode_binary_accepts_a_bytearray_or_memoryview() -> None:
    assert V2.decode(bytearray(BINARY[7]), "binary").payload == b"\x01\x02"
    assert V2.decode(memoryview(BINARY[7]), "binary").payload == b"\x01\x02"


def test_v2_binary_push_has_no_ref() -> None:
    push = Message(topic="room:lobby", event="binary_event", payload=b"\x00\x01", join_ref="1")
    assert V2.encode(push) == SocketPush("binary", BINARY[8])
    assert BINARY[8] == b"\x00\x01\x0a\x0c" + b"1" + b"room:lobby" + b"binary_event" + b"\x00\x01"


def test_v2_binary_reply() -> None:
    reply = Reply(topic="room:lobby", status="ok", payload=b"\x01\x02\x03\x04", ref="2", join_ref="1")
    assert V2.encode(reply) == SocketPush("binary", BINARY[9])
    ping = Reply(topic="room:lobby", status="ok", payload=b"\xff\xfe", ref="3", join_ref="1")
    assert V2.encode(ping) == SocketPush("binary", BINARY[11])


def test_v2_binary_broadcast() -> None:
    # Not in the transcript (Phoenix sent none): the layout of Phoenix's fastlane!/1.
    broadcast = Broadcast(topic="room:lobby", event="pic", payload=b"\x89PNG")
    assert V2.fastlane(broadcast) == SocketPush("binary", b"\x02\x0a\x03room:lobbypic\x89PNG")


def test_v2_binary_null_refs_are_empty_fields() -> None:
    push = Message(topic="t", event="e", payload=b"", join_ref=None)
    assert V2.encode(push).data == b"\x00\x00\x01\x01te"
    reply = Reply(topic="t", status="ok", payload=bytearray(b"x"), ref=None, join_ref=None)
    assert V2.encode(reply).data == b"\x01\x00\x00\x01\x02tokx"


def test_v2_binary_fields_are_measured_in_utf8_bytes() -> None:
    push = Message(topic="room:é", event="e", payload=b"", join_ref="1")
    assert V2.encode(push).data == b"\x00\x01\x07\x01" + b"1" + "room:é".encode() + b"e"


def _binary_push(join_ref: bytes, ref: bytes, topic: bytes, event: bytes, data: bytes) -> bytes:
    return bytes((0, len(join_ref), len(ref), len(topic), len(event))) + join_ref + ref + topic + event + data


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        (b"\x00\x01\x01", "v2 binary frame too short for a header: 3 bytes"),
        (b"", "v2 binary frame too short for a header: 0 bytes"),
        (b"\x01" + BINARY[7][1:], "v2 binary frame kind 1 is not a push (0)"),
        (b"\x02" + BINARY[7][1:], "v2 binary frame kind 2 is not a push (0)"),
        (
            b"\x00\x01\x01\x0a\xff" + b"12room:lobbyping",
            "v2 binary frame declares 267 bytes of fields, but only 16 follow the header",
        ),
        (
            _binary_push(b"1", b"2", b"room:\xff", b"ping", b""),
            "v2 binary frame field is not UTF-8: ",
        ),
    ],
    ids=["short-header", "empty", "kind-reply", "kind-broadcast", "lying-lengths", "not-utf8"],
)
def test_v2_decode_binary_errors(frame: bytes, error: str) -> None:
    with pytest.raises(DecodeError) as caught:
        V2.decode(frame, "binary")
    assert str(caught.value).startswith(error)


def test_v2_binary_frame_with_exactly_its_fields_has_an_empty_payload() -> None:
    frame = _binary_push(b"1", b"2", b"room:lobby", b"ping", b"")
    assert V2.decode(frame, "binary").payload == b""


TOO_LONG = "x" * (MAX_FIELD_SIZE + 1)


@pytest.mark.parametrize(
    ("item", "kind"),
    [
        (Message(topic=TOO_LONG, event="e", payload=b"", join_ref="1"), "topic"),
        (Message(topic="t", event=TOO_LONG, payload=b"", join_ref="1"), "event"),
        (Message(topic="t", event="e", payload=b"", join_ref=TOO_LONG), "join_ref"),
        (Reply(topic="t", status="ok", payload=b"", ref=TOO_LONG, join_ref="1"), "ref"),
        (Reply(topic="t", status="ok", payload=b"", ref="1", join_ref=TOO_LONG), "join_ref"),
        (Reply(topic=TOO_LONG, status="ok", payload=b"", ref="1", join_ref="1"), "topic"),
        (Reply(topic="t", status=TOO_LONG, payload=b"", ref="1", join_ref="1"), "status"),
        (Broadcast(topic=TOO_LONG, event="e", payload=b""), "topic"),
        (Broadcast(topic="t", event=TOO_LONG, payload=b""), "event"),
    ],
)
def test_v2_binary_encode_refuses_a_field_over_255_bytes(item: Message | Reply | Broadcast, kind: str) -> None:
    with pytest.raises(EncodeError) as caught:
        V2.fastlane(item) if isinstance(item, Broadcast) else V2.encode(item)
    assert str(caught.value) == (
        f"unable to encode {kind} in a binary frame: it must be at most 255 bytes, but is 256 bytes"
    )


def test_v2_binary_encode_accepts_a_field_of_exactly_255_bytes() -> None:
    topic = "t" * MAX_FIELD_SIZE
    frame = V2.fastlane(Broadcast(topic=topic, event="e", payload=b"!")).data
    assert frame == bytes((2, 255, 1)) + topic.encode() + b"e!"


def test_v2_binary_limit_counts_bytes_not_characters() -> None:
    # 128 two-byte characters: 128 characters, 256 bytes.
    with pytest.raises(EncodeError, match="unable to encode topic in a binary frame: .* but is 256 bytes"):
        V2.encode(Message(topic="é" * 128, event="e", payload=b"", join_ref="1"))


# V1


def test_v1_reply_is_an_object_with_sorted_keys_and_no_join_ref() -> None:
    reply = Reply(topic="room:lobby", status="ok", payload={}, ref="1", join_ref="1")
    assert V1.encode(reply) == SocketPush(
        "text", '{"event":"phx_reply","payload":{"response":{},"status":"ok"},"ref":"1","topic":"room:lobby"}'
    )


def test_v1_push() -> None:
    push = Message(topic="room:lobby", event="joined", payload={"status": "connected", "user_id": "u1"}, join_ref="1")
    assert V1.encode(push).data == (
        '{"event":"joined","payload":{"status":"connected","user_id":"u1"},"ref":null,"topic":"room:lobby"}'
    )


def test_v1_broadcast() -> None:
    broadcast = Broadcast(topic="room:lobby", event="user_entered", payload={"user": "alice"})
    assert V1.fastlane(broadcast) == SocketPush(
        "text", '{"event":"user_entered","payload":{"user":"alice"},"ref":null,"topic":"room:lobby"}'
    )


def test_v1_decode_with_and_without_join_ref() -> None:
    with_join_ref = '{"topic":"room:lobby","event":"phx_join","payload":{},"ref":"1","join_ref":"1"}'
    assert V1.decode(with_join_ref, "text") == Message(
        topic="room:lobby", event="phx_join", payload={}, ref="1", join_ref="1"
    )
    without = '{"topic":"room:lobby","event":"new_msg","payload":{"body":"hi"},"ref":"2"}'
    assert V1.decode(without, "text") == Message(topic="room:lobby", event="new_msg", payload={"body": "hi"}, ref="2")


def test_v1_decodes_a_binary_frame_holding_json_as_phoenix_does() -> None:
    frame = b'{"topic":"t","event":"e","payload":{},"ref":"1"}'
    assert V1.decode(frame, "binary") == Message(topic="t", event="e", payload={}, ref="1")


@pytest.mark.parametrize("serializer", [V1, V2], ids=["v1", "v2"])
@pytest.mark.parametrize("payload", [{"x": float("nan")}, {"x": float("inf")}, {"x": b"raw"}], ids=["nan", "inf", "bytes-inside"])
def test_payloads_that_are_not_json_raise_encode_error(serializer: Any, payload: dict[str, Any]) -> None:
    with pytest.raises(EncodeError) as caught:
        serializer.encode(Message(topic="t", event="e", payload=payload))
    assert str(caught.value).startswith("payload is not JSON-encodable: ")


@pytest.mark.parametrize(
    ("frame", "opcode", "error"),
    [
        ('{"topic":', "text", "v1 frame is not valid JSON: "),
        ('["1","1","room:lobby","phx_join",{}]', "text", "v1 frame must be a JSON object, got list"),
        ('{"topic":"room:lobby","event":"phx_join","payload":{}}', "text", "v1 frame is missing key(s) ref"),
        ('{"event":"phx_join"}', "text", "v1 frame is missing key(s) topic, payload, ref"),
        (b'not json', "binary", "v1 frame is not valid JSON: "),
    ],
    ids=["invalid-json", "array-not-object", "missing-ref", "missing-three", "binary-not-json"],
)
def test_v1_decode_errors(frame: str | bytes, opcode: Any, error: str) -> None:
    with pytest.raises(DecodeError) as caught:
        V1.decode(frame, opcode)
    assert str(caught.value).startswith(error)


@pytest.mark.parametrize(
    "item",
    [
        Message(topic="room:lobby", event="e", payload=b"\x00"),
        Reply(topic="room:lobby", status="ok", payload=b"\x00", ref="1"),
        Broadcast(topic="room:lobby", event="e", payload=bytearray(b"\x00")),
    ],
    ids=["push", "reply", "broadcast"],
)
def test_v1_refuses_binary_payloads(item: Message | Reply | Broadcast) -> None:
    with pytest.raises(EncodeError) as caught:
        V1.fastlane(item) if isinstance(item, Broadcast) else V1.encode(item)
    assert str(caught.value) == "v1 frames cannot carry a binary payload; connect with vsn=2.0.0"


# Round trips (properties)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=12,
)
json_objects = st.dictionaries(st.text(), json_values, max_size=5)
refs = st.none() | st.text(max_size=8)
topics = st.text(min_size=1, max_size=20)


@given(topic=topics, event=st.text(min_size=1, max_size=20), payload=json_objects, ref=refs, join_ref=refs)
def test_v2_text_round_trip(
    topic: str, event: str, payload: dict[str, Any], ref: str | None, join_ref: str | None
) -> None:
    # The server's push and the client's frame share one layout, so decode(encode(m)) == m.
    message = Message(topic=topic, event=event, payload=payload, ref=ref, join_ref=join_ref)
    push = V2.encode(message)
    assert push.opcode == "text"
    assert V2.decode(push.data, "text") == message


@given(topic=topics, event=st.text(min_size=1, max_size=20), payload=json_objects, ref=refs)
def test_v1_text_round_trip(topic: str, event: str, payload: dict[str, Any], ref: str | None) -> None:
    message = Message(topic=topic, event=event, payload=payload, ref=ref)
    assert V1.decode(V1.encode(message).data, "text") == message


ascii_fields = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40)


@given(join_ref=ascii_fields, ref=ascii_fields, topic=ascii_fields, event=ascii_fields, data=st.binary(max_size=300))
def test_v2_binary_client_push_round_trip(join_ref: str, ref: str, topic: str, event: str, data: bytes) -> None:
    frame = _binary_push(join_ref.encode(), ref.encode(), topic.encode(), event.encode(), data)
    assert V2.decode(frame, "binary") == Message(topic=topic, event=event, payload=data, ref=ref, join_ref=join_ref)


@given(join_ref=ascii_fields, ref=ascii_fields, topic=ascii_fields, status=ascii_fields, data=st.binary(max_size=300))
def test_v2_binary_reply_layout(join_ref: str, ref: str, topic: str, status: str, data: bytes) -> None:
    frame = V2.encode(Reply(topic=topic, status=status, payload=data, ref=ref, join_ref=join_ref)).data
    assert isinstance(frame, bytes)
    sizes = frame[1:5]
    fields, offset = [], 5
    for size in sizes:
        fields.append(frame[offset : offset + size].decode())
        offset += size
    assert (frame[0], fields, frame[offset:]) == (1, [join_ref, ref, topic, status], data)


@given(topic=ascii_fields, event=ascii_fields, data=st.binary(max_size=300))
def test_v2_binary_broadcast_layout(topic: str, event: str, data: bytes) -> None:
    frame = V2.fastlane(Broadcast(topic=topic, event=event, payload=data)).data
    assert frame == bytes((2, len(topic), len(event))) + topic.encode() + event.encode() + data
