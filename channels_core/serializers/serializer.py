"""The serializer contract: three functions, no I/O.

Mirrors ``Phoenix.Socket.Serializer`` (29 lines in Phoenix, and about as many here).
A serializer turns the structs of :mod:`channels_core.message` into a
:class:`SocketPush` (the frame a transport writes) and a client's frame back into a
:class:`~channels_core.message.Message`. It is chosen per connection from the
``vsn`` query parameter, so the same server speaks V1 and V2 clients at once.
"""

from __future__ import annotations

from typing import Literal, NamedTuple, Protocol

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
