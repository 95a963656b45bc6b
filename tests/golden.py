"""Golden WebSocket transcripts: read them, and compare frames the way a Phoenix client reads them.

The transcripts in ``shared/golden/ws_*.jsonl`` were captured from a real Phoenix
server (see the README beside them). This module is pure: no sockets, no server.
It turns a transcript into what a replay needs, and says whether a frame our
server sent is the frame Phoenix sent:

* :func:`load` parses a transcript into :class:`Session` objects, one per
  connection attempt. Each accepted session is a list of :class:`Step`: one frame
  the client sends and the frames the server answered before the client's next
  send. Anything the format does not define is an error, never skipped, so a
  transcript cannot be half-tested without anyone noticing.
* :func:`phoenix_1_8` applies the one documented difference between these
  Phoenix 1.7 captures and Phoenix 1.8, which this project follows.
* :func:`frame_difference` compares one expected frame with one actual frame:
  text frames as parsed JSON (key order is free, types are not), binary frames
  byte for byte, and refs through a :class:`RefMap`, so that a consistent
  renumbering of refs passes and an inconsistent one fails.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "Closed",
    "Frame",
    "HttpResponse",
    "RefMap",
    "Session",
    "Step",
    "Transcript",
    "awaits_silence",
    "fields",
    "frame_difference",
    "load",
    "phoenix_1_8",
    "reply_ref",
    "sent_ref",
]

SENT, RECEIVED, EVENT = "↑", "↓", "·"

#: V1 object keys that hold refs; V2 array slots that do (join_ref, ref).
V1_REF_KEYS = ("join_ref", "ref")
V2_REF_SLOTS = (0, 1)


@dataclass(frozen=True)
class Frame:
    """One WebSocket data frame of a transcript.

    Attributes:
        opcode: ``"text"`` or ``"binary"``.
        data: The text as sent on the wire, or the bytes.
        seq: The line's ``seq`` in the transcript, for error messages.
    """

    opcode: Literal["text", "binary"]
    data: str | bytes
    seq: int = -1

    def parsed(self) -> Any:
        """The frame's JSON value, for a text frame."""
        assert isinstance(self.data, str), "binary frames have no JSON value"
        return json.loads(self.data)

    def describe(self) -> str:
        if isinstance(self.data, bytes):
            return f"binary {self.data.hex()}"
        return f"text {self.data}"


@dataclass(frozen=True)
class HttpResponse:
    """The server refused the WebSocket handshake with a plain HTTP response."""

    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Closed:
    """The close frames of a connection's closing handshake, as the client saw them.

    Attributes:
        rcvd: ``(code, reason)`` of the close frame the client received.
        sent: ``(code, reason)`` of the close frame the client sent.
    """

    rcvd: tuple[int, str]
    sent: tuple[int, str]


@dataclass
class Step:
    """One client frame and the server frames recorded before the client's next one.

    ``send`` is None for a step of frames the server sent right after the
    handshake, before the client sent anything.
    """

    send: Frame | None
    expect: list[Frame] = field(default_factory=list)


@dataclass
class Session:
    """One connection attempt of a transcript, from ``connect`` to its end.

    Exactly one of ``http_response`` (refused) and ``open_status`` (accepted) is
    set. ``client_close`` is the code the client closed with, or None when the
    server closed first (1011 after a malformed frame, for example).
    """

    url: str
    http_response: HttpResponse | None = None
    open_status: int | None = None
    steps: list[Step] = field(default_factory=list)
    client_close: int | None = None
    closed: Closed | None = None

    @property
    def server_closes(self) -> bool:
        """Whether the server, not the client, ended this connection."""
        return self.closed is not None and self.client_close is None


@dataclass
class Transcript:
    """A whole ``ws_*.jsonl`` file."""

    name: str
    vsn: str | None
    sessions: list[Session]

    @property
    def received_frames(self) -> int:
        """How many ``↓`` frames the transcript records, across its sessions."""
        return sum(len(step.expect) for session in self.sessions for step in session.steps)


class TranscriptError(ValueError):
    """The transcript says something this format does not define."""


def load(path: Path) -> Transcript:
    """Parse a WebSocket transcript; raise :class:`TranscriptError` on anything unknown."""
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def fail(entry: dict[str, Any], problem: str) -> TranscriptError:
        return TranscriptError(f"{path.name} seq {entry.get('seq')}: {problem}: {entry}")

    for index, entry in enumerate(lines):
        if entry.get("seq") != index:
            raise fail(entry, f"expected seq {index}")
    header = lines[0] if lines else {}
    if header.get("dir") != EVENT or header.get("event") != "scenario":
        raise TranscriptError(f"{path.name}: the first line must be the scenario header")
    if header.get("transport") != "websocket":
        raise fail(header, "not a WebSocket transcript")

    sessions: list[Session] = []
    for entry in lines[1:]:
        direction = entry.get("dir")
        if direction == EVENT and entry.get("event") == "connect":
            sessions.append(Session(url=entry["url"]))
            continue
        if not sessions:
            raise fail(entry, "a line before the first connect")
        session = sessions[-1]
        if session.closed is not None:
            raise fail(entry, "a line after the connection closed")
        if session.client_close is not None and entry.get("event") != "closed":
            raise fail(entry, "a line between client_close and closed")
        if direction in (SENT, RECEIVED):
            if session.open_status is None:
                raise fail(entry, "a frame on a connection that never opened")
            frame = _frame(entry, fail)
            if direction == SENT:
                session.steps.append(Step(send=frame))
            else:
                if not session.steps:
                    session.steps.append(Step(send=None))
                session.steps[-1].expect.append(frame)
        elif direction == EVENT:
            _connection_event(session, entry, fail)
        else:
            raise fail(entry, f"unknown dir {direction!r}")

    for session in sessions:
        if (session.http_response is None) == (session.open_status is None):
            raise TranscriptError(f"{path.name}: connect to {session.url} has neither open nor http_response")
    return Transcript(name=header.get("name", path.stem), vsn=header.get("vsn"), sessions=sessions)


def _frame(entry: dict[str, Any], fail: Any) -> Frame:
    opcode = entry.get("opcode")
    if opcode == "text":
        return Frame("text", entry["data"], entry["seq"])
    if opcode == "binary":
        return Frame("binary", bytes.fromhex(entry["hex"]), entry["seq"])
    raise fail(entry, f"unknown opcode {opcode!r}")


def _connection_event(session: Session, entry: dict[str, Any], fail: Any) -> None:
    event = entry.get("event")
    if event == "open":
        session.open_status = entry["status"]
    elif event == "http_response":
        session.http_response = HttpResponse(entry["status"], entry.get("body", ""), dict(entry.get("headers", {})))
    elif event == "client_close":
        session.client_close = entry["code"]
    elif event == "closed":
        rcvd, sent = entry["close_rcvd"], entry["close_sent"]
        session.closed = Closed(rcvd=(rcvd["code"], rcvd["reason"]), sent=(sent["code"], sent["reason"]))
    else:
        raise fail(entry, f"unknown event {event!r}")


# Phoenix 1.7 → 1.8


def phoenix_1_8(frame: Frame) -> Frame:
    """The expected frame as Phoenix 1.8 sends it, which is what this project follows.

    The transcripts come from Phoenix 1.7.24. Phoenix 1.8 changed exactly one thing
    on these frames: when a channel process crashes, the ``phx_error`` it sends
    carries ``{"reason": "channel_crash"}`` where 1.7 sent ``{}`` (``Phoenix.Socket``,
    the ``:DOWN`` clause). Every other frame is returned unchanged.
    """
    if frame.opcode != "text":
        return frame
    value = frame.parsed()
    if isinstance(value, list) and len(value) == 5 and value[3] == "phx_error" and value[4] == {}:
        value = [*value[:4], {"reason": "channel_crash"}]
    elif isinstance(value, dict) and value.get("event") == "phx_error" and value.get("payload") == {}:
        value = {**value, "payload": {"reason": "channel_crash"}}
    else:
        return frame
    return replace(frame, data=json.dumps(value, separators=(",", ":")))


# Comparing frames


class RefMap:
    """A one-to-one map from the transcript's refs to the refs our server sent.

    Refs only need to correlate: a client matches a reply to its push by ref, and a
    channel's messages by join_ref. So the comparison accepts any renaming of refs
    that is consistent over a whole connection: each expected ref always stands for
    the same actual ref, and no two expected refs for the same one. ``null`` must
    stay ``null``, and a ref keeps its JSON type.
    """

    def __init__(self) -> None:
        self.forward: dict[tuple[str, Any], Any] = {}
        self.backward: dict[tuple[str, Any], Any] = {}

    @staticmethod
    def _key(value: Any) -> tuple[str, Any]:
        # Keyed by JSON type too, so "1" and 1 are different refs.
        return (type(value).__name__, json.dumps(value, sort_keys=True))

    def conflicts(self, pairs: list[tuple[Any, Any]]) -> str | None:
        """Why ``pairs`` of (expected, actual) refs would break the map, or None."""
        forward = dict(self.forward)
        backward = dict(self.backward)
        for expected, actual in pairs:
            if expected is None or actual is None:
                if expected is not actual:
                    return f"ref {expected!r} was sent as {actual!r}"
                continue
            if type(expected) is not type(actual):
                return f"ref {expected!r} was sent as {actual!r} (another JSON type)"
            ekey, akey = self._key(expected), self._key(actual)
            if ekey in forward and forward[ekey] != actual:
                return f"ref {expected!r} was sent as {forward[ekey]!r} before, now as {actual!r}"
            if akey in backward and backward[akey] != expected:
                return f"refs {backward[akey]!r} and {expected!r} were both sent as {actual!r}"
            forward[ekey], backward[akey] = actual, expected
        return None

    def bind(self, pairs: list[tuple[Any, Any]]) -> None:
        """Record ``pairs``; call only after :meth:`conflicts` returned None for them."""
        for expected, actual in pairs:
            if expected is not None:
                self.forward[self._key(expected)] = actual
                self.backward[self._key(actual)] = expected


def _canonical(value: Any) -> str:
    # Sorted keys: Phoenix clients ignore key order. Not sorted: arrays, and the
    # difference between 1 and 1.0, true and 1, null and absent.
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def frame_difference(expected: Frame, actual: Frame, refs: RefMap) -> str | None:
    """How ``actual`` differs from ``expected``, or None when it is the same frame.

    On a match, the refs the two frames pair up are recorded in ``refs``.
    """
    if expected.opcode != actual.opcode:
        return f"expected a {expected.opcode} frame, got {actual.describe()}"
    if expected.opcode == "binary":
        return None if expected.data == actual.data else f"expected bytes {expected.data.hex()}, got {actual.data.hex()}"  # type: ignore[union-attr]
    want = expected.parsed()
    try:
        got = actual.parsed()
    except ValueError:
        return f"expected {expected.data}, got text that is not JSON: {actual.data!r}"

    pairs: list[tuple[Any, Any]] = []
    if isinstance(want, list) and isinstance(got, list) and len(want) == len(got) == 5:
        pairs = [(want[i], got[i]) for i in V2_REF_SLOTS]
        same = all(_canonical(want[i]) == _canonical(got[i]) for i in range(5) if i not in V2_REF_SLOTS)
    elif isinstance(want, dict) and isinstance(got, dict) and want.keys() == got.keys():
        pairs = [(want[k], got[k]) for k in V1_REF_KEYS if k in want]
        same = all(_canonical(want[k]) == _canonical(got[k]) for k in want if k not in V1_REF_KEYS)
    else:
        same = _canonical(want) == _canonical(got)
    if not same:
        return f"expected {_canonical(want)}, got {_canonical(got)}"
    problem = refs.conflicts(pairs)
    if problem is not None:
        return f"{problem}: expected {_canonical(want)}, got {_canonical(got)}"
    refs.bind(pairs)
    return None


def fields(frame: Frame) -> dict[str, Any] | None:
    """``topic``, ``event``, ``payload`` of a well-formed V1 or V2 text frame, else None."""
    if frame.opcode != "text":
        return None
    try:
        value = frame.parsed()
    except ValueError:
        return None
    if isinstance(value, list) and len(value) >= 5:
        return {"topic": value[2], "event": value[3], "payload": value[4]}
    if isinstance(value, dict) and {"topic", "event", "payload"} <= value.keys():
        return {key: value[key] for key in ("topic", "event", "payload")}
    return None


# Which steps end in silence


def sent_ref(frame: Frame) -> Any:
    """The ref of a frame the client sent, or None (no ref, or not a well-formed push)."""
    if frame.opcode == "binary":
        data = frame.data
        assert isinstance(data, bytes)
        if len(data) >= 5 and data[0] == 0:  # push: kind, 4 lengths, join_ref, ref, ...
            start = 5 + data[1]
            return data[start:start + data[2]].decode("utf-8", "replace")
        return None
    try:
        value = frame.parsed()
    except ValueError:
        return None
    if isinstance(value, list) and len(value) >= 2:
        return value[1]
    if isinstance(value, dict):
        return value.get("ref")
    return None


def reply_ref(frame: Frame) -> Any:
    """The ref a server frame replies to, or None when it is not a reply."""
    if frame.opcode == "binary":
        data = frame.data
        assert isinstance(data, bytes)
        if len(data) >= 5 and data[0] == 1:  # reply: kind, 4 lengths, join_ref, ref, ...
            start = 5 + data[1]
            return data[start:start + data[2]].decode("utf-8", "replace")
        return None
    value = frame.parsed()
    if isinstance(value, list) and len(value) == 5 and value[3] == "phx_reply":
        return value[1]
    if isinstance(value, dict) and value.get("event") == "phx_reply":
        return value.get("ref")
    return None


def awaits_silence(step: Step) -> bool:
    """Whether the transcript shows that the server did *not* answer this step's push.

    A push with a ref asks for a reply. When the recorded frames hold none for that
    ref (``boom``: the channel crashes instead), the missing reply is part of the
    behaviour, and the replay must check that none comes.
    """
    if step.send is None:
        return False
    ref = sent_ref(step.send)
    return ref is not None and all(reply_ref(frame) != ref for frame in step.expect)
