"""The serializer contract: three functions, no I/O.

Mirrors ``Phoenix.Socket.Serializer`` (29 lines in Phoenix, and about as many here).
A serializer turns the structs of :mod:`channels_core.message` into a
:class:`SocketPush` (the frame a transport writes) and a client's frame back into a
:class:`~channels_core.message.Message`. It is chosen per connection from the
``vsn`` query parameter, so the same server speaks V1 and V2 clients at once.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Literal, NamedTuple, Protocol

from ..exceptions import DecodeError, EncodeError
from ..message import Broadcast, Message, Reply

Opcode = Literal["text", "binary"]


class SocketPush(NamedTuple):
    """An encoded frame on its way to a transport, Phoenix's ``{:socket_push, opcode, data}``.

    Attributes:
        opcode: ``"text"`` or ``"binary"``, the WebSocket frame type to write.
        data: The frame itself: ``str`` for text, ``bytes`` for binary.
    """

    opcode: Opcode
    data: str | bytes


class Serializer(Protocol):
    """What every serializer implements."""

    #: The protocol version this serializer speaks, e.g. ``"2.0.0"``.
    vsn: str

    def fastlane(self, broadcast: Broadcast) -> SocketPush:
        """Encode a broadcast once, for every subscriber that shares this serializer."""

    def encode(self, message: Message | Reply) -> SocketPush:
        """Encode a push or a reply for one client."""

    def decode(self, data: str | bytes, opcode: Opcode) -> Message:
        """Decode a client's frame.

        Raises:
            DecodeError: the frame is not a message of this protocol. The
                transport lets it crash the connection, as Phoenix does (close 1011).
        """


# JSON, as strict as Phoenix's Jason in both directions.
#
# Python's json module accepts more than JSON: NaN, Infinity, numbers that overflow
# to infinity (1e400), and \udXXX escapes that leave a lone UTF-16 surrogate in a
# str. Jason refuses all of them, so Phoenix crashes the connection that sent one
# (close 1011). Admitting them would be worse than a divergence: none of them can be
# encoded back, so a chat message carrying one would crash the channel of every
# subscriber it is broadcast to, or make every transport's write fail. Refusing them
# at the door keeps the damage with the connection that sent them.

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text} is out of range")
    return value


def decode_json(data: str | bytes, what: str) -> Any:
    """Parse a client's JSON text as Jason would, or raise :class:`DecodeError`.

    ``what`` names the frame in the error, e.g. ``"v2 text frame"``.
    """
    try:
        text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise DecodeError(f"{what} nests too deeply to decode") from None
    except ValueError as exc:
        raise DecodeError(f"{what} is not valid JSON: {exc}") from exc
    # Only a frame with a surrogate escape can hold a lone surrogate: look no further otherwise.
    if _SURROGATE_ESCAPE.search(text) is not None:
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise DecodeError(f"{what} is not valid JSON: a string holds an unpaired UTF-16 surrogate") from None
    return value


def encode_json(value: Any) -> str:
    """Compact JSON text for a frame, or :class:`EncodeError` if ``value`` is not JSON.

    ``allow_nan=False``: NaN is not JSON, and a client's JSON.parse would throw on it.
    A str with a lone surrogate is refused too: it cannot be written as UTF-8, and a
    transport would fail to send it.
    """
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        if not text.isascii():  # O(1) in CPython: most frames skip the check below
            text.encode("utf-8")
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
        raise EncodeError(f"payload is not JSON-encodable: {exc}") from exc
    return text
