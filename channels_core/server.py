"""Run an endpoint on uvicorn: the role Cowboy plays for Phoenix.

uvicorn owns sockets, HTTP parsing and WebSocket framing (through the
``websockets`` package); our endpoint is an ASGI application it calls. This module
only adds what a teaching server needs beyond ``uvicorn.run``: starting and
stopping from inside a running event loop (a Jupyter kernel, a pytest-asyncio
test), on an ephemeral port that it reports once bound, without touching the
host's signal handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket as socket_lib
from collections.abc import Generator
from typing import Any

import uvicorn
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

__all__ = ["Server", "serve"]


class WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol on the ``websockets`` sans-I/O core, with one fix.

    A refused upgrade (our 403) is answered with the ASGI denial-response extension;
    uvicorn then logs "ASGI callable returned without completing handshake" although
    the response was sent. Marking the handshake complete once the denial's body is
    out keeps that false error out of the logs.
    """

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.http.response.body" and not message.get("more_body", False):
            self.handshake_complete = True


class _EmbeddedServer(uvicorn.Server):
    """uvicorn's server, minus signal handling: the host process owns its signals."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def startup(self, sockets: list[socket_lib.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()


class Server:
    """A uvicorn server for one ASGI app, on 127.0.0.1 and a port of its own.

    Use it as ``async with Server(app) as server:`` or call :meth:`start` and
    :meth:`stop`. ``port=0`` (the default) asks the OS for a free port; read it
    from :attr:`port` after :meth:`start`.

    Args:
        app: The ASGI application, usually an :class:`~channels_core.endpoint.Endpoint`.
        host: The address to bind; loopback by default.
        port: The port to bind; 0 for any free one.
        **options: Passed to :class:`uvicorn.Config` (e.g. ``log_level``).
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, **options: Any) -> None:
        self.app = app
        self.host = host
        self.requested_port = port
        self.port: int | None = None
        options.setdefault("log_level", "warning")
        options.setdefault("ws", WebSocketProtocol)
        options.setdefault("lifespan", "on")
        self._config = uvicorn.Config(app, host=host, port=port, **options)
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket_lib.socket | None = None

    @property
    def url(self) -> str:
        """``http://host:port``, once started."""
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """``ws://host:port``, once started."""
        return f"ws://{self.host}:{self.port}"

    async def start(self) -> int:
        """Bind, start serving in the background, and return the bound port."""
        # IPPROTO_TCP explicitly: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose
        # proto says TCP, and accepted sockets inherit it. Without it every second frame of a
        # burst waits ~40 ms for the client's delayed ACK. Cowboy (ranch) sets nodelay too.
        sock = socket_lib.socket(socket_lib.AF_INET, socket_lib.SOCK_STREAM, socket_lib.IPPROTO_TCP)
        sock.setsockopt(socket_lib.SOL_SOCKET, socket_lib.SO_REUSEADDR, 1)
        sock.bind((self.host, self.requested_port))
        sock.set_inheritable(True)
        self._socket = sock
        self.port = sock.getsockname()[1]
        self._server = _EmbeddedServer(self._config)
        self._task = asyncio.get_running_loop().create_task(self._server.serve(sockets=[sock]))
        ready = asyncio.ensure_future(self._server.ready.wait())
        await asyncio.wait({ready, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done() or self._server.should_exit:
            ready.cancel()
            if self._task.done():
                self._task.result()  # re-raise whatever stopped it
            raise RuntimeError("server stopped before it started")
        return self.port

    async def stop(self) -> None:
        """Close every connection, run the app's shutdown, and wait for the end."""
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        try:
            await self._task
        finally:
            self._server = None
            self._task = None
            if self._socket is not None:
                self._socket.close()
                self._socket = None

    async def __aenter__(self) -> Server:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.stop()


def serve(app: Any, host: str = "127.0.0.1", port: int = 4000, **options: Any) -> None:
    """Serve ``app`` until interrupted (the CLI's ``serve``)."""
    options.setdefault("ws", WebSocketProtocol)
    uvicorn.run(app, host=host, port=port, **options)
