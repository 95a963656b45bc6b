"""The WebSocket connect pipeline: from an upgrade request to a socket, or a refusal.

Mirrors ``Phoenix.Transports.WebSocket.call/2``. The talk's point holds here too:
this is not a router and not a plug, just a pipeline of small checks, each of which
may halt with a status:

1. read the query parameters (``vsn``, and whatever the client added);
2. check the ``Origin`` header against ``check_origin``;
3. take phoenix.js's auth token out of ``Sec-WebSocket-Protocol``, if enabled;
4. check the requested subprotocols;
5. gather ``connect_info``;
6. call the socket's ``connect`` (:func:`channels_core.socket.connect`).

The result is data, :class:`Accept` or :class:`Refuse`, and the adapter turns it
into a 101 or an HTTP response. No I/O happens in this module.
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Any, NamedTuple

from ..socket import connect as connect_socket
from .. import tracing
from ..socket import SocketState
from .transport import Conn, TransportConfig, check_origin, connect_info

logger = logging.getLogger("channels_core.transports.websocket")

AUTH_TOKEN_PREFIX = "base64url.bearer.phx."


class Accept(NamedTuple):
    """Upgrade the connection: the socket accepted it.

    Attributes:
        state: The new connection's :class:`~channels_core.socket.SocketState`.
        subprotocol: The subprotocol to answer with, or None.
    """

    state: SocketState
    subprotocol: str | None


class Refuse(NamedTuple):
    """Answer the upgrade request with a plain HTTP response instead."""

    status: int
    body: str = ""


def connect(conn: Conn, endpoint: Any, handler: type, config: TransportConfig) -> Accept | Refuse:
    """Run the connect pipeline for one upgrade request."""
    if conn.method != "GET":
        return Refuse(400)
    params = conn.params
    tracing.hop("transport", "websocket.connect", path=conn.path)

    # Step 2: origin.
    if not check_origin(conn, endpoint, config, "socket"):
        return Refuse(403)

    # Step 3: phoenix.js 1.8 sends its authToken as a subprotocol, because browsers
    # cannot set headers on a WebSocket. "phoenix" must then be answered back.
    requested = _split(conn.header("sec-websocket-protocol"))
    token: str | None = None
    allowed = config.subprotocols
    if config.auth_token:
        allowed = ("phoenix", *(config.subprotocols or ()))
        bearer = [p for p in requested if p.startswith(AUTH_TOKEN_PREFIX)]
        if len(bearer) == 1:
            token = _decode_token(bearer[0][len(AUTH_TOKEN_PREFIX):])
            if token is None:
                return Refuse(403)
            requested = [p for p in requested if p not in bearer]

    # Step 4: subprotocols.
    subprotocol = None
    if allowed is not None and requested:
        subprotocol = next((p for p in allowed if p in requested), None)
        tracing.hop("transport", "transport.check_subprotocols", requested=requested, selected=subprotocol)
        if subprotocol is None:
            logger.error(
                "could not check WebSocket subprotocols: the request asked for %s, "
                "the socket supports %s", requested, list(allowed),
            )
            return Refuse(403)

    # Steps 5 and 6: connect_info, then the user's connect.
    tracing.hop("transport", "transport.connect_info", keys=list(config.connect_info or ()))
    info = connect_info(conn, config.connect_info, token)
    result = connect_socket(handler, endpoint, "websocket", config, params, info)
    if isinstance(result, SocketState):
        return Accept(result, subprotocol)
    if result == "error":
        return Refuse(403)
    _, reason = result
    if config.error_handler is None:
        return Refuse(403)
    status, body = config.error_handler(reason)
    return Refuse(status, body)


def _split(header: str | None) -> list[str]:
    if not header:
        return []
    return [part.strip() for part in header.split(",") if part.strip()]


def _decode_token(encoded: str) -> str | None:
    # phoenix.js strips the padding; both alphabets are accepted, as the name says base64url.
    padded = encoded + "=" * (-len(encoded) % 4)
    try:
        return base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        logger.warning("refused a malformed auth token in Sec-WebSocket-Protocol")
        return None
