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
import functools
import json
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import websockets

from channels_core import process
from channels_core.demo import create_app
from channels_core.server import Server

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(os.environ.get("CHANNELS_GOLDEN_DIR", ROOT.parent / "shared" / "golden"))

#: Scale every timeout by this factor on a slow machine (like websockets' MS unit).
TIMEOUT_SCALE = float(os.environ.get("CHANNELS_TEST_TIMEOUT_SCALE", "1"))


def seconds(value: float) -> float:
    """A timeout in seconds, scaled for slow machines."""
    return value * TIMEOUT_SCALE


class RawClient:
    """A plain WebSocket client that sends and receives frames exactly as given."""

    def __init__(self, connection: websockets.ClientConnection) -> None:
        self.connection = connection

    async def send(self, frame: str | bytes | list[Any] | dict[str, Any]) -> None:
        if isinstance(frame, (list, dict)):
            frame = json.dumps(frame)
        await self.connection.send(frame)

    async def recv(self, timeout: float = 2.0) -> Any:
        """The next frame: parsed JSON for text frames, ``bytes`` for binary ones."""
        data = await asyncio.wait_for(self.connection.recv(), seconds(timeout))
        return json.loads(data) if isinstance(data, str) else data

    async def recv_n(self, count: int, timeout: float = 2.0) -> list[Any]:
        return [await self.recv(timeout) for _ in range(count)]

    async def expect_silence(self, timeout: float = 0.2) -> None:
        """Assert that no frame arrives within ``timeout`` (used after the last expected frame)."""
        try:
            data = await asyncio.wait_for(self.connection.recv(), timeout)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected frame: {data!r}")

    async def wait_closed(self, timeout: float = 2.0) -> tuple[int | None, str | None]:
        """Wait until the server closes; return (code, reason) it sent."""
        try:
            while True:
                await asyncio.wait_for(self.connection.recv(), seconds(timeout))
        except websockets.ConnectionClosed:
            pass
        rcvd = self.connection.protocol.close_rcvd
        return (rcvd.code, rcvd.reason) if rcvd else (None, None)

    async def close(self) -> None:
        await self.connection.close()


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


def node_available() -> bool:
    return shutil.which("node") is not None and (ROOT / "node_modules" / "phoenix").is_dir()


# Tests that play the transport process themselves, without a network


async def run_in_process(
    coro_fn: Callable[..., Awaitable[Any]], *args: Any, timeout: float = 5.0, **kwargs: Any
) -> Any:
    """Run ``coro_fn`` as a process, return its result or re-raise its exception.

    Then wait until every process it started (channels, mostly) has exited: when
    the test process ends, its channels see their transport go and stop.
    """
    before = set(process.processes())
    outcome: dict[str, Any] = {}

    async def body() -> None:
        try:
            outcome["value"] = await coro_fn(*args, **kwargs)
        except Exception as exc:
            outcome["error"] = exc

    pid = process.spawn(body, role="test transport")
    await asyncio.wait_for(process.lookup(pid).task, timeout)  # type: ignore[union-attr, arg-type]
    started = [p for p in process.processes() if p not in before]
    tasks = [t for p in started if (proc := process.lookup(p)) is not None and (t := proc.task) is not None]
    if tasks:
        await asyncio.wait(tasks, timeout=timeout)
    assert [p for p in started if process.is_alive(p)] == [], "processes outlived the test"
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def in_process(test: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Run an async test's body inside a process (fixtures are still injected)."""

    @functools.wraps(test)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        return await run_in_process(test, *args, **kwargs)

    return wrapper
