"""The demo's socket, channels and endpoint (see the package docstring)."""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

from .. import process
from ..channel import Channel, broadcast, push
from ..endpoint import Endpoint, socket
from ..exceptions import TokenError
from ..presence import Presence
from ..pubsub import PubSub
from ..socket import Socket, SocketStruct, assign, channel
from ..token import sign, verify
from .pages import pages

logger = logging.getLogger("channels_core.demo")

#: The salt that keeps user tokens from being valid for anything else.
USER_TOKEN_SALT = "user socket"
SECRET_KEY_BASE = "channels-anatomy demo secret; set your own in production, 64+ bytes!"


def sign_user_token(user_id: str, *, secret_key_base: str = SECRET_KEY_BASE, signed_at: float | None = None) -> str:
    """A token that lets phoenix.js's ``authToken`` connect as ``user_id``."""
    return sign(secret_key_base, USER_TOKEN_SALT, user_id, signed_at=signed_at)


def _ping_or_bench(event: str, payload: Any, socket: SocketStruct) -> tuple[Any, ...] | None:
    """``ping`` and ``bench_broadcast``, answered alike by both channels, or None."""
    if event == "ping":
        return ("reply", ("ok", payload), socket)
    if event == "bench_broadcast":
        for i in range(1, payload["n"] + 1):
            broadcast(socket, "bench_msg", {"i": i})
        return ("reply", "ok", socket)
    return None


def _track_presence(socket: SocketStruct) -> None:
    """Put this channel on its room's online list, and send the client the whole list."""
    presence = socket.endpoint.presence
    presence.start()  # the first presence-enabled join on this node starts the tracker
    key = socket.assigns.get("user_id") or f"anonymous-{secrets.token_hex(4)}"
    presence.track(socket, key, {"online_at": int(time.time())})
    push(socket, "presence_state", presence.list(socket))


class RoomChannel(Channel):
    """``room:*``: join, chat, and the reference app's test events."""

    intercept = ["new_msg"]

    def join(self, topic: str, payload: Any, socket: SocketStruct) -> tuple[Any, ...]:
        if topic == "room:private":
            return ("error", {"reason": "unauthorized"})
        # The process exists already, so this message waits in its own mailbox and is
        # handled right after the join reply has been sent.
        process.send(process.current(), ("after_join", payload))
        return ("ok", socket)

    def handle_info(self, message: Any, socket: SocketStruct) -> tuple[Any, ...]:
        if isinstance(message, tuple) and message[0] == "after_join":
            payload = message[1]
            # A payload that is not an object crashes here, as `"str"["user"]` does in Elixir.
            broadcast(socket, "user_entered", {"user": payload.get("user")})
            push(socket, "joined", {"status": "connected", **socket.assigns})
            if payload.get("presence") is True:
                _track_presence(socket)
        return ("noreply", socket)

    def handle_in(self, event: str, payload: Any, socket: SocketStruct) -> tuple[Any, ...]:
        if event == "new_msg":
            broadcast(socket, "new_msg", payload)
            return ("reply", "ok", socket)
        if event == "boom":
            raise RuntimeError("boom")
        if event == "binary_event" and isinstance(payload, bytes):
            push(socket, "binary_event", b"\x00\x01")
            return ("reply", ("ok", payload + b"\x03\x04"), socket)
        answer = _ping_or_bench(event, payload, socket)
        if answer is None:
            raise ValueError(f"RoomChannel has no handle_in clause for event {event!r}")
        return answer

    def handle_out(self, event: str, payload: Any, socket: SocketStruct) -> tuple[Any, ...]:
        # Elixir's inspect(:websocket) is ":websocket"; the golden frames carry exactly that.
        push(socket, event, {**payload, "transport": f":{socket.transport}"})
        return ("noreply", socket)

    def terminate(self, reason: Any, socket: SocketStruct) -> None:
        push(socket, "you_left", {"message": "bye!"})


class BenchChannel(Channel):
    """``bench:*``: the channel machinery with nothing else, for benchmarks."""

    def join(self, topic: str, payload: Any, socket: SocketStruct) -> tuple[Any, ...]:
        return ("ok", socket)

    def handle_in(self, event: str, payload: Any, socket: SocketStruct) -> tuple[Any, ...]:
        answer = _ping_or_bench(event, payload, socket)
        if answer is None:
            raise ValueError(f"BenchChannel has no handle_in clause for event {event!r}")
        return answer


class UserSocket(Socket):
    """Refuses ``reject=true``; remembers ``user_id`` from params or a signed token."""

    channels = [
        channel("room:*", RoomChannel),
        channel("bench:*", BenchChannel),
    ]

    def connect(self, params: dict[str, Any], socket: SocketStruct, connect_info: dict[str, Any]) -> Any:
        if params.get("reject") == "true":
            return "error"
        token = connect_info.get("auth_token")
        if token is not None:
            try:
                user_id = verify(socket.endpoint.secret_key_base, USER_TOKEN_SALT, token)
            except TokenError as exc:
                logger.warning("refused a connection with a bad auth token: %s", exc)
                return "error"
            return ("ok", assign(socket, user_id=user_id))
        return ("ok", assign(socket, user_id=params.get("user_id")))

    def id(self, socket: SocketStruct) -> str | None:
        user_id = socket.assigns.get("user_id")
        return f"user_sockets:{user_id}" if user_id else None


class DemoEndpoint(Endpoint):
    """``socket "/socket", UserSocket`` over both transports, plus the chat page."""

    sockets = [
        socket(
            "/socket",
            UserSocket,
            websocket={"check_origin": "conn", "auth_token": True},
            longpoll={"check_origin": "conn", "auth_token": True},
        ),
    ]

    def __init__(self, *, presence_options: dict[str, Any] | None = None, **options: Any) -> None:
        super().__init__(**options)
        #: Who is online in each room; started by the first join that asks for it.
        self.presence = Presence(self.pubsub, **(presence_options or {}))

    async def shutdown(self) -> None:
        await self.presence.stop()
        await super().shutdown()


def create_app(
    *,
    pubsub: PubSub | None = None,
    endpoint_class: type[DemoEndpoint] = DemoEndpoint,
    presence_options: dict[str, Any] | None = None,
) -> DemoEndpoint:
    """A ready-to-serve demo endpoint, with the chat page for every other path.

    ``presence_options`` go to its :class:`~channels_core.presence.Presence`
    (``broadcast_period``, ``down_period``, ``make_ref``).
    """
    return endpoint_class(pubsub=pubsub, secret_key_base=SECRET_KEY_BASE, plug=pages,
                          presence_options=presence_options)
