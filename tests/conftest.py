"""Shared fixtures: a real server on 127.0.0.1, raw WebSocket clients, leak checks.

Every integration test talks to a real uvicorn server on an ephemeral port. The
``demo_server`` fixture starts the demo app; ``start_server`` starts any endpoint
(a test-specific subclass with a short idle timeout, say). ``raw_ws`` opens a
plain ``websockets`` connection for tests that assert on exact frames.

After each test that started a server, the process registry and the asyncio
tasks must be back where they were: nothing leaks.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import websockets

from channels_core import process
from channels_core.demo import create_app
from channels_core.server import Server

from helpers import RawClient, seconds


@pytest.fixture
def leak_check() -> Any:
    """Fail the test if processes or tasks it started outlive it."""
    before_pids = set(process.processes())
    yield
    leaked = [pid for pid in process.processes() if pid not in before_pids]
    assert leaked == [], f"processes left running: {leaked}"


@pytest.fixture
async def start_server(leak_check: Any) -> AsyncIterator[Callable[..., Awaitable[Server]]]:
    """Start ``app`` on 127.0.0.1:<ephemeral>; every server is stopped after the test."""
    servers: list[Server] = []
    tasks_before = set(asyncio.all_tasks())

    async def start(app: Any = None, **options: Any) -> Server:
        server = Server(app if app is not None else create_app(), **options)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in reversed(servers):
        await server.stop()
    # Let channel processes finish their terminate after their transports closed.
    await _settle(tasks_before)


async def _settle(tasks_before: set[asyncio.Task[Any]], timeout: float = 5.0) -> None:
    current = asyncio.current_task()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds(timeout)
    while True:
        pending = [t for t in asyncio.all_tasks() if t not in tasks_before and t is not current and not t.done()]
        if not pending:
            return
        if loop.time() > deadline:
            raise AssertionError(f"tasks left running: {pending}")
        await asyncio.wait(pending, timeout=deadline - loop.time())


@pytest.fixture
async def demo_server(start_server: Callable[..., Awaitable[Server]]) -> Server:
    """The demo app on a real server."""
    return await start_server()


@pytest.fixture
async def raw_ws(demo_server: Server) -> AsyncIterator[Callable[..., Awaitable[RawClient]]]:
    """Open raw WebSocket connections to the demo server: ``await raw_ws("vsn=2.0.0&user_id=u1")``."""
    clients: list[RawClient] = []

    async def connect(query: str = "vsn=2.0.0&user_id=u1", server: Server | None = None, **kwargs: Any) -> RawClient:
        target = server or demo_server
        connection = await websockets.connect(f"{target.ws_url}/socket/websocket?{query}", **kwargs)
        client = RawClient(connection)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        await client.close()
