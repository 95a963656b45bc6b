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
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import websockets

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
