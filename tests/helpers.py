"""Helpers shared by the tests: paths, timeouts, a raw WebSocket client, in-process runs.

A plain module rather than conftest.py, so that tests can import from it by name:
``conftest`` is ambiguous once the notebooks' own conftest.py is collected too.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import shutil
import socket as std_socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import websockets
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from channels_core import process

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


# A real redis-server, for the tests of several nodes

REDIS_SERVER = "/usr/bin/redis-server"


def free_port() -> int:
    with std_socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def wait_until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 5.0) -> None:
    """Poll ``check`` until it is true: for state outside this process, which sends no event."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds(timeout)
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


class RedisServer:
    """One ``redis-server`` child process, which can be stopped and started again on its port."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: asyncio.subprocess.Process | None = None
        self.admin: aioredis.Redis | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(self.directory),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )
        self.admin = aioredis.Redis(
            host="127.0.0.1", port=self.port, client_name="test-admin",
            retry=Retry(NoBackoff(), 0), decode_responses=True,
        )

        async def answers_ping() -> bool:
            assert self.process is not None and self.admin is not None
            if self.process.returncode is not None:
                raise RuntimeError(f"redis-server exited with status {self.process.returncode} on port {self.port}")
            try:
                return bool(await self.admin.ping())
            except (aioredis.ConnectionError, OSError):
                return False

        await wait_until(answers_ping, f"redis-server on port {self.port} to answer PING")

    async def stop(self) -> None:
        if self.admin is not None:
            await self.admin.aclose()
            self.admin = None
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            await asyncio.wait_for(self.process.wait(), seconds(5))
        self.process = None

    async def node_clients(self) -> list[str]:
        """The names of the nodes' connections (``channels_core:<node>``), sorted."""
        assert self.admin is not None
        return sorted(c["name"] for c in await self.admin.client_list() if c["name"].startswith("channels_core:"))

    async def wait_node_clients(self, expected: list[str]) -> None:
        async def matches() -> bool:
            return await self.node_clients() == sorted(expected)

        await wait_until(matches, f"CLIENT LIST to show {expected}")
