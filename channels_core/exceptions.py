"""Exceptions raised by channels_core.

Phoenix reports most failures with tagged tuples such as ``{:error, :expired}``;
in Python the idiom is to raise. Every exception here descends from a single
root, so an application can catch anything the framework raises with one
``except ChannelsError`` and still handle narrower branches on their own.

Hierarchy:

- ``ChannelsError``
    - ``TokenError``
        - ``InvalidToken``
        - ``ExpiredToken``
    - ``ProtocolError``
        - ``DecodeError``
        - ``EncodeError``
    - ``CallbackError``
"""

from __future__ import annotations

__all__ = [
    "CallbackError",
    "ChannelsError",
    "DecodeError",
    "EncodeError",
    "ExpiredToken",
    "InvalidToken",
    "ProtocolError",
    "TokenError",
]


class ChannelsError(Exception):
    """Base class for every exception raised by channels_core."""


class TokenError(ChannelsError):
    """A token could not be verified (see :mod:`channels_core.token`)."""


class InvalidToken(TokenError):
    """The token is missing, malformed, or not signed by us.

    Covers Phoenix's ``:invalid`` and ``:missing`` results.
    """


class ExpiredToken(TokenError):
    """The token is authentic but older than the allowed ``max_age``.

    Phoenix's ``:expired`` result.
    """


class ProtocolError(ChannelsError):
    """A frame does not follow the protocol the connection negotiated."""


class DecodeError(ProtocolError, ValueError):
    """A client's frame could not be decoded into a message.

    Phoenix lets this crash the connection's process (close code 1011); so do we.
    """


class EncodeError(ProtocolError, ValueError):
    """A message cannot be encoded, e.g. a binary field over 255 bytes."""


class CallbackError(ChannelsError, TypeError):
    """A user callback returned something the framework does not accept.

    The message lists the accepted shapes and what was returned instead, as
    Phoenix's "expected handle_in/3 to return one of: ... got ..." does.
    """
