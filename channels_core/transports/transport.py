"""What every transport shares: configuration, origin checks, connect_info.

Mirrors ``Phoenix.Socket.Transport``. Nothing here does I/O: a request arrives as a
:class:`Conn` (plain data the ASGI adapter builds), and each step of the connect
pipeline is a function of it. That is the talk's observation about
``Transports.WebSocket.connect``: it is a function pipeline, not a router.

The transport behaviour itself, what a transport calls on its socket handler, is
the :class:`SocketHandler` protocol: ``init``, ``handle_in``, ``handle_info`` and
``terminate``, each answering with ``None`` (carry on), a
:class:`~channels_core.serializers.SocketPush` (write this frame) or a
:class:`Stop` (close the connection).
"""

from __future__ import annotations

import functools

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple, Protocol
from urllib.parse import parse_qsl, urlsplit

from .. import tracing
from ..serializers import Serializer, SocketPush, V1JSONSerializer, V2JSONSerializer

logger = logging.getLogger("channels_core.transport")

V1 = V1JSONSerializer()
V2 = V2JSONSerializer()

#: The serializers every transport offers, each with the ``vsn`` it accepts.
DEFAULT_SERIALIZERS: tuple[tuple[Serializer, str], ...] = ((V1, "~> 1.0.0"), (V2, "~> 2.0.0"))

CONNECT_INFO_KEYS = frozenset(
    {"peer_data", "trace_context_headers", "uri", "user_agent", "x_headers",
     "sec_websocket_headers", "auth_token"}
)


# Transport behaviour


class Stop(NamedTuple):
    """Close the connection: Phoenix's ``{:stop, reason, state}``.

    Attributes:
        reason: Why, e.g. ``("shutdown", "disconnected")``.
        code: The WebSocket close code to send, e.g. ``1000`` or ``1001``.
    """

    reason: Any
    code: int = 1000


Action = SocketPush | Stop | None


class SocketHandler(Protocol):
    """The per-connection side of a socket, as a transport sees it."""

    def init(self, transport_pid: Any) -> Action: ...

    async def handle_in(self, data: str | bytes, opcode: str) -> Action: ...

    async def handle_info(self, message: Any) -> Action: ...

    def terminate(self, reason: Any) -> None: ...


# Configuration


@dataclass(frozen=True)
class TransportConfig:
    """A transport's options, with Phoenix's defaults (``load_config``).

    Attributes:
        path: Appended to the socket's path: ``/socket`` + ``/websocket``.
        serializer: ``(serializer, vsn requirement)`` pairs, tried in order.
        timeout: Idle timeout in milliseconds; 60 s, as Phoenix.
        transport_log: Log level for transport events, or False.
        compress: Whether to offer per-message deflate.
        check_origin: True (the endpoint's host), False, ``"conn"`` (the request's
            own host), a list of origins such as ``["//example.com"]``, or a callable
            given the parsed origin.
        connect_info: Keys of connection data to hand to ``connect/3``.
        error_handler: ``f(reason) -> (status, body)`` for ``connect`` returning
            ``("error", reason)``; 403 with an empty body by default.
        max_frame_size: Largest frame accepted, in bytes; None for no limit.
        subprotocols: WebSocket subprotocols to accept, or None.
        auth_token: Accept phoenix.js's ``authToken`` sent as a subprotocol.
        max_channels_per_transport: How many topics one connection may join at once.
        max_queue: How many messages may wait for a connection's process, frames on
            their way to a client that is not reading above all; one more closes the
            connection (WebSocket: close 1013) or ends the long-poll session. None for
            no bound. Phoenix has none: this is ours.
        window_ms: LongPoll: how long a poll is held open when there is nothing to send.
        pubsub_timeout_ms: LongPoll: how long a POST waits for its session.
        crypto_max_age: LongPoll: seconds a session token is valid.
    """

    path: str = "/websocket"
    serializer: tuple[tuple[Serializer, str], ...] = DEFAULT_SERIALIZERS
    timeout: int = 60_000
    transport_log: str | bool = False
    compress: bool = False
    check_origin: Any = True
    connect_info: tuple[Any, ...] = ()
    error_handler: Callable[[Any], tuple[int, str]] | None = None
    max_frame_size: int | None = None
    subprotocols: tuple[str, ...] | None = None
    auth_token: bool = False
    max_channels_per_transport: int = 100
    max_queue: int | None = 1000
    window_ms: int = 10_000
    pubsub_timeout_ms: int = 2_000
    crypto_max_age: int = 1_209_600
    extra: dict[str, Any] = field(default_factory=dict)


WEBSOCKET_DEFAULTS = TransportConfig(path="/websocket")
LONGPOLL_DEFAULTS = TransportConfig(path="/longpoll")


def load_config(options: bool | dict[str, Any], defaults: TransportConfig) -> TransportConfig:
    """Merge a socket declaration's options over a transport's defaults.

    ``True`` means "the defaults"; a dict overrides them key by key, and an unknown
    key is an error rather than a silent typo.
    """
    if options is True:
        options = {}
    if not isinstance(options, dict):
        raise TypeError(f"transport options must be True or a dict, got {options!r}")
    options = dict(options)
    for key in ("serializer", "connect_info", "subprotocols"):
        if key in options and options[key] is not None:
            options[key] = tuple(options[key])
    connect_info = tuple(options.get("connect_info", ()))
    if options.get("auth_token") and "auth_token" not in connect_info:
        # auth_token is included by default when enabled, as in Phoenix 1.8.
        connect_info = ("auth_token", *connect_info)
    for key in connect_info:
        if not (key in CONNECT_INFO_KEYS or (isinstance(key, tuple) and len(key) == 2)):
            raise ValueError(
                f"connect_info keys are expected to be one of {', '.join(sorted(CONNECT_INFO_KEYS))}, "
                f"or (key, value) pairs, got {key!r}"
            )
    options["connect_info"] = connect_info
    known = set(TransportConfig.__dataclass_fields__)
    unknown = set(options) - known
    if unknown:
        raise ValueError(f"unknown transport option(s): {', '.join(sorted(unknown))}")
    return replace(defaults, **options)


# Versions


@functools.lru_cache(maxsize=64)  # clients send the same few versions; bounded, since they choose them
def version_matches(vsn: str, requirement: str) -> bool:
    """Elixir's ``Version.match?`` for the ``~>`` and ``==`` forms serializers use.

    ``~> 2.0.0`` accepts ``2.0.x``; ``~> 2.0`` accepts ``2.x``.
    """
    version = _parse_version(vsn)
    if version is None:
        return False
    op, _, target = requirement.strip().partition(" ")
    parts = [int(p) for p in target.split(".")]
    if op == "==":
        return version == tuple(parts + [0] * (3 - len(parts)))
    if op != "~>":
        raise ValueError(f"unsupported version requirement {requirement!r}")
    lower = tuple(parts + [0] * (3 - len(parts)))
    prefix = parts[:-1]  # ~> 2.0.0 pins 2.0; ~> 2.0 pins 2
    return version >= lower and list(version[: len(prefix)]) == prefix


@functools.lru_cache(maxsize=64)
def _parse_version(vsn: str) -> tuple[int, int, int] | None:
    match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", vsn)
    return None if match is None else (int(match[1]), int(match[2]), int(match[3]))


def negotiate_serializer(serializers: Sequence[tuple[Serializer, str]], vsn: str) -> Serializer | None:
    """The first serializer whose requirement ``vsn`` meets, or None (logged)."""
    if _parse_version(vsn) is None:
        logger.warning('client sent invalid transport version "%s"', vsn)
        return None
    for serializer, requirement in serializers:
        if version_matches(vsn, requirement):
            return serializer
    logger.warning(
        'the client\'s requested transport version "%s" does not match the server\'s '
        "version requirements of %s", vsn, [req for _, req in serializers],
    )
    return None


# Requests


@dataclass(frozen=True)
class Conn:
    """An HTTP request as the connect pipeline sees it: plain data, no I/O.

    Attributes:
        method: ``"GET"``, ``"POST"``, ...
        scheme: ``"http"`` or ``"https"`` (``ws``/``wss`` are reported as such).
        host: The Host header's name, e.g. ``"127.0.0.1"``.
        port: The port the request was sent to, e.g. ``4000``.
        path: The request path, e.g. ``"/socket/websocket"``.
        query_string: The raw query, e.g. ``"vsn=2.0.0&user_id=u1"``.
        headers: ``(name, value)`` pairs, names lowercase, in request order.
        peer: ``(address, port)`` of the client.
    """

    method: str
    scheme: str
    host: str
    port: int
    path: str
    query_string: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    peer: tuple[str, int] | None = None

    @property
    def params(self) -> dict[str, str]:
        """The query parameters; the last value wins, as with Plug."""
        return dict(parse_qsl(self.query_string, keep_blank_values=True))

    def header(self, name: str) -> str | None:
        """The first value of header ``name``, or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None


# Origin checks


class OriginURI(NamedTuple):
    scheme: str | None
    host: str | None
    port: int | None


_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def parse_origin(origin: str) -> OriginURI:
    """Parse an origin the way Elixir's ``URI.parse`` does (default ports filled in)."""
    parts = urlsplit(origin)
    scheme = parts.scheme or None
    port = parts.port
    if port is None and scheme in _DEFAULT_PORTS:
        port = _DEFAULT_PORTS[scheme]
    return OriginURI(scheme, parts.hostname, port)


def _same(request_value: Any, allowed_value: Any) -> bool:
    return allowed_value is None or request_value == allowed_value


def _same_host(request_host: str | None, allowed_host: str | None) -> bool:
    if allowed_host is None:
        return True
    if allowed_host.startswith("*."):
        bare = allowed_host[2:]
        return request_host == bare or (request_host or "").endswith("." + bare)
    return request_host == allowed_host


def origin_allowed(check_origin: Any, origin: str | None, conn: Conn, endpoint_host: str) -> bool:
    """Phoenix's origin rules, as a pure function.

    No ``Origin`` header (a non-browser client) or ``check_origin=False`` always
    passes; ``True`` compares the host with the endpoint's configured host;
    ``"conn"`` compares scheme, host and port with the request's own; a list
    compares with each allowed origin, where a missing part matches anything and
    ``//*.example.com`` matches subdomains; a callable decides for itself.
    """
    if origin is None or check_origin is False:
        return True
    uri = parse_origin(origin)
    if callable(check_origin):
        return bool(check_origin(uri))
    if check_origin == "conn":
        scheme = {"ws": "http", "wss": "https"}.get(conn.scheme, conn.scheme)
        return uri.host == conn.host and uri.scheme == scheme and uri.port == conn.port
    if uri.host is None:
        return False
    if check_origin is True:
        return uri.host == endpoint_host
    if isinstance(check_origin, (list, tuple)):
        for allowed in check_origin:
            allowed_uri = parse_origin(allowed)
            if allowed_uri.host is None:
                raise ValueError(
                    f"invalid check_origin entry {allowed!r}: expected an origin with a host, "
                    'e.g. "https://example.com", "//another.com:888", "//other.com"'
                )
            if (
                _same(uri.scheme, allowed_uri.scheme)
                and _same(uri.port, allowed_uri.port)
                and _same_host(uri.host, allowed_uri.host)
            ):
                return True
        return False
    raise ValueError(
        f"check_origin expects a boolean, a list of origins, 'conn' or a callable, got {check_origin!r}"
    )


def check_origin(conn: Conn, endpoint: Any, config: TransportConfig, transport: str) -> bool:
    """Phoenix's ``Transport.check_origin``: apply :func:`origin_allowed`, log a refusal."""
    origin = conn.header("origin")
    allowed = origin_allowed(config.check_origin, origin, conn, getattr(endpoint, "url_host", "localhost"))
    tracing.hop("transport", "transport.check_origin", allowed=allowed)
    if not allowed:
        logger.error(
            "could not check origin for %s transport: origin of the request is %s. "
            "Configure check_origin on the socket (e.g. check_origin=['//%s']) or the endpoint's url_host.",
            transport, origin, conn.host,
        )
    return allowed


# connect_info


def connect_info(conn: Conn, keys: Sequence[Any], auth_token: str | None = None) -> dict[str, Any]:
    """The connection data a socket's ``connect/3`` asked for, by key."""
    info: dict[str, Any] = {}
    for key in keys:
        if key == "peer_data":
            address, port = conn.peer or ("", 0)
            info["peer_data"] = {"address": address, "port": port, "ssl_cert": None}
        elif key == "trace_context_headers":
            info[key] = [(k, v) for k, v in conn.headers if k in ("traceparent", "tracestate")]
        elif key == "x_headers":
            info[key] = [(k, v) for k, v in conn.headers if k.startswith("x-")]
        elif key == "sec_websocket_headers":
            info[key] = [(k, v) for k, v in conn.headers if k.startswith("sec-websocket-")]
        elif key == "uri":
            info["uri"] = {
                "scheme": conn.scheme,
                "host": conn.host,
                "port": conn.port,
                "path": conn.path,
                "query": conn.query_string,
            }
        elif key == "user_agent":
            info[key] = conn.header("user-agent")
        elif key == "auth_token":
            info[key] = auth_token
        else:
            name, value = key
            info[name] = value
    return info
