"""Unit tests for a Socket's routes (``channel("room:*", RoomChannel)``) and its connect arity.

Phoenix turns each ``channel`` line into a ``__channel__/1`` clause matching on a
string prefix; here :meth:`Socket.__channel__` walks the declared routes in order.
"""

from __future__ import annotations

from typing import Any

import pytest

from channels_core.channel import Channel
from channels_core.demo.app import BenchChannel, RoomChannel, UserSocket
from channels_core.socket import ChannelRoute, Socket, SocketStruct, assign, channel


class A(Channel):
    pass


class B(Channel):
    pass


# Patterns


@pytest.mark.parametrize(
    ("topic", "matches"),
    [
        ("room:lobby", True),
        ("room:", True),  # Phoenix's "room:" <> _ matches the empty rest too
        ("room:a:b", True),
        ("rooms", False),
        ("room", False),
        ("Room:lobby", False),
        (":room:lobby", False),
        (123, False),
        (None, False),
        (["room:lobby"], False),
    ],
)
def test_wildcard_route(topic: Any, matches: bool) -> None:
    assert channel("room:*", A).matches(topic) is matches


@pytest.mark.parametrize(("topic", "matches"), [("room:lobby", True), ("room:lobby2", False), ("room:", False)])
def test_exact_route(topic: str, matches: bool) -> None:
    assert channel("room:lobby", A).matches(topic) is matches


def test_a_lone_star_matches_every_string_topic() -> None:
    route = channel("*", A)
    assert route.matches("") and route.matches("anything")
    assert not route.matches(1)


@pytest.mark.parametrize("pattern", ["ro*m", "*:lobby", "room:*:*", "**"])
def test_a_star_before_the_end_is_refused(pattern: str) -> None:
    with pytest.raises(ValueError) as caught:
        channel(pattern, A)
    assert str(caught.value) == f"channels using splat patterns must end with *, got {pattern!r}"


def test_route_is_plain_data() -> None:
    route = channel("room:*", A, assigns={"theme": "dark"})
    assert route == ChannelRoute("room:*", A, {"assigns": {"theme": "dark"}})
    assert (route.pattern, route.channel, route.options) == ("room:*", A, {"assigns": {"theme": "dark"}})


# Lookup on a socket


def test_demo_socket_routes() -> None:
    assert UserSocket.__channel__("room:lobby").channel is RoomChannel  # type: ignore[union-attr]
    assert UserSocket.__channel__("bench:1").channel is BenchChannel  # type: ignore[union-attr]
    assert UserSocket.__channel__("chat:1") is None
    assert UserSocket.__channel__(123) is None


def test_first_declared_route_wins() -> None:
    class ExactFirst(Socket):
        channels = [channel("room:lobby", A), channel("room:*", B)]

    class WildcardFirst(Socket):
        channels = [channel("room:*", B), channel("room:lobby", A)]

    assert ExactFirst.__channel__("room:lobby").channel is A  # type: ignore[union-attr]
    assert ExactFirst.__channel__("room:other").channel is B  # type: ignore[union-attr]
    # The exact route is shadowed when declared after a wildcard that covers it.
    assert WildcardFirst.__channel__("room:lobby").channel is B  # type: ignore[union-attr]


def test_a_socket_without_routes_matches_nothing() -> None:
    assert Socket.__channel__("room:lobby") is None


def test_the_returned_route_carries_its_options() -> None:
    class WithOptions(Socket):
        channels = [channel("room:*", A, assigns={"x": 1})]

    assert WithOptions.__channel__("room:1").options == {"assigns": {"x": 1}}  # type: ignore[union-attr]


# connect arity


class TwoArgs(Socket):
    def connect(self, params: dict[str, Any], socket: SocketStruct) -> Any:
        return ("ok", socket)


class ThreeArgs(Socket):
    def connect(self, params: dict[str, Any], socket: SocketStruct, connect_info: dict[str, Any]) -> Any:
        return ("ok", socket)


def test_connect_arity() -> None:
    assert TwoArgs.connect_arity() == 2
    assert ThreeArgs.connect_arity() == 3
    assert Socket.connect_arity() == 2
    assert UserSocket.connect_arity() == 3


def test_default_socket_behaviour() -> None:
    socket = SocketStruct()
    assert Socket().connect({}, socket) == ("ok", socket)
    assert Socket().id(socket) is None


def test_assign_returns_a_new_struct() -> None:
    socket = SocketStruct(assigns={"a": 1})
    updated = assign(socket, b=2, a=3)
    assert updated.assigns == {"a": 3, "b": 2}
    assert socket.assigns == {"a": 1}
    assert updated is not socket
