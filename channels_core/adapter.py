"""The bridge from the web server to the endpoint: ASGI in, cowboy-style callbacks out.

Mirrors ``Phoenix.Endpoint.Cowboy2Handler``. In Phoenix, Cowboy owns the TCP
connection and calls the handler back: ``init`` with the HTTP request, then, once
the connection is a WebSocket, ``websocket_init``, ``websocket_handle`` for each
frame the client sends, ``websocket_info`` for each message another process sends,
and ``terminate`` at the end. Here uvicorn owns the connection and speaks ASGI;
:class:`WebSocketHandler` turns ASGI's events into those same five callbacks, so the
talk's reading of Cowboy2Handler applies line for line.

The connection's task is adopted as a process (the *transport process*): channels
send it frames, monitor it, and learn from its exit that the client is gone. The
client's frames are dropped in its mailbox too, so that the transport handles
client frames and channel messages one at a time, in arrival order, exactly as
Cowboy's process does: our uvicorn protocol hands each ASGI event over as it
arrives (an ASGI extension, see :mod:`channels_core.server`), and under any other
server a second, small task reads them with ``receive()``.

One shortcut, for speed: a frame sent to a transport that is idle (waiting, its
mailbox empty) is written at once, from the sender's own call, instead of waking
the transport to write it; the order the client sees is the same either way (see
:meth:`WebSocketHandler._take_frame`). This too needs our uvicorn protocol, which
can write without awaiting; elsewhere every frame goes through the mailbox.

Nothing here is specific to uvicorn: the adapter speaks plain ASGI 3, and is
tested under hypercorn too. Two things differ between hosts and are handled
here. A host that mounts the endpoint under a prefix sets ``root_path`` (see
:func:`mount_paths` and the endpoint's docstring). And refusing an upgrade with
a status of our choosing needs the ``websocket.http.response`` extension; a
server without it can only be asked to close before accepting, which ASGI
defines as an HTTP 403, so that is what such a server's clients get.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from typing import Any, NamedTuple

from . import process, tracing
from .endpoint import Endpoint
from .pubsub import fastlane
from .serializers import SocketPush
from .server import PUSH_EVENTS, WRITE_NOWAIT
from .socket import SocketState
from .transports import longpoll
from .transports import websocket as websocket_transport
from .transports.transport import Conn, Stop, TransportConfig

logger = logging.getLogger("channels_core.adapter")

#: Close codes, as RFC 6455 names them.
NORMAL_CLOSURE = 1000
MESSAGE_TOO_BIG = 1009
INTERNAL_ERROR = 1011
SERVICE_RESTART = 1012
TRY_AGAIN_LATER = 1013


async def handle(endpoint: Endpoint, scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The ASGI entry point of every endpoint: Cowboy2Handler's ``init``."""
    kind = scope["type"]
    if kind == "lifespan":
        await _lifespan(endpoint, receive, send)
        return
    # Servers that skip lifespan, and hosts that mount us (Starlette's Mount does not
    # forward lifespan events), still get a started endpoint.
    await endpoint.startup()
    conn = conn_from_scope(scope)
    tracing.hop("adapter", "adapter.handle", scope=kind, path=conn.path)
    # Matched on the path under the mount point: the table's keys are relative to it.
    _, route = mount_paths(scope)
    dispatch = endpoint.__handler__(tuple(p for p in route.split("/") if p))
    if kind == "websocket":
        if dispatch.kind != "websocket":
            # No socket here: answer the upgrade the way plain HTTP would, with a 404.
            await receive()  # websocket.connect
            await deny_upgrade(scope, send, 404, b"not found")
            return
        handler = WebSocketHandler(
            endpoint, dispatch.handler, dispatch.config, conn, receive, send  # type: ignore[arg-type]
        )
        handler.scope = scope
        # The request's headers serve the connect only: let them go, here and in the
        # handler, rather than hold them for the connection's whole life.
        del conn
        await handler.run()
        return
    if dispatch.kind == "websocket":
        # A plain HTTP request on a WebSocket path: the upgrade is missing.
        connection = conn.header("connection") or ""
        await _respond(send, 400, f"'connection' header must contain 'upgrade', got [\"{connection}\"]")
        return
    if dispatch.kind == "longpoll":
        body = await _read_body(receive, longpoll.MAX_BODY_SIZE)
        if body is None:
            # Phoenix reads a long-poll POST with Plug's read_body, which stops at 8 MB: a 400.
            logger.warning("x refused a long-poll request body over %d bytes (content-length: %s)",
                           longpoll.MAX_BODY_SIZE, conn.header("content-length"))
            await _respond(send, 400, "", [("access-control-allow-origin", "*")])
            return
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


def mount_paths(scope: dict[str, Any]) -> tuple[str, str]:
    """The request's full path, and its path under the endpoint's mount point.

    Served alone, the two are the same. Mounted (Starlette's ``Mount("/socket",
    app=endpoint)``), ``root_path`` is ``"/socket"`` and ``path`` is either the full
    ``"/socket/websocket"`` (Starlette 0.33 and later, the ASGI spec's reading) or
    the stripped ``"/websocket"`` (older Starlette, some proxies). Both give
    ``("/socket/websocket", "/websocket")``. The rule is Starlette's
    ``get_route_path``: a ``path`` that starts with ``root_path`` at a segment
    boundary still carries it; any other ``path`` was stripped already.
    """
    path = scope.get("path") or "/"
    root = (scope.get("root_path") or "").rstrip("/")
    if not root:
        return path, path
    if path == root:
        return path, "/"
    if path.startswith(root + "/"):
        return path, path[len(root):]
    return root + path, path


def conn_from_scope(scope: dict[str, Any]) -> Conn:
    """Build the pipeline's :class:`Conn` from an ASGI scope; its path is the full path."""
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
        path=mount_paths(scope)[0],
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


class _IdleCheck(NamedTuple):
    """Time to see whether the client has been silent for longer than the idle timeout."""


_IDLE_CHECK = _IdleCheck()


def _forward(pid: process.Pid, event: dict[str, Any]) -> bool:
    """Drop a client's ASGI event in the transport's mailbox; False once the client is gone."""
    kind = event["type"]
    if kind == "websocket.receive":
        text = event.get("text")
        if text is not None:
            process.send(pid, _Frame("text", text))
        else:
            process.send(pid, _Frame("binary", event.get("bytes") or b""))
    elif kind == "websocket.disconnect":
        process.send(pid, _Closed(event.get("code", 1005)))
        return False
    return True


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
        # True while _loop waits for a message: see _take_frame.
        self._idle = False
        # Set when the mailbox overflowed: see _mailbox_full.
        self._overflowed = False
        self._write_nowait: Any = None
        #: The ASGI scope; it says which extensions the server offers (see deny_upgrade).
        self.scope: dict[str, Any] = {}
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
        self.conn = None  # type: ignore[assignment]  # see handle(): only the connect reads it
        if isinstance(decision, websocket_transport.Refuse):
            await self._refuse(decision)
            return
        self.state = decision.state
        await self._send({"type": "websocket.accept", "subprotocol": decision.subprotocol})
        me = process.adopt("socket")
        me.max_mailbox = self.config.max_queue
        me.on_mailbox_full = self._mailbox_full
        extensions = self.scope.get("extensions") or {}
        # Our uvicorn protocol (channels_core.server) can write without awaiting; with
        # it, frames skip the mailbox while the transport is idle (see _take_frame).
        self._write_nowait = extensions.get(WRITE_NOWAIT)
        if self._write_nowait is not None:
            me.fast_receiver = self._take_frame
        # It can also hand us each client event as it arrives, straight into the
        # mailbox; any other server is read by a small task of our own. Either way
        # the events are forwarded in this process's context, so that a trace sees
        # the transport hand each frame to itself.
        push_events = extensions.get(PUSH_EVENTS)
        reader = None
        if push_events is not None:
            push_events(functools.partial(contextvars.copy_context().run, _forward, me.pid))
        else:
            reader = asyncio.get_running_loop().create_task(self._read(me.pid), name=f"ws-reader {me.pid}")
        reason: Any = "normal"
        try:
            self.websocket_init(me.pid)
            reason = await self._loop()
        except Exception as exc:
            # A frame that does not decode, or a bug: this connection crashes, alone.
            logger.error("! socket %r crashed: %s", me.pid, exc, exc_info=exc)
            reason = exc
            await self._close(INTERNAL_ERROR)
        except asyncio.CancelledError:
            if not self._overflowed:
                # The server is stopping without a websocket.disconnect first: hypercorn
                # cancels connections that outlive its graceful timeout. Say goodbye as
                # uvicorn does on shutdown (1012, "service restart": phoenix.js reconnects),
                # rather than leave the server to report an internal error (1011).
                await self._close(SERVICE_RESTART)
                raise
            # Cancelled by _mailbox_full, not by the server: the connection ends here,
            # with 1013, "try again later". Falling behind is a condition of the moment,
            # not a broken rule (1008, "policy violation", would say that), and what
            # phoenix.js does next, reconnecting with backoff, is the right answer.
            asyncio.current_task().uncancel()  # type: ignore[union-attr]
            await self._close(TRY_AGAIN_LATER)
        finally:
            if reader is not None:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
            self.terminate(reason)
            # Whatever closed the connection, a connection that did not crash exits
            # normally, as Cowboy's process does: channels then stop {shutdown, closed}.
            process.release(me, reason if isinstance(reason, Exception) else "normal")

    async def _loop(self) -> Any:
        loop = asyncio.get_running_loop()
        idle = self.config.timeout / 1000
        me = process.current()
        # One timer for the idle timeout, not one per message: a frame only moves the
        # deadline (a float), and when the timer fires, its check, a message like any
        # other, either closes the connection or sets the timer for the new deadline.
        deadline = loop.time() + idle
        timer = loop.call_at(deadline, process.send, me, _IDLE_CHECK)
        try:
            while True:
                self._idle = True  # from here until a message is taken, _take_frame may write
                try:
                    message = await process.receive()
                finally:
                    self._idle = False
                if isinstance(message, _Frame):
                    deadline = loop.time() + idle
                    action = await self.websocket_handle(message)
                elif isinstance(message, _IdleCheck):
                    if loop.time() < deadline:
                        timer = loop.call_at(deadline, process.send, me, _IDLE_CHECK)
                        continue
                    logger.info("x closing idle connection %d after %d ms without a frame",
                                self.connection_id, self.config.timeout)
                    await self._close(NORMAL_CLOSURE)
                    return ("shutdown", "timeout")
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
        finally:
            timer.cancel()

    def _mailbox_full(self, pid: process.Pid) -> None:
        """The transport's mailbox holds ``max_queue`` messages: close the connection.

        Called by the process runtime, in the call of whoever sent one message too
        many (see :meth:`process.Process._deliver`); that message, and any after it,
        are dropped. The transport cannot check for itself: when its client stops
        reading, it waits in its write for the client's buffer to drain, while the
        frames for it pile up. So it is cancelled out of that wait, and closes.
        """
        self._overflowed = True
        logger.warning(
            "x closing connection %d with %d: %d messages wait for it (max_queue); its client is not keeping up",
            self.connection_id, TRY_AGAIN_LATER, self.config.max_queue,
        )
        transport = process.lookup(pid)
        if transport is not None and transport.task is not None:
            transport.task.cancel()

    async def _read(self, pid: process.Pid) -> None:
        while _forward(pid, await self._receive()):
            pass

    def _take_frame(self, message: Any) -> bool:
        """The transport process's fast receiver: write a frame from the sender's own call.

        A broadcast to a thousand clients would otherwise wake a thousand transport
        processes, each to take one frame from its mailbox and write it. Instead,
        while this transport is idle (parked in :meth:`_loop`, its mailbox empty, as
        :meth:`process.Process._deliver` checks), the fastlane, a push or a reply
        writes its frame to the connection right away. Nothing sent to this
        transport before can still be waiting then, so the client sees every frame
        in the order it was sent, exactly as through the mailbox. Anything else
        returns False and takes the ordinary way: a message that is not a frame, a
        transport busy with a message (a join waiting for its channel, say), a
        connection that cannot take a write now, or a trace in progress (a trace
        records every hop, so it sees the mailbox path).
        """
        if not self._idle or tracing.active is not None or not isinstance(message, SocketPush):
            return False
        # Slow consumers: write_nowait declines while the socket's buffer is over
        # uvicorn's high-water mark, and the frame then waits in the mailbox, which
        # config.max_queue bounds (see _mailbox_full).
        # A broadcast's frame may wait for the loop's next turn, to share one write
        # with the rest of a burst (see WebSocketProtocol.write_nowait).
        return self._write_nowait(message.opcode, message.data, batch=fastlane.dispatching)  # type: ignore[misc]

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
        await deny_upgrade(self.scope, self._send, refusal.status, refusal.body.encode())


async def deny_upgrade(scope: dict[str, Any], send: Any, status: int, body: bytes) -> None:
    """Answer a WebSocket upgrade with an HTTP response instead of accepting it.

    With the ASGI ``websocket.http.response`` extension (uvicorn and hypercorn have
    it) the client gets exactly ``status`` and ``body``. A server without it can
    only be told to close before accepting, which ASGI defines as an HTTP 403: the
    refusal still reaches the client, but another status or a body cannot, and the
    log says what was lost.
    """
    if "websocket.http.response" in (scope.get("extensions") or {}):
        headers = [(b"content-length", str(len(body)).encode())]
        if body:
            headers.append((b"content-type", b"text/plain; charset=utf-8"))
        await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
        return
    if status != 403 or body:
        logger.info(
            "x refused WebSocket upgrade on %s answered 403 instead of %d %r: "
            "the server lacks the websocket.http.response extension",
            mount_paths(scope)[0], status, body.decode(errors="replace"),
        )
    await send({"type": "websocket.close", "code": 1008})


# HTTP


async def _read_body(receive: Any, limit: int) -> bytes | None:
    """The request's body, or None as soon as it grows past ``limit`` bytes."""
    chunks = []
    size = 0
    while True:
        event = await receive()
        if event["type"] == "http.disconnect":
            break
        chunk = event.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None  # the rest is never read, let alone kept
        chunks.append(chunk)
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
