"""Security: what a hostile client can and cannot do, over a real server.

The promises (``SECURITY.md`` lists each with the test that proves it):

* ``check_origin`` is on by default, with Phoenix's rules, on both transports;
* the demo authenticates a connection by a signed, expiring token, and refuses an
  expired, tampered or foreign one; long-poll session tokens are signed with a
  salt of their own, so neither kind of token passes for the other;
* frame and body sizes are bounded, and so is the number of channels a socket
  may join;
* nothing a client sends is ever evaluated: payloads, topics and events are data;
* an error answer never carries a traceback or a path of the server's.

Tests already elsewhere are not repeated: the origin rules one by one
(``test_transport.py``), ``check_origin="conn"`` and lists over a real server and
``max_frame_size`` (``test_integration.py``), token signing
(``test_token.py``), tampered, expired and foreign long-poll tokens
(``test_longpoll.py``), the 100-channel default (``test_golden.py``).
"""

from __future__ import annotations

import ast
import base64
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from helpers import ROOT, RawClient, seconds
from test_integration import closed, heartbeat, log_messages, refusal

from channels_core.channel import Channel
from channels_core.demo import sign_user_token
from channels_core.demo.app import USER_TOKEN_SALT
from channels_core.endpoint import Endpoint, socket
from channels_core.server import Server
from channels_core.socket import Socket, SocketStruct, channel
from channels_core.token import sign, verify
from channels_core.transports import longpoll
from channels_core.transports.websocket import AUTH_TOKEN_PREFIX

StartServer = Callable[..., Awaitable[Server]]

OK_EMPTY = {"response": {}, "status": "ok"}


class EchoChannel(Channel):
    """``echo:*``: replies with the payload it got; ``raise`` raises with a secret in the message."""

    def join(self, topic: str, payload: Any, socket: SocketStruct) -> tuple[Any, ...]:
        if isinstance(payload, dict) and payload.get("raise"):
            raise RuntimeError(SECRET)
        return ("ok", socket)

    def handle_in(self, event: str, payload: Any, socket: SocketStruct) -> tuple[Any, ...]:
        if event == "raise":
            raise RuntimeError(SECRET)
        if event == "bad_return":
            return ("nonsense", SECRET)
        return ("reply", ("ok", payload), socket)


class DefaultsSocket(Socket):
    channels = [channel("echo:*", EchoChannel)]


class DefaultsEndpoint(Endpoint):
    """Both transports with every option left at its default: check_origin is not mentioned."""

    sockets = [socket("/socket", DefaultsSocket, websocket=True, longpoll=True)]


def bearer(token: str) -> str:
    """The subprotocol phoenix.js sends for ``authToken``: base64 with the padding stripped."""
    return AUTH_TOKEN_PREFIX + base64.b64encode(token.encode()).decode().rstrip("=")


# --------------------------------------------------------------------------
# check_origin is on by default
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "accepted"),
    [
        ("http://evil.example", False),
        ("http://127.0.0.1:{port}", False),  # the address it was reached on is not its configured host
        ("null", False),  # an opaque origin (a sandboxed iframe, a file: page) has no host
        ("http://localhost:{port}", True),  # the endpoint's url_host: any scheme, any port
        ("https://localhost", True),
        (None, True),  # no Origin header: not a browser, so no cross-site request to stop
    ],
)
async def test_check_origin_is_on_by_default_on_both_transports(
    start_server: StartServer, caplog: pytest.LogCaptureFixture, origin: str | None, accepted: bool
) -> None:
    server = await start_server(DefaultsEndpoint())
    origin = origin.format(port=server.port) if origin else None
    headers = {"origin": origin} if origin else {}
    async with httpx.AsyncClient(base_url=server.url, timeout=seconds(5)) as http:
        polled = (await http.get("/socket/longpoll?vsn=2.0.0", headers=headers)).json()
    if accepted:
        client = RawClient(await websockets.connect(f"{server.ws_url}/socket/websocket?vsn=2.0.0", origin=origin))
        await heartbeat(client, "1")
        await client.close()
        assert polled["status"] == 410 and "token" in polled  # a new session
        assert log_messages(caplog, "channels_core.transport") == []
    else:
        assert await refusal(server, origin=origin) == (403, b"")
        assert polled == {"status": 403}
        assert log_messages(caplog, "channels_core.transport") == [
            f"could not check origin for {transport} transport: origin of the request is {origin}. "
            "Configure check_origin on the socket (e.g. check_origin=['//127.0.0.1']) or the endpoint's url_host."
            for transport in ("long-poll", "socket")
        ]


async def test_the_default_origin_check_follows_the_endpoints_url_host(start_server: StartServer) -> None:
    endpoint_class = type("Hosted", (DefaultsEndpoint,), {"url_host": "chat.example.com"})
    server = await start_server(endpoint_class())
    client = RawClient(await websockets.connect(f"{server.ws_url}/socket/websocket?vsn=2.0.0",
                                                origin="https://chat.example.com"))
    await heartbeat(client, "1")
    await client.close()
    assert await refusal(server, origin="http://localhost") == (403, b"")
    assert await refusal(server, origin="https://evil.chat.example.com") == (403, b"")


# --------------------------------------------------------------------------
# Token-authenticated connect in the demo
# --------------------------------------------------------------------------


def demo_token(kind: str, secret: str) -> str:
    day = 86400
    if kind == "valid":
        return sign_user_token("from-token")
    if kind == "expired":
        return sign_user_token("from-token", signed_at=time.time() - day - 60)
    if kind == "tampered":
        payload, timestamp, signature = sign_user_token("from-token").split(".")
        forged_payload = sign_user_token("admin").split(".")[0]  # someone else's id, the old signature
        return f"{forged_payload}.{timestamp}.{signature}"
    if kind == "another secret":
        return sign_user_token("from-token", secret_key_base="not the server's secret, though as long as it is")
    if kind == "another salt":
        return sign(secret, "some other purpose", "from-token")
    raise AssertionError(kind)


@pytest.mark.parametrize(
    ("kind", "log"),
    [
        ("valid", None),
        ("expired", "refused a connection with a bad auth token: expired token"),
        ("tampered", "refused a connection with a bad auth token: invalid token"),
        ("another secret", "refused a connection with a bad auth token: invalid token"),
        ("another salt", "refused a connection with a bad auth token: invalid token"),
    ],
)
async def test_the_demo_connects_by_signed_token_and_refuses_expired_tampered_or_foreign_ones(
    demo_server: Server, caplog: pytest.LogCaptureFixture, kind: str, log: str | None
) -> None:
    caplog.set_level(logging.INFO)
    token = demo_token(kind, demo_server.app.secret_key_base)
    # The query claims another user: with a token, the token alone says who connects.
    query = "vsn=2.0.0&user_id=claimed"
    protocols = ["phoenix", bearer(token)]
    if log is None:
        connection = await websockets.connect(f"{demo_server.ws_url}/socket/websocket?{query}",
                                              subprotocols=protocols, origin=f"http://127.0.0.1:{demo_server.port}")
        client = RawClient(connection)
        assert connection.subprotocol == "phoenix"
        await client.send(["1", "1", "room:lobby", "phx_join", {}])
        assert (await client.recv_n(3))[2] == ["1", None, "room:lobby", "joined",
                                               {"status": "connected", "user_id": "from-token"}]
        await client.close()
        assert log_messages(caplog, "channels_core.demo") == []
    else:
        assert await refusal(demo_server, query, subprotocols=protocols) == (403, b"")
        assert log_messages(caplog, "channels_core.demo") == [log]
        assert log_messages(caplog, "channels_core.socket") == [
            "refused connection to UserSocket (transport websocket, vsn 2.0.0)"
        ]


async def test_a_session_token_is_no_user_token_and_a_user_token_no_session_token(
    demo_server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with httpx.AsyncClient(base_url=demo_server.url, timeout=seconds(5)) as http:
        session_token = (await http.get("/socket/longpoll?vsn=2.0.0&user_id=u1")).json()["token"]
        # Both are signed with the endpoint's secret; only the salt tells their purposes apart.
        assert verify(demo_server.app.secret_key_base, longpoll.TOKEN_SALT, session_token)["v"] == 1
        user_token = sign_user_token("u1")
        assert verify(demo_server.app.secret_key_base, USER_TOKEN_SALT, user_token) == "u1"

        # A user token does not lead to a session: the POST is told its session is gone.
        posted = await http.post(f"/socket/longpoll?vsn=2.0.0&token={user_token}",
                                 content=json.dumps([None, "1", "phoenix", "heartbeat", {}]))
        assert posted.json() == {"status": 410}
        assert "refused a long-poll session token: invalid token" in log_messages(
            caplog, "channels_core.transports.longpoll")
    # And a session token does not authenticate a connection.
    assert await refusal(demo_server, "vsn=2.0.0", subprotocols=["phoenix", bearer(session_token)]) == (403, b"")
    assert log_messages(caplog, "channels_core.demo") == [
        "refused a connection with a bad auth token: invalid token"
    ]


# --------------------------------------------------------------------------
# Limits: frame size, long-poll body size, channels per socket
# --------------------------------------------------------------------------


async def test_a_frame_over_the_servers_ws_max_size_is_refused_with_1009(start_server: StartServer) -> None:
    # Without max_frame_size (Phoenix's default: no limit of its own) uvicorn's
    # ws_max_size still bounds every frame: 16 MiB unless set, 4 KiB here.
    server = await start_server(DefaultsEndpoint(), ws_max_size=4096)
    neighbour = RawClient(await websockets.connect(f"{server.ws_url}/socket/websocket?vsn=2.0.0"))
    client = RawClient(await websockets.connect(f"{server.ws_url}/socket/websocket?vsn=2.0.0"))
    await client.send(["1", "1", "echo:a", "phx_join", {"pad": "x" * 3900}])
    assert (await client.recv())[4] == OK_EMPTY
    await client.send(["1", "2", "echo:a", "ping", {"pad": "x" * 5000}])
    assert await closed(client) == (1009, "frame exceeds limit of 4096 bytes")  # uvicorn's reason
    await heartbeat(neighbour, "1")
    await neighbour.close()


async def test_max_channels_per_transport_is_enforced_and_a_leave_frees_a_slot(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint_class = type("Limited", (Endpoint,), {"sockets": [
        socket("/socket", DefaultsSocket, websocket={"check_origin": False, "max_channels_per_transport": 3}),
    ]})
    server = await start_server(endpoint_class())
    client = RawClient(await websockets.connect(f"{server.ws_url}/socket/websocket?vsn=2.0.0"))
    for n in "123":
        await client.send([n, n, f"echo:{n}", "phx_join", {}])
        assert await client.recv() == [n, n, f"echo:{n}", "phx_reply", OK_EMPTY]

    await client.send(["4", "4", "echo:4", "phx_join", {}])
    assert await client.recv() == ["4", "4", "echo:4", "phx_reply",
                                   {"response": {"reason": "too many channels joined"}, "status": "error"}]
    assert log_messages(caplog, "channels_core.socket") == [
        "reached max channels per transport limit of 3 for socket None"
    ]
    assert len(server.app.supervisor.which_children()) == 3  # the refused join started no process

    await client.send(["1", "5", "echo:1", "phx_leave", {}])
    assert await client.recv_n(2) == [["1", "5", "echo:1", "phx_reply", OK_EMPTY],
                                      ["1", "1", "echo:1", "phx_close", {}]]
    await client.send(["6", "6", "echo:4", "phx_join", {}])
    assert await client.recv() == ["6", "6", "echo:4", "phx_reply", OK_EMPTY]
    await client.close()


async def test_a_long_poll_body_over_the_limit_is_refused_and_logged(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    # Phoenix reads at most 8 MB of a long-poll POST (Plug's read_body) and answers 400.
    server = await start_server(DefaultsEndpoint())
    async with httpx.AsyncClient(base_url=server.url, timeout=seconds(15)) as http:
        token = (await http.get("/socket/longpoll?vsn=2.0.0")).json()["token"]
        too_big = json.dumps([None, "1", "echo:a", "ping", {"pad": "x" * 8_000_000}])
        response = await http.post(f"/socket/longpoll?vsn=2.0.0&token={token}", content=too_big)
        assert (response.status_code, response.content) == (400, b"")
        assert log_messages(caplog, "channels_core.adapter") == [
            f"x refused a long-poll request body over 8000000 bytes (content-length: {len(too_big)})"
        ]
        # The session is untouched and the next POST of a sensible size goes through.
        fine = json.dumps([None, "2", "phoenix", "heartbeat", {}])
        assert (await http.post(f"/socket/longpoll?vsn=2.0.0&token={token}", content=fine)).json() == {"status": 200}


# --------------------------------------------------------------------------
# Nothing in a payload is ever evaluated
# --------------------------------------------------------------------------

#: Calls that run or load code from data. ``compile`` here is the builtin, not re.compile.
FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__"}
FORBIDDEN_MODULES = {"pickle", "cPickle", "marshal", "shelve", "dill", "yaml", "subprocess", "code", "codeop"}
FORBIDDEN_ATTRIBUTES = {("os", "system"), ("os", "popen"), ("os", "execv"), ("os", "execvp"), ("os", "spawnv"),
                        ("importlib", "import_module"), ("builtins", "eval"), ("builtins", "exec")}
#: The one allowed exception, and why: show_source imports the module a notebook
#: author names, to read its source; nothing from the wire reaches it.
ALLOWED = {("channels_core/anatomy/source.py", "importlib.import_module")}


def test_the_package_never_evaluates_imports_or_unpickles_what_it_is_given() -> None:
    found = []
    for path in sorted((ROOT / "channels_core").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        tree = ast.parse(path.read_text(), relative)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                found += [(relative, f"import {name}") for name in names if name.split(".")[0] in FORBIDDEN_MODULES]
            elif isinstance(node, ast.Call):
                func = node.func
                if isinstance(func, ast.Name) and func.id in FORBIDDEN_CALLS:
                    found.append((relative, func.id))
                elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) \
                        and (func.value.id, func.attr) in FORBIDDEN_ATTRIBUTES:
                    found.append((relative, f"{func.value.id}.{func.attr}"))
    assert [item for item in found if item not in ALLOWED] == []
    assert sorted(set(found)) == sorted(ALLOWED)  # the exception is still there, and still the only one


DANGEROUS = [
    "__import__('os').system('touch {sentinel}')",
    "{0.__class__.__mro__}",
    "%s%s%s%n",
    "${7*7}",
    "`touch {sentinel}`",
    "!!python/object/apply:os.system ['touch {sentinel}']",
    "<script>alert(1)</script>",
]


async def test_payloads_topics_and_events_are_data_never_code(
    start_server: StartServer, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    sentinel = tmp_path / "pwned"
    server = await start_server(DefaultsEndpoint())
    client = RawClient(await websockets.connect(f"{server.ws_url}/socket/websocket?vsn=2.0.0"))
    await client.send(["1", "1", "echo:a", "phx_join", {}])
    assert await client.recv() == ["1", "1", "echo:a", "phx_reply", OK_EMPTY]
    texts = [text.replace("{sentinel}", str(sentinel)) for text in DANGEROUS]
    payload = {"texts": texts, "__class__": "str", "__proto__": {"admin": True}, "constructor": texts[0]}

    await client.send(["1", "2", "echo:a", "ping", payload])
    # Echoed back unchanged: nothing was interpreted on the way.
    assert await client.recv() == ["1", "2", "echo:a", "phx_reply", {"response": payload, "status": "ok"}]

    # A pickle that would run code if loaded travels as opaque bytes in a binary frame.
    pickled = b"cos\nsystem\n(S'touch " + str(sentinel).encode() + b"'\ntR."
    fields = [b"1", b"3", b"echo:a", b"ping"]
    await client.send(bytes([0, *map(len, fields)]) + b"".join(fields) + pickled)
    reply = await client.recv()
    assert reply == bytes([1, 1, 1, 6, 2]) + b"13echo:aok" + pickled

    # Topics and events with format directives are refused as data and logged literally.
    for ref, topic in enumerate(texts, start=10):
        await client.send([None, str(ref), topic, "phx_join", {}])
        assert await client.recv() == [None, str(ref), topic, "phx_reply",
                                       {"response": {"reason": "unmatched topic"}, "status": "error"}]
    assert log_messages(caplog, "channels_core.socket") == [
        f'ignoring unmatched topic "{topic}" in DefaultsSocket' for topic in texts
    ]
    assert not sentinel.exists()
    await client.close()


# --------------------------------------------------------------------------
# Error answers never leak a traceback or a path
# --------------------------------------------------------------------------

SECRET = "secret-token-1234 in /srv/app/internal/settings.py"


class RaisingSocket(DefaultsSocket):
    def connect(self, params: dict[str, Any], socket: SocketStruct) -> Any:
        if params.get("raise") == "true":
            raise RuntimeError(SECRET)
        return ("ok", socket)


class RaisingEndpoint(Endpoint):
    sockets = [socket("/socket", RaisingSocket, websocket={"check_origin": False},
                      longpoll={"check_origin": False})]


async def raising_plug(scope: dict[str, Any], receive: Any, send: Any) -> None:
    raise RuntimeError(SECRET)


def leaks(text: str | bytes) -> list[str]:
    """What in ``text`` gives the server's insides away."""
    data = text if isinstance(text, str) else text.decode("utf-8", "replace")
    return [marker for marker in ("Traceback", 'File "', ".py", "/srv/", "secret-token", "channels_core",
                                  "RuntimeError", "CallbackError", "DecodeError") if marker in data]


async def test_error_answers_never_carry_a_traceback_or_a_path(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    server = await start_server(RaisingEndpoint(plug=raising_plug))
    seen: list[tuple[str, str | bytes]] = []  # (what was done, what the client got)

    client = RawClient(await websockets.connect(f"{server.ws_url}/socket/websocket?vsn=2.0.0"))
    await client.send(["1", "1", "echo:a", "phx_join", {"raise": True}])
    seen.append(("join raises", await client.connection.recv()))
    await client.send(["2", "2", "echo:b", "phx_join", {}])
    seen.append(("join", await client.connection.recv()))
    await client.send(["2", "3", "echo:b", "raise", {}])
    seen.append(("handle_in raises", await client.connection.recv()))
    await client.send(["4", "4", "echo:c", "phx_join", {}])
    seen.append(("join", await client.connection.recv()))
    await client.send(["4", "5", "echo:c", "bad_return", {}])
    seen.append(("handle_in returns nonsense", await client.connection.recv()))
    await client.send('["not", "a frame"')
    code, reason = await closed(client)
    seen.append(("malformed frame", f"close {code} {reason!r}"))
    assert code == 1011 and reason == ""

    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(f"{server.ws_url}/socket/websocket?vsn=2.0.0&raise=true")
    seen.append(("connect raises (WebSocket)", bytes(refused.value.response.body)))
    async with httpx.AsyncClient(base_url=server.url, timeout=seconds(5)) as http:
        for what, request in [
            ("connect raises (long-poll)", http.get("/socket/longpoll?vsn=2.0.0&raise=true")),
            ("the plug raises", http.get("/anything")),
            ("long-poll with a forged token", http.post("/socket/longpoll?vsn=2.0.0&token=forged", content="[]")),
        ]:
            response = await request
            seen.append((what, f"{response.status_code} {dict(response.headers)} {response.text}"))

    assert [(what, leaks(answer)) for what, answer in seen if leaks(answer)] == []
    # The answers are the generic ones Phoenix gives...
    assert [answer for what, answer in seen if what in ("join raises", "handle_in raises")] == [
        '["1","1","echo:a","phx_reply",{"response":{"reason":"join crashed"},"status":"error"}]',
        '["2","2","echo:b","phx_error",{"reason":"channel_crash"}]',
    ]
    # ...while the log keeps the details for whoever runs the server.
    assert SECRET in caplog.text


# --------------------------------------------------------------------------
# The promise tables name tests that exist
# --------------------------------------------------------------------------

_MENTION = re.compile(r"(?:tests/)?(?P<file>test_\w+\.py)|::(?P<test>test_\w+)")


def _tests_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_")}


@pytest.mark.parametrize("page", ["SECURITY.md", "book/reliability.md"])
def test_every_test_the_promise_pages_name_exists(page: str) -> None:
    text = (ROOT / page).read_text()
    named: list[tuple[str, str]] = []
    current = None
    for match in _MENTION.finditer(text):  # "file.py::a, ::b" names a and b in file.py
        if match["file"]:
            current = match["file"]
        elif current is not None:
            named.append((current, match["test"]))
    assert len(named) > 20
    missing = [(file, test) for file, test in named
               if not (ROOT / "tests" / file).exists() or test not in _tests_in(ROOT / "tests" / file)]
    assert missing == []
