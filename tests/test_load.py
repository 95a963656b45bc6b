"""Load, at a size CI can afford: many sockets on one topic, many broadcasts.

The promise: every joined socket receives every broadcast exactly once and in
order, and once the clients have gone the server is back where it started: no
process, task, PubSub subscription or monitor left, and no object of the
package's own classes still alive. ``bench/load_2000.py`` makes the same run at
2,000 sockets and 100 broadcasts, in a separate server process, and writes its
figures to ``bench/LOAD.md``.

The broadcasts go the way a chat message goes: one client asks its channel to
broadcast (the demo's ``bench_broadcast``), and the fastlane encodes each message
once and hands it to every transport.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import json
import resource
from typing import Any

import websockets
from helpers import seconds

from channels_core import process
from channels_core.server import Server

SOCKETS = 200
BROADCASTS = 20
TOPIC = "bench:load"


def raise_fd_limit() -> None:
    """Each socket is two file descriptors here (client and server in one process)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4 * SOCKETS + 256
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))


def package_objects() -> collections.Counter[str]:
    """Live objects of channels_core's own classes (and uvicorn's connection protocols), by class."""
    gc.collect()
    counts: collections.Counter[str] = collections.Counter()
    for obj in gc.get_objects():
        module = type(obj).__module__
        if isinstance(module, str) and module.startswith(("channels_core", "uvicorn.protocols")):
            counts[f"{module}.{type(obj).__qualname__}"] += 1
    return counts


def monitors_of_live_processes() -> list[tuple[Any, Any]]:
    """Every monitor held by or on a live process: none should point at a dead one."""
    found = []
    for pid in process.processes():
        proc = process.lookup(pid)
        assert proc is not None
        found += [(pid, ("monitoring", watched)) for watched in proc._monitoring.values()]
        found += [(pid, ("monitored by", watcher)) for watcher in proc._monitored_by.values()]
    return found


async def join(index: int, url: str) -> websockets.ClientConnection:
    connection = await websockets.connect(url, max_queue=None)
    await connection.send(json.dumps(["1", "1", TOPIC, "phx_join", {}]))
    reply = json.loads(await asyncio.wait_for(connection.recv(), seconds(10)))
    assert reply == ["1", "1", TOPIC, "phx_reply", {"response": {}, "status": "ok"}], (index, reply)
    return connection


async def receive(connection: websockets.ClientConnection, count: int) -> list[Any]:
    return [json.loads(await asyncio.wait_for(connection.recv(), seconds(10))) for _ in range(count)]


async def run_round(server: Server) -> None:
    """Join SOCKETS sockets, broadcast BROADCASTS messages, check every frame, disconnect."""
    url = f"{server.ws_url}/socket/websocket?vsn=2.0.0"
    connections: list[websockets.ClientConnection] = []
    try:
        # In batches: a burst of a few hundred handshakes at once only tests the listen backlog.
        for start in range(0, SOCKETS, 50):
            connections += await asyncio.gather(*(join(i, url) for i in range(start, min(start + 50, SOCKETS))))
        assert len(server.app.pubsub.subscribers(TOPIC)) == SOCKETS

        sender = connections[0]
        await sender.send(json.dumps(["1", "2", TOPIC, "bench_broadcast", {"n": BROADCASTS}]))

        expected = [[None, None, TOPIC, "bench_msg", {"i": i}] for i in range(1, BROADCASTS + 1)]
        received = await asyncio.gather(*(receive(c, BROADCASTS) for c in connections))
        # Exactly these frames, in this order, on every socket.
        assert [index for index, frames in enumerate(received) if frames != expected] == []
        # The sender's reply comes after its broadcasts, as in the golden transcript.
        assert json.loads(await sender.recv()) == ["1", "2", TOPIC, "phx_reply", {"response": {}, "status": "ok"}]
        # And nothing more: no socket got a frame twice.
        extra = await asyncio.gather(*(_any_frame(c) for c in connections))
        assert [frame for frame in extra if frame is not None] == []
    finally:
        await asyncio.gather(*(c.close() for c in connections))


async def _any_frame(connection: websockets.ClientConnection) -> Any:
    try:
        return await asyncio.wait_for(connection.recv(), 0.2)
    except TimeoutError:
        return None


async def wait_for_exits(pids: list[Any], timeout: float = 10.0) -> None:
    done = []
    for pid in pids:
        exited = asyncio.Event()
        process.on_exit(pid, lambda _pid, exited=exited: exited.set())
        done.append(exited.wait())
    await asyncio.wait_for(asyncio.gather(*done), seconds(timeout))


async def settle_tasks(baseline: set[asyncio.Task[Any]], timeout: float = 10.0) -> None:
    current = asyncio.current_task()
    pending = [t for t in asyncio.all_tasks() if t not in baseline and t is not current and not t.done()]
    if pending:
        await asyncio.wait(pending, timeout=seconds(timeout))


async def test_every_socket_gets_every_broadcast_once_in_order_and_the_server_returns_to_its_baseline(
    demo_server: Server,
) -> None:
    raise_fd_limit()
    # A first round warms what is built once (imports, caches, the serializers' state).
    await run_round(demo_server)
    await wait_for_exits([p for p in process.processes()])
    tasks_before = set(asyncio.all_tasks())
    pids_before = set(process.processes())
    objects_before = package_objects()

    await run_round(demo_server)

    # Each transport process sees its client go; each channel sees its transport go.
    await wait_for_exits([p for p in process.processes() if p not in pids_before])
    await settle_tasks(tasks_before)
    assert set(process.processes()) == pids_before
    current = asyncio.current_task()
    assert [t for t in asyncio.all_tasks() if t not in tasks_before and t is not current] == []
    app = demo_server.app
    assert app.pubsub.topics() == []
    assert app.pubsub._topics_by_pid == {}
    assert app.supervisor.which_children() == []
    assert monitors_of_live_processes() == []
    assert getattr(app, "_connections", {}) == {}
    # Not one object of ours is left from 200 connections and their channels.
    objects_after = package_objects()
    grown = {name: objects_after[name] - objects_before[name]
             for name in objects_after if objects_after[name] > objects_before[name]}
    assert grown == {}
