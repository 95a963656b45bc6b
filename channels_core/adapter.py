"""The bridge from the web server to the endpoint: ASGI in, cowboy-style callbacks out.

Mirrors ``Phoenix.Endpoint.Cowboy2Handler``. In Phoenix, Cowboy owns the TCP
connection and calls the handler back: ``init`` with the HTTP request, then, once
the connection is a WebSocket, ``websocket_init``, ``websocket_handle`` for each
frame the client sends, ``websocket_info`` for each message another process sends,
and ``terminate`` at the end. Here uvicorn owns the connection and speaks ASGI;
:class:`WebSocketHandler` turns ASGI's events into those same five callbacks, so the
talk's reading of Cowboy2Handler applies line for line.

The connection's task is adopted as a process (the *transport process*): channels
send it frames, monitor it, and learn from its exit that the client is gone. A
second, small task reads ASGI events and drops them in its mailbox, so that the
transport handles client frames and channel messages one at a time, in arrival
order, exactly as Cowboy's process does.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, NamedTuple

from . import process, tracing
from .endpoint import Endpoint
from .serializers import SocketPush
from .socket import SocketState
from .transports import longpoll
from .transports import websocket as websocket_transport
from .transports.transport import Conn, Stop, TransportConfig

logger = logging.getLogger("channels_core.adapter")

#: Close codes, as RFC 6455 names them.
NORMAL_CLOSURE = 1000
MESSAGE_TOO_BIG = 1009
INTERNAL_ERROR = 1011


async def handle(endpoint: Endpoint, scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The ASGI entry point of every endpoint: Cowboy2Handler's ``init``."""
    kind = scope["type"]
    if kind == "lifespan":
        await _lifespan(endpoint, receive, send)
        return
    await endpoint.startup()  # servers that skip lifespan still get a started endpoint
    conn = conn_from_scope(scope)
    dispatch = endpoint.__handler__(tuple(p for p in conn.path.split("/") if p))
    if kind == "websocket":
        if dispatch.kind != "websocket":
            # No socket here: answer the upgrade the way plain HTTP would, with a 404.
            await receive()  # websocket.connect
            await send({"type": "websocket.http.response.start", "status": 404,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
            await send({"type": "websocket.http.response.body", "body": b"not found"})
            return
        await WebSocketHandler(endpoint, dispatch.handler, dispatch.config, conn, receive, send).run()  # type: ignore[arg-type]
        return
    if dispatch.kind == "websocket":
        # A plain HTTP request on a WebSocket path: the upgrade is missing.
        connection = conn.header("connection") or ""
        await _respond(send, 400, f"'connection' header must contain 'upgrade', got [\"{connection}\"]")
        return
    if dispatch.kind == "longpoll":
        body = await _read_body(receive)
        serving = asyncio.ensure_future(
            longpoll.serve(endpoint, dispatch.handler, dispatch.config, conn, body)  # type: ignore[arg-type]
        )
        response = await _unless_disconnected(serving, receive)
        if response is not None:
            await _respond(send, response.status, response.body, response.headers)
        return
    if endpoint.plug is not None:
        await endpoint.plug(scope, receive, send)
        return
    await _respond(send, 404, "not found")


def conn_from_scope(scope: dict[str, Any]) -> Conn:
    """Build the pipeline's :class:`Conn` from an ASGI scope."""
    headers = tuple((k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope.get("headers", ()))
    host_header = next((v for k, v in headers if k == "host"), None)
    server = scope.get("server") or ("localhost", 80)
    host, port = server[0], server[1]
    if host_header:
        if host_header.startswith("["):  # an IPv6 literal, e.g. [::1]:4000
            name, _, rest = host_header[1:].partition("]")
            host = name
            if rest.startswith(":") and rest[1:].isdigit():
                port = int(rest[1:])
        else:
            name, sep, port_text = host_header.partition(":")
            host = name
            if sep and port_text.isdigit():
                port = int(port_text)
    scheme = scope.get("scheme", "http")
    client = scope.get("client")
    return Conn(
        method=scope.get("method", "GET"),
        scheme=scheme,
        host=host,
        port=int(port),
        path=scope.get("path", "/"),
        query_string=scope.get("query_string", b"").decode("latin-1"),
        headers=headers,
        peer=(client[0], client[1]) if client else None,
    )


# WebSocket


class _Frame(NamedTuple):
    """A frame the client sent, as the reader task hands it to the transport process."""

    opcode: str
    data: str | bytes


class _Closed(NamedTuple):
    """The client closed the connection (or it dropped)."""

    code: int


class WebSocketHandler:
    """One WebSocket connection, driven through Cowboy's callbacks."""

    _ids = 0

    def __init__(
        self,
        endpoint: Endpoint,
        handler: type,
        config: TransportConfig,
        conn: Conn,
        receive: Any,
        send: Any,
    ) -> None:
        self.endpoint = endpoint
        self.handler = handler
        self.config = config
        self.conn = conn
        self._receive = receive
        self._send = send
        self.state: SocketState | None = None
        WebSocketHandler._ids += 1
        #: Names this connection in traces and logs.
        self.connection_id = WebSocketHandler._ids

    # Cowboy's callbacks

    def init(self) -> websocket_transport.Accept | websocket_transport.Refuse:
        """The upgrade request arrived: run the transport's connect pipeline."""
        tracing.hop("adapter", "WebSocketHandler.init", path=self.conn.path)
        return websocket_transport.connect(self.conn, self.endpoint, self.handler, self.config)

    def websocket_init(self, pid: process.Pid) -> None:
        """The connection is a WebSocket now, owned by process ``pid``."""
        tracing.hop("adapter", "WebSocketHandler.websocket_init")
        assert self.state is not None
        self.state.init(pid)

    async def websocket_handle(self, frame: _Frame) -> SocketPush | Stop | None:
        """A frame from the client: Phoenix's ``handler.handle_in({payload, opcode: ...})``."""
        if tracing.active is not None:
            tracing.active.frame("↑", self.connection_id, frame.opcode, frame.data)
            tracing.hop("adapter", "WebSocketHandler.websocket_handle", opcode=frame.opcode)
        limit = self.config.max_frame_size
        if limit is not None:
            size = len(frame.data.encode()) if isinstance(frame.data, str) else len(frame.data)
            if size > limit:
                logger.warning(
                    "x closing connection %d: a %d-byte frame exceeds max_frame_size %d",
                    self.connection_id, size, limit,
                )
                return Stop(("shutdown", "frame_too_large"), MESSAGE_TOO_BIG)
        assert self.state is not None
        return await self.state.handle_in(frame.data, frame.opcode)

    async def websocket_info(self, message: Any) -> SocketPush | Stop | None:
        """A message from another process: a frame to push, an exit, a disconnect."""
        if tracing.active is not None and not isinstance(message, SocketPush):
            tracing.hop("adapter", "WebSocketHandler.websocket_info", message=type(message).__name__)
        assert self.state is not None
        return await self.state.handle_info(message)

    def terminate(self, reason: Any) -> None:
        tracing.hop("adapter", "WebSocketHandler.terminate", reason=repr(reason))
        if self.state is not None:
            self.state.terminate(reason)

    # The driver

    async def run(self) -> None:
        """Accept or refuse the upgrade, then pump events until the connection ends."""
        event = await self._receive()
        if event["type"] != "websocket.connect":
            return
        decision = self.init()
        if isinstance(decision, websocket_transport.Refuse):
            await self._refuse(decision)
            return
        self.state = decision.state
        await self._send({"type": "websocket.accept", "subprotocol": decision.subprotocol})
        me = process.adopt("socket")
        reason: Any = "normal"
        reader = asyncio.get_running_loop().create_task(self._read(me.pid), name=f"ws-reader {me.pid}")
        try:
            self.websocket_init(me.pid)
            reason = await self._loop()
        except Exception as exc:
            # A frame that does not decode, or a bug: this connection crashes, alone.
            logger.error("! socket %r crashed: %s", me.pid, exc, exc_info=exc)
            reason = exc
            await self._close(INTERNAL_ERROR)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            self.terminate(reason)
            # Whatever closed the connection, a connection that did not crash exits
            # normally, as Cowboy's process does: channels then stop {shutdown, closed}.
            process.release(me, reason if isinstance(reason, Exception) else "normal")

    async def _loop(self) -> Any:
        loop = asyncio.get_running_loop()
        idle = self.config.timeout / 1000
        deadline = loop.time() + idle
        while True:
            try:
                message = await process.receive(timeout=max(0.0, deadline - loop.time()))
            except TimeoutError:
                logger.info("x closing idle connection %d after %d ms without a frame",
                            self.connection_id, self.config.timeout)
                await self._close(NORMAL_CLOSURE)
                return ("shutdown", "timeout")
            if isinstance(message, _Frame):
                deadline = loop.time() + idle
                action = await self.websocket_handle(message)
            elif isinstance(message, _Closed):
                return "normal"
            else:
                action = await self.websocket_info(message)
            if action is None:
                continue
            if isinstance(action, Stop):
                await self._close(action.code)
                return action.reason
            if not await self._write(action):
                return "normal"

    async def _read(self, pid: process.Pid) -> None:
        while True:
            event = await self._receive()
            kind = event["type"]
            if kind == "websocket.receive":
                text = event.get("text")
                if text is not None:
                    process.send(pid, _Frame("text", text))
                else:
                    process.send(pid, _Frame("binary", event.get("bytes") or b""))
            elif kind == "websocket.disconnect":
                process.send(pid, _Closed(event.get("code", 1005)))
                return

    async def _write(self, push: SocketPush) -> bool:
        if tracing.active is not None:
            tracing.active.frame("↓", self.connection_id, push.opcode, push.data)
        key = "text" if push.opcode == "text" else "bytes"
        try:
            await self._send({"type": "websocket.send", key: push.data})
        except Exception:  # the client went away under us; the reader will say so too
            return False
        return True

    async def _close(self, code: int) -> None:
        try:
            await self._send({"type": "websocket.close", "code": code, "reason": ""})
        except Exception:
            pass

    async def _refuse(self, refusal: websocket_transport.Refuse) -> None:
        body = refusal.body.encode()
        headers = [(b"content-length", str(len(body)).encode())]
        if body:
            headers.append((b"content-type", b"text/plain; charset=utf-8"))
        await self._send({"type": "websocket.http.response.start", "status": refusal.status, "headers": headers})
        await self._send({"type": "websocket.http.response.body", "body": body})


# HTTP


async def _read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        event = await receive()
        if event["type"] == "http.disconnect":
            break
        chunks.append(event.get("body", b""))
        if not event.get("more_body"):
            break
    return b"".join(chunks)


async def _unless_disconnected(work: asyncio.Future[Any], receive: Any) -> Any:
    """Await ``work``; if the client disconnects first, cancel it and return None.

    Cowboy ends a request's process when its connection closes. A long poll held
    for a client that has gone would otherwise run out its ``window_ms``, and keep
    uvicorn's shutdown waiting for it.
    """
    watcher = asyncio.ensure_future(_disconnected(receive))
    try:
        await asyncio.wait({work, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        pending = [task for task in (work, watcher) if not task.done()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    return None if work.cancelled() else work.result()


async def _disconnected(receive: Any) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _respond(send: Any, status: int, body: str | bytes, headers: list[tuple[str, str]] | None = None) -> None:
    data = body.encode() if isinstance(body, str) else body
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or [])]
    if not any(k == b"content-type" for k, _ in raw) and data:
        raw.append((b"content-type", b"text/plain; charset=utf-8"))
    raw.append((b"content-length", str(len(data)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})


async def _lifespan(endpoint: Endpoint, receive: Any, send: Any) -> None:
    while True:
        event = await receive()
        if event["type"] == "lifespan.startup":
            try:
                await endpoint.startup()
            except Exception as exc:
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
        elif event["type"] == "lifespan.shutdown":
            await endpoint.shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return
