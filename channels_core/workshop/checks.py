"""The checks of the workshop exercises, one per exercise, numbered as in ``exercises/``.

No Phoenix counterpart. Each ``check_…`` takes what the learner wrote in an
exercise notebook (a class, a function, an answer), runs it against a real server
on 127.0.0.1 (:class:`channels_core.server.Server`, on a port the OS picks), and
prints one verdict line (see :mod:`channels_core.workshop.harness`). The checks
use exact frames, over a plain WebSocket connection (:class:`_Raw`) where the
order or the absence of a frame is the point, and the package's own client where
the exercise is about writing a client.

Absence is never checked by waiting "long enough". A frame that must not arrive is
checked against a later frame that is sure to come after it if it was sent at all:
a heartbeat's reply on the same connection (:meth:`_Raw.barrier`), or the next
message of the same channel process, which handles its mailbox in order.

Each check's docstring is the exercise's specification, as the notebook states it.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import socket as socket_lib
import time
from collections.abc import Callable
from typing import Any

import httpx
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from .. import process, telemetry, tracing
from .. import token as tokens
from ..anatomy import show_source, trace
from ..anatomy.tracer import Exit, Spawn, Trace
from ..channel import Channel
from ..client import auth_token_subprotocol
from ..demo import create_app
from ..demo.app import DemoEndpoint, UserSocket
from ..endpoint import Endpoint, socket
from ..exceptions import DecodeError
from ..process import Pid
from ..pubsub import PubSub
from ..socket import Socket, SocketStruct, channel
from ..transports.transport import V1, V2
from .harness import WAIT, Failed, Run, describe_exception, exercise, show

__all__ = [
    "EXERCISES",
    "check_after_join",
    "check_channel_limit",
    "check_crash_and_rejoin",
    "check_direct_broadcast",
    "check_first_client",
    "check_handle_in_reply",
    "check_join_ref_layers",
    "check_longpoll_ping",
    "check_mute",
    "check_no_inheritance",
    "check_presence_status",
    "check_second_socket",
    "check_serializer",
    "check_token_socket",
    "check_topics_of",
]

#: Seconds a redis-server started by a check has to answer PING.
REDIS_START = 5.0

#: The secret the checks' endpoints sign tokens with: not the demo's, on purpose.
CHECK_SECRET = "the workshop checks' own secret: verify with socket.endpoint.secret_key_base"


# Plain WebSocket connections: exact frames, nothing sent that the check did not write


class _Closed(Exception):
    """The server closed the connection; ``code`` says how (1011: the connection crashed)."""

    def __init__(self, code: int | None) -> None:
        super().__init__(f"the server closed the connection with code {code}")
        self.code = code


class _Raw:
    """A WebSocket connection driven frame by frame: JSON frames, read and written exactly."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.unread: list[Any] = []
        self._refs = 0

    @classmethod
    async def open(cls, run: Run, url: str, **options: Any) -> _Raw:
        """Connect to ``url`` (``websockets.connect`` options); closed when the check ends."""
        connection = await websockets.connect(url, open_timeout=WAIT, **options)
        run.defer(connection.close)
        return cls(connection)

    def ref(self) -> str:
        self._refs += 1
        return str(self._refs)

    async def send(self, frame: Any) -> None:
        await self.connection.send(frame if isinstance(frame, (str, bytes)) else json.dumps(frame))

    async def next(self, timeout: float = WAIT) -> Any:
        """The next frame; None if none came within ``timeout``; :class:`_Closed` if the server closed."""
        if self.unread:
            return self.unread.pop(0)
        try:
            data = await asyncio.wait_for(self.connection.recv(), timeout)
        except TimeoutError:
            return None
        except ConnectionClosed as exc:
            raise _Closed(exc.rcvd.code if exc.rcvd else None) from None
        return json.loads(data)

    async def until(self, match: Callable[[Any], bool], timeout: float = WAIT) -> tuple[Any, list[Any]]:
        """Read up to the first frame that matches: ``(frame or None, the frames before it)``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        skipped: list[Any] = []
        while True:
            frame = await self.next(max(0.0, deadline - loop.time()))
            if frame is None:
                return None, skipped
            if match(frame):
                return frame, skipped
            skipped.append(frame)

    async def barrier(self) -> list[Any]:
        """Every frame the server sent before it answers a heartbeat sent now.

        The connection's process handles its mailbox in order, so a frame already on
        its way (a broadcast sent before this call) is among them, or never comes.
        """
        ref = self.ref()
        await self.send([None, ref, "phoenix", "heartbeat", {}])
        reply, before = await self.until(lambda f: _is_reply(f, ref))
        if reply is None:
            raise Failed("the server did not answer a heartbeat within 2 s")
        return before

    async def join(self, topic: str, payload: Any = None) -> tuple[str, Any]:
        """Send ``phx_join``; return its join_ref and the reply frame (None if none came)."""
        ref = self.ref()
        await self.send([ref, ref, topic, "phx_join", payload if payload is not None else {}])
        reply, skipped = await self.until(lambda f: _is_reply(f, ref))
        self.unread[:0] = skipped  # what came before the reply is read later, in order
        return ref, reply

    async def push(self, join_ref: str, topic: str, event: str, payload: Any) -> Any:
        """Push ``event``; return its reply frame, or the topic's ``phx_error``, or None if neither came."""
        ref = self.ref()
        await self.send([join_ref, ref, topic, event, payload])
        reply, skipped = await self.until(lambda f: _is_reply(f, ref) or _is_event(f, topic, "phx_error"))
        self.unread[:0] = skipped  # what came before the reply is read later, in order
        return reply


def _is_reply(frame: Any, ref: str) -> bool:
    return isinstance(frame, list) and len(frame) == 5 and frame[1] == ref and frame[3] == "phx_reply"


def _is_event(frame: Any, topic: str, event: str) -> bool:
    return isinstance(frame, list) and len(frame) == 5 and frame[2] == topic and frame[3] == event


def _status(frame: Any) -> tuple[Any, Any]:
    """``(status, response)`` of a V2 reply frame."""
    payload = frame[4] if isinstance(frame, list) and len(frame) == 5 else None
    if not isinstance(payload, dict):
        return None, None
    return payload.get("status"), payload.get("response")


async def _refused_status(url: str, **options: Any) -> int:
    """Open and close a WebSocket connection; its HTTP status: 101 if accepted."""
    try:
        connection = await websockets.connect(url, open_timeout=WAIT, **options)
    except InvalidStatus as exc:
        return exc.response.status_code
    await connection.close()
    return 101


# Shapes the learner's objects must have


def _require_class(value: Any, name: str, base: type | None = None) -> type:
    if not isinstance(value, type):
        raise Failed(f"{name} is {show(value)}: expected a class",
                     f"pass the class itself, {name}: its name, without quotes or ()")
    if base is not None and not issubclass(value, base):
        raise Failed(f"{name} does not inherit from {base.__name__}: expected class {name}({base.__name__})")
    return value


def _require_callable(value: Any, name: str) -> Callable[..., Any]:
    if not callable(value):
        raise Failed(f"{name} is {show(value)}: expected a function", f"define it with `async def {name}(...)`")
    return value


def _endpoint(name: str, *declarations: Any, **attributes: Any) -> type[Endpoint]:
    return type(name, (Endpoint,), {"sockets": list(declarations), **attributes})


def _routes(name: str, *routes: Any, base: type = Socket) -> type:
    """A socket class named ``name`` that serves ``routes`` (over ``base``'s connect)."""
    return type(name, (base,), {"channels": list(routes)})


# Exercise 1 (chapter 1, easy): your first client


@exercise(1)
async def check_first_client(run: Run, chat: Any) -> str:
    """``async def chat(url)``: Alice and Bob chat in ``room:lobby`` of the demo.

    ``url`` is the demo's socket URL (``ws://127.0.0.1:<port>/socket``). Connect two
    clients with ``params={"user_id": "alice"}`` and ``{"user_id": "bob"}``, join
    ``room:lobby`` on each, push ``new_msg`` with ``{"body": "hello, bob"}`` from
    Alice, and return the payload of the ``new_msg`` that Bob receives. Disconnect
    both clients before returning.
    """
    _require_callable(chat, "chat")
    server = await run.server(create_app())
    with _Joins() as seen:
        received = await run.acall("chat(url)", chat, server.ws_url + "/socket",
                                   hint="run it on its own to see where: await chat(url) after starting the demo")
    still_open = run.learner_clients()
    if received is None:
        raise Failed("chat returned None: expected the payload of the new_msg Bob received, "
                     "a dict with 'body': 'hello, bob'",
                     "message = await bob_lobby.next_message('new_msg'), then return message.payload")
    users = sorted(u for u in seen.users if u)
    if users != ["alice", "bob"]:
        raise Failed(f"the server saw connections from {users}: expected one from 'alice' and one from 'bob'",
                     "Socket(url, params={'user_id': 'alice'}), and the same for bob")
    if seen.joined("room:lobby") != ["alice", "bob"]:
        raise Failed(f"room:lobby was joined by {seen.joined('room:lobby')}: expected alice and bob",
                     "alice.channel('room:lobby') and bob.channel('room:lobby'), then await ….join() on each")
    if not isinstance(received, dict) or received.get("body") != "hello, bob":
        raise Failed(f"chat returned {show(received)}: expected the payload Bob received, with 'body': 'hello, bob'",
                     "alice pushes ('new_msg', {'body': 'hello, bob'}); return bob's message.payload, not the message")
    if "transport" not in received:
        raise Failed(f"chat returned {show(received)}, which did not come from the server: the demo's "
                     "RoomChannel.handle_out adds a 'transport' key to every new_msg it sends",
                     "return the payload of the message bob_lobby.next_message('new_msg') gives you")
    if still_open:
        raise Failed(f"chat returned with {len(still_open)} connection(s) still open: expected both clients "
                     "disconnected", "await alice.disconnect() and await bob.disconnect() before returning")
    return f"alice and bob joined room:lobby, bob received {show(received)}, and both disconnected"


class _Joins:
    """Who connected and who joined which topic, from the server's telemetry, while the block runs."""

    def __init__(self) -> None:
        self.users: list[Any] = []
        self.joins: list[tuple[str, Any]] = []
        self._id = f"channels_core.workshop joins {id(self)}"

    def __enter__(self) -> _Joins:
        telemetry.attach_many(self._id, [telemetry.SOCKET_CONNECTED, telemetry.CHANNEL_JOINED], self._record)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        telemetry.detach(self._id)

    def _record(self, event: Any, measurements: Any, metadata: dict[str, Any], config: Any) -> None:
        if metadata.get("result") != "ok":
            return
        if event == telemetry.SOCKET_CONNECTED:
            self.users.append(metadata.get("params", {}).get("user_id"))
        else:
            socket = metadata["socket"]
            self.joins.append((socket.topic, socket.assigns.get("user_id")))

    def joined(self, topic: str) -> list[Any]:
        return sorted(str(user) for joined, user in self.joins if joined == topic)


# Exercise 2 (chapter 2, easy): a second socket, and its place in the table


@exercise(2)
async def check_second_socket(run: Run, endpoint_class: Any, longpoll_key: Any) -> str:
    """An endpoint ``Doors`` that keeps ``/socket`` and adds ``/admin``, and the table key of ``/admin``'s LongPoll.

    ``Doors`` declares ``socket("/socket", UserSocket)`` (given) and a second socket at
    ``/admin`` served by ``AdminSocket`` (given), over WebSocket *and* LongPoll.
    ``ADMIN_LONGPOLL_KEY`` is the key under which ``Doors.__dispatch__`` files the
    LongPoll entry of ``/admin``.
    """
    doors = _require_class(endpoint_class, "Doors", Endpoint)
    table = doors.__dispatch__
    paths = ["/" + "/".join(key) for key in table]
    user = table.get(("socket", "websocket"))
    if user is None or user.handler is not UserSocket:
        raise Failed(f"Doors no longer serves UserSocket at /socket/websocket: its table has {paths}",
                     "keep socket('/socket', UserSocket) and add the new socket next to it")
    admin = table.get(("admin", "websocket"))
    if admin is None:
        raise Failed(f"the dispatch table has no /admin/websocket: expected a WebSocket entry for AdminSocket, "
                     f"got only {paths}",
                     "add socket('/admin', AdminSocket, ...) to Doors.sockets; "
                     "print(Doors.dispatch_table()) shows the table")
    lp = table.get(("admin", "longpoll"))
    if lp is None:
        raise Failed(f"the dispatch table has no /admin/longpoll: LongPoll is off unless asked for; got {paths}",
                     "socket(path, handler, longpoll=True) turns it on (chapter 2, Endpoint._compile)")
    if admin.handler.__name__ != "AdminSocket" or lp.handler.__name__ != "AdminSocket":
        raise Failed(f"/admin is served by {admin.handler.__name__}: expected AdminSocket")
    if longpoll_key is None:
        raise Failed("ADMIN_LONGPOLL_KEY is None: expected the key of /admin's LongPoll entry in Doors.__dispatch__",
                     "print(list(Doors.__dispatch__)) and pick the one for /admin over LongPoll")
    if isinstance(longpoll_key, str) or not _hashable(longpoll_key):
        raise Failed(f"ADMIN_LONGPOLL_KEY is {type(longpoll_key).__name__} {longpoll_key!r}: the table's keys are "
                     "tuples", "print(list(Doors.__dispatch__)): each key is a tuple of path segments")
    if table.get(longpoll_key) is not lp:
        found = table.get(longpoll_key)
        what = f"is the entry for {found.kind} /{'/'.join(longpoll_key)}" if found else "does not exist"
        raise Failed(f"Doors.__dispatch__[{longpoll_key!r}] {what}: expected /admin's LongPoll entry",
                     "print(list(Doors.__dispatch__)); the key is the path under the endpoint, split at '/'")

    app = doors()
    server = await run.server(app)
    admin_url = server.ws_url + "/admin/websocket?vsn=2.0.0"
    if (status := await _refused_status(admin_url + "&role=admin")) != 101:
        raise Failed(run.with_log(f"an admin's WebSocket upgrade at /admin/websocket got HTTP {status}: expected 101"))
    if (status := await _refused_status(admin_url)) != 403:
        raise Failed(f"a WebSocket upgrade at /admin/websocket without role=admin got HTTP {status}: "
                     "expected AdminSocket.connect to refuse it with 403")
    if (status := await _refused_status(server.ws_url + "/socket/websocket?vsn=2.0.0&user_id=ann")) != 101:
        raise Failed(run.with_log(f"a WebSocket upgrade at /socket/websocket got HTTP {status}: expected 101"))
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http:
        answer = (await http.get("/admin/longpoll", params={"vsn": "2.0.0", "role": "admin"})).json()
    if answer.get("status") != 410 or "token" not in answer:
        raise Failed(f"a first GET /admin/longpoll answered {show(answer)}: expected a new session, "
                     "{'status': 410, 'token': ...}")
    return (f"/admin/websocket and /admin/longpoll serve AdminSocket on a live server (an admin gets 101 and a "
            f"long-poll session, anyone else 403), /socket still works, and the LongPoll entry's key is "
            f"{longpoll_key!r}")


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


# Exercise 3 (chapter 3, medium): a connect that checks a token


class _WhoAmI(Channel):
    """Replies to its join with what the socket remembered: the check's window into ``connect``."""

    def join(self, topic: str, payload: Any, socket: SocketStruct) -> tuple[Any, ...]:
        return ("ok", {"user_id": socket.assigns.get("user_id"), "id": socket.id}, socket)


@exercise(3)
async def check_token_socket(run: Run, socket_class: Any) -> str:
    """``TokenSocket.connect(params, socket, connect_info)`` accepts a good token and refuses the rest.

    The token is phoenix.js's ``authToken``, found in ``connect_info["auth_token"]``
    (``None`` when the client sent none). Verify it with
    ``channels_core.token.verify(socket.endpoint.secret_key_base, "user socket",
    token, max_age=MAX_AGE)``, with ``MAX_AGE = 3600``; it returns the user id. On
    success return ``("ok", assign(socket, user_id=user_id))``; a missing, forged or
    expired token returns ``"error"`` (HTTP 403).
    """
    handler = _require_class(socket_class, "TokenSocket", Socket)
    if handler.connect_arity() != 3:
        raise Failed("TokenSocket.connect takes two arguments: expected connect(self, params, socket, connect_info)",
                     "the token arrives in connect_info, which only a three-argument connect receives")
    probe = _routes(handler.__name__, channel("whoami", _WhoAmI), base=handler)
    endpoint = _endpoint("TokenEndpoint", socket("/socket", probe, websocket={"auth_token": True}))
    app = endpoint(secret_key_base=CHECK_SECRET)
    server = await run.server(app)
    url = server.ws_url + "/socket/websocket?vsn=2.0.0"
    refused_hint = ("catch channels_core.exceptions.TokenError (InvalidToken and ExpiredToken are both one) "
                    "around token.verify and return 'error'")

    async def whoami(token: str) -> Any:
        """Connect with ``token``; what the socket remembered, or the HTTP status that refused it."""
        try:
            raw = await _Raw.open(run, url, subprotocols=["phoenix", auth_token_subprotocol(token)])
        except InvalidStatus as exc:
            return exc.response.status_code
        _, reply = await raw.join("whoami")
        return _status(reply)[1] if reply is not None else None

    def sign(user: str, *, age: float = 0, secret: str = CHECK_SECRET, salt: str = "user socket") -> str:
        return tokens.sign(secret, salt, user, signed_at=time.time() - age)

    fresh = await whoami(sign("alice"))
    if isinstance(fresh, int):
        raise Failed(run.with_log(f"a fresh, valid token for 'alice' was refused with HTTP {fresh}: "
                                  "expected the connection to be accepted"),
                     "verify with socket.endpoint.secret_key_base and the salt 'user socket', "
                     "and return ('ok', assign(socket, user_id=...))")
    if not isinstance(fresh, dict) or fresh.get("user_id") != "alice":
        got = fresh.get("user_id") if isinstance(fresh, dict) else fresh
        raise Failed(f"a valid token for 'alice' connected, but the socket remembers user_id {got!r}: "
                     "expected 'alice', the user id the token carries",
                     "user_id = token.verify(...); return ('ok', assign(socket, user_id=user_id))")
    if fresh.get("id") != "user_sockets:alice":
        raise Failed(f"the socket's id is {fresh.get('id')!r}: expected 'user_sockets:alice' (the given id method)")
    half_hour = await whoami(sign("bob", age=1800))
    if not (isinstance(half_hour, dict) and half_hour.get("user_id") == "bob"):
        raise Failed(run.with_log(f"a token signed 30 minutes ago was refused (got {show(half_hour)}): "
                                  "expected tokens up to one hour old to be accepted"),
                     "max_age is in seconds: token.verify(..., max_age=MAX_AGE) with MAX_AGE = 3600")
    cases = [
        ("a connection without a token", None),
        ("a token signed two hours ago (expired)", sign("alice", age=7200)),
        ("a token signed with another secret (forged)", sign("alice", secret="not the endpoint's secret")),
        ("a token signed for another purpose (salt 'user session')", sign("alice", salt="user session")),
    ]
    for what, token in cases:
        options = {"subprotocols": ["phoenix", auth_token_subprotocol(token)]} if token else {}
        status = await _refused_status(url, **options)
        if status == 101:
            raise Failed(f"{what} was accepted: expected HTTP 403",
                         "refuse it by returning 'error' when token.verify raises, or when there is no token"
                         if token else "connect_info['auth_token'] is None without a token: return 'error' then")
        if status != 403:
            raise Failed(run.with_log(f"{what} got HTTP {status}: expected 403, a refusal by connect"),
                         refused_hint)
    return ("a fresh token and a 30-minute-old one connect as their user (id 'user_sockets:alice'); no token, "
            "an expired, a forged and a wrongly salted token are each refused with 403")


# Exercise 4 (chapter 4, easy): at most three channels per connection


@exercise(4)
async def check_channel_limit(run: Run, endpoint_class: Any) -> str:
    """``LimitedEndpoint`` serves ``UserSocket`` at ``/socket``, and one connection may join at most 3 topics."""
    limited = _require_class(endpoint_class, "LimitedEndpoint", Endpoint)
    entry = limited.__dispatch__.get(("socket", "websocket"))
    if entry is None or entry.handler is not UserSocket:
        raise Failed(f"LimitedEndpoint has no /socket/websocket for UserSocket: its table has "
                     f"{list(limited.dispatch_table())}", "keep socket('/socket', UserSocket, ...)")
    server = await run.server(limited())
    raw = await _Raw.open(run, server.ws_url + "/socket/websocket?vsn=2.0.0&user_id=ann")
    hint = ("a socket declaration takes transport options, socket('/socket', UserSocket, websocket={...}); "
            "find the limit's name in SocketState._join and TransportConfig (show_source)")
    refs = {}
    for n in (1, 2, 3):
        refs[n], reply = await raw.join(f"bench:{n}")
        if _status(reply)[0] != "ok":
            raise Failed(run.with_log(f"join {n} of 3 got {_status(reply)}: expected 3 topics to join",
                                      skip="max channels"), "the limit is 3 channels per connection")
    _, fourth = await raw.join("bench:4")
    status, response = _status(fourth)
    if status == "ok":
        raise Failed("a 4th topic joined: expected the 4th join to be refused with "
                     "{'reason': 'too many channels joined'}", hint)
    if (status, response) != ("error", {"reason": "too many channels joined"}):
        raise Failed(f"the 4th join got {status} {show(response)}: "
                     "expected error {'reason': 'too many channels joined'}", hint)
    ref = raw.ref()
    await raw.send([refs[1], ref, "bench:1", "phx_leave", {}])
    closed, _ = await raw.until(lambda f: _is_event(f, "bench:1", "phx_close"))
    if closed is None:
        raise Failed("leaving bench:1 got no phx_close within 2 s")
    _, again = await raw.join("bench:4")
    if _status(again)[0] != "ok":
        raise Failed(f"after leaving bench:1, joining bench:4 got {_status(again)}: expected ok, "
                     "since only 2 topics were joined")
    return ("three topics joined, the 4th was refused with 'too many channels joined', "
            "and after one leave the 4th joined")


# Exercise 5 (chapter 4, medium): read the topic map of a live connection


@exercise(5)
async def check_topics_of(run: Run, topics_of: Any) -> str:
    """``topics_of(endpoint, socket_id)``: the sorted topics joined by the connection with that socket id.

    The live connections are ``endpoint.connections()`` (transport pid →
    ``SocketState``); a state's ``socket.id`` is the socket id and its ``channels``
    map is keyed by topic. An id with no live connection gives ``[]``.
    """
    _require_callable(topics_of, "topics_of")
    app = create_app()
    server = await run.server(app)
    url = server.ws_url + "/socket/websocket?vsn=2.0.0&user_id="
    alice = await _Raw.open(run, url + "alice")
    bob = await _Raw.open(run, url + "bob")
    joined = {}
    for raw, topic in ((alice, "room:a"), (alice, "room:b"), (bob, "room:c")):
        joined[topic], reply = await raw.join(topic, {"user": "x"})
        if _status(reply)[0] != "ok":
            raise Failed(run.with_log(f"joining {topic} failed: {_status(reply)}"))
    hint = ("for each state in endpoint.connections().values(), compare state.socket.id with socket_id, "
            "and return sorted(state.channels)")

    def ask(socket_id: str, expected: list[str], when: str) -> None:
        got = run.call(f"topics_of(app, {socket_id!r})", topics_of, app, socket_id, hint=hint)
        if isinstance(got, (set, tuple)) or (isinstance(got, list) and got != sorted(got)):
            raise Failed(f"topics_of(app, {socket_id!r}) returned {show(got)} {when}: expected the sorted list "
                         f"{expected}", "return sorted(...)")
        if got != expected:
            raise Failed(f"topics_of(app, {socket_id!r}) returned {show(got)} {when}: expected {expected}", hint)

    ask("user_sockets:alice", ["room:a", "room:b"], "after alice joined room:a and room:b")
    ask("user_sockets:bob", ["room:c"], "after bob joined room:c")
    ask("user_sockets:nobody", [], "(no such connection)")
    await alice.send([joined["room:a"], alice.ref(), "room:a", "phx_leave", {}])
    closed, _ = await alice.until(lambda f: _is_event(f, "room:a", "phx_close"))
    if closed is None:
        raise Failed("leaving room:a got no phx_close within 2 s")
    ask("user_sockets:alice", ["room:b"], "after alice left room:a")
    return ("topics_of read the live maps: alice ['room:a', 'room:b'], bob ['room:c'], nobody [], "
            "and alice ['room:b'] once she left room:a")


# Exercise 6 (chapter 5, medium): greet after the join reply


@exercise(6)
async def check_after_join(run: Run, channel_class: Any) -> str:
    """``GreeterChannel`` pushes ``welcome`` to the client that joined, right after the join reply.

    Joined with ``{"user": "ann"}`` on ``greet:lobby``, the client gets the join reply,
    then the push ``welcome`` with ``{"user": "ann", "topic": "greet:lobby"}``, and no
    other client gets it.
    """
    greeter = _require_class(channel_class, "GreeterChannel")
    endpoint = _endpoint("GreetEndpoint", socket("/socket", _routes("GreetSocket", channel("greet:*", greeter))))
    server = await run.server(endpoint())
    url = server.ws_url + "/socket/websocket?vsn=2.0.0"
    hint = ("join runs before the client has joined, so it cannot push yet; send yourself a message, "
            "process.send(process.current(), ('after_join', payload)), and push from handle_info")
    ann = await _Raw.open(run, url)
    ref, reply = await ann.join("greet:lobby", {"user": "ann"})
    status, response = _status(reply)
    if reply is None:
        raise Failed(run.with_log("the join got no reply within 2 s"), hint)
    if status != "ok":
        raise Failed(run.with_log(f"the join was refused with {show(response)}: expected it to succeed"), hint)
    welcome, before = await ann.until(lambda f: _is_event(f, "greet:lobby", "welcome"))
    if welcome is None:
        raise Failed(run.with_log(f"no welcome push came within 2 s of the join reply (got {show(before)})"), hint)
    expected = {"user": "ann", "topic": "greet:lobby"}
    if welcome[4] != expected:
        raise Failed(f"the welcome push carried {show(welcome[4])}: expected {expected}",
                     "the user comes from the join's payload, the topic from the join's topic argument")
    if welcome[0] != ref or welcome[1] is not None:
        raise Failed(f"the welcome frame was {show(welcome)}: expected a push of this join, "
                     f"[{ref!r}, None, 'greet:lobby', 'welcome', ...]: a broadcast reaches everyone",
                     "use push(socket, 'welcome', {...}), not broadcast")
    bob = await _Raw.open(run, url)
    _, bob_reply = await bob.join("greet:lobby", {"user": "bob"})
    bob_welcome, _ = await bob.until(lambda f: _is_event(f, "greet:lobby", "welcome"))
    if bob_welcome is None or bob_welcome[4] != {"user": "bob", "topic": "greet:lobby"}:
        raise Failed(f"bob's join got {show(bob_welcome)}: "
                     "expected a welcome with {'user': 'bob', 'topic': 'greet:lobby'}")
    leaked = [f for f in await ann.barrier() if _is_event(f, "greet:lobby", "welcome")]
    if leaked:
        raise Failed(f"ann also received bob's welcome {show(leaked[0][4])}: expected each welcome to reach only "
                     "the client that joined", "push(socket, ...) goes to one client, broadcast to all of them")
    return ("the join reply came first, then welcome {'user': 'ann', 'topic': 'greet:lobby'} tagged with the "
            "join's ref, and bob's welcome reached bob alone")


# Exercise 7 (chapter 6, easy): a channel that replies


@exercise(7)
async def check_handle_in_reply(run: Run, channel_class: Any) -> str:
    """``CalcChannel.handle_in``: ``add`` replies ok with the sum; any other event replies an error.

    ``add`` with ``{"a": 2, "b": 3}`` replies ``("ok", {"sum": 5})``; any other event
    replies ``("error", {"reason": "unknown event"})``, and the channel stays joined.
    """
    calc = _require_class(channel_class, "CalcChannel")
    endpoint = _endpoint("CalcEndpoint", socket("/socket", _routes("CalcSocket", channel("calc:*", calc))))
    server = await run.server(endpoint())
    raw = await _Raw.open(run, server.ws_url + "/socket/websocket?vsn=2.0.0")
    ref, reply = await raw.join("calc:1")
    if _status(reply)[0] != "ok":
        raise Failed(run.with_log(f"joining calc:1 got {show(reply)}: expected ok"), "keep the given join")
    hint = "return ('reply', ('ok', {'sum': ...}), socket) from handle_in: a tuple of status and response"
    steps = [
        ("add", {"a": 2, "b": 3}, ("ok", {"sum": 5})),
        ("add", {"a": -4, "b": 4}, ("ok", {"sum": 0})),
        ("mul", {"a": 2, "b": 3}, ("error", {"reason": "unknown event"})),
        ("add", {"a": 1, "b": 1}, ("ok", {"sum": 2})),
    ]
    for event, payload, expected in steps:
        answer = await raw.push(ref, "calc:1", event, payload)
        if answer is None:
            raise Failed(run.with_log(f"no reply to {event!r} {payload} within 2 s"),
                         hint if event == "add" else "every event gets a reply: ('reply', ('error', {...}), socket)")
        if answer[3] == "phx_error":
            raise Failed(run.with_log(f"{event!r} {payload} crashed the channel (phx_error): expected a reply "
                                      f"{expected}"), hint)
        if _status(answer) != expected:
            raise Failed(f"{event!r} {payload} got the reply {_status(answer)}: expected {expected}", hint)
    return "add replied ok with the sum, an unknown event replied error 'unknown event', and the channel lived on"


# Exercise 8 (chapter 6, medium): who puts join_ref on a reply?


_LAYER_OF_FOLDER = {"serializers": "serializer", "transports": "transport", "pubsub": "pubsub", "anatomy": "anatomy"}


def _layer_of(path: str) -> str:
    """``channels_core/socket.py:454`` → ``socket``; ``channels_core/serializers/v2_json.py`` → ``serializer``."""
    parts = path.split(":", 1)[0].split("/")
    if len(parts) > 2:
        return _LAYER_OF_FOLDER.get(parts[1], parts[1])
    return parts[-1].removesuffix(".py")


def _squash(name: Any) -> str:
    text = str(name).lower().removeprefix("channels_core").replace(".py", "")
    return re.sub(r"[^a-z]", "", text)


@exercise(8)
async def check_join_ref_layers(
    run: Run, join_reply_layer: Any, ping_reply_layer: Any, ping_reply_function: Any
) -> str:
    """Which layer puts ``join_ref`` on the join's reply, which on a ping's reply, and in which function.

    Answers: ``JOIN_REPLY_LAYER`` and ``PING_REPLY_LAYER`` are layer names as the
    trace spells them (``"adapter"``, ``"socket"``, ``"channel_server"``,
    ``"serializer"``, ...); ``PING_REPLY_FUNCTION`` is ``"module:qualname"``, as
    ``show_source`` takes it. The check records a join and a ping on the demo and
    finds, for each reply, the code that handed the serializer a ``Reply`` already
    carrying ``join_ref`` (the serializer hop's ``caller``).
    """
    for name, value in (("JOIN_REPLY_LAYER", join_reply_layer), ("PING_REPLY_LAYER", ping_reply_layer),
                        ("PING_REPLY_FUNCTION", ping_reply_function)):
        if value is None:
            raise Failed(f"{name} is None: expected your answer",
                         "grep(r'join_ref=') lists where a Reply gets its join_ref; in a trace, "
                         "t.hops('serializer') shows each encode, and hop.caller who called it")
    if tracing.active is not None:
        raise Failed("a trace() block is still recording in this notebook: traces do not nest",
                     "let your `async with trace()` block end, then run the check again")
    server = await run.server(create_app())
    raw = await _Raw.open(run, server.ws_url + "/socket/websocket?vsn=2.0.0&user_id=ann")
    async with trace() as t:
        join_ref, join_reply = await raw.join("bench:x")
        ping_reply = await raw.push(join_ref, "bench:x", "ping", {"n": 1})
    if join_reply is None or ping_reply is None or join_reply[0] != join_ref or ping_reply[0] != join_ref:
        raise Failed(f"the demo's replies were {show(join_reply)} and {show(ping_reply)}: expected both to carry "
                     f"join_ref {join_ref!r} (has the package been changed?)")
    encodes = [h for h in t.hops("serializer") if h.function.endswith(".encode") and h.event == "phx_reply"]
    if len(encodes) != 2 or any(h.caller is None for h in encodes):
        raise Failed(f"the trace holds {len(encodes)} encodes of a phx_reply: expected 2, with their callers")
    truth = {"join": encodes[0], "ping": encodes[1]}
    for reply, answer in (("join", join_reply_layer), ("ping", ping_reply_layer)):
        layer = _layer_of(truth[reply].caller)  # type: ignore[arg-type]
        name = f"{reply.upper()}_REPLY_LAYER"
        if not _squash(answer).startswith(_squash(layer)) or not _squash(answer):
            hint = {
                "serializer": "the serializer writes the join_ref it is given; look at who built the Reply it "
                              "encoded: the serializer hop's caller",
                "channel": "your channel's handle_in returns ('reply', ...) with no join_ref in it; "
                           "the code that turns that into a Reply is the layer to name",
                "adapter": "the adapter only writes frames that are already encoded",
            }.get(_squash(answer), f"in the trace of a {reply}, find the serializer's encode of the phx_reply; "
                                   "its caller names the file, and the file names the layer")
            raise Failed(f"{name} is {answer!r}: that layer does not put join_ref on the {reply}'s reply", hint)
    caller = truth["ping"].caller  # e.g. channels_core/channel_server.py:297
    caller_path, _, caller_line = caller.rpartition(":")  # type: ignore[union-attr]
    target = str(ping_reply_function).strip()
    if ":" not in target:
        target = f"{caller_path.removesuffix('.py').replace('/', '.')}:{target}"
    try:
        view = show_source(target)
    except Exception as exc:
        raise Failed(f"PING_REPLY_FUNCTION {ping_reply_function!r} names no function show_source can find "
                     f"({describe_exception(exc)})",
                     "write it as 'module:qualname', e.g. 'channels_core.socket:SocketState._join'") from None
    if view.path != caller_path or not view.start <= int(caller_line) <= view.end:
        raise Failed(f"PING_REPLY_FUNCTION {ping_reply_function!r} is not where the ping's Reply gets its join_ref: "
                     "the serializer was called from another function",
                     "the serializer hop's caller, e.g. 'channels_core/x.py:123', is a line inside the function "
                     "to name; show_source('channels_core/x.py:115-130') shows the lines around it")
    return (f"the join's reply gets join_ref in the {_layer_of(truth['join'].caller)} layer (copied from the "
            f"phx_join frame), a ping's reply in the {_layer_of(caller)} layer, in {view.name} "
            f"(from the socket the channel joined with)")


# Exercise 9 (chapter 6, hard): a serializer of your own, chosen by vsn


class _EchoChannel(Channel):
    def join(self, topic: str, payload: Any, socket: SocketStruct) -> tuple[Any, ...]:
        return ("ok", socket)

    def handle_in(self, event: str, payload: Any, socket: SocketStruct) -> tuple[Any, ...]:
        return ("reply", ("ok", payload), socket)


@exercise(9)
async def check_serializer(run: Run, serializer_class: Any) -> str:
    """``ObjectSerializer``: protocol ``3.0.0``, every frame a JSON object with five named keys.

    A frame is ``{"join_ref", "ref", "topic", "event", "payload"}`` (all five keys,
    ``None`` where there is no value). A reply is event ``phx_reply`` with payload
    ``{"status", "response"}``; a broadcast has ``join_ref`` and ``ref`` ``None``.
    ``decode`` raises ``channels_core.exceptions.DecodeError`` for anything that is
    not such an object. The endpoint offers it next to V1 and V2:
    ``serializer=[(V1, "~> 1.0.0"), (V2, "~> 2.0.0"), (ObjectSerializer(), "~> 3.0.0")]``.
    """
    cls = _require_class(serializer_class, "ObjectSerializer")
    serializer = run.call("ObjectSerializer()", cls)
    if getattr(serializer, "vsn", None) != "3.0.0":
        raise Failed(f"ObjectSerializer.vsn is {getattr(serializer, 'vsn', None)!r}: expected '3.0.0'")
    for method in ("fastlane", "encode", "decode"):
        if not callable(getattr(serializer, method, None)):
            raise Failed(f"ObjectSerializer has no {method} method: a serializer has fastlane, encode and decode")
    options = {"serializer": [(V1, "~> 1.0.0"), (V2, "~> 2.0.0"), (serializer, "~> 3.0.0")], "check_origin": False}
    socket_class = _routes("EchoSocket", channel("echo:*", _EchoChannel))
    app = _endpoint("ObjectEndpoint", socket("/socket", socket_class, websocket=options))()
    server = await run.server(app)
    url = server.ws_url + "/socket/websocket?vsn="
    hint = ("encode gets a Message or a Reply (channels_core.message); return SocketPush('text', json_text); "
            "decode returns a Message")

    def frame(join_ref: Any, ref: Any, topic: str, event: str, payload: Any) -> dict[str, Any]:
        return {"join_ref": join_ref, "ref": ref, "topic": topic, "event": event, "payload": payload}

    v3 = await _Raw.open(run, url + "3.0.0")
    steps = [
        (frame("1", "1", "echo:1", "phx_join", {}),
         frame("1", "1", "echo:1", "phx_reply", {"status": "ok", "response": {}}), "the join"),
        (frame("1", "2", "echo:1", "ping", {"n": 1}),
         frame("1", "2", "echo:1", "phx_reply", {"status": "ok", "response": {"n": 1}}), "a ping"),
    ]
    for sent, expected, what in steps:
        await v3.send(sent)
        try:
            got = await v3.next()
        except _Closed as closed:
            raise Failed(run.with_log(f"after {what} frame {show(sent)}, the server closed the connection "
                                      f"with code {closed.code}"), hint) from None
        except ValueError:
            raise Failed(f"the reply to {what} is not JSON: expected {show(expected)}", hint) from None
        if got != expected:
            raise Failed(run.with_log(f"the reply to {what} was {show(got)}: expected {show(expected)}"), hint)
    # The fastlane encodes in the broadcaster's own call: here, the check's.
    run.call("fastlane, given a broadcast on echo:1,", app.broadcast, "echo:1", "news", {"x": 1},
             hint="fastlane gets a Broadcast (topic, event, payload): no join_ref, no ref")
    try:
        news = await v3.next()
    except _Closed as closed:
        raise Failed(run.with_log(f"a broadcast closed the connection with code {closed.code}"),
                     "fastlane gets a Broadcast (topic, event, payload): no join_ref, no ref") from None
    if news != frame(None, None, "echo:1", "news", {"x": 1}):
        raise Failed(run.with_log(f"a broadcast arrived as {show(news)}: expected "
                                  f"{show(frame(None, None, 'echo:1', 'news', {'x': 1}))}"),
                     "fastlane(broadcast): join_ref and ref are None")
    v2 = await _Raw.open(run, url + "2.0.0")
    _, v2_reply = await v2.join("echo:1")
    if _status(v2_reply)[0] != "ok":
        raise Failed(f"a V2 client on the same server got {show(v2_reply)}: expected its usual array reply")
    await v3.send("[1, 2]")
    try:
        extra = await v3.next()
    except _Closed as closed:
        if closed.code != 1011 or not run.logged(r"crashed"):
            raise Failed(f"a frame that is not an object closed the connection with {closed.code}: expected 1011")
        if not _logged_exception(run, DecodeError):
            raise Failed(run.with_log("a frame that is not an object crashed the connection, but not with "
                                      "DecodeError"), "raise channels_core.exceptions.DecodeError from decode")
    else:
        raise Failed(f"a frame that is not an object ([1, 2]) was accepted (then got {show(extra)}): expected decode "
                     "to raise DecodeError, which closes the connection with 1011",
                     "check that the frame is a dict with the five keys, else raise DecodeError")
    return ("vsn=3.0.0 picked ObjectSerializer: join, reply and broadcast travelled as objects with five keys, "
            "a V2 client on the same server still got arrays, and a bad frame closed the connection with 1011")


def _logged_exception(run: Run, kind: type[BaseException]) -> bool:
    return any(r.exc_info and isinstance(r.exc_info[1], kind) for r in run._capture.collector.records)


# Exercise 10 (chapter 7, medium): mute, per user, in handle_out


@exercise(10)
async def check_mute(run: Run, channel_class: Any) -> str:
    """``MuteChannel`` drops, for each client, the ``new_msg`` broadcasts of the users it muted.

    A client joins ``chat:*`` with ``{"user": "carol", "mute": ["alice"]}``; the given
    ``join`` keeps both in the assigns and the given ``handle_in`` broadcasts
    ``new_msg`` as ``{"user": ..., "body": ...}``. Intercept ``new_msg`` and, in
    ``handle_out``, push it unless its user is muted. Other broadcasts are untouched.
    """
    mute = _require_class(channel_class, "MuteChannel")
    app = _endpoint("MuteEndpoint", socket("/socket", _routes("MuteSocket", channel("chat:*", mute))))()
    server = await run.server(app)
    url = server.ws_url + "/socket/websocket?vsn=2.0.0"
    clients, refs = {}, {}
    for user, muted in (("alice", []), ("bob", []), ("carol", ["alice"])):
        clients[user] = await _Raw.open(run, url)
        refs[user], reply = await clients[user].join("chat:1", {"user": user, "mute": muted})
        if _status(reply)[0] != "ok":
            raise Failed(run.with_log(f"{user}'s join got {show(reply)}: expected ok"), "keep the given join")
    hint = ("list the event in intercept = ['new_msg'], then in handle_out push it unless "
            "payload['user'] in socket.assigns['mute']; return ('noreply', socket) either way")

    def is_msg(user: str) -> Callable[[Any], bool]:
        return lambda f: _is_event(f, "chat:1", "new_msg") and isinstance(f[4], dict) and f[4].get("user") == user

    for user in ("alice", "bob"):
        reply = await clients[user].push(refs[user], "chat:1", "new_msg", {"body": f"hi from {user}"})
        if _status(reply)[0] != "ok":
            raise Failed(run.with_log(f"{user}'s new_msg got {show(reply)}: expected the reply ok"),
                         "keep the given handle_in")
    # Each channel process handles its mailbox in order, and alice's new_msg was broadcast
    # before bob sent his: whoever gets bob's got alice's before it, or never will.
    for user in ("alice", "bob", "carol"):
        sender = "alice" if user == "bob" else "bob"
        got, before = await clients[user].until(is_msg(sender))
        if got is None:
            raise Failed(run.with_log(f"{user} did not receive {sender}'s new_msg within 2 s: expected it, "
                                      f"{user} has not muted {sender}"), hint)
        from_alice = [f for f in before if is_msg("alice")(f)]
        if user == "carol" and from_alice:
            raise Failed(f"carol, who muted alice, received alice's new_msg {show(from_alice[0][4])}: "
                         "expected it to be dropped for her", hint)
        if user == "alice" and not from_alice:
            raise Failed("alice did not receive her own new_msg before bob's: expected it, she muted nobody", hint)
    app.broadcast("chat:1", "notice", {"text": "the room closes at six"})
    for user, raw in clients.items():
        notice, _ = await raw.until(lambda f: _is_event(f, "chat:1", "notice"))
        if notice is None:
            raise Failed(run.with_log(f"{user} did not receive the broadcast notice: expected events that are not "
                                      "intercepted to reach everyone"), "only new_msg needs intercepting")
    return ("carol never saw alice's new_msg but saw bob's; alice and bob saw each other's; "
            "a notice that is not intercepted reached all three")


# Exercise 11 (chapter 8, medium): a crash and a rejoin, in a trace


@exercise(11)
async def check_crash_and_rejoin(run: Run, crash_and_rejoin: Any) -> str:
    """``async def crash_and_rejoin(url) -> Trace``: crash ``room:a`` on the demo and record the rejoin.

    ``url`` is the demo's socket URL. Connect a client (``rejoin_after=lambda tries:
    0.1``), join ``room:a``, and inside ``async with trace() as t:`` push ``boom`` (the
    demo's channel raises on it), wait for ``phx_error`` and for the client's rejoin.
    Disconnect and return ``t``.
    """
    _require_callable(crash_and_rejoin, "crash_and_rejoin")
    server = await run.server(create_app())
    t = await run.acall("crash_and_rejoin(url)", crash_and_rejoin, server.ws_url + "/socket",
                        hint="run it on its own against the demo to see where it stops")
    if not isinstance(t, Trace):
        raise Failed(f"crash_and_rejoin returned {show(t)}: expected the Trace of `async with trace() as t:`",
                     "return t after the trace block")
    hint = ("inside the trace block: boom = room_a.push('boom', {}); await room_a.next_message('phx_error'); "
            "then await room_a.next_message('joined') (the demo pushes it after every join)")
    frames = t.frames()
    up = [f for f in frames if f.direction == "↑"]
    down = [f for f in frames if f.direction == "↓"]
    booms = [f for f in up if f.event == "boom"]
    if not booms:
        raise Failed(f"your trace holds no ↑ boom frame ({len(frames)} frames in all): expected the push that "
                     "crashes the channel", hint)
    old_join_ref = booms[0].parsed.join_ref
    errors = [f for f in down if f.event == "phx_error" and f.index > booms[0].index]
    if not errors:
        raise Failed("your trace holds no ↓ phx_error after the boom: expected the server to tell the client "
                     "that its channel crashed", hint)
    error = errors[0].parsed
    if error.ref != old_join_ref or error.join_ref != old_join_ref:
        raise Failed(f"the phx_error carries ref {error.ref!r}: expected the join_ref {old_join_ref!r} of the "
                     "join that crashed (has the package been changed?)")
    crashed = [e for e in t.events if isinstance(e, Exit) and e.pid.startswith("channel room:a") and e.crashed]
    if not crashed:
        raise Failed("your trace holds no crashed exit of a room:a channel process", hint)
    rejoins = [f for f in up if f.event == "phx_join" and f.topic == "room:a" and f.index > errors[0].index]
    if not rejoins:
        raise Failed("your trace ends before the client rejoined: expected a ↑ phx_join for room:a after "
                     "the phx_error", "Socket(..., rejoin_after=lambda tries: 0.1), and wait for the rejoin inside "
                     "the trace block: await room_a.next_message('joined')")
    new_join_ref = rejoins[0].parsed.join_ref
    replies = [f for f in down if f.event == "phx_reply" and f.index > rejoins[0].index
               and f.parsed.ref == new_join_ref and (f.parsed.payload or {}).get("status") == "ok"]
    if not replies:
        raise Failed("your trace has the rejoin but not its ok reply: expected ↓ phx_reply ok for the new join",
                     "wait for the rejoin to finish inside the trace block: await room_a.next_message('joined')")
    spawned = [e for e in t.events if isinstance(e, Spawn) and e.pid.startswith("channel room:a")
               and e.index > errors[0].index]
    if not spawned:
        raise Failed("your trace shows no new room:a channel process after the crash")
    if run.learner_clients():
        raise Failed("crash_and_rejoin returned with its client still connected",
                     "await client.disconnect() before returning t")
    return (f"the trace shows {crashed[0].pid} crash, ↓ phx_error with ref {old_join_ref!r}, the rejoin with "
            f"join_ref {new_join_ref!r}, its ok reply, and {spawned[0].pid} started")


# Exercise 12 (chapter 9, hard): LongPoll by hand


@exercise(12)
async def check_longpoll_ping(run: Run, longpoll_ping: Any) -> str:
    """``async def longpoll_ping(base_url) -> response``: join and ping ``room:lobby`` over LongPoll, with httpx.

    ``base_url`` is ``http://127.0.0.1:<port>``; the demo serves LongPoll at
    ``/socket/longpoll``. Open a session (``GET`` with ``vsn=2.0.0`` and
    ``user_id=lp``: status 410 and a token), post the join and a ``ping`` with
    ``{"n": 1}`` (V2 frames, the token in the query), poll (``GET`` with the token)
    until the ping's reply comes, and return its ``response``.
    """
    _require_callable(longpoll_ping, "longpoll_ping")
    if tracing.active is not None:
        raise Failed("a trace() block is still recording in this notebook: traces do not nest",
                     "let your `async with trace()` block end, then run the check again")
    endpoint = type("ShortPollEndpoint", (DemoEndpoint,), {
        # LongPoll only, so that the function cannot take a WebSocket; a short window
        # bounds the wait of a poll that arrives with nothing to collect.
        "sockets": [socket("/socket", UserSocket, websocket=False,
                           longpoll={"window_ms": 1000, "check_origin": "conn"})],
    })
    server = await run.server(create_app(endpoint_class=endpoint))
    hint = ("GET /socket/longpoll?vsn=2.0.0&user_id=lp gives {'status': 410, 'token': T}; POST the frames with "
            "the token in the query; then GET with the token until a phx_reply with your ping's ref arrives")
    async with trace() as t:
        response = await run.acall("longpoll_ping(base_url)", longpoll_ping, server.url, hint=hint)
    lp = [f for f in t.frames() if f.connection.startswith("lp#")]
    pings = [f for f in lp if f.direction == "↑" and f.event == "ping" and f.topic == "room:lobby"]
    if not pings:
        raise Failed(f"no ping reached room:lobby over LongPoll (longpoll_ping returned {show(response)})", hint)
    ping = pings[0].parsed
    replies = [f for f in lp if f.direction == "↓" and f.event == "phx_reply" and f.parsed.ref == ping.ref]
    if not replies:
        raise Failed("the server never sent the ping's reply: was the join posted first, with a join_ref?", hint)
    expected = replies[0].parsed.payload
    if response != expected.get("response"):
        raise Failed(f"longpoll_ping returned {show(response)}: expected the ping reply's response "
                     f"{show(expected.get('response'))}",
                     "each poll answers {'status': 200, 'messages': [frame, ...]}; json.loads each frame, "
                     "find the phx_reply whose ref is the ping's, and return frame[4]['response']")
    return f"a session, a join and a ping over LongPoll; the ping's reply {show(response)} came back in a poll"


# Exercise 13 (chapter 10, hard): a channel that inherits from nothing


@exercise(13)
async def check_no_inheritance(run: Run, channel_class: Any) -> str:
    """``TallyChannel``, with no base class: a counter per topic.

    * ``join`` with ``{"start": 5}`` replies ``{"count": 5}``;
    * ``add`` with ``{"by": 2}`` replies ``("ok", {"count": 7})``;
    * the message ``("double",)`` sent to its process pushes ``count`` with the doubled count;
    * leaving runs ``terminate``, which pushes ``final`` with the last count;
    * broadcasts on its topic reach the client (no ``handle_out`` is needed for that).
    """
    tally = _require_class(channel_class, "TallyChannel")
    if tally.__mro__ != (tally, object):
        bases = [c.__name__ for c in tally.__mro__[1:-1]]
        raise Failed(f"TallyChannel inherits from {', '.join(bases)}: expected a class with no base",
                     "class TallyChannel: with the methods the channel server calls, and nothing else")
    app = _endpoint("TallyEndpoint", socket("/socket", _routes("TallySocket", channel("tally:*", tally))))()
    server = await run.server(app)
    raw = await _Raw.open(run, server.ws_url + "/socket/websocket?vsn=2.0.0")
    ref, reply = await raw.join("tally:1", {"start": 5})
    if _status(reply) != ("ok", {"count": 5}):
        raise Failed(run.with_log(f"joining with {{'start': 5}} got {_status(reply)}: expected ('ok', {{'count': 5}})"),
                     "join returns ('ok', {'count': ...}, socket): the middle element is the reply")
    answer = await raw.push(ref, "tally:1", "add", {"by": 2})
    if answer is None or _status(answer) != ("ok", {"count": 7}):
        raise Failed(run.with_log(f"add {{'by': 2}} got {show(answer)}: expected the reply ('ok', {{'count': 7}})"),
                     "keep the count in the assigns: assign(socket, count=...) and return the new socket")
    pid = _channel_pid(app, "tally:1")
    process.send(pid, ("double",))
    pushed, _ = await raw.until(lambda f: _is_event(f, "tally:1", "count"))
    if pushed is None or pushed[4] != {"count": 14}:
        raise Failed(run.with_log(f"after ('double',) was sent to the channel's process, got {show(pushed)}: "
                                  "expected a push count {'count': 14}"),
                     "handle_info(message, socket) gets it: push(socket, 'count', {...}), "
                     "then return ('noreply', socket)")
    app.broadcast("tally:1", "note", {"text": "hi"})
    note, _ = await raw.until(lambda f: _is_event(f, "tally:1", "note"))
    if note is None:
        raise Failed(run.with_log("a broadcast on tally:1 did not reach the client"))
    await raw.send([ref, raw.ref(), "tally:1", "phx_leave", {}])
    final, _ = await raw.until(lambda f: _is_event(f, "tally:1", "final"))
    if final is None or final[4] != {"count": 14}:
        raise Failed(run.with_log(f"after leaving, got {show(final)}: expected terminate to push final "
                                  "{'count': 14}"), "terminate(reason, socket): push(socket, 'final', {...})")
    return ("join, add, a message to the process, a broadcast and a leave all worked through a class with "
            "no base: the channel server only calls methods")


def _channel_pid(app: Endpoint, topic: str) -> Pid:
    for state in app.connections().values():
        entry = state.channels.get(topic)
        if entry is not None:
            return entry.pid
    raise Failed(f"no channel process serves {topic!r} after its join")


# Exercise 14 (chapter 11, medium): a broadcast for one node


@exercise(14)
async def check_direct_broadcast(run: Run, broadcast_to_node: Any) -> str:
    """``broadcast_to_node(endpoint, node_name, topic, event, payload)``: a broadcast for one node only.

    Two demo nodes, ``a`` and ``b``, share a Redis (a ``RedisAdapter`` each), with a
    client in ``room:lobby`` on each. Deliver ``event`` with ``payload`` to the
    clients of ``topic`` on the node named ``node_name`` only, from whichever node's
    ``endpoint`` you are given: build the ``Broadcast`` as ``endpoint.broadcast``
    does, and hand it to ``endpoint.pubsub.direct_broadcast`` with the fastlane
    dispatcher.
    """
    from ..pubsub.redis import RedisAdapter

    _require_callable(broadcast_to_node, "broadcast_to_node")
    started: list[Any] = []
    redis_url = await _redis_server(run, started)
    nodes: dict[str, Any] = {}
    for name in ("a", "b"):
        nodes[name] = await run.server(create_app(pubsub=PubSub(RedisAdapter.from_url(redis_url, node_name=name))))
        started.append(nodes[name])
    for name, server in nodes.items():
        try:
            await server.app.pubsub.adapter.wait_connected(timeout=WAIT)
        except TimeoutError:
            raise Failed(run.with_log(f"node {name} did not subscribe to Redis within 2 s")) from None
    clients: dict[str, _Raw] = {}
    for user, name in (("alice", "a"), ("bob", "b")):
        clients[user] = await _Raw.open(run, nodes[name].ws_url + f"/socket/websocket?vsn=2.0.0&user_id={user}")
        _ref, reply = await clients[user].join("room:lobby", {"user": user})
        if _status(reply)[0] != "ok":
            raise Failed(run.with_log(f"{user}'s join of room:lobby on node {name} got {show(reply)}: expected ok"))
    hint = ("endpoint.pubsub.direct_broadcast(node_name, topic, Broadcast(topic, event, payload), "
            "fastlane_dispatch): endpoint.broadcast is the same call to every node")

    def is_notice(text: str) -> Callable[[Any], bool]:
        return lambda f: _is_event(f, "room:lobby", "notice") and isinstance(f[4], dict) and f[4].get("text") == text

    seen = []
    # From node a to node b, then back: the node named is never the one called, once, and is, once.
    for sender, target, here, there in (("a", "b", "alice", "bob"), ("b", "a", "bob", "alice")):
        text = f"for node {target} only, sent from node {sender}"
        payload = {"text": text}
        call = f"broadcast_to_node(endpoint_{sender}, {target!r}, 'room:lobby', 'notice', {payload!r})"
        await run.acall(call, broadcast_to_node, nodes[sender].app, target, "room:lobby", "notice", payload,
                        hint=hint)
        # A delivery on the calling node is already in its client's mailbox when the call returns.
        local = [f for f in await clients[here].barrier() if is_notice(text)(f)]
        if local:
            raise Failed(f"{here}, on node {sender}, received the notice of {call}: expected only the clients on "
                         f"node {target}", hint)
        got, _ = await clients[there].until(is_notice(text))
        if got is None:
            raise Failed(run.with_log(f"{there}, on node {target}, did not receive the notice of {call} within "
                                      "2 s"), hint)
        if got != [None, None, "room:lobby", "notice", payload]:
            raise Failed(f"{there} received {show(got)}: expected the fastlane's frame "
                         f"{show([None, None, 'room:lobby', 'notice', payload])}; a 'transport' key or a join_ref "
                         "means the channel's handle_out pushed it: the default dispatcher, not the fastlane",
                         "pass fastlane_dispatch as direct_broadcast's last argument")
        seen.append(f"{there} got it on node {target} and {here} did not")
    return f"sent from node a: {seen[0]}; sent from node b: {seen[1]}"


async def _redis_server(run: Run, nodes: list[Any]) -> str:
    """Start a ``redis-server`` of the check's own on a free port; its URL.

    When the check ends, the servers in ``nodes`` (filled in by the caller) are
    stopped first, then Redis.
    """
    import redis.asyncio as aioredis

    # Debian installs it in /usr/bin, which a notebook's PATH may lack.
    binary = shutil.which("redis-server") or shutil.which("redis-server", path="/usr/bin:/usr/local/bin")
    if binary is None:
        raise Failed("this check starts a Redis of its own, and redis-server is not installed",
                     "install it: sudo apt-get install redis-server (macOS: brew install redis)")
    with socket_lib.socket() as listener:
        listener.bind(("127.0.0.1", 0))  # the OS picks a port that is free now
        port = listener.getsockname()[1]
    redis_process = await asyncio.create_subprocess_exec(
        binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )

    async def stop() -> None:
        # The nodes first: stopped while Redis is up, their adapters close without a warning.
        try:
            for server in reversed(nodes):
                await server.stop()
        finally:
            if redis_process.returncode is None:
                redis_process.terminate()
            await redis_process.wait()

    run.defer(stop)
    ping = aioredis.Redis(host="127.0.0.1", port=port)
    try:
        async with asyncio.timeout(REDIS_START):
            while True:
                if redis_process.returncode is not None:
                    raise Failed(f"redis-server exited with status {redis_process.returncode} on port {port}")
                try:
                    if await ping.ping():
                        break
                except (aioredis.ConnectionError, OSError):
                    await asyncio.sleep(0.01)  # Redis sends no event when it is ready: ask again
    except TimeoutError:
        raise Failed(f"redis-server did not answer PING on port {port} within {REDIS_START:g} s") from None
    finally:
        await ping.aclose()
    return f"redis://127.0.0.1:{port}/0"


# Exercise 15 (chapter 12, medium): who is online, and with what status


@exercise(15)
async def check_presence_status(run: Run, channel_class: Any) -> str:
    """``StatusChannel``: each client is tracked with a status, and can change it.

    After its join reply, the channel tracks its process in the endpoint's presence
    (``socket.endpoint.presence``) under its ``user_id`` with the meta
    ``{"status": "online"}``, then pushes ``presence_state`` (given). On
    ``set_status`` with ``{"status": "away"}`` it replaces that meta with
    ``presence.update`` and replies ``ok``: every client in the topic then gets one
    ``presence_diff``, and phoenix.js's ``Presence`` shows the user once, away.
    """
    status_channel = _require_class(channel_class, "StatusChannel")
    refs = iter(range(1, 1000))
    endpoint = type("StatusEndpoint", (DemoEndpoint,), {
        "sockets": [socket("/socket", _routes("StatusSocket", channel("status:*", status_channel), base=UserSocket))],
    })
    app = create_app(endpoint_class=endpoint, presence_options={"make_ref": lambda: f"ref{next(refs)}"})
    server = await run.server(app)
    views: dict[str, _PresenceView] = {}
    clients: dict[str, _Raw] = {}
    join_refs: dict[str, str] = {}
    track_hint = ("in handle_info, after the join: presence.track(socket, socket.assigns['user_id'], "
                  "{'status': 'online'}), then push presence_state")
    for user in ("alice", "bob"):
        raw = clients[user] = await _Raw.open(run, server.ws_url + f"/socket/websocket?vsn=2.0.0&user_id={user}")
        join_refs[user], reply = await raw.join("status:lobby", {})
        if _status(reply)[0] != "ok":
            raise Failed(run.with_log(f"{user}'s join of status:lobby got {show(reply)}: expected ok"),
                         "keep the given join")
        views[user] = _PresenceView()
        if not await views[user].read_until(raw, lambda v: "presence_state" in v.events):
            raise Failed(run.with_log(f"{user} received no presence_state within 2 s of the join reply"), track_hint)
        if user == "bob" and not await views["alice"].read_until(clients["alice"], lambda v: "bob" in v.state):
            raise Failed(run.with_log("alice received no presence_diff with bob's arrival within 2 s"), track_hint)
        expected = {"alice": ["online"]} if user == "alice" else {"alice": ["online"], "bob": ["online"]}
        if views[user].statuses() != expected:
            raise Failed(f"after {user}'s join, {user}'s presence_state lists {views[user].metas()} (phx_ref "
                         f"aside): expected each user with one meta, 'status': 'online'", track_hint)
    update_hint = ("on 'set_status', socket.endpoint.presence.update(socket, socket.assigns['user_id'], "
                   "{'status': payload['status']}), then reply ok; track refuses a process it tracks already")
    answer = await clients["bob"].push(join_refs["bob"], "status:lobby", "set_status", {"status": "away"})
    if answer is None or _status(answer)[0] != "ok":
        raise Failed(run.with_log(f"bob's set_status {{'status': 'away'}} got {show(answer)}: expected the reply "
                                  "ok"), update_hint)
    expected = {"alice": ["online"], "bob": ["away"]}
    for user in ("alice", "bob"):
        view = views[user]
        diffs = view.events.count("presence_diff")
        if not await view.read_until(clients[user], lambda v: v.events.count("presence_diff") > diffs):
            raise Failed(run.with_log(f"{user} received no presence_diff within 2 s of bob's set_status: "
                                      "expected one, with bob's new meta"), update_hint)
        if view.statuses() != expected:
            raise Failed(f"after bob's set_status 'away', {user}'s presence lists {view.metas()} (phx_ref aside), "
                         f"from the presence_diff {show(view.last_diff)}: expected bob once, away", update_hint)
    server_side = {key: [meta.get("status") for meta in value["metas"]]
                   for key, value in app.presence.list("status:lobby").items()}
    if server_side != expected:
        raise Failed(f"the server's presence.list('status:lobby') says {server_side}: expected {expected}",
                     update_hint)
    left, joined = views["alice"].last_diff["leaves"], views["alice"].last_diff["joins"]
    return (f"both clients' presence shows {expected}; bob's set_status was one presence_diff, leaving "
            f"{[m['phx_ref'] for m in left['bob']['metas']]} and joining "
            f"{[m['phx_ref'] for m in joined['bob']['metas']]}")


class _PresenceView:
    """A client's copy of the presence list, kept as phoenix.js's ``Presence`` keeps it.

    ``syncState`` takes a ``presence_state`` whole; ``syncDiff`` applies a
    ``presence_diff`` by ``phx_ref``: joined metas replace those with the same ref
    and are added to the key's others, left ones are removed, and a key with no
    meta left goes. Diffs that come before the first state wait for it.
    """

    def __init__(self) -> None:
        self.state: dict[str, list[dict[str, Any]]] = {}
        self.events: list[str] = []
        self.pending: list[dict[str, Any]] = []
        self.last_diff: dict[str, Any] = {}

    async def read_until(self, raw: _Raw, done: Callable[[_PresenceView], bool]) -> bool:
        """Apply the presence frames ``raw`` receives until ``done(self)``; False if 2 s pass first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while not done(self):
            frame = await raw.next(max(0.0, deadline - loop.time()))
            if frame is None:
                return False
            if isinstance(frame, list) and len(frame) == 5 and frame[3] in ("presence_state", "presence_diff"):
                self.apply(frame[3], frame[4])
        return True

    def apply(self, event: str, payload: Any) -> None:
        self.events.append(event)
        if event == "presence_state":
            self.state = {key: list(value.get("metas", [])) for key, value in (payload or {}).items()}
            diffs, self.pending = self.pending, []
            for diff in diffs:
                self._diff(diff)
        elif "presence_state" not in self.events[:-1]:
            self.pending.append(payload)
        else:
            self._diff(payload)

    def _diff(self, diff: dict[str, Any]) -> None:
        self.last_diff = diff
        for key, value in (diff.get("joins") or {}).items():
            joined = list(value.get("metas", []))
            refs = {meta.get("phx_ref") for meta in joined}
            self.state[key] = [m for m in self.state.get(key, []) if m.get("phx_ref") not in refs] + joined
        for key, value in (diff.get("leaves") or {}).items():
            refs = {meta.get("phx_ref") for meta in value.get("metas", [])}
            if key in self.state:
                self.state[key] = [m for m in self.state[key] if m.get("phx_ref") not in refs]
                if not self.state[key]:
                    del self.state[key]

    def metas(self) -> dict[str, list[dict[str, Any]]]:
        """Each key's metas without their refs, which differ every run."""
        return {key: [{k: v for k, v in meta.items() if k not in ("phx_ref", "phx_ref_prev")} for meta in metas]
                for key, metas in sorted(self.state.items())}

    def statuses(self) -> dict[str, list[Any]]:
        return {key: [meta.get("status") for meta in metas] for key, metas in sorted(self.state.items())}


# The list of exercises


#: number → (chapter, difficulty, title, check): what the facilitator guide and the tests list.
EXERCISES: dict[int, tuple[int, str, str, Callable[..., Any]]] = {
    1: (1, "easy", "your first client: Alice and Bob chat", check_first_client),
    2: (2, "easy", "a second socket, and its key in the dispatch table", check_second_socket),
    3: (3, "medium", "a connect that refuses a missing or expired token", check_token_socket),
    4: (4, "easy", "at most three channels per connection", check_channel_limit),
    5: (4, "medium", "read the topic map of a live connection", check_topics_of),
    6: (5, "medium", "greet after the join reply", check_after_join),
    7: (6, "easy", "a channel whose handle_in replies", check_handle_in_reply),
    8: (6, "medium", "grep and trace: who puts join_ref on a reply?", check_join_ref_layers),
    9: (6, "hard", "a serializer of your own, chosen by vsn", check_serializer),
    10: (7, "medium", "mute a user: intercept and handle_out", check_mute),
    11: (8, "medium", "crash a channel, trace the phx_error and the rejoin", check_crash_and_rejoin),
    12: (9, "hard", "LongPoll by hand: join and ping over HTTP", check_longpoll_ping),
    13: (10, "hard", "a channel that inherits from nothing", check_no_inheritance),
    14: (11, "medium", "a broadcast for the clients of one node", check_direct_broadcast),
    15: (12, "medium", "track a status, and update it", check_presence_status),
}
