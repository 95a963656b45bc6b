"""The LongPoll transport: a socket made of ordinary HTTP requests.

Mirrors ``Phoenix.Transports.LongPoll`` (the request side) and
``Phoenix.Transports.LongPoll.Server`` (the session process). When a WebSocket
cannot get through (a proxy that strips the upgrade, a locked-down network),
phoenix.js falls back to this transport, and nothing above the transport notices:
the same :class:`~channels_core.socket.SocketState` routes the same frames to the
same channels.

The shape follows from HTTP having no connection to keep. Something must outlive
the requests, so every client gets a *session process* (:class:`LongPollServer`),
which is the transport process of its socket: channels monitor it, send it their
frames, and stop when it stops. Each request only visits it:

* ``GET`` without a valid token opens a session: the socket's ``connect`` runs, a
  session process starts, and the answer is ``{"status": 410, "token": T}``
  ("gone": you had no session, here is one);
* ``GET`` with a token *polls*: it asks the session to flush its buffer and is held
  up to ``window_ms`` until there is something to send (200), or answered empty
  (204);
* ``POST`` with a token *publishes*: each frame of the body is handed to the
  session, and the answer waits until the session has handled it (200), so that a
  poll sent after it sees its replies;
* any other method is refused, bar the ``OPTIONS`` of a CORS preflight.

The real status travels in the JSON body, as ``"status"``; the HTTP status is
always 200, because some proxies mangle anything else.

Requests find their session through a signed token (``channels_core.token``)
carrying the session id; the endpoint keeps the table from id to pid. A request
and its session talk by message passing, with the messages Phoenix uses
(``subscribe``, ``dispatch``, ``flush``, ``now_available``, ``expired``), so each
request that resumes a session is adopted as a short-lived process while it runs,
as a Cowboy request process is one. In Phoenix those messages may cross nodes
through a private PubSub topic when a load balancer sends the request elsewhere;
here a session is found on the endpoint that created it (sticky sessions), which
keeps the exchange to direct sends.

A session ends when no poll has arrived for one and a half ``window_ms`` (Phoenix's
rule: the transport has no ``timeout`` of its own), when its socket is told to
disconnect, when its endpoint shuts down, or when a frame it cannot decode crashes
it, alone.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import itertools
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from .. import process, tracing
from ..exceptions import TokenError
from ..process import Down, Pid, Ref
from ..serializers import SocketPush
from ..socket import SocketState
from ..socket import connect as connect_socket
from ..supervisor import PoolSupervisor
from ..token import sign, verify
from .transport import Conn, Stop, TransportConfig, check_origin, connect_info

__all__ = [
    "HTTPResponse",
    "LongPollServer",
    "Session",
    "serve",
    "sessions",
    "shutdown",
    "sign_session_token",
]

logger = logging.getLogger("channels_core.transports.longpoll")

#: Names the purpose of session tokens, so that no other token of the app fits.
TOKEN_SALT = "channels_core longpoll session"
#: Where newer phoenix.js clients send the session token (older ones: ``?token=``).
TOKEN_HEADER = "x-phoenix-longpoll-token"
#: Where phoenix.js sends its ``authToken`` over long-poll (headers work here, unlike WebSocket).
AUTH_TOKEN_HEADER = "x-phoenix-authtoken"
NDJSON = "application/x-ndjson"
#: At most this many frames of one batched POST are handled; phoenix.js sends no more.
MAX_POLL_BATCH_SIZE = 100
#: The largest request body read, in bytes: Plug's ``read_body`` default, which Phoenix
#: relies on. The adapter answers a larger one with a 400 before any of this runs.
MAX_BODY_SIZE = 8_000_000
#: A secondary guard on one base64 line; the request body is capped before it.
MAX_BASE64_SIZE = 10_000_000

_CORS = ("access-control-allow-origin", "*")
_JSON_HEADERS = [
    _CORS,
    ("content-type", "application/json; charset=utf-8"),
    # With the token in a header, every poll has the same URL: no cache may keep one.
    ("cache-control", "no-store"),
]

_connection_ids = itertools.count(1)


class HTTPResponse(NamedTuple):
    """What the adapter writes back: an HTTP status, headers and a body."""

    status: int
    headers: list[tuple[str, str]]
    body: str | bytes


class Session(NamedTuple):
    """One entry of an endpoint's session table.

    Attributes:
        id: The session's private id, e.g. ``"phx:lp:3q2+7w==1718000000000"``.
        pid: Its process.
        connection_id: Names the session in traces, e.g. ``"longpoll-3"``.
        server: The state that process runs on, to look at (its buffer, say).
    """

    id: str
    pid: Pid
    connection_id: str
    server: LongPollServer


# The messages between a request and its session, as Phoenix names them


class Subscribe(NamedTuple):
    """Request → session: are you there? (Phoenix's ``{:subscribe, client_ref, ref}``)."""

    client: Pid
    ref: Ref


class Subscribed(NamedTuple):
    """Session → request: yes."""

    ref: Ref


class Dispatch(NamedTuple):
    """Request → session: handle this frame the client posted."""

    client: Pid
    data: str | bytes
    opcode: str
    ref: Ref


class Ack(NamedTuple):
    """Session → request: the frame was handled (``"ok"``), or it stopped the session (``"error"``)."""

    ref: Ref
    status: str


class Flush(NamedTuple):
    """Request → session: send me what you have buffered, or tell me when you have some."""

    client: Pid
    ref: Ref


class Messages(NamedTuple):
    """Session → request: the buffered frames, oldest first."""

    frames: list[SocketPush]
    ref: Ref


class NowAvailable(NamedTuple):
    """Session → waiting request: frames arrived; flush again to collect them."""

    ref: Ref


class Expired(NamedTuple):
    """Request → session: I stopped waiting, forget me."""

    client: Pid
    ref: Ref


# The session table and supervisor of an endpoint


def sessions(endpoint: Any) -> dict[str, Session]:
    """The endpoint's live long-poll sessions, by session id."""
    table = getattr(endpoint, "_longpoll_sessions", None)
    if table is None:
        table = endpoint._longpoll_sessions = {}
    return table


def _supervisor(endpoint: Any) -> PoolSupervisor:
    # Phoenix's LongPoll.Supervisor: sessions are temporary children of the endpoint.
    supervisor = getattr(endpoint, "_longpoll_supervisor", None)
    if supervisor is None:
        supervisor = endpoint._longpoll_supervisor = PoolSupervisor("longpoll")
    return supervisor


async def shutdown(endpoint: Any) -> None:
    """Stop every long-poll session of ``endpoint`` and wait until they are gone.

    The endpoint calls this when it shuts down, as stopping a Phoenix endpoint stops
    its ``LongPoll.Supervisor``: each session ends, and its channels with it.
    """
    supervisor = getattr(endpoint, "_longpoll_supervisor", None)
    if supervisor is not None:
        await supervisor.shutdown("shutdown")


def sign_session_token(endpoint: Any, session: Session, *, signed_at: float | None = None) -> str:
    """The token that leads a request to ``session`` (Phoenix signs ``{:v1, id, pid, topic}``)."""
    data = {"v": 1, "pid": session.pid.id, "session": session.id}
    return sign(endpoint.secret_key_base, TOKEN_SALT, data, signed_at=signed_at)


# The request side: Phoenix.Transports.LongPoll


async def serve(endpoint: Any, handler: type, config: TransportConfig, conn: Conn, body: bytes) -> HTTPResponse:
    """Answer one long-poll request (Phoenix's ``LongPoll.call/2``)."""
    tracing.hop("transport", "longpoll.call", method=conn.method, path=conn.path)
    if not check_origin(conn, endpoint, config, "long-poll"):
        return _status_json(403)
    if conn.method == "OPTIONS":
        return _preflight(conn)
    if conn.method == "GET":
        return await _get(endpoint, handler, config, conn)
    if conn.method == "POST":
        return await _post(endpoint, config, conn, body)
    return HTTPResponse(400, [_CORS], "")


def _preflight(conn: Conn) -> HTTPResponse:
    # Any origin may ask: the Origin header itself was checked above.
    requested = ", ".join(value for name, value in conn.headers if name == "access-control-request-headers")
    return HTTPResponse(200, [
        _CORS,
        ("access-control-allow-headers", requested),
        ("access-control-allow-methods", "get, post, options"),
        ("access-control-max-age", "3600"),
    ], "")


async def _get(endpoint: Any, handler: type, config: TransportConfig, conn: Conn) -> HTTPResponse:
    found = _find_session(endpoint, config, conn)
    if found is None:
        return _new_session(endpoint, handler, config, conn)
    session, token = found
    with _request_process() as me:
        monitor = await _resume(session, config, me)
        if monitor is None:
            return _new_session(endpoint, handler, config, conn)
        return await _listen(session, token, monitor, config, me)


async def _post(endpoint: Any, config: TransportConfig, conn: Conn, body: bytes) -> HTTPResponse:
    found = _find_session(endpoint, config, conn)
    if found is None:
        return _status_json(410)
    session, _token = found
    with _request_process() as me:
        monitor = await _resume(session, config, me)
        if monitor is None:
            return _status_json(410)
        return await _publish(session, monitor, conn, body, config, me)


def _new_session(endpoint: Any, handler: type, config: TransportConfig, conn: Conn) -> HTTPResponse:
    """Connect the socket, start its session process, and hand out the token."""
    tracing.hop("transport", "longpoll.new_session", path=conn.path)
    auth_token = conn.header(AUTH_TOKEN_HEADER) if config.auth_token else None
    info = connect_info(conn, config.connect_info, auth_token)
    state = connect_socket(handler, endpoint, "longpoll", config, conn.params, info)
    if not isinstance(state, SocketState):
        # Phoenix's session server returns :ignore for any refusal: no error_handler here.
        return _status_json(403)
    session_id = "phx:lp:" + base64.b64encode(os.urandom(16)).decode() + str(int(time.time() * 1000))
    connection_id = f"longpoll-{next(_connection_ids)}"
    server = LongPollServer(state, config, connection_id)
    pid = _supervisor(endpoint).start_child(server.run, role="longpoll session")
    table = sessions(endpoint)
    session = table[session_id] = Session(session_id, pid, connection_id, server)
    process.on_exit(pid, lambda _pid: table.pop(session_id, None))
    return _messages_json(410, sign_session_token(endpoint, session), [])


def _find_session(endpoint: Any, config: TransportConfig, conn: Conn) -> tuple[Session, str] | None:
    """The session a request's token names, with the token; None if there is none."""
    token = conn.header(TOKEN_HEADER) or conn.params.get("token")
    if not token:
        return None
    try:
        data = verify(endpoint.secret_key_base, TOKEN_SALT, token, max_age=config.crypto_max_age)
    except TokenError as exc:
        logger.info("refused a long-poll session token: %s", exc)
        return None
    if not isinstance(data, dict) or data.get("v") != 1:
        logger.info("refused a long-poll session token: unknown format %r", data)
        return None
    session = sessions(endpoint).get(data.get("session"))
    if session is None or session.pid.id != data.get("pid"):
        # Expired for inactivity, crashed, or started by another endpoint.
        logger.info("long-poll session %s is gone", data.get("session"))
        return None
    return session, token


@contextlib.contextmanager
def _request_process() -> Iterator[Pid]:
    # The request's task becomes a process for as long as it talks to its session,
    # so that the session's answers have a mailbox to arrive in.
    me = process.adopt("longpoll request")
    try:
        yield me.pid
    finally:
        process.release(me, "normal")


async def _resume(session: Session, config: TransportConfig, me: Pid) -> Ref | None:
    """Check that the session answers; return our monitor on it, or None.

    Phoenix asks the session to confirm with ``pubsub_timeout_ms`` to spare, because
    the session may be on another node. The monitor kept afterwards means no wait
    of this request outlives the session.
    """
    tracing.hop("transport", "longpoll.resume_session", session=session.connection_id)
    monitor = process.monitor(session.pid)
    ref = process.make_ref()
    process.send(session.pid, Subscribe(me, ref))
    answer = await _await(lambda m: isinstance(m, Subscribed) and m.ref == ref, monitor,
                          config.pubsub_timeout_ms)
    if answer is None:
        logger.warning("long-poll session %s did not answer within pubsub_timeout_ms (%d ms)",
                       session.connection_id, config.pubsub_timeout_ms)
        process.demonitor(monitor, flush=True)
        return None
    if isinstance(answer, Down):
        logger.info("long-poll session %s ended before it could be resumed", session.connection_id)
        return None
    return monitor


async def _listen(session: Session, token: str, monitor: Ref, config: TransportConfig, me: Pid) -> HTTPResponse:
    """A poll: take the session's buffered frames, waiting up to ``window_ms`` for some."""
    tracing.hop("transport", "longpoll.listen", session=session.connection_id)
    ref = process.make_ref()
    process.send(session.pid, Flush(me, ref))
    answer = await _await(lambda m: isinstance(m, (Messages, NowAvailable)) and m.ref == ref, monitor,
                          config.window_ms)
    if isinstance(answer, NowAvailable):
        # Flushing again, rather than being sent the first frame, lets a burst of
        # frames that arrived meanwhile leave in the same response.
        process.send(session.pid, Flush(me, ref))
        answer = await _await(lambda m: isinstance(m, Messages) and m.ref == ref, monitor, config.window_ms)
    if isinstance(answer, Messages):
        if tracing.active is not None:
            for frame in answer.frames:
                tracing.active.frame("↓", session.connection_id, frame.opcode, frame.data)
        return _messages_json(200, token, [_frame_text(frame) for frame in answer.frames])
    if answer is None:
        process.send(session.pid, Expired(me, ref))
    # 204 once the window has passed. A session that ended under the poll (its Down)
    # gets the same answer at once rather than after the window, as Phoenix would
    # make it wait; the next poll then learns that the session is gone (410).
    return _messages_json(204, token, [])


async def _publish(
    session: Session, monitor: Ref, conn: Conn, body: bytes, config: TransportConfig, me: Pid
) -> HTTPResponse:
    """A POST: hand each frame of the body to the session, one after the other."""
    tracing.hop("transport", "longpoll.publish", session=session.connection_id)
    # An exact match, as Phoenix's: phoenix.js sends exactly this for its batches.
    if conn.header("content-type") != NDJSON:
        status = await _dispatch(session, monitor, _text(body), "text", config, me)
        return _status_json(status or 200)
    status = None
    for line in re.split(rb"\r\n|\n", body)[:MAX_POLL_BATCH_SIZE]:
        if line.startswith(b"["):
            frame: str | bytes = _text(line)
            opcode = "text"
        else:
            # Not JSON, so a binary frame, which phoenix.js sends as base64.
            if len(line) > MAX_BASE64_SIZE:
                logger.warning("refused a long-poll batch: a %d-byte base64 frame exceeds %d bytes",
                               len(line), MAX_BASE64_SIZE)
                return HTTPResponse(400, [_CORS], "")
            try:
                frame = base64.b64decode(line, validate=True)
            except binascii.Error as exc:
                logger.warning("refused a long-poll batch: a line is neither a JSON array nor base64 (%s)", exc)
                return HTTPResponse(400, [_CORS], "")
            opcode = "binary"
        status = await _dispatch(session, monitor, frame, opcode, config, me)
        if status is not None:
            break
    return _status_json(status or 200)


async def _dispatch(
    session: Session, monitor: Ref, data: str | bytes, opcode: str, config: TransportConfig, me: Pid
) -> int | None:
    """Hand one frame to the session and wait until it is handled; a status if it was not."""
    if tracing.active is not None:
        tracing.active.frame("↑", session.connection_id, opcode, data)
    ref = process.make_ref()
    process.send(session.pid, Dispatch(me, data, opcode, ref))
    answer = await _await(lambda m: isinstance(m, Ack) and m.ref == ref, monitor, config.window_ms)
    if answer is None:
        logger.warning("long-poll session %s did not handle a frame within window_ms (%d ms)",
                       session.connection_id, config.window_ms)
        return 408
    if isinstance(answer, Down):
        # The frame crashed the session (it logged why), or it ended meanwhile. Phoenix
        # answers 408 once its wait runs out; the monitor tells us not to wait.
        return 408
    return None


async def _await(match: Callable[[Any], bool], monitor: Ref, timeout_ms: int) -> Any:
    """The first message ``match`` accepts, the session's ``Down``, or None after ``timeout_ms``."""
    try:
        return await process.receive(
            lambda m: match(m) or (isinstance(m, Down) and m.ref == monitor),
            timeout=timeout_ms / 1000,
        )
    except TimeoutError:
        return None


# Responses


def _text(data: bytes) -> str | bytes:
    # Text frames must be UTF-8; if not, the bytes go on and fail to decode in the
    # session, which crashes it as a malformed WebSocket frame crashes its connection.
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data


def _frame_text(frame: SocketPush) -> str:
    """A frame as a JSON string: text as is, binary as one code point per byte.

    That is what Phoenix's JSON encoder makes of a binary frame (not base64):
    ``b"\\x00\\x01"`` becomes ``"\\u0000\\u0001"``.
    """
    data = frame.data
    return data.decode("latin-1") if isinstance(data, bytes) else data


def _status_json(status: int) -> HTTPResponse:
    return _json({"status": status})


def _messages_json(status: int, token: str, messages: list[str]) -> HTTPResponse:
    # Keys in Jason's order (sorted), so that responses read like Phoenix's.
    return _json({"messages": messages, "status": status, "token": token})


def _json(data: dict[str, Any]) -> HTTPResponse:
    return HTTPResponse(200, list(_JSON_HEADERS), json.dumps(data, separators=(",", ":"), ensure_ascii=False))


# The session side: Phoenix.Transports.LongPoll.Server


class LongPollServer:
    """One long-poll session: the transport process of its socket.

    It plays the part the WebSocket connection's process plays (see
    :class:`channels_core.adapter.WebSocketHandler`): it owns the
    :class:`~channels_core.socket.SocketState`, feeds it the client's frames
    (:class:`Dispatch`) and the channels' messages, and keeps the frames to send in
    a buffer until a poll (:class:`Flush`) collects them.

    Attributes:
        state: The socket this session carries.
        buffer: Frames waiting for the next poll, oldest first.
        client: The poll waiting for frames, as ``(pid, ref)``, or None.
        idle_timeout: Seconds without a poll after which the session ends:
            one and a half ``window_ms``, as in Phoenix.
        max_queue: How many frames the buffer may hold; one more ends the session
            (the transport's ``max_queue``; Phoenix has no such bound).
    """

    def __init__(self, state: SocketState, config: TransportConfig, connection_id: str) -> None:
        self.state = state
        self.connection_id = connection_id
        self.buffer: list[SocketPush] = []
        self.client: tuple[Pid, Ref] | None = None
        self.idle_timeout = int(config.window_ms * 1.5) / 1000
        self.max_queue = config.max_queue
        self._last_client_poll = 0.0

    async def run(self) -> Any:
        """Serve the session until it stops; return the exit reason."""
        self._last_client_poll = time.monotonic()
        self.state.init(process.current())
        reason: Any = "normal"
        try:
            reason = await self._loop()
        except asyncio.CancelledError:
            reason = "shutdown"  # stopped from outside: the endpoint is shutting down
            raise
        except Exception as exc:
            # A frame that does not decode, or a bug: this session crashes, alone.
            logger.error("! long-poll session %s crashed: %s", self.connection_id, exc, exc_info=exc)
            reason = exc
        finally:
            tracing.hop("transport", "longpoll.server.terminate", reason=repr(reason))
            self.state.terminate(reason)
        return reason

    async def _loop(self) -> Any:
        while True:
            remaining = self._last_client_poll + self.idle_timeout - time.monotonic()
            if remaining <= 0:
                # Phoenix's :shutdown_if_inactive: the client stopped polling, so it is gone.
                tracing.hop("transport", "longpoll.server.shutdown_if_inactive", session=self.connection_id)
                logger.info("x long-poll session %s ended: no poll for %d ms",
                            self.connection_id, round(self.idle_timeout * 1000))
                return ("shutdown", "inactive")
            try:
                message = await process.receive(timeout=remaining)
            except TimeoutError:
                continue
            reason = await self.handle_info(message)
            if reason is not None:
                return reason

    async def handle_info(self, message: Any) -> Any:
        """Handle one message; return an exit reason to stop, or None to go on."""
        if isinstance(message, Dispatch):
            tracing.hop("transport", "longpoll.server.dispatch", opcode=message.opcode)
            action = await self.state.handle_in(message.data, message.opcode)
            if isinstance(action, Stop):
                process.send(message.client, Ack(message.ref, "error"))
                return action.reason
            process.send(message.client, Ack(message.ref, "ok"))
            if action is not None:
                return self._publish(action)
            return None
        if isinstance(message, Subscribe):
            process.send(message.client, Subscribed(message.ref))
            return None
        if isinstance(message, Flush):
            self._last_client_poll = time.monotonic()
            if self.buffer:
                tracing.hop("transport", "longpoll.server.flush", frames=len(self.buffer))
                process.send(message.client, Messages(self.buffer, message.ref))
                self.buffer = []
                self.client = None
            else:
                self.client = (message.client, message.ref)
            return None
        if isinstance(message, Expired):
            if self.client == (message.client, message.ref):
                self.client = None
            return None
        action = await self.state.handle_info(message)
        if isinstance(action, Stop):
            return action.reason
        if action is not None:
            return self._publish(action)
        return None

    def _publish(self, frame: SocketPush) -> Any:
        """Keep ``frame`` for the next poll; return an exit reason if the buffer is full."""
        if self.max_queue is not None and len(self.buffer) >= self.max_queue:
            # The client polls too seldom for what it is sent (or not at all, for up to
            # 1.5 window_ms): stop holding ever more for it. Its next poll gets a 410.
            logger.warning("x long-poll session %s ended: %d frames wait for its next poll (max_queue)",
                           self.connection_id, self.max_queue)
            return ("shutdown", "slow_consumer")
        if self.client is not None:
            client, ref = self.client
            process.send(client, NowAvailable(ref))
        self.buffer.append(frame)
