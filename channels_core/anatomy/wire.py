"""The wire log: every frame of a trace, as a browser's network inspector shows it.

A frame is recorded raw (the text or bytes that crossed the WebSocket); this
module reads it back into its five fields, whatever the protocol: V2 text arrays
``[join_ref, ref, topic, event, payload]``, V1 objects, and V2 binary frames with
their kind byte and length-prefixed fields. :class:`WireLog` lays the frames out
as a table, in HTML for a notebook and in plain text for a terminal, for doctests
and for the notebook validation that compares stored output with a fresh run.
The plain text holds nothing that changes from one run to the next: connections
are named ``ws#1``, ``ws#2``, and there are no timestamps.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .tracer import Frame, Trace

__all__ = ["ParsedFrame", "WireLog", "format_payload", "parse_frame", "wire_log"]

UP = "↑"
DOWN = "↓"


@dataclass(frozen=True, slots=True)
class ParsedFrame:
    """The fields of one frame.

    Attributes:
        protocol: ``"v2"``, ``"v1"``, ``"v2-binary"``, or ``"raw"`` when the frame
            is none of these (the log then shows it as it came).
        join_ref: The join it belongs to, e.g. ``"1"``, or None.
        ref: The message's ref, e.g. ``"2"``, or None for pushes and broadcasts.
        topic: e.g. ``"room:lobby"``.
        event: e.g. ``"phx_join"``.
        payload: The decoded payload: a JSON value, or ``bytes``.
    """

    protocol: str
    join_ref: Any = None
    ref: Any = None
    topic: Any = None
    event: Any = None
    payload: Any = None


def parse_frame(direction: str, opcode: str, data: str | bytes) -> ParsedFrame:
    """Read a frame's fields; never raises (a malformed frame is ``"raw"``).

    ``direction`` matters only for binary frames, whose layout differs: a client
    push carries a ref, a server push does not.
    """
    if opcode == "binary" or isinstance(data, (bytes, bytearray)):
        return _parse_binary(direction, bytes(data) if not isinstance(data, bytes) else data)
    try:
        fields = json.loads(data)
    except ValueError:
        return ParsedFrame("raw", payload=data)
    if isinstance(fields, list) and len(fields) >= 5:
        join_ref, ref, topic, event, payload = fields[:5]
        return ParsedFrame("v2", join_ref, ref, topic, event, payload)
    if isinstance(fields, dict) and "topic" in fields and "event" in fields:
        return ParsedFrame(
            "v1", fields.get("join_ref"), fields.get("ref"), fields["topic"], fields["event"],
            fields.get("payload"),
        )
    return ParsedFrame("raw", payload=fields)


def _parse_binary(direction: str, data: bytes) -> ParsedFrame:
    # Layouts from Phoenix.Socket.V2.JSONSerializer: kind byte, one size byte per
    # string field, the fields, then the raw payload.
    layouts = {
        (UP, 0): ("join_ref", "ref", "topic", "event"),
        (DOWN, 0): ("join_ref", "topic", "event"),
        (DOWN, 1): ("join_ref", "ref", "topic", "status"),
        (DOWN, 2): ("topic", "event"),
    }
    if not data:
        return ParsedFrame("raw", payload=data)
    names = layouts.get((direction, data[0]))
    if names is None or len(data) < 1 + len(names):
        return ParsedFrame("raw", payload=data)
    sizes = data[1 : 1 + len(names)]
    offset = 1 + len(names)
    fields: dict[str, str] = {}
    for name, size in zip(names, sizes):
        chunk = data[offset : offset + size]
        if len(chunk) < size:
            return ParsedFrame("raw", payload=data)
        try:
            fields[name] = chunk.decode()
        except UnicodeDecodeError:
            return ParsedFrame("raw", payload=data)
        offset += size
    payload: Any = data[offset:]
    event = fields.get("event")
    if "status" in fields:
        # A binary reply: shown as its JSON twin would be.
        event = "phx_reply"
        payload = {"response": payload, "status": fields["status"]}
    return ParsedFrame(
        "v2-binary", fields.get("join_ref") or None, fields.get("ref") or None,
        fields.get("topic"), event, payload,
    )


def format_payload(payload: Any) -> str:
    """Compact, deterministic text for a payload: JSON, with binary shown as hex."""
    if isinstance(payload, (bytes, bytearray)):
        return _format_bytes(bytes(payload))
    return json.dumps(_jsonable(payload), separators=(",", ":"), ensure_ascii=False, sort_keys=False)


def _format_bytes(data: bytes) -> str:
    shown = " ".join(f"{byte:02x}" for byte in data[:16])
    more = " …" if len(data) > 16 else ""
    return f"<binary {len(data)} bytes: {shown}{more}>" if data else "<binary 0 bytes>"


def _jsonable(value: Any) -> Any:
    # Binary payloads nested in a reply ({"response": b"..."}) still print as JSON.
    if isinstance(value, (bytes, bytearray)):
        return _format_bytes(bytes(value))
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _shorten(text: str, width: int | None) -> str:
    if width is None or len(text) <= width:
        return text
    return text[: max(1, width - 1)] + "…"


@dataclass(frozen=True, slots=True)
class WireRow:
    """One line of a :class:`WireLog`."""

    number: int
    direction: str
    connection: str
    opcode: str
    frame: ParsedFrame
    raw: str | bytes

    def cells(self, payload_width: int | None) -> list[str]:
        f = self.frame
        if f.protocol == "raw":
            payload = self.raw if isinstance(self.raw, str) else _format_bytes(self.raw)
        else:
            payload = format_payload(f.payload)
        return [
            str(self.number), self.direction, self.connection,
            "bin" if self.opcode == "binary" else "text",
            _cell(f.join_ref), _cell(f.ref), _cell(f.topic), _cell(f.event),
            _shorten(payload, payload_width),
        ]


class WireLog(Sequence[WireRow]):
    """The frames of a trace as a table: direction, connection, refs, topic, event, payload.

    Build it from a trace (``WireLog(t)``) or from its frames. In a notebook it
    renders as an HTML table; ``str()`` gives the same table in plain text.

    Args:
        frames: A :class:`~channels_core.anatomy.Trace` or an iterable of its
            :class:`~channels_core.anatomy.tracer.Frame` events.
        connection: Keep only the frames of this connection, e.g. ``"ws#1"``.
        payload_width: Cut payloads longer than this in the text form (None: never).
    """

    HEADERS = ["#", "dir", "conn", "op", "join_ref", "ref", "topic", "event", "payload"]

    def __init__(
        self,
        frames: Trace | Iterable[Frame],
        *,
        connection: str | None = None,
        payload_width: int | None = 72,
    ) -> None:
        from .tracer import Frame, Trace

        events = frames.frames() if isinstance(frames, Trace) else [e for e in frames if isinstance(e, Frame)]
        if connection is not None:
            events = [e for e in events if e.connection == connection]
        self.rows = [
            WireRow(n, e.direction, e.connection, e.opcode, e.parsed, e.data)
            for n, e in enumerate(events, 1)
        ]
        self.payload_width = payload_width

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: Any) -> Any:
        return self.rows[index]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WireLog) and str(self) == str(other)

    def __str__(self) -> str:
        table = [self.HEADERS] + [row.cells(self.payload_width) for row in self.rows]
        widths = [max(len(line[i]) for line in table) for i in range(len(self.HEADERS))]
        lines = []
        for line in table:
            # The payload is the last column: no padding after it.
            padded = [cell.ljust(width) for cell, width in zip(line[:-1], widths)] + [line[-1]]
            lines.append("  ".join(padded).rstrip())
        if not self.rows:
            lines.append("(no frames)")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<WireLog {len(self.rows)} frames>"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def _repr_html_(self) -> str:
        head = "".join(f"<th style='text-align:left'>{html.escape(h)}</th>" for h in self.HEADERS)
        body = []
        for row in self.rows:
            cells = row.cells(None)
            colour = "#1f5fbf" if row.direction == UP else "#2e7d32"
            tds = [f"<td>{html.escape(c)}</td>" for c in cells[:-1]]
            tds[1] = f"<td style='color:{colour};font-weight:bold'>{html.escape(cells[1])}</td>"
            tds.append(f"<td><code>{html.escape(cells[-1])}</code></td>")
            body.append(f"<tr>{''.join(tds)}</tr>")
        if not self.rows:
            body.append(f"<tr><td colspan='{len(self.HEADERS)}'>(no frames)</td></tr>")
        return (
            "<table class='wire-log' style='font-family:monospace;font-size:12px'>"
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        )


def wire_log(frames: Trace | Iterable[Frame], **options: Any) -> WireLog:
    """Shorthand for :class:`WireLog`."""
    return WireLog(frames, **options)
