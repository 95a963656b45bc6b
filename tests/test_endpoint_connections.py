"""``Endpoint.connections()``: the live connections and their topic maps, over a real server.

Phoenix answers "which sockets are connected, and what have they joined?" with
``Phoenix.Debug.list_sockets/0`` and ``list_channels/1``. Here each connection's
:class:`~channels_core.socket.SocketState` registers itself with its endpoint
when its transport process starts (``init``) and leaves when it ends
(``terminate``), whichever transport carries it and however it ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from helpers import RawClient, seconds

from channels_core import process
from channels_core.process import Pid
from channels_core.server import Server
from channels_core.socket import SocketState
from channels_core.transports import longpoll

RawWS = Callable[..., Awaitable[RawClient]]


async def exited(pid: Pid) -> None:
    """Wait until the process ``pid`` has ended (its task is done)."""
    proc = process.lookup(pid)
    if proc is not None and proc.task is not None:
        await asyncio.wait_for(asyncio.shield(proc.task), seconds(5))


async def join(client: RawClient, join_ref: str, topic: str) -> Any:
    await client.send([join_ref, join_ref, topic, "phx_join", {}])
    reply = await client.recv()
    assert reply == [join_ref, join_ref, topic, "phx_reply", {"response": {}, "status": "ok"}]
    if topic.startswith("room:"):
        # RoomChannel's after_join: broadcasts "user_entered", then pushes "joined".
        assert [frame[3] for frame in await client.recv_n(2)] == ["user_entered", "joined"]


async def test_lists_each_websocket_connection_with_its_topic_map(demo_server: Server, raw_ws: RawWS) -> None:
    endpoint = demo_server.app
    assert endpoint.connections() == {}
    alice = await raw_ws("vsn=2.0.0&user_id=alice")
    bob = await raw_ws("vsn=2.0.0&user_id=bob")
    await join(alice, "1", "room:a")
    await join(alice, "2", "bench:x")
    await join(bob, "1", "room:b")

    live = endpoint.connections()
    assert len(live) == 2
    by_id = {state.socket.id: (pid, state) for pid, state in live.items()}
    assert set(by_id) == {"user_sockets:alice", "user_sockets:bob"}
    pid, state = by_id["user_sockets:alice"]
    assert isinstance(state, SocketState)
    assert pid.role == "socket" and process.is_alive(pid)
    assert state.socket.transport_pid == pid
    assert sorted(state.channels) == ["bench:x", "room:a"]
    assert {entry.status for entry in state.channels.values()} == {"joined"}
    # channels_inverse is the same map read the other way: channel pid -> (topic, join_ref).
    assert state.channels_inverse == {
        state.channels["room:a"].pid: ("room:a", "1"),
        state.channels["bench:x"].pid: ("bench:x", "2"),
    }
    assert state.channels["room:a"].pid.role == "channel room:a"


async def test_the_snapshot_is_a_copy(demo_server: Server, raw_ws: RawWS) -> None:
    endpoint = demo_server.app
    client = await raw_ws()
    await join(client, "1", "bench:x")
    snapshot = endpoint.connections()
    snapshot.clear()
    assert len(endpoint.connections()) == 1


async def test_a_closed_connection_leaves_the_list(demo_server: Server, raw_ws: RawWS) -> None:
    endpoint = demo_server.app
    stays = await raw_ws("vsn=2.0.0&user_id=stays")
    goes = await raw_ws("vsn=2.0.0&user_id=goes")
    await join(stays, "1", "bench:x")
    await join(goes, "1", "bench:x")
    (pid,) = [p for p, s in endpoint.connections().items() if s.socket.id == "user_sockets:goes"]
    await goes.close()
    await exited(pid)
    assert [s.socket.id for s in endpoint.connections().values()] == ["user_sockets:stays"]


async def test_a_crashed_connection_leaves_the_list(
    demo_server: Server, raw_ws: RawWS, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = demo_server.app
    client = await raw_ws()
    await join(client, "1", "bench:x")
    (pid,) = endpoint.connections()
    await client.send("not a frame")  # does not decode: the connection crashes, close 1011
    assert (await client.wait_closed())[0] == 1011
    await exited(pid)
    assert endpoint.connections() == {}
    assert any(r.name == "channels_core.adapter" and "crashed" in r.getMessage() for r in caplog.records)


async def test_lists_a_longpoll_session_until_it_ends(start_server: Callable[..., Awaitable[Server]]) -> None:
    server = await start_server()
    endpoint = server.app
    async with httpx.AsyncClient(base_url=server.url, timeout=seconds(15)) as client:
        response = await client.get("/socket/longpoll?vsn=2.0.0&user_id=lp")
        assert response.json()["status"] == 410
    (session,) = longpoll.sessions(endpoint).values()
    live = endpoint.connections()
    assert list(live) == [session.pid]
    assert live[session.pid] is session.server.state
    assert live[session.pid].socket.transport == "longpoll"
    await server.stop()  # the endpoint stops its sessions, and waits until they are gone
    assert endpoint.connections() == {}
