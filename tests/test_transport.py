"""Unit tests for the transport layer: configuration, origin checks, connect_info,
and the WebSocket connect pipeline (channels_core/transports/transport.py and
channels_core/transports/websocket.py).

The pipeline takes a :class:`Conn` (plain data) and returns ``Accept`` or
``Refuse`` (plain data), so every test builds a request by hand and reads the
answer; no server, no network.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

import pytest

from channels_core import socket as socket_module
from channels_core.demo.app import SECRET_KEY_BASE, DemoEndpoint, UserSocket, sign_user_token
from channels_core.exceptions import CallbackError
from channels_core.serializers import V1JSONSerializer, V2JSONSerializer
from channels_core.socket import Socket, SocketState, SocketStruct, assign
from channels_core.transports.transport import (
    LONGPOLL_DEFAULTS,
    V1,
    V2,
    WEBSOCKET_DEFAULTS,
    Conn,
    OriginURI,
    TransportConfig,
    connect_info,
    load_config,
    negotiate_serializer,
    origin_allowed,
    parse_origin,
    version_matches,
)
from channels_core.transports.websocket import AUTH_TOKEN_PREFIX, Accept, Refuse, connect


# load_config


@pytest.mark.parametrize(("defaults", "path"), [(WEBSOCKET_DEFAULTS, "/websocket"), (LONGPOLL_DEFAULTS, "/longpoll")])
def test_load_config_defaults_are_phoenixs(defaults: TransportConfig, path: str) -> None:
    config = load_config(True, defaults)
    assert config.path == path
    assert config.serializer == ((V1, "~> 1.0.0"), (V2, "~> 2.0.0"))
    assert isinstance(config.serializer[0][0], V1JSONSerializer)
    assert isinstance(config.serializer[1][0], V2JSONSerializer)
    assert config.timeout == 60_000
    assert config.transport_log is False
    assert config.compress is False
    assert config.check_origin is True
    assert config.connect_info == ()
    assert config.error_handler is None
    assert config.max_frame_size is None
    assert config.subprotocols is None
    assert config.auth_token is False
    assert config.max_channels_per_transport == 100
    assert config.window_ms == 10_000
    assert config.pubsub_timeout_ms == 2_000
    assert config.crypto_max_age == 1_209_600  # two weeks, LongPoll's crypto: [max_age: ...]


def test_load_config_with_an_empty_dict_is_the_defaults() -> None:
    assert load_config({}, WEBSOCKET_DEFAULTS) == load_config(True, WEBSOCKET_DEFAULTS)


def test_load_config_overrides_key_by_key_and_freezes_lists() -> None:
    config = load_config(
        {"timeout": 1_000, "check_origin": ["//example.com"], "subprotocols": ["mqtt"],
         "serializer": [(V2, "~> 2.0.0")], "connect_info": ["uri"]},
        WEBSOCKET_DEFAULTS,
    )
    assert config.timeout == 1_000
    assert config.path == "/websocket"
    assert config.subprotocols == ("mqtt",)
    assert config.serializer == ((V2, "~> 2.0.0"),)
    assert config.connect_info == ("uri",)
    assert config.check_origin == ["//example.com"]


def test_load_config_refuses_an_unknown_option() -> None:
    with pytest.raises(ValueError, match=r"^unknown transport option\(s\): bogus, timout$"):
        load_config({"timout": 5, "bogus": True}, WEBSOCKET_DEFAULTS)


def test_load_config_refuses_options_that_are_not_a_dict() -> None:
    with pytest.raises(TypeError, match=r"^transport options must be True or a dict, got \['path'\]$"):
        load_config(["path"], WEBSOCKET_DEFAULTS)  # type: ignore[arg-type]


@pytest.mark.parametrize("key", ["cookies", ("a", "b", "c"), 42])
def test_load_config_refuses_a_bad_connect_info_key(key: Any) -> None:
    with pytest.raises(ValueError) as caught:
        load_config({"connect_info": [key]}, WEBSOCKET_DEFAULTS)
    assert str(caught.value) == (
        "connect_info keys are expected to be one of auth_token, peer_data, sec_websocket_headers, "
        f"trace_context_headers, uri, user_agent, x_headers, or (key, value) pairs, got {key!r}"
    )


def test_load_config_auth_token_adds_auth_token_to_connect_info() -> None:
    config = load_config({"auth_token": True, "connect_info": ["uri"]}, WEBSOCKET_DEFAULTS)
    assert config.connect_info == ("auth_token", "uri")
    # Asked for already: not twice.
    config = load_config({"auth_token": True, "connect_info": ["uri", "auth_token"]}, WEBSOCKET_DEFAULTS)
    assert config.connect_info == ("uri", "auth_token")
    assert load_config({"auth_token": False}, WEBSOCKET_DEFAULTS).connect_info == ()


def test_load_config_accepts_custom_connect_info_pairs() -> None:
    config = load_config({"connect_info": ["peer_data", ("tenant", "acme")]}, WEBSOCKET_DEFAULTS)
    assert config.connect_info == ("peer_data", ("tenant", "acme"))


# Versions and serializer negotiation


@pytest.mark.parametrize(
    ("vsn", "v1", "v2"),
    [
        ("1.0.0", True, False),
        ("1.0.5", True, False),
        ("1.1.0", False, False),
        ("2.0.0", False, True),
        ("2.0.9", False, True),
        ("3.0.0", False, False),
        ("0.9.0", False, False),
        ("abc", False, False),
        ("2.0", False, False),
        ("", False, False),
    ],
)
def test_version_matches(vsn: str, v1: bool, v2: bool) -> None:
    assert (version_matches(vsn, "~> 1.0.0"), version_matches(vsn, "~> 2.0.0")) == (v1, v2)


def test_version_requirement_forms() -> None:
    assert version_matches("2.5.1", "~> 2.0")  # two parts pin the major only
    assert not version_matches("3.0.0", "~> 2.0")
    assert version_matches("2.0.0", "== 2.0.0")
    assert not version_matches("2.0.1", "== 2.0.0")
    with pytest.raises(ValueError, match="^unsupported version requirement '>= 2.0.0'$"):
        version_matches("2.0.0", ">= 2.0.0")


def test_negotiate_serializer_picks_the_first_match() -> None:
    serializers = WEBSOCKET_DEFAULTS.serializer
    assert negotiate_serializer(serializers, "1.0.0") is V1
    assert negotiate_serializer(serializers, "2.0.0") is V2


def test_negotiate_serializer_logs_a_version_no_serializer_accepts(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="channels_core.transport"):
        assert negotiate_serializer(WEBSOCKET_DEFAULTS.serializer, "3.0.0") is None
    assert caplog.messages == [
        "the client's requested transport version \"3.0.0\" does not match the server's "
        "version requirements of ['~> 1.0.0', '~> 2.0.0']"
    ]


def test_negotiate_serializer_logs_an_invalid_version(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="channels_core.transport"):
        assert negotiate_serializer(WEBSOCKET_DEFAULTS.serializer, "abc") is None
    assert caplog.messages == ['client sent invalid transport version "abc"']


# socket.connect (Phoenix's __connect__): vsn defaults and connect's results

CONFIG = load_config({"check_origin": False}, WEBSOCKET_DEFAULTS)


def test_socket_connect_without_vsn_uses_v1() -> None:
    state = socket_module.connect(UserSocket, DemoEndpoint(), "websocket", CONFIG, {"user_id": "u1"}, {})
    assert isinstance(state, SocketState)
    assert state.socket.serializer is V1


@pytest.mark.parametrize(("vsn", "serializer"), [("1.0.0", V1), ("2.0.0", V2)])
def test_socket_connect_negotiates_by_vsn(vsn: str, serializer: Any) -> None:
    endpoint = DemoEndpoint()
    state = socket_module.connect(UserSocket, endpoint, "websocket", CONFIG, {"vsn": vsn, "user_id": "u1"}, {})
    assert isinstance(state, SocketState)
    assert state.socket.serializer is serializer
    assert state.socket.assigns == {"user_id": "u1"}
    assert state.socket.id == "user_sockets:u1"
    assert state.socket.transport == "websocket"
    assert state.socket.endpoint is endpoint
    assert state.socket.pubsub_server is endpoint.pubsub
    assert state.socket.handler is UserSocket
    assert state.max_channels == 100


def test_socket_connect_with_an_unknown_vsn_is_an_error() -> None:
    assert socket_module.connect(UserSocket, DemoEndpoint(), "websocket", CONFIG, {"vsn": "3.0.0"}, {}) == "error"


def test_socket_connect_with_an_empty_vsn_is_an_error_not_v1(caplog: pytest.LogCaptureFixture) -> None:
    # Phoenix reads `params["vsn"] || "1.0.0"`, and "" is truthy in Elixir: only a missing vsn means V1.
    assert socket_module.connect(UserSocket, DemoEndpoint(), "websocket", CONFIG, {"vsn": ""}, {}) == "error"
    assert 'client sent invalid transport version ""' in caplog.text


def test_socket_connect_honours_max_channels_per_transport() -> None:
    config = load_config({"max_channels_per_transport": 3}, WEBSOCKET_DEFAULTS)
    state = socket_module.connect(UserSocket, DemoEndpoint(), "websocket", config, {"vsn": "2.0.0"}, {})
    assert isinstance(state, SocketState) and state.max_channels == 3


class ResultSocket(Socket):
    """connect returns whatever the test put in ``result``; id returns ``the_id``."""

    result: Any = None
    the_id: Any = None

    def connect(self, params: dict[str, Any], socket: SocketStruct) -> Any:
        return self.result(socket) if callable(self.result) else self.result

    def id(self, socket: SocketStruct) -> Any:
        return self.the_id


def connect_with(result: Any, the_id: Any = None) -> Any:
    result = staticmethod(result) if callable(result) else result
    handler = type("Sock", (ResultSocket,), {"result": result, "the_id": the_id})
    return socket_module.connect(handler, DemoEndpoint(), "websocket", CONFIG, {"vsn": "2.0.0"}, {})


def test_connect_result_error_forms() -> None:
    assert connect_with("error") == "error"
    assert connect_with(("error", {"reason": "banned"})) == ("error", {"reason": "banned"})


def test_connect_result_invalid_is_logged_and_refused(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="channels_core.socket"):
        assert connect_with("sure") == "error"
    assert caplog.messages == [
        "Sock.connect returned invalid value 'sure'. Expected ('ok', socket), ('error', reason) or 'error'"
    ]


def test_connect_result_ok_without_a_socket_raises() -> None:
    with pytest.raises(CallbackError, match=r"^Sock.connect returned \('ok', \{\}\): expected a socket$"):
        connect_with(("ok", {}))


def test_connect_id_must_be_a_string_or_none(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="channels_core.socket"):
        assert connect_with(lambda socket: ("ok", socket), the_id=42) == "error"
    assert caplog.messages == ["Sock.id/1 returned invalid identifier 42. Expected None or a string."]
    state = connect_with(lambda socket: ("ok", socket), the_id="users:1")
    assert isinstance(state, SocketState) and state.socket.id == "users:1"


# Origin checks

CONN = Conn(method="GET", scheme="http", host="example.com", port=4000, path="/socket/websocket")


def allowed(check_origin: Any, origin: str | None, conn: Conn = CONN, endpoint_host: str = "example.com") -> bool:
    return origin_allowed(check_origin, origin, conn, endpoint_host)


def test_parse_origin_fills_in_default_ports() -> None:
    assert parse_origin("https://example.com") == OriginURI("https", "example.com", 443)
    assert parse_origin("http://example.com") == OriginURI("http", "example.com", 80)
    assert parse_origin("http://example.com:4000") == OriginURI("http", "example.com", 4000)
    assert parse_origin("//example.com") == OriginURI(None, "example.com", None)
    assert parse_origin("null") == OriginURI(None, None, None)


@pytest.mark.parametrize("check_origin", [True, False, "conn", ["//other.com"], lambda uri: False])
def test_a_request_without_origin_always_passes(check_origin: Any) -> None:
    # Non-browser clients send no Origin; there is nothing to check.
    assert allowed(check_origin, None)


@pytest.mark.parametrize("origin", ["http://evil.com", "https://example.com", "null"])
def test_check_origin_false_lets_everything_through(origin: str) -> None:
    assert allowed(False, origin)


@pytest.mark.parametrize(
    ("origin", "expected"),
    [
        ("http://example.com", True),
        ("https://example.com:8443", True),  # scheme and port are not compared
        ("http://evil.com", False),
        ("http://sub.example.com", False),
        ("null", False),
    ],
)
def test_check_origin_true_compares_with_the_endpoint_host(origin: str, expected: bool) -> None:
    assert allowed(True, origin) is expected


@pytest.mark.parametrize(
    ("origin", "expected"),
    [
        ("http://example.com:4000", True),
        ("https://example.com:4000", False),  # other scheme
        ("http://other.com:4000", False),  # other host
        ("http://example.com:4001", False),  # other port
        ("http://example.com", False),  # port 80 implied
        ("null", False),
    ],
)
def test_check_origin_conn_compares_with_the_request(origin: str, expected: bool) -> None:
    assert allowed("conn", origin) is expected


def test_check_origin_conn_reads_ws_schemes_as_http() -> None:
    ws = Conn(method="GET", scheme="ws", host="example.com", port=4000, path="/")
    wss = Conn(method="GET", scheme="wss", host="example.com", port=443, path="/")
    assert allowed("conn", "http://example.com:4000", ws)
    assert allowed("conn", "https://example.com", wss)
    assert not allowed("conn", "http://example.com:443", wss)


@pytest.mark.parametrize(
    ("allowed_origins", "origin", "expected"),
    [
        (["//example.com"], "http://example.com", True),
        (["//example.com"], "https://example.com:8443", True),
        (["//example.com"], "http://sub.example.com", False),
        (["//example.com"], "http://example.org", False),
        (["https://example.com"], "https://example.com", True),  # both imply port 443
        (["https://example.com"], "https://example.com:443", True),
        (["https://example.com"], "http://example.com", False),
        (["https://example.com"], "https://example.com:8443", False),
        (["//example.com:888"], "http://example.com:888", True),
        (["//example.com:888"], "http://example.com", False),
        (["//*.example.com"], "https://api.example.com", True),
        (["//*.example.com"], "https://a.b.example.com", True),
        (["//*.example.com"], "https://example.com", True),  # the bare domain too
        (["//*.example.com"], "https://badexample.com", False),
        (["//other.com", "//example.com"], "http://example.com", True),
        ([], "http://example.com", False),
        (["//example.com"], "null", False),
    ],
)
def test_check_origin_list(allowed_origins: list[str], origin: str, expected: bool) -> None:
    assert allowed(allowed_origins, origin) is expected


def test_check_origin_list_entry_without_a_host_is_an_error() -> None:
    with pytest.raises(ValueError) as caught:
        allowed(["example.com"], "http://example.com")
    assert str(caught.value) == (
        "invalid check_origin entry 'example.com': expected an origin with a host, "
        'e.g. "https://example.com", "//another.com:888", "//other.com"'
    )


def test_check_origin_callable_decides_from_the_parsed_origin() -> None:
    seen: list[OriginURI] = []

    def check(uri: OriginURI) -> bool:
        seen.append(uri)
        return uri.host == "trusted.com"

    assert allowed(check, "https://trusted.com")
    assert not allowed(check, "https://example.com")
    assert seen == [OriginURI("https", "trusted.com", 443), OriginURI("https", "example.com", 443)]


def test_check_origin_of_another_type_is_an_error() -> None:
    expected = "^check_origin expects a boolean, a list of origins, 'conn' or a callable, got 42$"
    with pytest.raises(ValueError, match=expected):
        allowed(42, "http://example.com")


# connect_info

FULL_CONN = Conn(
    method="GET",
    scheme="http",
    host="example.com",
    port=4000,
    path="/socket/websocket",
    query_string="vsn=2.0.0&user_id=u1",
    headers=(
        ("host", "example.com:4000"),
        ("user-agent", "phoenix-test/1.0"),
        ("x-forwarded-for", "10.0.0.1"),
        ("traceparent", "00-abc-def-01"),
        ("x-request-id", "r1"),
        ("tracestate", "vendor=1"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("sec-websocket-version", "13"),
        ("cookie", "secret=1"),
    ),
    peer=("127.0.0.1", 51234),
)


def test_connect_info_gives_each_key_asked_for() -> None:
    keys = ["peer_data", "uri", "user_agent", "x_headers", "trace_context_headers", "sec_websocket_headers",
            "auth_token", ("tenant", "acme")]
    assert connect_info(FULL_CONN, keys, auth_token="tok") == {
        "peer_data": {"address": "127.0.0.1", "port": 51234, "ssl_cert": None},
        "uri": {"scheme": "http", "host": "example.com", "port": 4000, "path": "/socket/websocket",
                "query": "vsn=2.0.0&user_id=u1"},
        "user_agent": "phoenix-test/1.0",
        "x_headers": [("x-forwarded-for", "10.0.0.1"), ("x-request-id", "r1")],
        "trace_context_headers": [("traceparent", "00-abc-def-01"), ("tracestate", "vendor=1")],
        "sec_websocket_headers": [("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
                                  ("sec-websocket-version", "13")],
        "auth_token": "tok",
        "tenant": "acme",
    }


def test_connect_info_gives_nothing_unasked() -> None:
    assert connect_info(FULL_CONN, []) == {}
    assert connect_info(FULL_CONN, ["user_agent"]) == {"user_agent": "phoenix-test/1.0"}


def test_connect_info_missing_values() -> None:
    bare = Conn(method="GET", scheme="http", host="h", port=80, path="/")
    assert connect_info(bare, ["user_agent", "auth_token", "x_headers"]) == {
        "user_agent": None, "auth_token": None, "x_headers": []
    }


# The WebSocket connect pipeline, with the demo's UserSocket

DEMO_CONFIG = DemoEndpoint.__dispatch__[("socket", "websocket")].config
assert DEMO_CONFIG is not None


def ws_conn(
    query: str = "vsn=2.0.0&user_id=u1",
    *,
    method: str = "GET",
    origin: str | None = "http://127.0.0.1:4000",
    headers: tuple[tuple[str, str], ...] = (),
) -> Conn:
    """An upgrade request as the adapter would build it for the demo at 127.0.0.1:4000."""
    origin_header = (("origin", origin),) if origin is not None else ()
    return Conn(
        method=method,
        scheme="http",
        host="127.0.0.1",
        port=4000,
        path="/socket/websocket",
        query_string=query,
        headers=(("host", "127.0.0.1:4000"), *origin_header, *headers),
        peer=("127.0.0.1", 50000),
    )


def bearer(token: str) -> str:
    """phoenix.js's subprotocol for an authToken: base64 without padding."""
    return AUTH_TOKEN_PREFIX + base64.b64encode(token.encode()).decode().rstrip("=")


def demo_endpoint() -> DemoEndpoint:
    return DemoEndpoint(secret_key_base=SECRET_KEY_BASE)


def test_accepted_connection() -> None:
    endpoint = demo_endpoint()
    result = connect(ws_conn(), endpoint, UserSocket, DEMO_CONFIG)
    assert isinstance(result, Accept)
    assert result.subprotocol is None
    state = result.state
    assert state.socket.assigns == {"user_id": "u1"}
    assert state.socket.id == "user_sockets:u1"
    assert state.socket.serializer is V2
    assert state.socket.endpoint is endpoint
    assert state.channels == {} and state.channels_inverse == {}


def test_refused_connect_is_403() -> None:
    assert connect(ws_conn("vsn=2.0.0&reject=true"), demo_endpoint(), UserSocket, DEMO_CONFIG) == Refuse(403, "")


def test_bad_origin_is_403_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="channels_core.transport"):
        result = connect(ws_conn(origin="http://evil.example"), demo_endpoint(), UserSocket, DEMO_CONFIG)
    assert result == Refuse(403, "")
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("ERROR",
         "could not check origin for socket transport: origin of the request is http://evil.example. "
         "Configure check_origin on the socket (e.g. check_origin=['//127.0.0.1']) or the endpoint's url_host.")
    ]


def test_no_origin_header_is_accepted() -> None:
    assert isinstance(connect(ws_conn(origin=None), demo_endpoint(), UserSocket, DEMO_CONFIG), Accept)


@pytest.mark.parametrize("query", ["vsn=3.0.0&user_id=u1", "vsn=abc"])
def test_unsupported_vsn_is_403(query: str) -> None:
    assert connect(ws_conn(query), demo_endpoint(), UserSocket, DEMO_CONFIG) == Refuse(403, "")


def test_no_vsn_is_accepted_with_v1() -> None:
    result = connect(ws_conn("user_id=u1"), demo_endpoint(), UserSocket, DEMO_CONFIG)
    assert isinstance(result, Accept) and result.state.socket.serializer is V1


@pytest.mark.parametrize("method", ["POST", "PUT", "HEAD"])
def test_non_get_is_400(method: str) -> None:
    assert connect(ws_conn(method=method), demo_endpoint(), UserSocket, DEMO_CONFIG) == Refuse(400, "")


def test_auth_token_subprotocol_selects_phoenix_and_reaches_connect() -> None:
    token = sign_user_token("u7")
    conn = ws_conn("vsn=2.0.0", headers=(("sec-websocket-protocol", f"phoenix, {bearer(token)}"),))
    result = connect(conn, demo_endpoint(), UserSocket, DEMO_CONFIG)
    assert isinstance(result, Accept)
    assert result.subprotocol == "phoenix"
    assert result.state.socket.assigns == {"user_id": "u7"}


class InfoSocket(Socket):
    """Accepts everyone and keeps the connect_info it was given, to be read back."""

    last_info: dict[str, Any] | None = None

    def connect(self, params: dict[str, Any], socket: SocketStruct, info: dict[str, Any]) -> Any:
        InfoSocket.last_info = info
        return ("ok", assign(socket, params=params))


def test_auth_token_is_decoded_into_connect_info() -> None:
    config = load_config({"check_origin": False, "auth_token": True, "connect_info": ["user_agent"]},
                         WEBSOCKET_DEFAULTS)
    # The standard alphabet with padding stripped, as phoenix.js's btoa(...).replace(/=/g, "").
    token = "a token/with+symbols?>"
    conn = ws_conn(headers=(("sec-websocket-protocol", f"phoenix, {bearer(token)}"), ("user-agent", "ua")))
    result = connect(conn, demo_endpoint(), InfoSocket, config)
    assert isinstance(result, Accept) and result.subprotocol == "phoenix"
    assert InfoSocket.last_info == {"auth_token": token, "user_agent": "ua"}
    assert result.state.socket.assigns == {"params": {"vsn": "2.0.0", "user_id": "u1"}}


def test_auth_token_in_the_url_safe_alphabet_is_accepted_too() -> None:
    config = load_config({"check_origin": False, "auth_token": True}, WEBSOCKET_DEFAULTS)
    token = "a token/with+symbols?>"
    encoded = base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")
    conn = ws_conn(headers=(("sec-websocket-protocol", f"phoenix, {AUTH_TOKEN_PREFIX}{encoded}"),))
    assert isinstance(connect(conn, demo_endpoint(), InfoSocket, config), Accept)
    assert InfoSocket.last_info == {"auth_token": token}


def test_without_a_token_the_auth_token_is_none() -> None:
    config = load_config({"check_origin": False, "auth_token": True}, WEBSOCKET_DEFAULTS)
    result = connect(ws_conn(headers=(("sec-websocket-protocol", "phoenix"),)), demo_endpoint(), InfoSocket, config)
    assert isinstance(result, Accept) and result.subprotocol == "phoenix"
    assert InfoSocket.last_info == {"auth_token": None}


@pytest.mark.parametrize("encoded", ["!!!not-base64!!!", "x", base64.b64encode(b"\xff\xfe").decode()])
def test_malformed_auth_token_is_403_and_logged(encoded: str, caplog: pytest.LogCaptureFixture) -> None:
    conn = ws_conn(headers=(("sec-websocket-protocol", f"phoenix, {AUTH_TOKEN_PREFIX}{encoded}"),))
    with caplog.at_level(logging.WARNING, logger="channels_core.transports.websocket"):
        assert connect(conn, demo_endpoint(), UserSocket, DEMO_CONFIG) == Refuse(403, "")
    assert caplog.messages == ["refused a malformed auth token in Sec-WebSocket-Protocol"]


def test_a_bad_signed_token_is_refused_by_the_demo_socket(caplog: pytest.LogCaptureFixture) -> None:
    token = sign_user_token("u7", secret_key_base="another secret entirely, just as long as the real one!!")
    conn = ws_conn(headers=(("sec-websocket-protocol", f"phoenix, {bearer(token)}"),))
    with caplog.at_level(logging.WARNING, logger="channels_core.demo"):
        assert connect(conn, demo_endpoint(), UserSocket, DEMO_CONFIG) == Refuse(403, "")
    assert caplog.messages[0].startswith("refused a connection with a bad auth token: ")


def test_configured_subprotocols_none_matching_is_403_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    config = load_config({"check_origin": False, "subprotocols": ["mqtt", "v2.chat"]}, WEBSOCKET_DEFAULTS)
    conn = ws_conn(headers=(("sec-websocket-protocol", "stomp, soap"),))
    with caplog.at_level(logging.ERROR, logger="channels_core.transports.websocket"):
        assert connect(conn, demo_endpoint(), UserSocket, config) == Refuse(403, "")
    assert caplog.messages == [
        "could not check WebSocket subprotocols: the request asked for ['stomp', 'soap'], "
        "the socket supports ['mqtt', 'v2.chat']"
    ]


def test_configured_subprotocols_first_configured_match_is_selected() -> None:
    config = load_config({"check_origin": False, "subprotocols": ["mqtt", "v2.chat"]}, WEBSOCKET_DEFAULTS)
    conn = ws_conn(headers=(("sec-websocket-protocol", "v2.chat, mqtt"),))
    result = connect(conn, demo_endpoint(), UserSocket, config)
    assert isinstance(result, Accept) and result.subprotocol == "mqtt"


def test_configured_subprotocols_none_requested_is_accepted() -> None:
    config = load_config({"check_origin": False, "subprotocols": ["mqtt"]}, WEBSOCKET_DEFAULTS)
    result = connect(ws_conn(), demo_endpoint(), UserSocket, config)
    assert isinstance(result, Accept) and result.subprotocol is None


class BanningSocket(Socket):
    def connect(self, params: dict[str, Any], socket: SocketStruct) -> Any:
        return ("error", {"banned": params["user_id"]})


def test_connect_error_reason_goes_to_the_error_handler() -> None:
    seen: list[Any] = []

    def handler(reason: Any) -> tuple[int, str]:
        seen.append(reason)
        return (401, f"banned: {reason['banned']}")

    config = load_config({"check_origin": False, "error_handler": handler}, WEBSOCKET_DEFAULTS)
    assert connect(ws_conn(), demo_endpoint(), BanningSocket, config) == Refuse(401, "banned: u1")
    assert seen == [{"banned": "u1"}]


def test_connect_error_reason_without_a_handler_is_403() -> None:
    assert connect(ws_conn(), demo_endpoint(), BanningSocket, CONFIG) == Refuse(403, "")




def test_a_refused_connect_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="channels_core.socket"):
        result = socket_module.connect(UserSocket, DemoEndpoint(), "websocket", CONFIG, {"vsn": "2.0.0", "reject": "true"}, {})
    assert result == "error"
    assert [r.getMessage() for r in caplog.records if r.name == "channels_core.socket"] == [
        "refused connection to UserSocket (transport websocket, vsn 2.0.0)"
    ]
