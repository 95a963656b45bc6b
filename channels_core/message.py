"""The three structs that cross the socket: Message, Reply and Broadcast.

Mirrors ``Phoenix.Socket.Message``, ``Phoenix.Socket.Reply`` and
``Phoenix.Socket.Broadcast``, which share one small file in Phoenix too. They are
plain frozen records with no behaviour: serializers turn them into frames and back,
and everything between the wire and a channel passes them around.

A payload is a JSON object (a ``dict``) or, for binary frames, ``bytes``. Phoenix
writes the binary case as ``{:binary, data}``; Python's ``bytes`` says the same
thing without a wrapper.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Broadcast", "Message", "Reply"]


@dataclass(frozen=True, slots=True)
class Message:
    """A message between client and server, in either direction.

    Attributes:
        topic: The string topic or ``topic:subtopic`` pair, e.g. ``"room:lobby"``.
        event: The event name, e.g. ``"phx_join"`` or ``"new_msg"``.
        payload: The message payload, e.g. ``{"body": "hi"}``, or ``bytes``.
        ref: The unique string ref the client chose, e.g. ``"2"``; None in pushes.
        join_ref: The ref of the join this message belongs to, e.g. ``"1"``.
    """

    topic: Any
    event: Any
    payload: Any = None
    ref: Any = None
    join_ref: Any = None


@dataclass(frozen=True, slots=True)
class Reply:
    """A reply to a client message, sent as the ``phx_reply`` event.

    Attributes:
        topic: The topic of the message replied to, e.g. ``"room:lobby"``.
        status: ``"ok"`` or ``"error"`` (any short string the channel chose).
        payload: The reply's ``response``, e.g. ``{}`` or ``{"reason": "unauthorized"}``.
        ref: The ref of the message replied to, e.g. ``"2"``.
        join_ref: The ref of the channel's join, e.g. ``"1"``.
    """

    topic: Any
    status: str
    payload: Any
    ref: Any = None
    join_ref: Any = None


@dataclass(frozen=True, slots=True)
class Broadcast:
    """A message sent to every subscriber of a topic.

    Attributes:
        topic: The topic broadcast to, e.g. ``"room:lobby"``.
        event: The event name, e.g. ``"new_msg"``.
        payload: The payload, e.g. ``{"body": "hi"}``, or ``bytes``.
    """

    topic: str
    event: str
    payload: Any
