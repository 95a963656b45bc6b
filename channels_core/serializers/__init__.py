"""Serializers: how a Message, Reply or Broadcast becomes a frame, and back.

Mirrors ``Phoenix.Socket.Serializer`` and its two implementations. The contract is
three functions (:class:`Serializer`): ``fastlane`` for broadcasts, ``encode`` for
pushes and replies, ``decode`` for what the client sends. None of them does I/O,
so every frame the server can send or accept can be shown, and tested, right here.
"""

from __future__ import annotations

from .serializer import Serializer, SocketPush
from .v1_json import V1JSONSerializer
from .v2_json import V2JSONSerializer

__all__ = ["Serializer", "SocketPush", "V1JSONSerializer", "V2JSONSerializer"]
