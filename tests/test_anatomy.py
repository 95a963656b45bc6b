"""The anatomy toolkit against live runs of the demo server.

Each scenario drives a real uvicorn server with a raw WebSocket client inside
``trace()``, then checks what the trace recorded (hops, process events, frames),
what the diagrams draw (DOT source compared with golden files, SVG rendered by
the ``dot`` binary), and what ``show_source`` and ``grep`` read from disk.

Set ``UPDATE_ANATOMY_GOLDEN=1`` to rewrite the golden DOT files after a change
that is meant to alter the diagrams; review them (``dot -Tpng``) before committing.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import graphviz
import pytest

from channels_core import process, tracing
from channels_core.anatomy import (
    Down,
    Exit,
    Frame,
    Hop,
    Monitor,
    Send,
    Spawn,
    Trace,
    WireLog,
    dispatch_diagram,
    grep,
    parse_frame,
    process_tree,
    pubsub_diagram,
    sequence_diagram,
    show_source,
    trace,
)
from channels_core.demo import DemoEndpoint, create_app
from channels_core.process import Pid, Ref
from channels_core.server import Server
from channels_core.socket import SocketState

from helpers import RawClient, seconds

ROOT = Path(__file__).resolve().parent.parent
GOLDEN_DIR = Path(__file__).resolve().parent / "anatomy_golden"
UPDATE_GOLDEN = os.environ.get("UPDATE_ANATOMY_GOLDEN") == "1"

Connect = Callable[..., Awaitable[RawClient]]

JOIN = ["1", "1", "room:lobby", "phx_join", {"user": "ann"}]
JOIN_REPLY = ["1", "1", "room:lobby", "phx_reply", {"response": {}, "status": "ok"}]
USER_ENTERED = [None, None, "room:lobby", "user_entered", {"user": "ann"}]
JOINED = ["1", None, "room:lobby", "joined", {"status": "connected", "user_id": "u1"}]
BOOM = ["1", "2", "room:lobby", "boom", {}]
YOU_LEFT = ["1", None, "room:lobby", "you_left", {"message": "bye!"}]
PHX_ERROR = ["1", "1", "room:lobby", "phx_error", {"reason": "channel_crash"}]


# Scenarios


async def join_scenario(connect: Connect, server: Server | None = None) -> tuple[Trace, RawClient]:
    """Connect, join room:lobby, and wait for the reply and the two pushes after it."""
    async with trace() as t:
        client = await connect("vsn=2.0.0&user_id=u1", server=server)
        await client.send(JOIN)
        assert await client.recv_n(3) == [JOIN_REPLY, USER_ENTERED, JOINED]
    return t, client


async def boom_scenario(connect: Connect) -> Trace:
    """Join, then make the channel crash with the demo's ``boom`` event."""
    async with trace() as t:
        client = await connect("vsn=2.0.0&user_id=u1")
        await client.send(JOIN)
        assert await client.recv_n(3) == [JOIN_REPLY, USER_ENTERED, JOINED]
        await client.send(BOOM)
        # terminate/2 runs first (it pushes you_left), then the socket sees DOWN.
        assert await client.recv_n(2) == [YOU_LEFT, PHX_ERROR]
    return t


def _steps(t: Trace) -> list[tuple[str, ...]]:
    """The events as short tuples, for order assertions."""
    steps: list[tuple[str, ...]] = []
    for event in t.events:
        if isinstance(event, Hop):
            steps.append(("hop", event.layer, event.function))
        elif isinstance(event, Frame):
            steps.append((event.direction, str(event.event)))
        elif isinstance(event, Spawn):
            steps.append(("spawn", event.pid))
        elif isinstance(event, Exit):
            steps.append(("exit", event.pid, event.reason))
        elif isinstance(event, Down):
            steps.append(("DOWN", event.watcher, event.pid))
        elif isinstance(event, Send):
            steps.append(("send", str(event.sender), event.receiver, event.label))
        elif isinstance(event, Monitor):
            steps.append(("monitor", event.watcher, event.watched))
    return steps


def assert_in_order(steps: list[tuple[str, ...]], expected: list[tuple[str, ...]]) -> None:
    """Each expected step occurs, after the previous one."""
    position = 0
    for wanted in expected:
        try:
            position = steps.index(wanted, position) + 1
        except ValueError:
            found = "\n".join(map(str, steps))
            raise AssertionError(f"{wanted} missing after step {position}; the trace was:\n{found}") from None


def _file_line(relative: str, number: int) -> str:
    return (ROOT / relative).read_text().splitlines()[number - 1]


# The tracer


async def test_join_trace_records_every_layer_in_order(raw_ws: Connect) -> None:
    t, _ = await join_scenario(raw_ws)
    assert_in_order(_steps(t), [
        ("hop", "adapter", "adapter.handle"),
        ("hop", "endpoint", "DemoEndpoint.__handler__"),
        ("hop", "adapter", "WebSocketHandler.init"),
        ("hop", "transport", "websocket.connect"),
        ("hop", "transport", "transport.check_origin"),
        ("hop", "transport", "transport.connect_info"),
        ("hop", "socket", "socket.connect"),
        ("hop", "socket", "UserSocket.connect/3"),
        ("spawn", "socket#1"),
        ("hop", "adapter", "WebSocketHandler.websocket_init"),
        ("hop", "pubsub", "PubSub.subscribe"),  # the socket listens on its id, user_sockets:u1
        ("↑", "phx_join"),
        ("hop", "adapter", "WebSocketHandler.websocket_handle"),
        ("hop", "serializer", "V2JSONSerializer.decode"),
        ("hop", "socket", "socket.handle_in:phx_join"),
        ("hop", "channel_server", "channel_server.join"),
        # The channel's process exists before its join runs.
        ("spawn", "channel room:lobby#1"),
        ("send", "socket#1", "channel room:lobby#1", "JoinRequest"),
        ("monitor", "socket#1", "channel room:lobby#1"),
        ("hop", "channel", "RoomChannel.join"),
        ("send", "channel room:lobby#1", "channel room:lobby#1", "tuple after_join"),
        ("hop", "channel_server", "ChannelServer.init_join"),
        ("monitor", "channel room:lobby#1", "socket#1"),
        ("hop", "pubsub", "PubSub.subscribe"),
        ("send", "channel room:lobby#1", "socket#1", "JoinResult"),
        ("hop", "channel", "RoomChannel.handle_info"),
        ("hop", "channel", "channel.broadcast"),
        ("hop", "pubsub", "PubSub.dispatch_local"),
        ("hop", "pubsub", "fastlane_dispatch"),
        ("hop", "serializer", "V2JSONSerializer.fastlane"),
        ("send", "channel room:lobby#1", "socket#1", "SocketPush user_entered"),
        ("hop", "channel", "channel.push"),
        ("hop", "serializer", "V2JSONSerializer.encode"),
        ("send", "channel room:lobby#1", "socket#1", "SocketPush joined"),
        ("hop", "serializer", "V2JSONSerializer.encode"),
        ("↓", "phx_reply"),
        ("↓", "user_entered"),
        ("↓", "joined"),
    ])
    # The frames are exactly what crossed the wire, on one connection.
    frames = t.frames()
    assert [(f.direction, f.connection, f.opcode) for f in frames] == [
        ("↑", "ws#1", "text"), ("↓", "ws#1", "text"), ("↓", "ws#1", "text"), ("↓", "ws#1", "text"),
    ]
    assert frames[0].data == '["1", "1", "room:lobby", "phx_join", {"user": "ann"}]'
    assert frames[1].data == '["1","1","room:lobby","phx_reply",{"response":{},"status":"ok"}]'
    assert [f.process for f in frames] == ["socket#1"] * 4
    assert [e.index for e in t.events] == list(range(1, len(t.events) + 1))


async def test_hops_carry_their_source_location(raw_ws: Connect) -> None:
    t, _ = await join_scenario(raw_ws)
    hops = {h.function: h for h in t.hops()}

    join = hops["socket.handle_in:phx_join"]
    assert (join.layer, join.qualname, join.file, join.process) == (
        "socket", "SocketState._join", "channels_core/socket.py", "socket#1")
    assert join.detail == {"topic": "room:lobby", "channel": "RoomChannel"}
    assert 'tracing.hop("socket", "socket.handle_in:phx_join"' in _file_line(join.file, join.line)
    # The socket's _join is reached from the adapter, one module up.
    assert join.caller is not None and join.caller.startswith("channels_core/adapter.py:")

    callback = hops["RoomChannel.join"]
    assert (callback.qualname, callback.file, callback.process) == (
        "ChannelServer._join", "channels_core/channel_server.py", "channel room:lobby#1")

    encode = [h for h in t.hops() if h.function == "V2JSONSerializer.encode"][-1]
    assert encode.detail == {"topic": "room:lobby", "event": "phx_reply"}
    assert encode.file == "channels_core/serializers/v2_json.py"
    assert encode.caller is not None and encode.caller.startswith("channels_core/socket.py:")
    for hop in t.hops():
        assert not Path(hop.file).is_absolute()
        assert "tracing.hop(" in _file_line(hop.file, hop.line), hop


async def test_process_events_name_processes_by_role(raw_ws: Connect) -> None:
    t, _ = await join_scenario(raw_ws)
    spawns = [e for e in t.events if isinstance(e, Spawn)]
    assert [(s.pid, s.parent, s.via, s.adopted) for s in spawns] == [
        ("socket#1", None, "WebSocketHandler.run", True),
        ("channel room:lobby#1", "socket#1", "PoolSupervisor.start_child", False),
    ]
    infos = t.processes()
    assert [(i.name, i.parent, i.exit_reason, i.adopted) for i in infos] == [
        ("socket#1", None, None, True), ("channel room:lobby#1", "socket#1", None, False),
    ]
    # The names lead back to the live processes.
    assert process.is_alive(t.pid("socket#1"))
    assert t.pid("channel room:lobby#1").role == "channel room:lobby"
    with pytest.raises(KeyError, match="no process named 'socket#9' in this trace"):
        t.pid("socket#9")


async def test_name_gives_live_pids_and_refs_the_trace_names(raw_ws: Connect, demo_server: Server) -> None:
    t, _ = await join_scenario(raw_ws)
    state = demo_server.app.connections()[t.pid("socket#1")]
    entry = state.channels["room:lobby"]
    assert t.name(entry.pid) == "channel room:lobby#1"
    # The socket's monitor ref never appeared in the trace: it gets the next number, stably.
    first = t.name(entry.monitor)
    assert re.fullmatch(r"r\d+", first) and t.name(entry.monitor) == first
    assert t.name(Ref(-1)) == f"r{int(first[1:]) + 1}"
    assert t.name(Pid(-1, "socket")) == "socket#2"


async def test_crash_trace_records_exit_and_down(raw_ws: Connect, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="channels_core.channel_server")
    t = await boom_scenario(raw_ws)
    assert_in_order(_steps(t), [
        ("↑", "boom"),
        ("hop", "socket", "socket.handle_in:message"),
        ("send", "socket#1", "channel room:lobby#1", "Message boom"),
        ("hop", "channel", "RoomChannel.handle_in"),
        ("hop", "channel", "RoomChannel.terminate"),
        ("hop", "channel", "channel.push"),
        ("exit", "channel room:lobby#1", "RuntimeError('boom')"),
        ("DOWN", "socket#1", "channel room:lobby#1"),
        ("↓", "you_left"),
        ("hop", "adapter", "WebSocketHandler.websocket_info"),
        ("hop", "socket", "socket.handle_info:DOWN"),
        ("↓", "phx_error"),
    ])
    (down,) = [e for e in t.events if isinstance(e, Down)]
    assert down.reason == "RuntimeError('boom')"
    info = {i.name: i for i in t.processes()}
    assert info["channel room:lobby#1"].crashed and not info["socket#1"].crashed
    assert "channel RoomChannel for 'room:lobby' crashed handling event 'boom': RuntimeError('boom')" in caplog.text


async def test_same_scenario_twice_gives_equal_traces(raw_ws: Connect, start_server: Any) -> None:
    first, _ = await join_scenario(raw_ws)
    second_server = await start_server()
    second, _ = await join_scenario(raw_ws, server=second_server)
    # Different pids, refs, connection ids and ports underneath; the same trace on top.
    assert first.pid("socket#1") != second.pid("socket#1")
    assert first == second
    assert str(first) == str(second)
    assert str(WireLog(first)) == str(WireLog(second))
    assert sequence_diagram(first).source == sequence_diagram(second).source


async def test_wait_for_an_event_of_the_server(raw_ws: Connect) -> None:
    async with trace() as t:
        client = await raw_ws("vsn=2.0.0&user_id=u1")
        await client.send(JOIN)
        exit_event = t.wait_for("exit channel room:lobby#1")
        await client.recv_n(3)
        await client.send(BOOM)
        found = await asyncio.wait_for(exit_event, seconds(5))
        assert isinstance(found, Exit) and found.reason == "RuntimeError('boom')"
        # An event already recorded is found at once.
        first_spawn = next(e for e in t.events if isinstance(e, Spawn))
        assert await t.wait_for(lambda e: isinstance(e, Spawn)) is first_spawn
        with pytest.raises(TimeoutError, match=r"no event matched 'never' within 0\.05 s; the last one was: "):
            await t.wait_for("never", timeout=0.05)
    with pytest.raises(TimeoutError, match="the trace is no longer recording"):
        await t.wait_for("never")


def test_hop_details_are_normalised() -> None:
    pid, ref = Pid(10_001, "socket"), Ref(20_002)
    with trace() as t:
        tracing.hop("test", "detail", pid=pid, ref=ref, pair=(pid, "x"),
                    text=f"{pid!r} at 127.0.0.1:54321 and {ref!r} of longpoll-77", n=3)
    (hop,) = t.hops()
    assert hop.detail == {
        "pid": "socket#1", "ref": "r1", "pair": ("socket#1", "x"),
        "text": "<socket#1> at 127.0.0.1:PORT and r1 of lp#1", "n": 3,
    }
    assert (hop.file, hop.qualname) == ("tests/test_anatomy.py", "test_hop_details_are_normalised")
    assert hop.process is None


# Installing and removing the tracer


def test_trace_removes_its_hook_when_the_block_ends() -> None:
    assert tracing.active is None
    with trace() as t:
        assert tracing.active is not None and t.recording
    assert tracing.active is None and not t.recording


def test_trace_removes_its_hook_when_the_block_raises() -> None:
    with pytest.raises(ZeroDivisionError):
        with trace():
            1 / 0  # noqa: B018
    assert tracing.active is None


async def test_async_trace_removes_its_hook_when_the_block_raises() -> None:
    with pytest.raises(RuntimeError, match="inside"):
        async with trace():
            assert tracing.active is not None
            raise RuntimeError("inside")
    assert tracing.active is None


def test_nested_traces_are_refused() -> None:
    with trace() as outer:
        installed = tracing.active
        with pytest.raises(RuntimeError, match="traces do not nest"):
            with trace():
                pass
        assert tracing.active is installed  # the refusal left the outer trace in place
        tracing.hop("test", "still recording")
    assert tracing.active is None
    assert [h.function for h in outer.hops()] == ["still recording"]


def test_a_trace_records_once() -> None:
    t = trace()
    with t:
        pass
    with pytest.raises(RuntimeError, match="already been recorded"):
        with t:
            pass
    assert tracing.active is None


def test_hooks_after_the_block_are_not_recorded() -> None:
    with trace() as t:
        recorder = tracing.active
    assert recorder is not None
    recorder.hop("test", "late", None)  # a hook that kept a reference must not record
    assert t.events == []


# Filters and text


async def test_filters_keep_original_indexes(raw_ws: Connect) -> None:
    t, _ = await join_scenario(raw_ws)
    join = t.between("phx_join", "phx_reply")
    first, last = join.events[0], join.events[-1]
    assert isinstance(first, Frame) and first.direction == "↑" and first.event == "phx_join"
    assert isinstance(last, Frame) and last.direction == "↓" and last.event == "phx_reply"
    assert [e.index for e in join.events] == list(range(first.index, last.index + 1))
    assert t.span(first.index, last.index) == join
    assert t[first.index - 1 : last.index] == join

    only = t.only(layers={"socket", "channel"})
    assert {h.layer for h in only.hops()} == {"socket", "channel"}
    assert only.frames() == t.frames()
    assert {e.tag for e in t.only(kinds=["frame", Spawn]).events} == {"frame", "spawn"}
    assert {e.process for e in t.only(processes=["channel room:lobby#1"]).events} == {"channel room:lobby#1"}

    with pytest.raises(ValueError, match="no event in this trace matches 'phx_leave'"):
        t.between("phx_leave", "phx_reply")
    with pytest.raises(ValueError, match=r"no event after #\d+ matches 'phx_close'"):
        t.between("phx_join", "phx_close")


async def test_summary_and_text_are_deterministic(raw_ws: Connect) -> None:
    t = await boom_scenario(raw_ws)
    summary = t.summary()
    assert summary.splitlines()[1:] == [
        "  hops: 35 in 8 layers (adapter 6, endpoint 1, transport 3, socket 5, channel_server 2, "
        "channel 7, serializer 7, pubsub 4)",
        "  process socket#1: running",
        "  process channel room:lobby#1: exit RuntimeError('boom')",
        "  frames ws#1: 2 ↑, 5 ↓",
        "  sends 9, spawns 2, exits 1, monitors 4, DOWNs 1",
    ]
    text = str(t)
    assert "  exit    channel room:lobby#1  channel room:lobby#1 reason RuntimeError('boom')" in text
    assert re.search(r"hop +socket#1 +socket +socket\.handle_in:phx_join topic='room:lobby' "
                     r"channel='RoomChannel'  \[channels_core/socket\.py:\d+\]", text)
    assert "/work/" not in text and "0x" not in text


# Wire log


async def test_wire_log_text_and_html(raw_ws: Connect) -> None:
    t = await boom_scenario(raw_ws)
    log = WireLog(t)
    assert str(log) == "\n".join([
        "#  dir  conn  op    join_ref  ref  topic       event         payload",
        '1  ↑    ws#1  text  1         1    room:lobby  phx_join      {"user":"ann"}',
        '2  ↓    ws#1  text  1         1    room:lobby  phx_reply     {"response":{},"status":"ok"}',
        '3  ↓    ws#1  text  -         -    room:lobby  user_entered  {"user":"ann"}',
        '4  ↓    ws#1  text  1         -    room:lobby  joined        {"status":"connected","user_id":"u1"}',
        "5  ↑    ws#1  text  1         2    room:lobby  boom          {}",
        '6  ↓    ws#1  text  1         -    room:lobby  you_left      {"message":"bye!"}',
        '7  ↓    ws#1  text  1         1    room:lobby  phx_error     {"reason":"channel_crash"}',
    ])
    html = log._repr_html_()
    assert html.count("<tr>") == 8  # the header and seven frames
    assert "<td><code>{&quot;reason&quot;:&quot;channel_crash&quot;}</code></td>" in html
    assert str(WireLog(t, connection="ws#2")) .endswith("(no frames)")
    narrow = str(WireLog(t, payload_width=10)).splitlines()
    assert narrow[4].endswith('{"status"…')


async def test_wire_log_reads_binary_frames(raw_ws: Connect) -> None:
    async with trace() as t:
        client = await raw_ws("vsn=2.0.0&user_id=u1")
        await client.send(JOIN)
        await client.recv_n(3)
        # A V2 binary push: kind 0, then the sizes of join_ref, ref, topic, event.
        fields = [b"1", b"3", b"room:lobby", b"binary_event"]
        await client.send(bytes([0, *map(len, fields)]) + b"".join(fields) + b"\x01\x02")
        pushed, replied = await client.recv_n(2)
    assert pushed == bytes([0, 1, 10, 12]) + b"1room:lobbybinary_event\x00\x01"
    assert replied == bytes([1, 1, 1, 10, 2]) + b"13room:lobbyok\x01\x02\x03\x04"
    lines = str(WireLog(t)).splitlines()
    assert lines[5:] == [
        "5  ↑    ws#1  bin   1         3    room:lobby  binary_event  <binary 2 bytes: 01 02>",
        "6  ↓    ws#1  bin   1         -    room:lobby  binary_event  <binary 2 bytes: 00 01>",
        '7  ↓    ws#1  bin   1         3    room:lobby  phx_reply     '
        '{"response":"<binary 4 bytes: 01 02 03 04>","status":"ok"}',
    ]


def test_parse_frame_never_raises() -> None:
    assert parse_frame("↑", "text", "not json").protocol == "raw"
    assert parse_frame("↓", "binary", b"\x09\x01").protocol == "raw"
    assert parse_frame("↓", "binary", b"\x02\x05\x01abc").protocol == "raw"  # sizes overrun the frame
    v1 = parse_frame("↑", "text", '{"topic":"t","event":"e","payload":{},"ref":"1"}')
    assert (v1.protocol, v1.topic, v1.event, v1.ref, v1.join_ref) == ("v1", "t", "e", "1", None)
    broadcast = parse_frame("↓", "binary", bytes([2, 1, 2]) + b"tevX")
    assert (broadcast.topic, broadcast.event, broadcast.payload) == ("t", "ev", b"X")


# Diagrams


def _check_golden(name: str, source: str) -> None:
    path = GOLDEN_DIR / name
    if UPDATE_GOLDEN or not path.exists():
        if not UPDATE_GOLDEN:
            pytest.fail(f"golden file {path} is missing; run with UPDATE_ANATOMY_GOLDEN=1 to write it")
        path.parent.mkdir(exist_ok=True)
        path.write_text(source)
    assert source == path.read_text(), f"{name} differs from its golden file (UPDATE_ANATOMY_GOLDEN=1 rewrites it)"


def _svg(graph: graphviz.Digraph) -> ET.Element:
    root = ET.fromstring(graph.pipe(format="svg"))
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return root


def _svg_text(root: ET.Element) -> str:
    return " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))


async def test_join_diagrams_match_golden(raw_ws: Connect, demo_server: Server) -> None:
    t, _ = await join_scenario(raw_ws)
    _check_golden("join_sequence.dot", sequence_diagram(t, title="join room:lobby").source)
    _check_golden("join_process_tree.dot", process_tree(t).source)
    _check_golden("join_pubsub.dot", pubsub_diagram(demo_server.app, trace=t).source)


async def test_crash_diagrams_match_golden(raw_ws: Connect) -> None:
    t = await boom_scenario(raw_ws)
    _check_golden("boom_sequence.dot", sequence_diagram(t, between=("boom", "phx_error")).source)
    _check_golden("boom_processes.dot", sequence_diagram(t, lifelines="processes", between="boom").source)
    _check_golden("boom_process_tree.dot", process_tree(t).source)


def test_dispatch_diagram_matches_golden() -> None:
    graph = dispatch_diagram(DemoEndpoint)
    _check_golden("dispatch.dot", graph.source)
    assert dispatch_diagram(create_app()).source == graph.source  # an instance draws its class
    text = _svg_text(_svg(graph))
    for expected in ("/socket/websocket", "/socket/longpoll", "UserSocket", 'channel "room:*"', "RoomChannel",
                     "intercept: new_msg", "BenchChannel", "check_origin: 'conn'"):
        assert expected in text


async def test_every_diagram_renders_to_svg(raw_ws: Connect, demo_server: Server) -> None:
    t = await boom_scenario(raw_ws)
    graphs = {
        "sequence": sequence_diagram(t),
        "sequence with details": sequence_diagram(t, details=True, internal=True),
        "processes": sequence_diagram(t, lifelines="processes", internal=True),
        "join only": sequence_diagram(t, between=("phx_join", "phx_reply")),
        "event range": sequence_diagram(t, events=(10, 20)),
        "range object": sequence_diagram(t, events=range(30, 41)),
        "two layers": sequence_diagram(t, layers={"socket", "channel"}),
        "process tree": process_tree(t, title="after boom"),
        "pubsub": pubsub_diagram(demo_server.app, trace=t),
        "pubsub unnamed": pubsub_diagram(demo_server.app.pubsub),
        "empty pubsub": pubsub_diagram(create_app()),
        "empty trace": sequence_diagram(Trace()),
        "dispatch": dispatch_diagram(DemoEndpoint),
    }
    for name, graph in graphs.items():
        assert isinstance(graph, graphviz.Digraph), name
        _svg(graph)
    tree = _svg_text(_svg(graphs["process tree"]))
    assert "exit: RuntimeError('boom')" in tree and "DOWN RuntimeError('boom')" in tree
    assert "PoolSupervisor" in tree and "running" in tree


async def test_sequence_diagram_options(raw_ws: Connect) -> None:
    t, _ = await join_scenario(raw_ws)
    full = sequence_diagram(t)
    headers = re.findall(r"\th\d+ \[label=(\w+)", full.source)
    assert headers == ["client", "adapter", "endpoint", "transport", "socket", "channel_server", "channel",
                       "serializer", "pubsub"]
    # The upgrade request reaches the adapter, which asks the endpoint's table and
    # then runs the connection itself: the endpoint is looked up, not called into.
    assert re.search(r"r1c0 -> r1c1 \[label=\"1\. adapter\.handle\" arrowhead=normal", full.source)
    assert re.search(r"r2c1 -> r2c2 \[label=\"2\. DemoEndpoint\.__handler__\" arrowhead=normal", full.source)
    assert re.search(r"r3c1 \[label=\"3\. WebSocketHandler\.init\"", full.source)

    two = sequence_diagram(t, layers={"socket", "channel"})
    assert re.findall(r"\th\d+ \[label=(\w+)", two.source) == ["socket", "channel"]
    assert "↑" not in two.source and "RoomChannel.join" in two.source

    join = sequence_diagram(t, between=("phx_join", "phx_reply"))
    labels = re.findall(r'label="(\d+)\. ((?:[^"\\]|\\.)*)"', join.source)
    assert labels[0][0] == "1" and labels[0][1].startswith("↑ [")
    assert labels[-1][1].startswith("↓ [\\\"1\\\",\\\"1\\\",\\\"room:lobby\\\",\\\"phx_reply\\\"")
    assert "DemoEndpoint.__handler__" not in join.source

    detailed = sequence_diagram(t, details=True)
    assert "socket.handle_in:phx_join topic='room:lobby' channel='RoomChannel'" in detailed.source
    assert "_Frame" not in full.source and "_Frame" in sequence_diagram(t, internal=True).source

    with pytest.raises(ValueError, match="lifelines must be 'layers' or 'processes', got 'threads'"):
        sequence_diagram(t, lifelines="threads")


def test_labels_are_escaped_for_dot() -> None:
    with trace() as t:
        tracing.hop("socket", "odd", text='back\\slash "quoted" <angle>')
    source = sequence_diagram(t, details=True).source
    assert "back\\\\\\\\slash" in source  # a backslash in the text, doubled for repr and DOT
    _svg(sequence_diagram(t, details=True))


# Reading source


def test_show_source_uses_the_real_line_numbers() -> None:
    view = show_source(SocketState._join)
    lines, start = inspect.getsourcelines(SocketState._join)
    on_disk = (ROOT / "channels_core" / "socket.py").read_text().splitlines()
    assert view.path == "channels_core/socket.py"
    assert (view.start, view.end) == (start, start + len(lines) - 1)
    assert list(view.lines) == [line.rstrip("\n") for line in lines] == on_disk[start - 1 : view.end]
    text = str(view).splitlines()
    assert text[0] == f"channels_core/socket.py {view.start}–{view.end} (SocketState._join)"
    width = len(str(view.end))
    assert text[1] == f"  {start:>{width}} | {on_disk[start - 1]}".rstrip()
    for number, line, disk in zip(range(start, view.end + 1), text[1:], on_disk[start - 1 :]):
        assert line == f"  {number:>{width}} | {disk}".rstrip()


def test_show_source_highlights_lines_and_patterns() -> None:
    by_name = show_source("channels_core.socket:SocketState._join", highlight=r"tracing\.hop")
    (marked,) = by_name.highlight
    assert "tracing.hop" in by_name.lines[marked - by_name.start]
    assert [line[0] for line in str(by_name).splitlines()[1:]].count(">") == 1
    assert by_name.name == "SocketState._join"

    html = by_name._repr_html_()
    assert html.startswith("<div class='anatomy-source'>")
    assert f"channels_core/socket.py {by_name.start}–{by_name.end} (SocketState._join)" in html
    assert f">{by_name.start}</span>" in html and f">{by_name.end}</span>" in html
    assert "background-color: #fff3b0" in html
    assert "/work/" not in html

    ranged = show_source("channels_core/socket.py:20-30", highlight=[21, 22])
    assert (ranged.path, ranged.start, ranged.end, sorted(ranged.highlight)) == (
        "channels_core/socket.py", 20, 30, [21, 22])
    assert ranged.header == "channels_core/socket.py 20–30"
    again = show_source(SocketState, lines=(20, 30), highlight=[21, 22])
    assert str(again) == str(ranged)


async def test_show_source_of_a_hop(raw_ws: Connect) -> None:
    t, _ = await join_scenario(raw_ws)
    hop = next(h for h in t.hops() if h.function == "ChannelServer.init_join")
    view = show_source(hop)
    assert view.name == "ChannelServer.init_join" and view.highlight == {hop.line}
    assert view.path == "channels_core/channel_server.py"
    assert view.lines[0].strip().startswith("def init_join")


def test_show_source_errors_say_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="cannot import module 'channels_core.nope'"):
        show_source("channels_core.nope:Thing")
    with pytest.raises(ValueError, match="channels_core.socket has no 'SocketState.nope'"):
        show_source("channels_core.socket:SocketState.nope")
    with pytest.raises(ValueError, match="no source available for <built-in function len>"):
        show_source(len)
    with pytest.raises(ValueError, match="no such source file: 'channels_core/nope.py'"):
        show_source("channels_core/nope.py")
    with pytest.raises(ValueError, match=r"lines 900000–900001 are outside channels_core/socket\.py"):
        show_source("channels_core/socket.py:900000-900001")
    with pytest.raises(ValueError, match=r"highlighted line\(s\) \[1\] are outside channels_core/socket\.py"):
        show_source(SocketState._join, highlight=[1])
    with pytest.raises(ValueError, match="matches 'no such text anywhere'"):
        show_source(SocketState._join, highlight="no such text anywhere")
    with pytest.raises(ValueError, match="invalid highlight pattern '\\('"):
        show_source(SocketState._join, highlight="(")


def test_grep_finds_the_handler() -> None:
    result = grep("__handler__")
    assert result.files() == ["channels_core/adapter.py", "channels_core/endpoint.py"]
    for match in result:
        assert not Path(match.file).is_absolute()
        assert match.text == _file_line(match.file, match.line)
        assert "__handler__" in match.text
    assert str(result).splitlines()[0] == f"channels_core/adapter.py:{result[0].line}: {result[0].text.strip()}"
    html = result._repr_html_()
    assert html.count("<tr><td>") == len(result) and "/work/" not in html
    assert str(grep("no_such_name_anywhere_123")) == "no match for 'no_such_name_anywhere_123'"
    # The toolkit itself is left out unless asked for.
    assert "channels_core/anatomy/tracer.py" in grep("tracing.active =", exclude=()).files()
    assert grep("tracing.active =").files() == []
    assert grep("def CONNECT", path="channels_core/socket.py", ignore_case=True).files() == [
        "channels_core/socket.py"]


def test_grep_errors_say_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="invalid pattern '\\['"):
        grep("[")
    with pytest.raises(ValueError, match="no such path: 'channels_core/nope'"):
        grep("x", path="channels_core/nope")
