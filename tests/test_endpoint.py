"""Unit tests for channels_core.endpoint: socket declarations become a dispatch table.

Phoenix compiles each ``socket "/socket", UserSocket, ...`` line into ``do_handler``
clauses; here the table is built when the class is created, and these tests read
it as plain data. No server is started.
"""

from __future__ import annotations

from typing import Any

import pytest

from channels_core import process
from channels_core.demo.app import DemoEndpoint, UserSocket
from channels_core.endpoint import PLUG, Dispatch, Endpoint, SocketDeclaration, socket
from channels_core.message import Broadcast
from channels_core.pubsub import PubSub
from channels_core.socket import Socket
from channels_core.supervisor import PoolSupervisor
from channels_core.transports.transport import LONGPOLL_DEFAULTS, WEBSOCKET_DEFAULTS, load_config


class LiveSocket(Socket):
    """A second socket class, so that two declarations can be told apart."""


# The demo's table


def test_demo_dispatch_table_as_data() -> None:
    table = DemoEndpoint.dispatch_table()
    assert list(table) == ["/socket/websocket", "/socket/longpoll"]
    assert {path: (entry["transport"], entry["handler"]) for path, entry in table.items()} == {
        "/socket/websocket": ("websocket", "UserSocket"),
        "/socket/longpoll": ("longpoll", "UserSocket"),
    }
    websocket, longpoll = table["/socket/websocket"]["config"], table["/socket/longpoll"]["config"]
    assert websocket == load_config({"check_origin": "conn", "auth_token": True}, WEBSOCKET_DEFAULTS)
    assert longpoll == load_config({"check_origin": "conn", "auth_token": True}, LONGPOLL_DEFAULTS)
    assert websocket.connect_info == ("auth_token",)


def test_demo_dispatch_keys_are_path_segments() -> None:
    assert list(DemoEndpoint.__dispatch__) == [("socket", "websocket"), ("socket", "longpoll")]


def test_handler_finds_each_transport() -> None:
    websocket = DemoEndpoint.__handler__(("socket", "websocket"))
    assert (websocket.kind, websocket.handler) == ("websocket", UserSocket)
    assert websocket.config is not None and websocket.config.path == "/websocket"
    longpoll = DemoEndpoint.__handler__(["socket", "longpoll"])  # a list works as well
    assert (longpoll.kind, longpoll.handler) == ("longpoll", UserSocket)
    assert longpoll.config is not None and longpoll.config.path == "/longpoll"


@pytest.mark.parametrize(
    "path",
    [(), ("socket",), ("socket", "websocket", "extra"), ("websocket",), ("Socket", "websocket"), ("index.html",)],
)
def test_handler_falls_through_to_plug(path: tuple[str, ...]) -> None:
    assert DemoEndpoint.__handler__(path) == Dispatch("plug", None, None) == PLUG


# Declarations


def test_socket_declaration_defaults() -> None:
    assert socket("/socket", UserSocket) == SocketDeclaration("/socket", UserSocket, True, False)


def test_socket_path_must_start_with_a_slash() -> None:
    with pytest.raises(ValueError, match="^socket paths must start with /, got 'socket'$"):
        socket("socket", UserSocket)


def test_two_declarations_and_a_longpoll_only_socket() -> None:
    class TwoSockets(Endpoint):
        sockets = [
            socket("/socket", UserSocket),
            socket("/live", LiveSocket, websocket=False, longpoll=True),
        ]

    assert {path: (entry["transport"], entry["handler"]) for path, entry in TwoSockets.dispatch_table().items()} == {
        "/socket/websocket": ("websocket", "UserSocket"),
        "/live/longpoll": ("longpoll", "LiveSocket"),
    }
    assert TwoSockets.__handler__(("live", "websocket")) == PLUG
    assert TwoSockets.__handler__(("socket", "longpoll")) == PLUG


def test_transport_path_option_changes_the_key() -> None:
    class CustomPaths(Endpoint):
        sockets = [socket("/socket", UserSocket, websocket={"path": "/ws"}, longpoll={"path": "/lp"})]

    assert list(CustomPaths.dispatch_table()) == ["/socket/ws", "/socket/lp"]


def test_a_socket_at_the_root() -> None:
    class Root(Endpoint):
        sockets = [socket("/", UserSocket)]

    assert list(Root.dispatch_table()) == ["/websocket"]
    assert Root.__handler__(("websocket",)).kind == "websocket"


def test_both_transports_off_claims_nothing() -> None:
    class Nothing(Endpoint):
        sockets = [socket("/socket", UserSocket, websocket=False, longpoll=False)]

    assert Nothing.dispatch_table() == {}


def test_duplicate_path_is_refused_when_the_class_is_created() -> None:
    with pytest.raises(ValueError, match="^two sockets claim the path /socket/websocket$"):

        class Clash(Endpoint):
            sockets = [socket("/socket", UserSocket), socket("/socket", LiveSocket)]


def test_duplicate_path_through_a_custom_transport_path() -> None:
    with pytest.raises(ValueError, match="^two sockets claim the path /a/b/websocket$"):

        class Clash(Endpoint):
            sockets = [socket("/a/b", UserSocket), socket("/a", LiveSocket, websocket={"path": "/b/websocket"})]


def test_bad_transport_options_are_refused_when_the_class_is_created() -> None:
    with pytest.raises(ValueError, match=r"^unknown transport option\(s\): tiemout$"):

        class Typo(Endpoint):
            sockets = [socket("/socket", UserSocket, websocket={"tiemout": 5})]


def test_endpoint_check_origin_is_the_default_for_its_sockets() -> None:
    class Strict(Endpoint):
        check_origin = ["//example.com"]
        sockets = [socket("/socket", UserSocket, longpoll={"check_origin": False})]

    websocket, longpoll = Strict.__handler__(("socket", "websocket")), Strict.__handler__(("socket", "longpoll"))
    assert websocket.config.check_origin == ["//example.com"]  # type: ignore[union-attr]
    assert longpoll.config.check_origin is False  # type: ignore[union-attr]


def test_the_base_class_has_an_empty_table() -> None:
    assert Endpoint.__dispatch__ == {}
    assert Endpoint.__handler__(("socket", "websocket")) == PLUG


def test_a_subclass_gets_its_own_table() -> None:
    class Child(DemoEndpoint):
        sockets = [socket("/other", LiveSocket)]

    assert list(Child.dispatch_table()) == ["/other/websocket"]
    assert list(DemoEndpoint.dispatch_table()) == ["/socket/websocket", "/socket/longpoll"]


# The running endpoint (in-process)


def test_an_instance_owns_a_pubsub_and_a_supervisor() -> None:
    endpoint = DemoEndpoint()
    assert isinstance(endpoint.pubsub, PubSub)
    assert isinstance(endpoint.supervisor, PoolSupervisor)
    assert endpoint.supervisor.which_children() == []
    assert endpoint.started is False
    assert DemoEndpoint().pubsub is not endpoint.pubsub  # two instances, two nodes
    shared = PubSub()
    assert DemoEndpoint(pubsub=shared).pubsub is shared


async def test_startup_and_shutdown_are_idempotent() -> None:
    endpoint = DemoEndpoint()
    await endpoint.startup()
    await endpoint.startup()
    assert endpoint.started
    await endpoint.shutdown()
    await endpoint.shutdown()
    assert not endpoint.started


async def _subscriber_receives(endpoint: DemoEndpoint, topic: str, act: Any) -> Any:
    """Subscribe a process to ``topic``, run ``act()``, return what the process receives."""
    received: list[Any] = []

    async def subscriber() -> None:
        endpoint.subscribe(topic)
        act()
        received.append(await process.receive(timeout=2))

    pid = process.spawn(subscriber)
    await process.lookup(pid).task  # type: ignore[union-attr, misc]
    return received


async def test_endpoint_broadcast_reaches_a_plain_subscriber() -> None:
    endpoint = DemoEndpoint()
    received = await _subscriber_receives(
        endpoint, "room:lobby", lambda: endpoint.broadcast("room:lobby", "news", {"n": 1})
    )
    assert received == [Broadcast("room:lobby", "news", {"n": 1})]


async def test_endpoint_disconnect_broadcasts_disconnect_on_the_socket_id() -> None:
    endpoint = DemoEndpoint()
    received = await _subscriber_receives(endpoint, "user_sockets:u1", lambda: endpoint.disconnect("user_sockets:u1"))
    assert received == [Broadcast("user_sockets:u1", "disconnect", {})]
