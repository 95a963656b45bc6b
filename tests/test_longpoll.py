"""The LongPoll transport against the golden transcripts of a real Phoenix server.

Every request of ``lp_v1_core``, ``lp_v2_core`` and ``lp_errors`` is replayed over
HTTP against a real server, and every response is compared with Phoenix's: the HTTP
status, the content type, the JSON body, and each frame inside ``messages``. Then
the paths the transcripts do not show: sessions that time out, tampered and
expired tokens, malformed frames, CORS, auth tokens, held polls.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest

from channels_core import process, tracing
from channels_core.channel import Channel
from channels_core.demo import create_app, sign_user_token
from channels_core.demo.app import DemoEndpoint, RoomChannel, UserSocket
from channels_core.endpoint import socket
from channels_core.server import Server
from channels_core.socket import channel
from channels_core.token import sign, verify
from channels_core.transports import longpoll

from helpers import GOLDEN, seconds

PATH = "/socket/longpoll"
JSON_TYPE = "application/json; charset=utf-8"
#: A poll window short enough to wait out in a test; the golden one is 10 s.
WINDOW_MS = int(400 * seconds(1))

StartServer = Callable[..., Awaitable[Server]]


class RecordingChannel(Channel):
    """``rec:*``: joins, answers ``ping``, and records each ``terminate``."""

    terminated: ClassVar[asyncio.Queue[tuple[str, Any]]]

    def join(self, topic: str, payload: Any, socket: Any) -> tuple[Any, ...]:
        return ("ok", socket)

    def handle_in(self, event: str, payload: Any, socket: Any) -> tuple[Any, ...]:
        return ("reply", ("ok", payload), socket)

    def terminate(self, reason: Any, socket: Any) -> None:
        type(self).terminated.put_nowait((socket.topic, reason))


class BlockingChannel(Channel):
    """``block:*``: a join that waits for the test to release it, to keep a session busy."""

    release: ClassVar[asyncio.Event]

    async def join(self, topic: str, payload: Any, socket: Any) -> tuple[Any, ...]:
        await type(self).release.wait()
        return ("ok", socket)


class RecordingSocket(UserSocket):
    channels = [
        channel("room:*", RoomChannel),
        channel("rec:*", RecordingChannel),
        channel("block:*", BlockingChannel),
    ]


def _endpoint_class(window_ms: int, socket_class: type = UserSocket, **options: Any) -> type[DemoEndpoint]:
    longpoll_options = {"check_origin": "conn", "auth_token": True, "window_ms": window_ms, **options}

    class ShortWindowEndpoint(DemoEndpoint):
        sockets = [
            socket("/socket", socket_class, websocket={"check_origin": "conn"}, longpoll=longpoll_options),
        ]

    return ShortWindowEndpoint


@pytest.fixture
async def short_window_server(start_server: StartServer) -> Server:
    """The demo app, with a poll window of ``WINDOW_MS`` instead of 10 s."""
    return await start_server(create_app(endpoint_class=_endpoint_class(WINDOW_MS)))


@pytest.fixture
async def recording_server(start_server: StartServer) -> Server:
    """The demo app plus ``rec:*``, with a short window (so sessions time out quickly)."""
    RecordingChannel.terminated = asyncio.Queue()
    return await start_server(create_app(endpoint_class=_endpoint_class(WINDOW_MS, RecordingSocket)))


@pytest.fixture
async def http(demo_server: Server) -> Any:
    async with httpx.AsyncClient(base_url=demo_server.url, timeout=seconds(15)) as client:
        yield client


# Helpers


def load_golden(name: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The transcript's (request, response) pairs, in order."""
    events = [json.loads(line) for line in (GOLDEN / f"{name}.jsonl").read_text().splitlines() if line.strip()]
    requests = [e for e in events if e["dir"] == "↑"]
    responses = [e for e in events if e["dir"] == "↓"]
    assert len(requests) == len(responses)
    return list(zip(requests, responses))


def phoenix_1_8(frame: Any) -> Any:
    """Apply the one documented difference between the 1.7.24 transcripts and Phoenix 1.8.

    Phoenix 1.8, which we follow, sends a crashed channel's ``phx_error`` with payload
    ``{"reason": "channel_crash"}`` where 1.7.24 sent ``{}`` (see golden/README.md).
    """
    if isinstance(frame, list) and len(frame) == 5 and frame[3] == "phx_error" and frame[4] == {}:
        return [*frame[:4], {"reason": "channel_crash"}]
    if isinstance(frame, dict) and frame.get("event") == "phx_error" and frame.get("payload") == {}:
        return {**frame, "payload": {"reason": "channel_crash"}}
    return frame


def parse_frame(text: str) -> Any:
    """A frame from ``messages``: JSON for text frames, the raw string for binary ones."""
    return json.loads(text) if text[:1] in ("[", "{") else text


def with_token(url: str, tokens: dict[str, str]) -> str:
    """The transcript's URL as a path for our server, its token swapped for ours."""
    parts = urlsplit(url)
    query = [(k, tokens.get(v, v) if k == "token" else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return f"{parts.path}?{urlencode(query)}"


def match_token(golden: str, ours: Any, tokens: dict[str, str]) -> None:
    """Ours is present, and equal where the transcript's are equal (and only there)."""
    assert isinstance(ours, str) and ours
    if golden in tokens:
        assert tokens[golden] == ours
    else:
        assert ours not in tokens.values(), "a new session must get a new token"
        tokens[golden] = ours


async def request(client: httpx.AsyncClient, method: str, url: str, body: str | None = None,
                  content_type: str | None = None, headers: dict[str, str] | None = None) -> httpx.Response:
    headers = dict(headers or {})
    if content_type is not None:
        headers["content-type"] = content_type
    return await client.request(method, url, content=body.encode() if body is not None else None, headers=headers)


async def new_session(client: httpx.AsyncClient, query: str = "vsn=2.0.0&user_id=u1", **kwargs: Any) -> str:
    response = await client.get(f"{PATH}?{query}", **kwargs)
    body = response.json()
    assert body["status"] == 410 and body["messages"] == []
    return body["token"]


async def post(client: httpx.AsyncClient, token: str, *frames: Any, ndjson: bool = False) -> dict[str, Any]:
    if ndjson:
        body = "\n".join(f if isinstance(f, str) else json.dumps(f) for f in frames)
        content_type = "application/x-ndjson"
    else:
        (frame,) = frames
        body = frame if isinstance(frame, str) else json.dumps(frame)
        content_type = "application/json"
    response = await request(client, "POST", f"{PATH}?vsn=2.0.0&token={token}", body, content_type)
    assert response.status_code == 200
    return response.json()


async def poll(client: httpx.AsyncClient, token: str) -> dict[str, Any]:
    response = await client.get(f"{PATH}?vsn=2.0.0&token={token}")
    assert response.status_code == 200
    assert response.headers["content-type"] == JSON_TYPE
    return response.json()


async def poll_frames(client: httpx.AsyncClient, token: str, count: int) -> list[Any]:
    """Poll until ``count`` frames have arrived, as a long-poll client does."""
    frames: list[Any] = []
    deadline = time.monotonic() + seconds(5)
    while len(frames) < count:
        assert time.monotonic() < deadline, f"only {frames} arrived"
        body = await poll(client, token)
        assert body["status"] in (200, 204) and body["token"] == token
        frames += [parse_frame(m) for m in body["messages"]]
    return frames


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + seconds(timeout)
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def session_of(server: Server, token: str) -> longpoll.Session:
    """The live session a token names."""
    endpoint = server.app
    data = verify(endpoint.secret_key_base, longpoll.TOKEN_SALT, token)
    return longpoll.sessions(endpoint)[data["session"]]


def live_roles(prefix: str) -> list[Any]:
    return list(process.iter_processes(prefix))


# The golden transcripts


@pytest.mark.parametrize("name", ["lp_v1_core", "lp_v2_core", "lp_errors"])
async def test_replays_golden_transcript(name: str, short_window_server: Server) -> None:
    tokens: dict[str, str] = {}
    async with httpx.AsyncClient(base_url=short_window_server.url, timeout=seconds(15)) as client:
        for sent, golden in load_golden(name):
            url = with_token(sent["url"], tokens)
            started = time.monotonic()
            response = await request(client, sent["method"], url, sent.get("body"), sent.get("content_type"))
            elapsed = time.monotonic() - started
            context = f"{name} seq {sent['seq']}: {sent['method']} {url}"

            assert response.status_code == golden["http_status"], context
            assert response.headers.get("content-type") == golden["content_type"], context
            assert response.headers["access-control-allow-origin"] == "*", context
            if golden["body"] == "":
                assert response.content == b"", context
                continue

            expected = json.loads(golden["body"])
            ours = response.json()
            if "token" in expected:
                match_token(expected.pop("token"), ours.pop("token", None), tokens)
            if "messages" not in expected:
                assert ours == expected, context
                continue
            # One poll, one golden response: a POST answers only once its frame is
            # handled, so what the frame caused is buffered before the next poll.
            want = [phoenix_1_8(parse_frame(m)) for m in expected.pop("messages")]
            assert [parse_frame(m) for m in ours.pop("messages")] == want, context
            assert ours == expected, context
            if expected["status"] == 204:
                # Held for the whole window, as Phoenix holds it for window_ms.
                assert elapsed >= WINDOW_MS / 1000 * 0.9, context


def test_transcripts_show_what_the_replay_relies_on() -> None:
    # The replay is only as good as the transcripts: check they cover what we claim.
    v2 = load_golden("lp_v2_core")
    assert any(s.get("content_type") == "application/x-ndjson" for s, _ in v2)
    assert json.loads(v2[-1][1]["body"])["status"] == 204
    bodies = [json.loads(r["body"]) for _, r in load_golden("lp_errors") if r["body"]]
    assert [b["status"] for b in bodies] == [403, 403, 410, 410, 410]


# Wire details


async def test_binary_frames_travel_as_one_code_point_per_byte(http: httpx.AsyncClient) -> None:
    token = await new_session(http)
    await post(http, token, ["1", "1", "room:lobby", "phx_join", {}])
    await poll_frames(http, token, 3)
    # Bytes above 0x7f show the encoding is one code point per byte: not UTF-8, not base64.
    push = bytes([0, 1, 1, 10, 12]) + b"16room:lobbybinary_event" + bytes([0xE9, 0xFF])
    assert await post(http, token, base64.b64encode(push).decode(), ndjson=True) == {"status": 200}
    texts: list[str] = []
    frames: list[str] = []
    while len(frames) < 2:
        response = await http.get(f"{PATH}?vsn=2.0.0&token={token}")
        texts.append(response.text)
        frames += response.json()["messages"]
    assert frames == [
        "\x00\x01\n\x0c1room:lobbybinary_event\x00\x01",
        "\x01\x01\x01\n\x0216room:lobbyok\xe9\xff\x03\x04",
    ]
    # Jason writes non-ASCII as UTF-8, not as \u escapes, and so do we.
    assert "\\u00e9" not in "".join(texts) and "é" in "".join(texts)


async def test_token_is_accepted_in_the_header_newer_clients_use(http: httpx.AsyncClient) -> None:
    token = await new_session(http)
    header = {"x-phoenix-longpoll-token": token}
    response = await http.post(f"{PATH}?vsn=2.0.0", content=b'[null,"1","phoenix","heartbeat",{}]', headers=header)
    assert response.json() == {"status": 200}
    response = await http.get(f"{PATH}?vsn=2.0.0", headers=header)
    assert response.json() == {
        "messages": ['[null,"1","phoenix","phx_reply",{"response":{},"status":"ok"}]'],
        "status": 200,
        "token": token,
    }
    assert response.headers["cache-control"] == "no-store"


async def test_held_poll_returns_as_soon_as_a_frame_arrives(http: httpx.AsyncClient, demo_server: Server) -> None:
    token = await new_session(http)
    held = asyncio.create_task(poll(http, token))
    # Wait until the session holds the poll, with nothing to send it yet.
    await wait_until(lambda: session_of(demo_server, token).server.client is not None)
    assert not held.done()
    assert await post(http, token, [None, "7", "phoenix", "heartbeat", {}]) == {"status": 200}
    body = await asyncio.wait_for(held, seconds(5))
    assert body["status"] == 200
    assert [parse_frame(m) for m in body["messages"]] == [
        [None, "7", "phoenix", "phx_reply", {"response": {}, "status": "ok"}]
    ]


async def test_batch_is_cut_at_one_hundred_frames(http: httpx.AsyncClient) -> None:
    token = await new_session(http)
    frames = [[None, str(i), "phoenix", "heartbeat", {}] for i in range(1, 102)]
    assert await post(http, token, *frames, ndjson=True) == {"status": 200}
    replies = await poll_frames(http, token, 100)
    assert [f[1] for f in replies] == [str(i) for i in range(1, 101)]


async def test_batch_accepts_crlf_line_ends(http: httpx.AsyncClient) -> None:
    token = await new_session(http)
    body = '[null,"1","phoenix","heartbeat",{}]\r\n[null,"2","phoenix","heartbeat",{}]'
    response = await request(http, "POST", f"{PATH}?vsn=2.0.0&token={token}", body, "application/x-ndjson")
    assert response.json() == {"status": 200}
    assert [f[1] for f in await poll_frames(http, token, 2)] == ["1", "2"]


# CORS and methods


async def test_options_preflight_answers_cors_headers(http: httpx.AsyncClient) -> None:
    response = await http.options(
        f"{PATH}?vsn=2.0.0",
        headers={"access-control-request-headers": "x-phoenix-longpoll-token, content-type"},
    )
    assert response.status_code == 200
    assert response.content == b""
    assert "content-type" not in response.headers
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["access-control-allow-headers"] == "x-phoenix-longpoll-token, content-type"
    assert response.headers["access-control-allow-methods"] == "get, post, options"
    assert response.headers["access-control-max-age"] == "3600"


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
async def test_other_methods_are_bad_requests(method: str, http: httpx.AsyncClient) -> None:
    response = await http.request(method, f"{PATH}?vsn=2.0.0", content=b"x")
    assert response.status_code == 400
    assert response.content == b""
    assert response.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-methods" not in response.headers


async def test_foreign_origin_is_refused_in_the_body(http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, "channels_core.transports.longpoll")
    response = await http.get(f"{PATH}?vsn=2.0.0", headers={"origin": "http://evil.example"})
    assert response.status_code == 200
    assert response.json() == {"status": 403}
    assert response.headers["access-control-allow-origin"] == "*"
    assert "could not check origin for long-poll transport: origin of the request is http://evil.example" \
        in caplog.text


# Sessions and tokens


async def test_session_ends_after_no_poll_for_one_and_a_half_windows(
    recording_server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "channels_core.transports.longpoll")
    endpoint = recording_server.app
    async with httpx.AsyncClient(base_url=recording_server.url, timeout=seconds(15)) as client:
        token = await new_session(client)
        await post(client, token, ["1", "1", "rec:a", "phx_join", {}])
        assert await poll_frames(client, token, 1) == [
            ["1", "1", "rec:a", "phx_reply", {"response": {}, "status": "ok"}]
        ]
        assert len(longpoll.sessions(endpoint)) == 1
        # No more polls: the session stops, and its channel with it.
        topic, reason = await asyncio.wait_for(RecordingChannel.terminated.get(), seconds(5))
        assert (topic, reason) == ("rec:a", ("shutdown", "inactive"))
        await wait_until(lambda: not live_roles("channel") and not live_roles("longpoll"))
        assert longpoll.sessions(endpoint) == {}
        assert f"ended: no poll for {int(WINDOW_MS * 1.5)} ms" in caplog.text

        assert await post(client, token, [None, "2", "phoenix", "heartbeat", {}]) == {"status": 410}
        fresh = await new_session(client, headers={"x-phoenix-longpoll-token": token})
        assert fresh != token
        assert "is gone" in caplog.text


async def test_tampered_token_is_refused(http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "channels_core.transports.longpoll")
    token = await new_session(http)
    last = token[-1]
    tampered = token[:-1] + ("A" if last != "A" else "B")
    assert await post(http, tampered, [None, "1", "phoenix", "heartbeat", {}]) == {"status": 410}
    assert "refused a long-poll session token: invalid token" in caplog.text
    fresh = await new_session(http, f"vsn=2.0.0&user_id=u1&token={tampered}")
    assert fresh not in (token, tampered)
    # The real session is untouched.
    assert await post(http, token, [None, "2", "phoenix", "heartbeat", {}]) == {"status": 200}
    assert (await poll_frames(http, token, 1))[0][1] == "2"


async def test_expired_token_is_refused(http: httpx.AsyncClient, demo_server: Server,
                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "channels_core.transports.longpoll")
    endpoint = demo_server.app
    token = await new_session(http)
    data = verify(endpoint.secret_key_base, longpoll.TOKEN_SALT, token)
    max_age = 1_209_600  # Phoenix's crypto max_age, two weeks
    old = sign(endpoint.secret_key_base, longpoll.TOKEN_SALT, data, signed_at=time.time() - max_age - 60)
    assert await post(http, old, [None, "1", "phoenix", "heartbeat", {}]) == {"status": 410}
    assert "refused a long-poll session token: expired token" in caplog.text
    assert await new_session(http, f"vsn=2.0.0&token={old}") != token


async def test_token_from_another_endpoint_is_refused(
    http: httpx.AsyncClient, start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "channels_core.transports.longpoll")
    other = await start_server()  # same secret, so the token verifies: the session is not there
    async with httpx.AsyncClient(base_url=other.url, timeout=seconds(15)) as elsewhere:
        foreign = await new_session(elsewhere)
        assert await post(http, foreign, [None, "1", "phoenix", "heartbeat", {}]) == {"status": 410}
        assert "is gone" in caplog.text
        assert await post(elsewhere, foreign, [None, "1", "phoenix", "heartbeat", {}]) == {"status": 200}
        assert (await poll_frames(elsewhere, foreign, 1))[0][1] == "1"
    # A token signed with another secret does not even verify.
    forged = sign("another secret entirely, 64 bytes or so ....................", longpoll.TOKEN_SALT,
                  verify(other.app.secret_key_base, longpoll.TOKEN_SALT, foreign))
    assert await post(http, forged, [None, "1", "phoenix", "heartbeat", {}]) == {"status": 410}


async def test_token_of_unknown_format_is_refused(
    http: httpx.AsyncClient, demo_server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "channels_core.transports.longpoll")
    odd = sign(demo_server.app.secret_key_base, longpoll.TOKEN_SALT, {"v": 2, "session": "x"})
    assert await post(http, odd, [None, "1", "phoenix", "heartbeat", {}]) == {"status": 410}
    assert "refused a long-poll session token: unknown format {'v': 2, 'session': 'x'}" in caplog.text


@pytest.fixture
async def blocking_server(start_server: StartServer) -> Any:
    """A server whose ``block:*`` joins wait for ``BlockingChannel.release``."""
    BlockingChannel.release = asyncio.Event()
    RecordingChannel.terminated = asyncio.Queue()
    pubsub_timeout_ms = int(100 * seconds(1))
    endpoint = _endpoint_class(WINDOW_MS, RecordingSocket, pubsub_timeout_ms=pubsub_timeout_ms)
    server = await start_server(create_app(endpoint_class=endpoint))
    try:
        yield server
    finally:
        BlockingChannel.release.set()  # a join still waiting would outlive the test


async def test_busy_session_times_out_frames_and_resumes(
    blocking_server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "channels_core.transports.longpoll")
    async with httpx.AsyncClient(base_url=blocking_server.url, timeout=seconds(15)) as client:
        token = await new_session(client)
        # The session is stuck in the join: no ack within window_ms is Phoenix's 408.
        assert await post(client, token, ["1", "1", "block:a", "phx_join", {}]) == {"status": 408}
        assert f"did not handle a frame within window_ms ({WINDOW_MS} ms)" in caplog.text
        # It does not even confirm it is there within pubsub_timeout_ms: gone, as far as we know.
        assert await post(client, token, [None, "2", "phoenix", "heartbeat", {}]) == {"status": 410}
        assert f"did not answer within pubsub_timeout_ms ({int(100 * seconds(1))} ms)" in caplog.text
        assert await new_session(client, f"vsn=2.0.0&token={token}") != token


async def test_session_that_ends_while_requests_wait(
    blocking_server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "channels_core.transports.longpoll")
    async with httpx.AsyncClient(base_url=blocking_server.url, timeout=seconds(15)) as client:
        token = await new_session(client)
        (session,) = longpoll.sessions(blocking_server.app).values()
        joining = asyncio.create_task(post(client, token, ["1", "1", "block:a", "phx_join", {}]))
        await wait_until(lambda: len(live_roles("longpoll request")) == 1)
        resuming = asyncio.create_task(post(client, token, [None, "2", "phoenix", "heartbeat", {}]))
        await wait_until(lambda: len(live_roles("longpoll request")) == 2)
        process.exit(session.pid, ("shutdown", "test"))
        # The POST whose frame never got handled, and the one that never got in.
        assert await asyncio.wait_for(joining, seconds(5)) == {"status": 408}
        assert await asyncio.wait_for(resuming, seconds(5)) == {"status": 410}
        assert f"long-poll session {session.connection_id} ended before it could be resumed" in caplog.text
    # The channel, released into a join whose transport is gone, stops at once.
    BlockingChannel.release.set()
    await wait_until(lambda: not live_roles("channel"))


async def test_oversized_base64_line_is_a_bad_request(
    http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "channels_core.transports.longpoll")
    monkeypatch.setattr(longpoll, "MAX_BASE64_SIZE", 8)  # 10 MB in production
    token = await new_session(http)
    response = await request(http, "POST", f"{PATH}?vsn=2.0.0&token={token}", "AAECAwQFBgcI", "application/x-ndjson")
    assert response.status_code == 400
    assert "refused a long-poll batch: a 12-byte base64 frame exceeds 8 bytes" in caplog.text


async def test_malformed_frame_crashes_only_its_session(
    http: httpx.AsyncClient, demo_server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, "channels_core.transports.longpoll")
    doomed, healthy = await new_session(http), await new_session(http, "vsn=2.0.0&user_id=u2")
    for token in (doomed, healthy):
        await post(http, token, ["1", "1", "room:lobby", "phx_join", {}])
    await poll_frames(http, doomed, 4)  # its join, and u2's user_entered after it
    await poll_frames(http, healthy, 3)
    held = asyncio.create_task(poll(http, doomed))
    await wait_until(lambda: session_of(demo_server, doomed).server.client is not None)

    # No ack ever comes for a frame that crashed its session: Phoenix's 408.
    assert await post(http, doomed, "[not json") == {"status": 408}
    assert "long-poll session longpoll-" in caplog.text
    assert "crashed: v2 text frame is not valid JSON" in caplog.text
    # A poll held on the crashed session is answered at once, as after its window.
    assert (await asyncio.wait_for(held, seconds(5)))["status"] == 204
    assert await post(http, doomed, [None, "2", "phoenix", "heartbeat", {}]) == {"status": 410}

    # The other session, and its channel, carry on.
    assert await post(http, healthy, ["1", "2", "room:lobby", "ping", {"p": 1}]) == {"status": 200}
    assert await poll_frames(http, healthy, 1) == [
        ["1", "2", "room:lobby", "phx_reply", {"response": {"p": 1}, "status": "ok"}]
    ]


async def test_binary_frame_that_does_not_decode_crashes_its_session(
    http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, "channels_core.transports.longpoll")
    token = await new_session(http)
    frame = base64.b64encode(bytes([1, 0, 0, 0, 0])).decode()
    assert await post(http, token, frame, ndjson=True) == {"status": 408}
    assert "crashed: v2 binary frame kind 1 is not a push (0)" in caplog.text


async def test_batch_line_neither_json_nor_base64_is_a_bad_request(
    http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "channels_core.transports.longpoll")
    token = await new_session(http)
    body = '[null,"1","phoenix","heartbeat",{}]\nnot base64!'
    response = await request(http, "POST", f"{PATH}?vsn=2.0.0&token={token}", body, "application/x-ndjson")
    assert response.status_code == 400
    assert response.content == b""
    assert "refused a long-poll batch: a line is neither a JSON array nor base64" in caplog.text
    # Lines before the bad one were handled, as Phoenix handles them one by one.
    assert (await poll_frames(http, token, 1))[0][1] == "1"


async def test_socket_disconnect_ends_the_session(http: httpx.AsyncClient, demo_server: Server) -> None:
    token = await new_session(http, "vsn=2.0.0&user_id=u7")
    await post(http, token, ["1", "1", "room:lobby", "phx_join", {}])
    await poll_frames(http, token, 3)
    demo_server.app.disconnect("user_sockets:u7")
    await wait_until(lambda: not live_roles("longpoll session") and not live_roles("channel"))
    assert await post(http, token, [None, "2", "phoenix", "heartbeat", {}]) == {"status": 410}


async def test_client_that_goes_away_does_not_keep_its_poll(http: httpx.AsyncClient, demo_server: Server) -> None:
    token = await new_session(http)
    held = asyncio.create_task(poll(http, token))
    await wait_until(lambda: session_of(demo_server, token).server.client is not None)
    held.cancel()  # httpx closes the connection of a cancelled request
    await asyncio.gather(held, return_exceptions=True)
    # The request's process ends with its connection, not after the 10 s window.
    await wait_until(lambda: not live_roles("longpoll request"))
    assert await post(http, token, [None, "1", "phoenix", "heartbeat", {}]) == {"status": 200}


# Connect


async def test_auth_token_header_reaches_connect(http: httpx.AsyncClient) -> None:
    token = await new_session(http, "vsn=2.0.0", headers={"x-phoenix-authtoken": sign_user_token("u9")})
    await post(http, token, ["1", "1", "room:lobby", "phx_join", {"user": "lp"}])
    frames = await poll_frames(http, token, 3)
    assert frames[2] == ["1", None, "room:lobby", "joined", {"status": "connected", "user_id": "u9"}]


async def test_bad_auth_token_is_refused(http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "channels_core.demo")
    response = await http.get(f"{PATH}?vsn=2.0.0", headers={"x-phoenix-authtoken": "forged"})
    assert response.json() == {"status": 403}
    assert "refused a connection with a bad auth token: invalid token" in caplog.text


async def test_auth_token_header_is_ignored_unless_enabled(start_server: StartServer) -> None:
    server = await start_server(create_app(endpoint_class=_endpoint_class(WINDOW_MS, auth_token=False)))
    async with httpx.AsyncClient(base_url=server.url, timeout=seconds(15)) as client:
        token = await new_session(client, "vsn=2.0.0&user_id=u3", headers={"x-phoenix-authtoken": "forged"})
        await post(client, token, ["1", "1", "room:lobby", "phx_join", {}])
        frames = await poll_frames(client, token, 3)
        assert frames[2][4] == {"status": "connected", "user_id": "u3"}


async def test_no_vsn_means_v1(http: httpx.AsyncClient) -> None:
    token = await new_session(http, "user_id=u1")
    await post(http, token, {"topic": "phoenix", "event": "heartbeat", "payload": {}, "ref": "1"})
    assert await poll_frames(http, token, 1) == [
        {"event": "phx_reply", "payload": {"response": {}, "status": "ok"}, "ref": "1", "topic": "phoenix"}
    ]


# Shutdown and tracing


async def test_endpoint_shutdown_stops_sessions_and_channels(start_server: StartServer) -> None:
    RecordingChannel.terminated = asyncio.Queue()
    server = await start_server(create_app(endpoint_class=_endpoint_class(10_000, RecordingSocket)))
    async with httpx.AsyncClient(base_url=server.url, timeout=seconds(15)) as client:
        token = await new_session(client)
        await post(client, token, ["1", "1", "rec:b", "phx_join", {}])
    await server.stop()
    assert live_roles("longpoll") == []
    topic, reason = await asyncio.wait_for(RecordingChannel.terminated.get(), seconds(5))
    assert (topic, reason) == ("rec:b", "shutdown")


class _Recorder:
    def __init__(self) -> None:
        self.hops: list[str] = []
        self.frames: list[tuple[str, Any, str, Any]] = []

    def hop(self, layer: str, function: str, detail: dict[str, Any] | None = None) -> None:
        self.hops.append(function)

    def frame(self, direction: str, connection: Any, opcode: str, data: str | bytes) -> None:
        self.frames.append((direction, connection, opcode, data))

    def __getattr__(self, name: str) -> Any:  # process events: not what this test looks at
        return lambda *args: None


async def test_tracer_sees_hops_and_frames(http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = _Recorder()
    monkeypatch.setattr(tracing, "active", recorder)
    token = await new_session(http)
    await post(http, token, [None, "1", "phoenix", "heartbeat", {}])
    await poll_frames(http, token, 1)
    monkeypatch.setattr(tracing, "active", None)
    for hop in ("longpoll.call", "longpoll.new_session", "longpoll.resume_session", "longpoll.publish",
                "longpoll.server.dispatch", "longpoll.listen", "longpoll.server.flush"):
        assert hop in recorder.hops
    (connection,) = {f[1] for f in recorder.frames}
    assert connection.startswith("longpoll-")
    assert [(d, o, data) for d, _, o, data in recorder.frames] == [
        ("↑", "text", '[null, "1", "phoenix", "heartbeat", {}]'),
        ("↓", "text", '[null,"1","phoenix","phx_reply",{"response":{},"status":"ok"}]'),
    ]
