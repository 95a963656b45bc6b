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
from collections.abc import Callable, Generator
from typing import Any

import uvicorn
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState

__all__ = ["Server", "serve"]


#: The ASGI scope extensions through which :class:`WebSocketProtocol` offers a
#: synchronous write (:meth:`WebSocketProtocol.write_nowait`) and events handed
#: over as they arrive (:meth:`WebSocketProtocol.push_events`).
WRITE_NOWAIT = "channels_core.write_nowait"
PUSH_EVENTS = "channels_core.push_events"


class _Pushed:
    """Stands in for uvicorn's event queue once the application takes each event as it comes."""

    __slots__ = ("deliver",)

    def __init__(self, deliver: Callable[[dict[str, Any]], None]) -> None:
        self.deliver = deliver

    def put_nowait(self, event: dict[str, Any]) -> None:
        self.deliver(event)

    def empty(self) -> bool:
        return True

    async def get(self) -> dict[str, Any]:
        raise RuntimeError("this connection pushes its events to the application; receive() is not used")


#: Per event loop, the connections whose batched frames wait for the loop's next turn.
#: An entry lives from the first such frame to the callback that flushes them all.
_waiting: dict[asyncio.AbstractEventLoop, list[WebSocketProtocol]] = {}


def _flush_waiting(loop: asyncio.AbstractEventLoop) -> None:
    for protocol in _waiting.pop(loop, ()):
        protocol._flush()


class WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol on the ``websockets`` sans-I/O core, with one fix and two additions.

    The fix: a refused upgrade (our 403) is answered with the ASGI denial-response
    extension; uvicorn then logs "ASGI callable returned without completing
    handshake" although the response was sent. Marking the handshake complete once
    the denial's body is out keeps that false error out of the logs.

    The additions, offered to the application as two ASGI scope extensions; an
    application that ignores them gets plain ASGI. ASGI's ``send`` and ``receive``
    are coroutines, so only a task can call them, and each call is a task switch.

    * :meth:`write_nowait` (``"channels_core.write_nowait"``) writes a frame from
      whatever code is running: a broadcast to a thousand connections need not
      wake a thousand tasks, one per frame. ``websockets.broadcast`` does the same
      for the ``websockets`` server. A broadcast's frames may also wait for the
      event loop's next turn and go out together (``batch``).
    * :meth:`push_events` (``"channels_core.push_events"``) hands each event to a
      callback as it arrives, instead of queueing it for ``receive()``: the
      adapter needs no task per connection to wait on ``receive()``, and each
      frame costs one task switch fewer, and a few hundred bytes less.
    """

    _flush_pending = False  # a _flush is scheduled: see write_nowait

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # asyncio.Event keeps its waiters in a deque, 760 bytes even when empty, for
        # every connection; only this connection's sender ever waits here, and the
        # Event does no more with its waiters than a list does (append, remove, loop).
        self.writable._waiters = []  # type: ignore[attr-defined]

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)  # absent when the handshake itself was refused
        if scope is not None:
            scope["extensions"][WRITE_NOWAIT] = self.write_nowait
            scope["extensions"][PUSH_EVENTS] = self.push_events

    def push_events(self, deliver: Callable[[dict[str, Any]], None]) -> None:
        """From now on, call ``deliver(event)`` with each ASGI receive event, at once and in order.

        Events already queued are delivered first. uvicorn pauses reading after
        each event until the application's next ``receive()``, which will not come
        now; reading is resumed, and ``read_paused`` stays set so that uvicorn never
        pauses it again. That is what the adapter's reader task did before (it
        called ``receive()`` again at once), so incoming frames are no more and no
        less throttled than they were: an inbound limit would go in ``deliver``.
        """
        queued, self.queue = self.queue, _Pushed(deliver)  # type: ignore[assignment]
        while not queued.empty():
            deliver(queued.get_nowait())
        if self.read_paused:
            self.transport.resume_reading()
        self.read_paused = True

    def write_nowait(self, opcode: str, data: str | bytes, *, batch: bool = False) -> bool:
        """Write one message, as ``send({"type": "websocket.send", ...})`` would, without awaiting.

        With ``batch``, the frame waits in the protocol's output until the event
        loop's next turn, when one callback flushes every connection that has frames
        waiting: a burst of broadcasts costs each connection one system call, not
        one per frame, and a broadcast to N connections one callback, not N.
        Nothing overtakes a waiting frame: every other write (a frame without
        ``batch``, ``send``, a pong, a close) takes the protocol's output from the
        front, this frame included.

        Returns False, having written nothing, whenever ``send`` would have to wait
        or would fail: the connection is not open yet or any more, or its write
        buffer is over the transport's high-water mark (uvicorn then waits for it to
        drain). The caller then goes the ordinary way, through ``send``.
        """
        if (not self.handshake_complete or self.close_sent or self.disconnected
                or self.initial_response is not None or not self.writable.is_set()):
            return False
        try:
            if opcode == "text":
                self.conn.send_text(data.encode() if isinstance(data, str) else data)
            else:
                self.conn.send_binary(data)
        except InvalidState:  # the client's close arrived first: send would fail too
            return False
        if not batch:
            self.transport.write(b"".join(self.conn.data_to_send()))
        elif not self._flush_pending:
            self._flush_pending = True
            waiting = _waiting.get(self.loop)
            if waiting is None:  # the first connection this turn: one callback flushes them all
                waiting = _waiting[self.loop] = []
                self.loop.call_soon(_flush_waiting, self.loop)
            waiting.append(self)
        return True

    def _flush(self) -> None:
        self._flush_pending = False
        output = self.conn.data_to_send()
        if output and not self.transport.is_closing():
            self.transport.write(b"".join(output))

    async def send(self, message: Any) -> None:
        if message["type"] == "websocket.close":
            # A close is the last frame, not one more for a slow client's buffer: uvicorn
            # would first wait for that buffer to drain, which for a client that stopped
            # reading is forever (see the adapter's max_queue). It goes out behind what
            # is buffered, and nothing is sent after it.
            self.writable.set()
        await super().send(message)
        if message["type"] == "websocket.http.response.body" and not message.get("more_body", False):
            self.handshake_complete = True
        elif message["type"] == "websocket.accept":
            # uvicorn keeps the handshake's request and response, headers and all, for
            # the connection's whole life, though nothing reads them once the 101 is
            # out: a few KB per connection that we let go.
            self.request = self.response = None  # type: ignore[assignment]


    def shutdown(self) -> None:
        stalled = not self.writable.is_set()
        super().shutdown()
        if stalled:
            # The client is a whole write buffer behind: its 1012 waits behind that, and
            # uvicorn waits for every connection to close before it stops, so a client
            # that stopped reading would hold the shutdown forever. Cut it off; the
            # application's send that waited for the buffer to drain then fails.
            self.transport.abort()


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
