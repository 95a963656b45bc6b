"""The Endpoint: where socket paths are declared and requests are dispatched.

Mirrors ``Phoenix.Endpoint``'s ``socket/3`` macro and the ``__handler__`` /
``do_handler`` functions its ``__before_compile__`` generates. In Phoenix,
``socket "/socket", UserSocket, websocket: true`` stores a declaration, and when the
module is compiled each declaration becomes one ``do_handler`` clause per
transport, matching a list of path segments. Python has no compile step, but it
has the moment a class is created: :meth:`Endpoint.__init_subclass__` turns the
``sockets`` declarations into a dispatch table, a plain dict you can print, and
:meth:`Endpoint.__handler__` looks a request path up in it. Anything not in the
table falls through to ordinary HTTP (``"plug"``), as in Phoenix.

An endpoint *instance* is the running application: an ASGI app (see
:mod:`channels_core.adapter`) with its own PubSub and channel supervisor, so two
instances in one Python process behave as two nodes.

Mounting inside another ASGI application
----------------------------------------

A Phoenix endpoint is the whole application. A Python endpoint can be that too
(``python -m channels_core serve``), or one part of a Starlette or FastAPI
application, sharing its server and its lifespan::

    endpoint = ChatEndpoint()             # declares socket("/", ChatSocket)
    app = Starlette(
        routes=[Route("/api/rooms/{room}/messages", post_message, methods=["POST"]),
                Mount("/socket", app=endpoint)],
        lifespan=endpoint.lifespan,
    )
    # phoenix.js: new Socket("/socket") -> /socket/websocket

**Paths are relative to the mount point**, as every mounted ASGI app's routes are.
The dispatch table keys are the paths *under* the endpoint: served alone they are
full request paths (``/socket/websocket``); mounted at ``/socket``, an endpoint
that declares ``socket("/", ...)`` serves ``/socket/websocket``, and one that
declares ``socket("/socket", ...)`` would serve ``/socket/socket/websocket``. So
the same endpoint class can be mounted anywhere without editing its declarations.
The host tells the endpoint where it is mounted through ASGI's ``root_path``;
servers and frameworks disagree on whether ``path`` then still carries that
prefix (Starlette 0.33 and later keep it, older versions and some proxies strip
it), so the adapter accepts both, by the rule Starlette's own ``get_route_path``
uses: a ``path`` that starts with ``root_path`` has it removed, any other
``path`` is already relative (see :func:`channels_core.adapter.mount_paths`).
``connect_info["uri"]`` still names the full URL the client asked for.

**Lifespan.** Starlette's ``Mount`` does not forward lifespan events to the app
it mounts, so the endpoint never hears the server start or stop. Two ways cover
it: hand :meth:`Endpoint.lifespan` to the host (``lifespan=endpoint.lifespan``,
or ``async with endpoint.lifespan():`` inside the host's own lifespan), which
starts the PubSub before the first request and, at shutdown, stops every
long-poll session and the PubSub; or do nothing and let the first request start
the endpoint (every request calls :meth:`Endpoint.startup`, which is idempotent
and safe when several first requests race), in which case the host should still
``await endpoint.shutdown()`` when it stops.

**PubSub from HTTP handlers.** :meth:`Endpoint.broadcast` needs no process and
no connection: an ordinary request handler can call
``endpoint.broadcast("room:lobby", "new_msg", {...})`` and every client joined to
the topic, on every node, receives it.

``examples/starlette_chat/app.py`` puts the three together, and
``tests/test_asgi_mount.py`` runs it under uvicorn and hypercorn.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from . import tracing
from .message import Broadcast
from .pubsub import PubSub
from .pubsub.fastlane import fastlane_dispatch
from .supervisor import PoolSupervisor
from .transports import longpoll
from .transports.transport import (
    LONGPOLL_DEFAULTS,
    WEBSOCKET_DEFAULTS,
    TransportConfig,
    load_config,
)

if TYPE_CHECKING:
    from .process import Pid
    from .socket import SocketState

__all__ = ["Dispatch", "Endpoint", "SocketDeclaration", "socket"]

ASGIApp = Callable[[dict[str, Any], Callable[..., Awaitable[Any]], Callable[..., Awaitable[Any]]], Awaitable[None]]


class SocketDeclaration(NamedTuple):
    """One ``socket(path, handler, ...)`` line of an endpoint, before compilation."""

    path: str
    handler: type
    websocket: bool | dict[str, Any]
    longpoll: bool | dict[str, Any]


def socket(
    path: str,
    handler: type,
    *,
    websocket: bool | dict[str, Any] = True,
    longpoll: bool | dict[str, Any] = False,
) -> SocketDeclaration:
    """Declare a socket at ``path``, served by ``handler`` over the given transports.

    ``websocket`` and ``longpoll`` take ``True`` (the defaults), ``False`` (off), or
    a dict of options over the defaults, e.g. ``{"check_origin": False}``.
    """
    if not path.startswith("/"):
        raise ValueError(f"socket paths must start with /, got {path!r}")
    return SocketDeclaration(path, handler, websocket, longpoll)


class Dispatch(NamedTuple):
    """One entry of the dispatch table: what ``do_handler`` returns for a path.

    Attributes:
        kind: ``"websocket"``, ``"longpoll"``, or ``"plug"`` for plain HTTP.
        handler: The socket class, or None for ``"plug"``.
        config: The transport's configuration, or None for ``"plug"``.
    """

    kind: str
    handler: type | None
    config: TransportConfig | None


PLUG = Dispatch("plug", None, None)


def _segments(path: str) -> tuple[str, ...]:
    return tuple(part for part in path.split("/") if part)


class Endpoint:
    """Base class for endpoints. Declare ``sockets``; instantiate to serve.

    Class attributes:
        sockets: The ``socket(...)`` declarations.
        url_host: The host ``check_origin=True`` compares origins with.
        check_origin: The default for sockets that do not set their own.

    Args:
        pubsub: The PubSub to use; a new single-node one by default.
        secret_key_base: Signs LongPoll session tokens and ``channels_core.token``s.
        plug: An ASGI app for every request the dispatch table does not claim.
    """

    sockets: ClassVar[list[SocketDeclaration]] = []
    url_host: ClassVar[str] = "localhost"
    check_origin: ClassVar[Any] = True
    #: path segments -> Dispatch, built when the class is created.
    __dispatch__: ClassVar[dict[tuple[str, ...], Dispatch]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.__dispatch__ = cls._compile(cls.sockets)

    @classmethod
    def _compile(cls, declarations: list[SocketDeclaration]) -> dict[tuple[str, ...], Dispatch]:
        """Turn each declaration into one table entry per enabled transport."""
        table: dict[tuple[str, ...], Dispatch] = {}
        for declaration in declarations:
            for kind, options, defaults in (
                ("websocket", declaration.websocket, WEBSOCKET_DEFAULTS),
                ("longpoll", declaration.longpoll, LONGPOLL_DEFAULTS),
            ):
                if options is False:
                    continue
                settings = {} if options is True else dict(options)
                settings.setdefault("check_origin", cls.check_origin)
                config = load_config(settings, defaults)
                key = _segments(declaration.path) + _segments(config.path)
                if key in table:
                    raise ValueError(f"two sockets claim the path /{'/'.join(key)}")
                table[key] = Dispatch(kind, declaration.handler, config)
        return table

    @classmethod
    def __handler__(cls, path_info: tuple[str, ...] | list[str]) -> Dispatch:
        """Phoenix's ``__handler__``: which transport, if any, serves this path."""
        dispatch = cls.__dispatch__.get(tuple(path_info), PLUG)
        tracing.hop("endpoint", f"{cls.__name__}.__handler__", path="/" + "/".join(path_info),
                    kind=dispatch.kind)
        return dispatch

    @classmethod
    def dispatch_table(cls) -> dict[str, Mapping[str, Any]]:
        """The dispatch table as plain data: path → transport, handler and options."""
        return {
            "/" + "/".join(key): {
                "transport": entry.kind,
                "handler": entry.handler.__name__ if entry.handler else None,
                "config": entry.config,
            }
            for key, entry in cls.__dispatch__.items()
        }

    # The running endpoint

    def __init__(
        self,
        *,
        pubsub: PubSub | None = None,
        secret_key_base: str = "a development secret, change me in production, 64 bytes long!!",
        plug: ASGIApp | None = None,
    ) -> None:
        self.pubsub = pubsub if pubsub is not None else PubSub()
        self.supervisor = PoolSupervisor()
        self.secret_key_base = secret_key_base
        self.plug = plug
        self.started = False
        # Set while startup runs, so that requests racing to start us wait for it.
        self._starting: asyncio.Future[None] | None = None
        # transport pid -> SocketState, kept by SocketState.init and terminate.
        self._connections: dict[Pid, SocketState] = {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        from .adapter import handle  # the adapter imports transports that import us

        await handle(self, scope, receive, send)

    async def startup(self) -> None:
        """Start what the endpoint owns (PubSub and its adapter); idempotent.

        Every request calls this (a mounted endpoint hears no lifespan events), so
        the first requests may race here: only one starts the PubSub, the others
        wait for it. A start that fails is tried again by the next request.
        """
        while not self.started:
            starting = self._starting
            if starting is not None:
                # Shielded: a waiting request that is cancelled must not cancel the start.
                await asyncio.shield(starting)
                continue
            self._starting = starting = asyncio.get_running_loop().create_future()
            try:
                await self.pubsub.start()
                self.started = True
            finally:
                self._starting = None
                starting.set_result(None)

    async def shutdown(self) -> None:
        """Stop what :meth:`startup` started."""
        if self.started:
            self.started = False
            # Long-poll sessions belong to the endpoint, as Phoenix's LongPoll.Supervisor
            # does; with no connection to close, they must be stopped by name.
            await longpoll.shutdown(self)
            await self.pubsub.stop()

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any = None) -> AsyncIterator[None]:
        """Start the endpoint on entry and shut it down on exit.

        Shaped as Starlette's ``lifespan=`` wants it (a callable taking the host app
        and returning an async context manager), so a host that mounts the endpoint
        can pass ``lifespan=endpoint.lifespan``; a host with a lifespan of its own
        nests ``async with endpoint.lifespan():`` inside it.
        """
        await self.startup()
        try:
            yield
        finally:
            await self.shutdown()

    # Introspection

    def connections(self) -> dict[Pid, SocketState]:
        """The live connections: each transport process's pid → its :class:`~channels_core.socket.SocketState`.

        Phoenix answers the same question with ``Phoenix.Debug.list_sockets/0``
        and ``list_channels/1``; here a connection's state is one dict lookup away,
        with its topic map (``channels``) and the inverse (``channels_inverse``).
        Both transports are listed: a WebSocket's connection process and a
        long-poll session's process. The dict is a snapshot, for looking at: the
        states belong to their transport processes, which alone change them.
        """
        return dict(self._connections)

    # PubSub helpers, as on a Phoenix endpoint

    def subscribe(self, topic: str, metadata: Any = None) -> None:
        """Subscribe the calling process to ``topic``."""
        self.pubsub.subscribe(topic, metadata)

    def unsubscribe(self, topic: str) -> None:
        self.pubsub.unsubscribe(topic)

    def broadcast(self, topic: str, event: str, payload: Any) -> None:
        """Broadcast ``event`` to every channel joined to ``topic``, from anywhere.

        This is how an HTTP handler or a background job talks to connected clients.
        """
        self.pubsub.broadcast(topic, Broadcast(topic, event, payload), fastlane_dispatch)

    def broadcast_from(self, from_pid: Any, topic: str, event: str, payload: Any) -> None:
        self.pubsub.broadcast_from(from_pid, topic, Broadcast(topic, event, payload), fastlane_dispatch)

    def local_broadcast(self, topic: str, event: str, payload: Any) -> None:
        self.pubsub.local_broadcast(topic, Broadcast(topic, event, payload), fastlane_dispatch)

    def disconnect(self, socket_id: str) -> None:
        """Close every connection whose socket ``id`` is ``socket_id``, on every node."""
        self.pubsub.broadcast(socket_id, Broadcast(socket_id, "disconnect", {}))
