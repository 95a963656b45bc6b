"""Conformance: the demo server replays every golden WebSocket transcript, frame for frame.

Each ``shared/golden/ws_*.jsonl`` file records what a real Phoenix server did for
one scenario (see the README beside the files). :func:`test_transcript` plays the
client's side of it against our demo server on 127.0.0.1: the same URL query,
the same frames in the same order. After each client frame it receives exactly
the frames Phoenix sent before the client's next one and compares them one by
one (:mod:`golden` says how). Refused handshakes must be refused with the same
HTTP status, and closes must carry the same codes.

Waiting is always for an event, with a timeout. The one exception is a short
window of silence where the transcript shows that the server does *not* answer
(:func:`golden.awaits_silence`): a crashing ``boom`` gets no reply. A malformed
frame needs no window: the next thing to arrive must be the close itself.

The last two tests guard the guard: every transcript on disk is a test case,
and every test case compared the frames its transcript records.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

import golden
from channels_core.exceptions import DecodeError
from channels_core.server import Server
from helpers import GOLDEN, seconds

TRANSCRIPTS = sorted(GOLDEN.glob("ws_*.jsonl"))
CASES = [pytest.param(path, id=path.stem) for path in TRANSCRIPTS]

#: How long to wait for each frame the transcript says comes next.
FRAME_TIMEOUT = 2.0
#: How long the server must stay quiet where the transcript shows no answer.
SILENCE = 0.3

#: transcript name → frames compared, filled in by test_transcript as each one passes.
COMPARED: dict[str, int] = {}


# The replay


def retarget(url: str, server: Server) -> str:
    """The transcript's URL with our server's host and port (scheme, path and query kept)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, f"{server.host}:{server.port}", parts.path, parts.query, parts.fragment))


async def next_frame(connection: websockets.ClientConnection, where: str) -> golden.Frame:
    """The next frame from the server, or a failure that says what was awaited."""
    try:
        data = await asyncio.wait_for(connection.recv(), seconds(FRAME_TIMEOUT))
    except TimeoutError:
        pytest.fail(f"{where}: no frame within {FRAME_TIMEOUT} s")
    except ConnectionClosed as exc:
        pytest.fail(f"{where}: the server closed the connection instead ({exc.rcvd})")
    return golden.Frame("text" if isinstance(data, str) else "binary", data)


async def expect_silence(connection: websockets.ClientConnection, where: str) -> None:
    try:
        data = await asyncio.wait_for(connection.recv(), seconds(SILENCE))
    except TimeoutError:
        return
    except ConnectionClosed as exc:
        pytest.fail(f"{where}: the server closed the connection ({exc.rcvd}) where it should stay silent")
    pytest.fail(f"{where}: the transcript shows no answer here, but the server sent {data!r}")


async def replay_plain_http(session: golden.Session, url: str, where: str) -> None:
    """A plain GET on the WebSocket path, with no Upgrade: refused with 400."""
    expected = session.http_response
    assert expected is not None, f"{where}: a plain HTTP request needs an http_response in the transcript"
    async with httpx.AsyncClient(timeout=seconds(5)) as client:
        response = await client.get(url)
    assert response.status_code == expected.status, f"{where}: {response.status_code} {response.text!r}"
    # Cowboy's wording is Cowboy's; what matters is that the body says what is missing.
    assert expected.body, f"{where}: the transcript records a body"
    assert response.text and "upgrade" in response.text.lower(), f"{where}: body {response.text!r}"


async def replay_session(name: str, session: golden.Session, server: Server) -> int:
    """Play one connection of a transcript; return how many server frames were compared."""
    url = retarget(session.url, server)
    where = f"{name} ({session.url})"
    if urlsplit(url).scheme in ("http", "https"):
        await replay_plain_http(session, url, where)
        return 0
    try:
        connection = await websockets.connect(url, open_timeout=seconds(5))
    except InvalidStatus as exc:
        refused = exc.response
        expected = session.http_response
        assert expected is not None, f"{where}: refused with {refused.status_code}, Phoenix accepted it"
        assert refused.status_code == expected.status, f"{where}: refused with {refused.status_code}"
        assert refused.body.decode() == expected.body, f"{where}: body {refused.body!r}"
        for header, value in expected.headers.items():
            assert refused.headers.get(header) == value, f"{where}: header {header}: {refused.headers.get(header)!r}"
        return 0
    try:
        assert session.http_response is None, f"{where}: accepted, Phoenix refused it with {session.http_response}"
        assert connection.response is not None and connection.response.status_code == session.open_status
        return await replay_frames(name, session, connection)
    finally:
        await connection.close()


async def replay_frames(name: str, session: golden.Session, connection: websockets.ClientConnection) -> int:
    refs = golden.RefMap()  # one per connection: refs only correlate within it
    compared = 0
    for index, step in enumerate(session.steps):
        if step.send is not None:
            await connection.send(step.send.data)
        for position, recorded in enumerate(step.expect, 1):
            after = f"after seq {step.send.seq}" if step.send else "after the handshake"
            where = f"{name} seq {recorded.seq} (frame {position} of {len(step.expect)} {after})"
            expected = golden.phoenix_1_8(recorded)
            actual = await next_frame(connection, f"{where}, expecting {expected.describe()}")
            difference = golden.frame_difference(expected, actual, refs)
            if difference is not None:
                pytest.fail(f"{where}: {difference}")
            compared += 1
        closes_next = session.server_closes and index == len(session.steps) - 1
        if golden.awaits_silence(step) and not closes_next:
            await expect_silence(connection, f"{name} after seq {step.send.seq}")  # type: ignore[union-attr]

    closed = session.closed
    if closed is None:
        return compared
    where = f"{name} close"
    if session.client_close is not None:
        await asyncio.wait_for(connection.close(session.client_close), seconds(FRAME_TIMEOUT))
    else:
        # The server closes first: the close must be the very next thing, with no frame before it.
        try:
            data = await asyncio.wait_for(connection.recv(), seconds(FRAME_TIMEOUT))
        except ConnectionClosed:
            pass
        except TimeoutError:
            pytest.fail(f"{where}: the server did not close within {FRAME_TIMEOUT} s")
        else:
            pytest.fail(f"{where}: expected the server to close, got a frame {data!r}")
        await asyncio.wait_for(connection.wait_closed(), seconds(FRAME_TIMEOUT))
    rcvd, sent = connection.protocol.close_rcvd, connection.protocol.close_sent
    assert rcvd is not None and (rcvd.code, rcvd.reason) == closed.rcvd, f"{where}: received {rcvd}"
    assert sent is not None and (sent.code, sent.reason) == closed.sent, f"{where}: sent {sent}"
    return compared


def _error_reason(frame: golden.Frame) -> str | None:
    message = golden.fields(frame)
    if message is None or message["event"] != "phx_reply" or not isinstance(message["payload"], dict):
        return None
    if message["payload"].get("status") != "error":
        return None
    return message["payload"].get("response", {}).get("reason")


def expected_error_logs(transcript: golden.Transcript) -> dict[str, int]:
    """How many times each error the transcript shows must be logged, by kind."""
    counts = dict.fromkeys(LOGGED, 0)
    for session in transcript.sessions:
        query = parse_qs(urlsplit(session.url).query)
        refused = session.http_response
        if refused is not None and refused.status == 403 and query.get("vsn", ["1.0.0"])[0][:2] not in ("1.", "2."):
            counts["unsupported vsn"] += 1
        if session.server_closes and session.closed is not None and session.closed.rcvd[0] == 1011:
            counts["malformed frame"] += 1
        for step in session.steps:
            sent = golden.fields(step.send) if step.send else None
            for frame in step.expect:
                message = golden.fields(frame)
                if message is not None and message["event"] == "phx_error":
                    counts["channel crash"] += 1
                reason = _error_reason(frame)
                if reason == "too many channels joined":
                    counts["too many channels"] += 1
                if reason == "unmatched topic" and sent is not None and sent["event"] == "phx_join":
                    counts["unmatched join"] += 1
    return counts


#: The log line that names each error, as (logger, level, text it contains).
LOGGED: dict[str, tuple[str, int, str]] = {
    "unsupported vsn": ("channels_core.transport", logging.WARNING, "does not match the server's version requirements"),
    "malformed frame": ("channels_core.adapter", logging.ERROR, "crashed: "),
    "channel crash": ("channels_core.channel_server", logging.ERROR, "crashed handling"),
    "too many channels": ("channels_core.socket", logging.ERROR, "reached max channels per transport limit of 100"),
    "unmatched join": ("channels_core.socket", logging.WARNING, "ignoring unmatched topic"),
}


def check_logged_causes(transcript: golden.Transcript, records: list[logging.LogRecord]) -> None:
    """Each error the transcript shows was logged once, saying what was wrong."""
    for kind, expected in expected_error_logs(transcript).items():
        logger, level, text = LOGGED[kind]
        logged = [r for r in records if r.name == logger and r.levelno == level and text in r.getMessage()]
        assert len(logged) == expected, f"{transcript.name}: {kind} logged {[r.getMessage() for r in logged]}"
        if kind == "malformed frame":
            assert all(r.exc_info and isinstance(r.exc_info[1], DecodeError) for r in logged)


@pytest.mark.parametrize("path", CASES)
async def test_transcript(path: Path, demo_server: Server, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="channels_core")
    transcript = golden.load(path)
    assert transcript.name == path.stem, "the test id is the transcript's own name"
    compared = 0
    for session in transcript.sessions:
        compared += await replay_session(transcript.name, session, demo_server)
    assert compared == transcript.received_frames
    check_logged_causes(transcript, caplog.records)
    COMPARED[transcript.name] = compared


# Nothing skipped


def test_every_ws_transcript_on_disk_is_a_test_case() -> None:
    on_disk = {path.stem for path in GOLDEN.glob("ws_*.jsonl")}
    # An empty or missing folder would turn test_transcript into one silent skip.
    assert on_disk, f"no ws_*.jsonl transcripts in {GOLDEN}"
    mark = next(m for m in test_transcript.pytestmark if m.name == "parametrize")  # type: ignore[attr-defined]
    tested = {case.id for case in mark.args[1]}
    assert tested == on_disk


def test_every_transcript_was_compared_frame_by_frame(request: pytest.FixtureRequest) -> None:
    selected = {
        item.callspec.id for item in request.session.items  # type: ignore[attr-defined]
        if getattr(item, "originalname", None) == "test_transcript"
    }
    # Checks every transcript this run replayed: all of them in a full run, the chosen ones under -k.
    assert selected, "no transcript was selected, so none was compared"
    for path in (p for p in TRANSCRIPTS if p.stem in selected):
        recorded = golden.load(path).received_frames
        assert path.stem in COMPARED, f"{path.stem} was not replayed to the end"
        assert COMPARED[path.stem] == recorded
        if recorded:
            assert COMPARED[path.stem] > 0


# The comparison itself (pure)


def _renumber(frame: golden.Frame, mapping: dict[str, str]) -> golden.Frame:
    value = frame.parsed()
    if isinstance(value, list):
        value = [mapping.get(v, v) if i in golden.V2_REF_SLOTS else v for i, v in enumerate(value)]
    else:
        value = {k: mapping.get(v, v) if k in golden.V1_REF_KEYS else v for k, v in value.items()}
    return golden.Frame("text", json.dumps(value), frame.seq)


def _received(name: str) -> list[golden.Frame]:
    transcript = golden.load(GOLDEN / f"{name}.jsonl")
    return [frame for session in transcript.sessions for step in session.steps for frame in step.expect]


@pytest.mark.parametrize("name", ["ws_v2_duplicate_join", "ws_v1_leave"])
def test_consistent_ref_renumbering_matches(name: str) -> None:
    frames = _received(name)
    mapping = {str(n): f"r{n * 7}" for n in range(1, 10)}
    refs = golden.RefMap()
    assert [golden.frame_difference(f, _renumber(f, mapping), refs) for f in frames] == [None] * len(frames)


def test_inconsistent_ref_renumbering_fails() -> None:
    frames = _received("ws_v2_duplicate_join")
    refs = golden.RefMap()
    # "2" is renamed "20" in the new join's reply, then "21" in its joined push.
    assert golden.frame_difference(frames[3], _renumber(frames[3], {"2": "20"}), refs) is None
    problem = golden.frame_difference(frames[6], _renumber(frames[6], {"2": "21"}), refs)
    assert problem is not None and "'2' was sent as '20' before, now as '21'" in problem


def test_two_refs_renamed_to_one_fails() -> None:
    frames = _received("ws_v2_duplicate_join")  # join "1" then join "2"
    refs = golden.RefMap()
    assert golden.frame_difference(frames[0], frames[0], refs) is None
    problem = golden.frame_difference(frames[3], _renumber(frames[3], {"2": "1"}), refs)
    assert problem is not None and "were both sent as '1'" in problem


def test_null_ref_must_stay_null() -> None:
    broadcast = golden.Frame("text", '[null,null,"room:lobby","user_entered",{"user":null}]')
    as_push = golden.Frame("text", '["1",null,"room:lobby","user_entered",{"user":null}]')
    problem = golden.frame_difference(broadcast, as_push, golden.RefMap())
    assert problem is not None and problem.startswith("ref None was sent as '1'")


def test_text_frames_compare_as_json_values() -> None:
    refs = golden.RefMap()
    expected = golden.Frame("text", '{"event":"phx_reply","payload":{"response":{},"status":"ok"},"ref":"1","topic":"phoenix"}')
    reordered = golden.Frame("text", '{"topic":"phoenix","ref":"1","payload":{"status":"ok","response":{}},"event":"phx_reply"}')
    assert golden.frame_difference(expected, reordered, refs) is None
    # A V1 frame has no join_ref key at all; adding one (even null) is a difference.
    with_join_ref = golden.Frame("text", reordered.data[:-1] + ',"join_ref":null}')  # type: ignore[operator]
    assert golden.frame_difference(expected, with_join_ref, refs) is not None
    number = golden.Frame("text", '[null,"3","room:lobby","phx_reply",{"response":{"x":1},"status":"ok"}]')
    as_float = golden.Frame("text", '[null,"3","room:lobby","phx_reply",{"response":{"x":1.0},"status":"ok"}]')
    assert golden.frame_difference(number, as_float, refs) is not None


def test_binary_frames_compare_byte_for_byte() -> None:
    frame = golden.Frame("binary", bytes.fromhex("0101010a023132726f6f6d3a6c6f6262796f6b01020304"))
    assert golden.frame_difference(frame, frame, golden.RefMap()) is None
    other = golden.Frame("binary", frame.data[:-1] + b"\x05")  # type: ignore[operator]
    assert golden.frame_difference(frame, other, golden.RefMap()) == (
        "expected bytes 0101010a023132726f6f6d3a6c6f6262796f6b01020304, got 0101010a023132726f6f6d3a6c6f6262796f6b01020305"
    )
    text = golden.Frame("text", "[]")
    assert golden.frame_difference(frame, text, golden.RefMap()) == "expected a binary frame, got text []"


def test_phoenix_1_8_changes_only_a_crash_phx_error() -> None:
    v2 = golden.Frame("text", '["1","1","room:lobby","phx_error",{}]', 9)
    v1 = golden.Frame("text", '{"event":"phx_error","payload":{},"ref":null,"topic":"room:lobby"}', 9)
    assert golden.phoenix_1_8(v2).parsed() == ["1", "1", "room:lobby", "phx_error", {"reason": "channel_crash"}]
    assert golden.phoenix_1_8(v1).parsed() == {
        "event": "phx_error", "payload": {"reason": "channel_crash"}, "ref": None, "topic": "room:lobby",
    }
    assert golden.phoenix_1_8(v2).seq == 9
    untouched = [
        golden.Frame("text", '["1","1","room:lobby","phx_close",{}]'),
        golden.Frame("text", '["1",null,"room:lobby","you_left",{"message":"bye!"}]'),
        golden.Frame("binary", b"\x00\x01"),
    ]
    assert [golden.phoenix_1_8(f) for f in untouched] == untouched


def test_silence_is_awaited_only_where_no_reply_was_recorded() -> None:
    transcript = golden.load(GOLDEN / "ws_v2_boom_phx_error.jsonl")
    steps = transcript.sessions[0].steps
    assert [golden.awaits_silence(step) for step in steps] == [False, True, False, False]  # join, boom, heartbeat, rejoin
    binary = golden.load(GOLDEN / "ws_v2_binary.jsonl").sessions[0].steps
    assert [golden.awaits_silence(step) for step in binary] == [False, False, False]


def test_load_refuses_what_the_format_does_not_define(tmp_path: Path) -> None:
    lines = [
        {"seq": 0, "dir": "·", "event": "scenario", "name": "ws_x", "vsn": "2.0.0", "transport": "websocket"},
        {"seq": 1, "dir": "·", "event": "connect", "url": "ws://127.0.0.1:4000/socket/websocket?vsn=2.0.0"},
        {"seq": 2, "dir": "·", "event": "open", "status": 101},
        {"seq": 3, "dir": "↓", "opcode": "ping", "hex": ""},
    ]
    path = tmp_path / "ws_x.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines))
    with pytest.raises(golden.TranscriptError, match="ws_x.jsonl seq 3: unknown opcode 'ping'"):
        golden.load(path)
    lines[3] = {"seq": 3, "dir": "·", "event": "reconnect"}
    path.write_text("\n".join(json.dumps(line) for line in lines))
    with pytest.raises(golden.TranscriptError, match="unknown event 'reconnect'"):
        golden.load(path)

