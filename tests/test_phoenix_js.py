"""The official client, phoenix.js, against our server, over WebSocket and LongPoll.

Each test starts the demo app on a real uvicorn server, runs one scenario of
``tests/js/scenario.js`` in Node (the npm package ``phoenix``, unchanged), and
asserts on what phoenix.js observed, one JSON line per observation, in order.
This is the compatibility promise of the project: the client a Phoenix app
ships must work against channels_core as it works against Phoenix.

Node 20 has no global WebSocket, and phoenix.js would quietly fall back to
LongPoll without one; so the script always passes the transport class, and
every scenario asserts which class the connection really is, and where the
server can tell, which transport it saw (``handle_out`` tags ``new_msg`` with
``":websocket"`` or ``":longpoll"``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import pytest

from channels_core.demo.app import SECRET_KEY_BASE, sign_user_token
from channels_core.server import Server
from helpers import ROOT, node_available, seconds

pytestmark = [
    pytest.mark.node,
    pytest.mark.skipif(not node_available(), reason="needs node and node_modules/phoenix (npm ci)"),
]

SCRIPT = ROOT / "tests" / "js" / "scenario.js"
TRANSPORTS = ["websocket", "longpoll"]
CONNECTION_CLASS = {"websocket": "WebSocket", "longpoll": "LongPoll"}
#: What handle_out adds to new_msg: Elixir's inspect of the transport atom.
TRANSPORT_TAG = {"websocket": ":websocket", "longpoll": ":longpoll"}


@dataclass
class Run:
    """What one scenario printed: its observations, and LongPoll's HTTP exchanges apart."""

    lines: list[dict[str, Any]]
    http: list[dict[str, Any]]

    def pop_join_refs(self) -> list[str]:
        """Take the join refs out of the join observations, so the rest compares exactly.

        Their values depend on how many refs phoenix.js handed out before; what the
        tests assert is how they relate (a rejoin gets a new one).
        """
        refs = []
        for line in self.lines:
            if line["event"] == "join" and "join_ref" in line:
                refs.append(line.pop("join_ref"))
        return refs

    def of(self, client: str) -> list[dict[str, Any]]:
        """One client's observations, without the tag, in order."""
        return [{k: v for k, v in line.items() if k != "client"} for line in self.lines if line.get("client") == client]


async def run_js(server: Server, scenario: str, transport: str, timeout: float = 20.0, **options: Any) -> Run:
    """Run ``scenario`` over ``transport`` against ``server`` and parse what it printed."""
    proc = await asyncio.create_subprocess_exec(
        "node", str(SCRIPT), scenario, transport, f"{server.ws_url}/socket", json.dumps(options),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        # The server runs on this event loop: waiting here keeps it serving.
        stdout, stderr = await asyncio.wait_for(proc.communicate(), seconds(timeout))
    except TimeoutError:
        proc.kill()
        stdout, stderr = await proc.communicate()
        raise AssertionError(f"node {scenario} {transport} timed out; printed:\n{stdout.decode()}{stderr.decode()}")
    printed = stdout.decode()
    assert proc.returncode == 0, f"node {scenario} {transport} exited {proc.returncode}:\n{printed}{stderr.decode()}"
    lines = [json.loads(line) for line in printed.splitlines()]
    assert lines[-1] == {"done": True}, printed
    observations = lines[:-1]
    return Run(
        lines=[line for line in observations if line["event"] != "http"],
        http=[line for line in observations if line["event"] == "http"],
    )


def opened(transport: str) -> dict[str, Any]:
    return {"event": "socket_open", "connection": CONNECTION_CLASS[transport]}


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return request.param


# Join


async def test_join_ok_then_user_entered_and_joined_push(demo_server: Server, transport: str) -> None:
    run = await run_js(demo_server, "join", transport, params={"user_id": "u1"})
    join_refs = run.pop_join_refs()
    assert run.lines == [
        opened(transport),
        {"event": "join", "status": "ok", "response": {}},
        # The after_join broadcast, then the push with the assigns.
        {"event": "user_entered", "payload": {"user": "alice"}},
        {"event": "joined", "payload": {"status": "connected", "user_id": "u1"}},
        {"event": "state", "channel": "joined"},
    ]
    assert len(join_refs) == 1 and join_refs[0].isdigit()


@pytest.mark.parametrize(
    ("params", "user_id"),
    [
        ({"user_id": "ada"}, "ada"),
        # phoenix.js URL-encodes params; connect must see them decoded.
        ({"user_id": "ada lovelace & co/é"}, "ada lovelace & co/é"),
        ({}, None),
    ],
    ids=["plain", "needs-encoding", "absent"],
)
async def test_params_reach_connect(demo_server: Server, transport: str, params: dict[str, str], user_id: str | None) -> None:
    run = await run_js(demo_server, "join", transport, params=params)
    joined = [line for line in run.lines if line["event"] == "joined"]
    assert joined == [{"event": "joined", "payload": {"status": "connected", "user_id": user_id}}]
    assert run.lines[0] == opened(transport)


async def test_join_error_is_retried_by_phoenix_js(demo_server: Server, transport: str) -> None:
    run = await run_js(demo_server, "join_error", transport)
    join_refs = run.pop_join_refs()
    assert run.lines == [
        opened(transport),
        {"event": "join", "status": "error", "response": {"reason": "unauthorized"}},
        # phoenix.js does not give up on a refused join: it rejoins after rejoinAfterMs.
        {"event": "join", "status": "error", "response": {"reason": "unauthorized"}},
        {"event": "state", "channel": "errored"},
    ]
    assert join_refs[0] != join_refs[1]


# Connect refused


async def test_refused_connect_websocket(demo_server: Server) -> None:
    run = await run_js(demo_server, "refused", "websocket", params={"reject": "true", "user_id": "u1"})
    assert run.lines == [
        # The upgrade is answered with 403; the ws package reports it as an error event.
        {"event": "socket_error", "error": "Unexpected server response: 403", "connection": "WebSocket"},
        {"event": "socket_close", "code": 1006, "reason": "", "was_clean": False},
        {"event": "state", "connected": False},
    ]


async def test_refused_connect_longpoll(demo_server: Server) -> None:
    run = await run_js(demo_server, "refused", "longpoll", params={"reject": "true", "user_id": "u1"}, record_http=True)
    assert run.http == [
        # HTTP 200 always; the real status is in the body.
        {"event": "http", "method": "GET", "auth_token_header": None, "path": "/socket/longpoll",
         "vsn": "2.0.0", "has_token": False, "status": 200, "body": {"status": 403}},
    ]
    assert run.lines == [
        {"event": "socket_error", "error": 403, "connection": "LongPoll"},
        {"event": "socket_close", "code": 1008, "reason": "forbidden", "was_clean": False},
        {"event": "state", "connected": False},
    ]


# Push and reply


async def test_push_reply_and_handle_out_transport_tag(demo_server: Server, transport: str) -> None:
    payload = {"text": "héllo ✓", "list": [1, 2.5, None, True, "x"], "nested": {"empty": {}, "n": -3}}
    run = await run_js(demo_server, "push_reply", transport, ping_payload=payload)
    run.pop_join_refs()
    assert run.lines == [
        opened(transport),
        {"event": "join", "status": "ok", "response": {}},
        {"event": "joined", "payload": {"status": "connected", "user_id": "u1"}},
        {"event": "reply", "push": "ping", "status": "ok", "response": payload},
        # The reply first, then the intercepted broadcast through handle_out.
        {"event": "reply", "push": "new_msg", "status": "ok", "response": {}},
        {"event": "new_msg", "payload": {"body": "hello", "transport": TRANSPORT_TAG[transport]}},
    ]


@pytest.mark.parametrize(
    ("a", "b"),
    [("websocket", "websocket"), ("longpoll", "longpoll"), ("longpoll", "websocket"), ("websocket", "longpoll")],
    ids=["ws-ws", "lp-lp", "lp-ws", "ws-lp"],
)
async def test_broadcast_reaches_the_other_client_through_handle_out(demo_server: Server, a: str, b: str) -> None:
    run = await run_js(demo_server, "broadcast", a, peer=b)
    run.pop_join_refs()
    assert run.of("a") == [
        opened(a),
        {"event": "join", "status": "ok", "response": {}},
        {"event": "user_entered", "payload": {"user": "alice"}},
        {"event": "joined", "payload": {"status": "connected", "user_id": "ua"}},
        {"event": "user_entered", "payload": {"user": "bob"}},
        {"event": "reply", "push": "new_msg", "status": "ok", "response": {}},
        # Each copy is pushed by the receiver's own channel process, so it names the receiver's transport.
        {"event": "new_msg", "payload": {"body": "from a", "transport": TRANSPORT_TAG[a]}},
        {"event": "new_msg", "payload": {"body": "from b", "transport": TRANSPORT_TAG[a]}},
    ]
    assert run.of("b") == [
        opened(b),
        {"event": "join", "status": "ok", "response": {}},
        {"event": "user_entered", "payload": {"user": "bob"}},
        {"event": "joined", "payload": {"status": "connected", "user_id": "ub"}},
        {"event": "new_msg", "payload": {"body": "from a", "transport": TRANSPORT_TAG[b]}},
        {"event": "reply", "push": "new_msg", "status": "ok", "response": {}},
        {"event": "new_msg", "payload": {"body": "from b", "transport": TRANSPORT_TAG[b]}},
    ]


async def test_bench_broadcast_arrives_in_order_before_the_reply(demo_server: Server, transport: str) -> None:
    run = await run_js(demo_server, "bench", transport, n=5)
    run.pop_join_refs()
    assert run.lines == [
        opened(transport),
        {"event": "join", "status": "ok", "response": {}},
        {"event": "joined", "payload": {"status": "connected", "user_id": "u1"}},
        *({"event": "bench_msg", "payload": {"i": i}} for i in range(1, 6)),
        {"event": "reply", "push": "bench_broadcast", "status": "ok", "response": {}},
    ]


async def test_binary_payloads_over_websocket(demo_server: Server) -> None:
    run = await run_js(demo_server, "binary", "websocket")
    run.pop_join_refs()
    assert run.lines == [
        opened("websocket"),
        {"event": "join", "status": "ok", "response": {}},
        {"event": "joined", "payload": {"status": "connected", "user_id": "u1"}},
        # The binary push comes before the binary reply; both decode to ArrayBuffers.
        {"event": "binary_event", "payload": {"binary": [0, 1]}},
        {"event": "reply", "push": "binary_event", "status": "ok", "response": {"binary": [1, 2, 3, 4]}},
        {"event": "reply", "push": "ping", "status": "ok", "response": {"binary": [9, 8, 7]}},
    ]


# Faults and leaving


async def test_crash_gives_phx_error_and_phoenix_js_rejoins(
    demo_server: Server, transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="channels_core.channel_server")
    run = await run_js(demo_server, "crash", transport)
    join_refs = run.pop_join_refs()
    assert run.lines == [
        opened(transport),
        {"event": "join", "status": "ok", "response": {}},
        {"event": "joined", "payload": {"status": "connected", "user_id": "u1"}},
        # boom gets no reply; terminate still runs, then the socket reports the crash.
        {"event": "you_left", "payload": {"message": "bye!"}},
        {"event": "channel_error", "payload": {"reason": "channel_crash"}},
        {"event": "join", "status": "ok", "response": {}},
        {"event": "joined", "payload": {"status": "connected", "user_id": "u1"}},
        # The socket lived on: the rejoin went over the same connection.
        {"event": "state", "channel": "joined", "connected": True, "same_connection": True},
    ]
    assert join_refs[0] != join_refs[1]
    crashes = [r for r in caplog.records if r.name == "channels_core.channel_server"]
    assert [r.getMessage() for r in crashes] == [
        "channel RoomChannel for 'room:lobby' crashed handling event 'boom': RuntimeError('boom')"
    ]


async def test_leave_is_acknowledged_by_phoenix_js_before_the_server_answers(demo_server: Server, transport: str) -> None:
    run = await run_js(demo_server, "leave", transport)
    run.pop_join_refs()
    (called,) = [line for line in run.lines if line["event"] == "leave_called"]
    (returned,) = [line for line in run.lines if line["event"] == "leave_returned"]
    join_ref, leave_ref = called["join_ref"], returned["ref"]
    assert run.lines == [
        opened(transport),
        {"event": "join", "status": "ok", "response": {}},
        {"event": "joined", "payload": {"status": "connected", "user_id": "u1"}},
        {"event": "leave_called", "join_ref": join_ref},
        # phoenix.js 1.8 answers the leave itself, synchronously (the channel is already
        # "leaving", so it cannot push): onClose("leave"), then the leave push's "ok".
        {"event": "channel_close", "payload": "leave"},
        {"event": "reply", "push": "leave", "status": "ok", "response": {}},
        {"event": "leave_returned", "ref": leave_ref, "channel": "closed", "channels": 0},
        # The server's answer still arrives, in Phoenix's order, but no channel is left to
        # receive it: you_left reaches the socket, not a channel.on("you_left") handler.
        {"event": "wire", "topic": "room:lobby", "wire_event": "phx_reply",
         "payload": {"response": {}, "status": "ok"}, "ref": leave_ref, "join_ref": join_ref},
        {"event": "wire", "topic": "room:lobby", "wire_event": "phx_close",
         "payload": {}, "ref": join_ref, "join_ref": join_ref},
        {"event": "wire", "topic": "room:lobby", "wire_event": "you_left",
         "payload": {"message": "bye!"}, "ref": None, "join_ref": join_ref},
        {"event": "state", "channel": "closed", "channels": 0, "connected": True},
    ]


# Authentication


async def test_auth_token_picks_the_user(demo_server: Server, transport: str) -> None:
    token = sign_user_token("u7")
    # The params say otherwise: the signed token, not the query string, decides.
    run = await run_js(demo_server, "join", transport, auth_token=token, params={"user_id": "mallory"},
                       record_http=transport == "longpoll")
    run.pop_join_refs()
    assert run.lines == [
        opened(transport),
        {"event": "join", "status": "ok", "response": {}},
        {"event": "user_entered", "payload": {"user": "alice"}},
        {"event": "joined", "payload": {"status": "connected", "user_id": "u7"}},
        {"event": "state", "channel": "joined"},
    ]
    if transport == "longpoll":
        # LongPoll cannot use a subprotocol: phoenix.js sends the token as a header on every poll.
        polls = [exchange for exchange in run.http if exchange["method"] == "GET"]
        assert polls and {exchange["auth_token_header"] for exchange in polls} == {token}


def _foreign_token() -> str:
    from channels_core.token import sign

    return sign(SECRET_KEY_BASE + " but another app", "user socket", "u7")


@pytest.mark.parametrize(
    ("make_token", "why"),
    [
        (lambda: "not-a-token", "invalid token"),
        (_foreign_token, "invalid token"),
        (lambda: sign_user_token("u7", signed_at=time.time() - 2 * 86400), "expired token"),
    ],
    ids=["garbage", "other-secret", "expired"],
)
async def test_bad_auth_token_is_refused(
    demo_server: Server, transport: str, make_token: Any, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="channels_core.demo")
    run = await run_js(demo_server, "refused", transport, auth_token=make_token(), params={"user_id": "u1"},
                       record_http=True)
    if transport == "websocket":
        assert run.lines[0] == {"event": "socket_error", "error": "Unexpected server response: 403",
                                "connection": "WebSocket"}
    else:
        assert [(h["method"], h["status"], h["body"]) for h in run.http] == [("GET", 200, {"status": 403})]
        assert run.lines[0] == {"event": "socket_error", "error": 403, "connection": "LongPoll"}
    assert run.lines[-1] == {"event": "state", "connected": False}
    assert [r.getMessage() for r in caplog.records if r.name == "channels_core.demo"] == [
        f"refused a connection with a bad auth token: {why}"
    ]


# Heartbeats


async def test_heartbeats_on_phoenix_js_timer_over_websocket(demo_server: Server) -> None:
    run = await run_js(demo_server, "heartbeat", "websocket", heartbeat_interval_ms=100, count=3)
    assert run.lines[:2] == [opened("websocket"), {"event": "skip_heartbeat", "value": False}]
    replies = run.lines[2:-1]
    assert [{k: v for k, v in r.items() if k != "ref"} for r in replies] == [
        {"event": "wire", "topic": "phoenix", "wire_event": "phx_reply",
         "payload": {"response": {}, "status": "ok"}, "join_ref": None},
    ] * 3
    # Each heartbeat has its own ref, and phoenix.js waited for one reply before the next.
    assert len({r["ref"] for r in replies}) == 3
    assert run.lines[-1] == {"event": "state", "connected": True, "same_connection": True}


async def test_heartbeat_replies_over_longpoll(demo_server: Server) -> None:
    # phoenix.js's LongPoll sets skipHeartbeat: a poll every window_ms is its liveness
    # check. Socket.ping() still sends the same heartbeat message, which must be answered.
    run = await run_js(demo_server, "heartbeat", "longpoll", heartbeat_interval_ms=100, count=3)
    assert run.lines[:2] == [opened("longpoll"), {"event": "skip_heartbeat", "value": True}]
    body = run.lines[2:-1]
    reply = {"event": "wire", "topic": "phoenix", "wire_event": "phx_reply",
             "payload": {"response": {}, "status": "ok"}, "join_ref": None}
    assert [{k: v for k, v in line.items() if k != "ref"} for line in body] == [
        reply, {"event": "pong", "count": 1},
        reply, {"event": "pong", "count": 2},
        reply, {"event": "pong", "count": 3},
    ]
    assert len({line["ref"] for line in body if line["event"] == "wire"}) == 3
    assert run.lines[-1] == {"event": "state", "connected": True, "same_connection": True}
