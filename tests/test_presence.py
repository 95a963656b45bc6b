"""Presence: who is online, on one node and across nodes, as phoenix.js's Presence sees it.

Four layers of tests:

* The tracker in-process, on one node: track, untrack, update, list, the diffs it
  broadcasts (exact payloads, with numbered ``phx_ref``\\s), entries leaving with
  their process, and every refusal.
* The replication protocol between in-process nodes joined by :class:`Wire`, an
  adapter that carries JSON in order like Redis and can lose or cut messages on
  demand: deltas, a lost delta repaired after a heartbeat, a new node learning
  the cluster, goodbye, a silent node removed after ``down_period``, a restart,
  malformed and stale messages.
* The demo app on a real server: the exact frames of a presence-enabled join, and
  nothing for a client that does not ask.
* phoenix.js's ``Presence`` in Node (``tests/js/presence.js``) against a real
  server, compared with the server's own list at each step: joins, a leave, two
  tabs under one key, a channel crash, a dead connection; and two nodes over a
  real ``redis-server`` converging, a node cut off removed within
  ``down_period + broadcast_period``, and a healed partition converging again.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import re
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import websockets

from channels_core import process
from channels_core.demo import create_app
from channels_core.message import Broadcast
from channels_core.presence import Presence, PresenceError
from channels_core.process import Pid
from channels_core.pubsub import PubSub, RedisAdapter, default_dispatch
from channels_core.pubsub.adapter import Dispatcher
from channels_core.server import Server
from channels_core.socket import SocketStruct
from helpers import REDIS_SERVER, ROOT, RawClient, RedisServer, node_available, seconds

TOPIC = "room:lobby"
LOGGER = "channels_core.presence"
#: Short periods for the multi-node tests: heartbeats every 0.1 s, down after 0.5 s of silence.
FAST = {"broadcast_period": 0.1, "down_period": 0.5}


def numbered(prefix: str) -> Callable[[], str]:
    """A ``make_ref`` that numbers refs (``r1``, ``r2``...), so that tests can name them."""
    counter = itertools.count(1)
    return lambda: f"{prefix}{next(counter)}"


def diff(joins: dict[str, list[dict[str, Any]]] | None = None,
         leaves: dict[str, list[dict[str, Any]]] | None = None) -> dict[str, Any]:
    """A presence_diff payload from ``{key: [meta, ...]}`` halves."""
    return {
        "joins": {key: {"metas": metas} for key, metas in (joins or {}).items()},
        "leaves": {key: {"metas": metas} for key, metas in (leaves or {}).items()},
    }


def refs(presences: dict[str, Any]) -> dict[str, list[str]]:
    """``{key: [phx_ref, ...]}``: a list with only what identifies each meta."""
    return {key: [meta["phx_ref"] for meta in value["metas"]] for key, value in presences.items()}


# Processes for the tests: tracked ones, and observers of a topic


async def _idle() -> None:
    message = await process.receive()
    if message == "crash":
        raise RuntimeError("crashed on purpose")


@pytest.fixture
def spawn_tracked(leak_check: Any) -> Any:
    """Start processes that wait for "stop" (exit normally) or "crash"; all stopped after the test."""
    pids: list[Pid] = []

    def spawn() -> Pid:
        pid = process.spawn(_idle, role="test tracked")
        pids.append(pid)
        return pid

    yield spawn
    for pid in pids:
        process.send(pid, "stop")


async def _collect(queue: asyncio.Queue[Any]) -> None:
    while (message := await process.receive()) != "stop":
        queue.put_nowait(message)


class Observer:
    """A process subscribed to a topic on one node: it sees every presence_diff broadcast there."""

    def __init__(self, pubsub: PubSub, topic: str = TOPIC) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.pid = process.spawn(_collect, self.queue, role="test observer")
        pubsub.subscribe(topic, pid=self.pid)

    async def next_diff(self, timeout: float = 2.0) -> dict[str, Any]:
        async with asyncio.timeout(seconds(timeout)):
            message = await self.queue.get()
        assert isinstance(message, Broadcast) and message.event == "presence_diff", message
        return message.payload  # type: ignore[no-any-return]

    async def expect_silence(self, timeout: float = 0.2) -> None:
        try:
            message = await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected broadcast: {message!r}")

    def stop(self) -> None:
        process.send(self.pid, "stop")


@pytest.fixture
async def observers(leak_check: Any) -> AsyncIterator[Callable[..., Observer]]:
    made: list[Observer] = []

    def observe(pubsub: PubSub, topic: str = TOPIC) -> Observer:
        observer = Observer(pubsub, topic)
        made.append(observer)
        return observer

    yield observe
    for observer in made:
        observer.stop()


class LogWatch(logging.Handler):
    """The tracker's log lines, waited on as events."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []
        self._changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        self._changed.set()

    async def wait_for(self, *texts: str, timeout: float = 2.0) -> None:
        """Return once a line containing each of ``texts`` has been logged."""
        async with asyncio.timeout(seconds(timeout)):
            while not all(any(text in message for message in self.messages) for text in texts):
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
def presence_log() -> Any:
    logger = logging.getLogger(LOGGER)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    watch = LogWatch()
    logger.addHandler(watch)
    yield watch
    logger.removeHandler(watch)
    logger.setLevel(level)


async def wait_exit(pid: Pid, timeout: float = 2.0) -> None:
    runtime = process.lookup(pid)
    if runtime is not None and runtime.task is not None:
        await asyncio.wait_for(asyncio.shield(runtime.task), seconds(timeout))


# One node


@pytest.fixture
async def presence(leak_check: Any) -> AsyncIterator[Presence]:
    """A running tracker on a single-node PubSub, with refs r1, r2..."""
    tracker = Presence(PubSub(), make_ref=numbered("r"))
    tracker.start()
    yield tracker
    await tracker.stop()


async def test_track_lists_the_meta_with_a_phx_ref_and_broadcasts_the_join(
    presence: Presence, spawn_tracked: Callable[[], Pid], observers: Callable[..., Observer]
) -> None:
    observer = observers(presence.pubsub)
    pid = spawn_tracked()

    assert presence.track(pid, TOPIC, "alice", {"online_at": 100}) == "r1"

    assert presence.list(TOPIC) == {"alice": {"metas": [{"online_at": 100, "phx_ref": "r1"}]}}
    assert await observer.next_diff() == diff(joins={"alice": [{"online_at": 100, "phx_ref": "r1"}]})
    assert presence.list("room:other") == {}


async def test_two_processes_under_one_key_are_one_presence_with_two_metas(
    presence: Presence, spawn_tracked: Callable[[], Pid], observers: Callable[..., Observer]
) -> None:
    observer = observers(presence.pubsub)
    tab1, tab2, bob = spawn_tracked(), spawn_tracked(), spawn_tracked()
    presence.track(tab1, TOPIC, "alice", {"tab": 1})
    presence.track(bob, TOPIC, "bob", {})
    presence.track(tab2, TOPIC, "alice", {"tab": 2})

    assert presence.list(TOPIC) == {
        "alice": {"metas": [{"tab": 1, "phx_ref": "r1"}, {"tab": 2, "phx_ref": "r3"}]},
        "bob": {"metas": [{"phx_ref": "r2"}]},
    }
    assert presence.get_by_key(TOPIC, "alice") == {"metas": [{"tab": 1, "phx_ref": "r1"}, {"tab": 2, "phx_ref": "r3"}]}
    assert presence.get_by_key(TOPIC, "carol") is None
    diffs = [await observer.next_diff() for _ in range(3)]
    assert diffs[2] == diff(joins={"alice": [{"tab": 2, "phx_ref": "r3"}]})

    process.send(tab1, "stop")
    assert await observer.next_diff() == diff(leaves={"alice": [{"tab": 1, "phx_ref": "r1"}]})
    assert presence.list(TOPIC) == {
        "alice": {"metas": [{"tab": 2, "phx_ref": "r3"}]},
        "bob": {"metas": [{"phx_ref": "r2"}]},
    }


async def test_a_socket_is_tracked_as_its_channel_process_in_its_topic(
    presence: Presence, spawn_tracked: Callable[[], Pid]
) -> None:
    pid = spawn_tracked()
    socket = SocketStruct(channel_pid=pid, topic=TOPIC, joined=True)

    presence.track(socket, 42, {"a": 1})  # an int key is listed as its string, as JSON would
    assert presence.list(socket) == {"42": {"metas": [{"a": 1, "phx_ref": "r1"}]}}
    assert presence.snapshot()["entries"] == [{"topic": TOPIC, "key": "42", "meta": {"a": 1, "phx_ref": "r1"}, "pid": pid}]

    presence.untrack(socket, 42)
    assert presence.list(TOPIC) == {}


async def test_a_crash_or_an_exit_removes_every_entry_of_the_process(
    presence: Presence, spawn_tracked: Callable[[], Pid], observers: Callable[..., Observer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    lobby, other = observers(presence.pubsub), observers(presence.pubsub, "room:other")
    pid = spawn_tracked()
    presence.track(pid, TOPIC, "alice", {})
    presence.track(pid, "room:other", "alice", {})
    await lobby.next_diff(), await other.next_diff()

    process.send(pid, "crash")

    assert await lobby.next_diff() == diff(leaves={"alice": [{"phx_ref": "r1"}]})
    assert await other.next_diff() == diff(leaves={"alice": [{"phx_ref": "r2"}]})
    assert presence.list(TOPIC) == presence.list("room:other") == {}
    assert presence.snapshot() == {"node": "local", "vsn": 3, "entries": [], "replicas": {}}
    assert "crashed on purpose" in caplog.text


async def test_untrack_by_key_by_topic_and_key_or_everything_of_a_process(
    presence: Presence, spawn_tracked: Callable[[], Pid], observers: Callable[..., Observer]
) -> None:
    observer = observers(presence.pubsub)
    pid, other = spawn_tracked(), spawn_tracked()
    presence.track(pid, TOPIC, "alice", {})
    presence.track(pid, TOPIC, "work", {})
    presence.track(pid, "room:other", "alice", {})
    presence.track(other, TOPIC, "bob", {})
    for _ in range(3):
        await observer.next_diff()

    presence.untrack(pid, TOPIC, "work")
    assert await observer.next_diff() == diff(leaves={"work": [{"phx_ref": "r2"}]})
    presence.untrack(pid, TOPIC, "nobody")  # not tracked: nothing happens, as in Phoenix
    presence.untrack(pid)
    assert await observer.next_diff() == diff(leaves={"alice": [{"phx_ref": "r1"}]})
    assert presence.list("room:other") == {}
    assert presence.list(TOPIC) == {"bob": {"metas": [{"phx_ref": "r4"}]}}
    await observer.expect_silence()


async def test_update_replaces_the_meta_with_a_new_ref_naming_the_old_one(
    presence: Presence, spawn_tracked: Callable[[], Pid], observers: Callable[..., Observer]
) -> None:
    observer = observers(presence.pubsub)
    pid = spawn_tracked()
    presence.track(pid, TOPIC, "alice", {"status": "away"})
    await observer.next_diff()

    assert presence.update(pid, TOPIC, "alice", {"status": "busy"}) == "r2"
    busy = {"status": "busy", "phx_ref": "r2", "phx_ref_prev": "r1"}
    assert await observer.next_diff() == diff(joins={"alice": [busy]}, leaves={"alice": [{"status": "away", "phx_ref": "r1"}]})

    # A function gets the current meta; phx_ref_prev always names the ref it replaces.
    presence.update(SocketStruct(channel_pid=pid, topic=TOPIC), "alice", lambda meta: {**meta, "typing": True})
    assert presence.list(TOPIC) == {
        "alice": {"metas": [{"status": "busy", "typing": True, "phx_ref": "r3", "phx_ref_prev": "r2"}]}
    }


async def test_fetch_adds_data_to_lists_and_to_both_halves_of_diffs(
    spawn_tracked: Callable[[], Pid], observers: Callable[..., Observer]
) -> None:
    class Named(Presence):
        def fetch(self, topic: str, presences: dict[str, Any]) -> dict[str, Any]:
            return {key: {**value, "name": key.title()} for key, value in presences.items()}

    presence = Named(PubSub(), make_ref=numbered("r"))
    presence.start()
    observer = observers(presence.pubsub)
    pid = spawn_tracked()
    presence.track(pid, TOPIC, "alice", {})
    presence.untrack(pid)

    assert await observer.next_diff() == {"joins": {"alice": {"metas": [{"phx_ref": "r1"}], "name": "Alice"}}, "leaves": {}}
    assert await observer.next_diff() == {"joins": {}, "leaves": {"alice": {"metas": [{"phx_ref": "r1"}], "name": "Alice"}}}
    presence.track(pid, TOPIC, "bob", {})
    assert presence.list(TOPIC) == {"bob": {"metas": [{"phx_ref": "r2"}], "name": "Bob"}}
    await presence.stop()


async def test_metas_are_copied_as_json(presence: Presence, spawn_tracked: Callable[[], Pid]) -> None:
    meta = {"tags": ("a", "b"), "nested": {"n": 1}}
    presence.track(spawn_tracked(), TOPIC, "alice", meta)
    meta["nested"]["n"] = 2  # the caller's dict is not the tracked one

    listed = presence.list(TOPIC)
    assert listed == {"alice": {"metas": [{"tags": ["a", "b"], "nested": {"n": 1}, "phx_ref": "r1"}]}}
    listed["alice"]["metas"][0]["nested"]["n"] = 3  # nor is what list() returns
    assert presence.list(TOPIC) == {"alice": {"metas": [{"tags": ["a", "b"], "nested": {"n": 1}, "phx_ref": "r1"}]}}


async def test_refusals(presence: Presence, spawn_tracked: Callable[[], Pid]) -> None:
    pid = spawn_tracked()
    presence.track(pid, TOPIC, "alice", {})

    with pytest.raises(PresenceError, match=r"<pid \d+ test tracked> is already tracked under 'alice' in 'room:lobby'"):
        presence.track(pid, TOPIC, "alice", {})
    with pytest.raises(PresenceError, match=r"is not tracked under 'bob' in 'room:lobby': nothing to update"):
        presence.update(pid, TOPIC, "bob", {})
    with pytest.raises(TypeError, match=r"a presence key must be a str or an int, got \['a'\]"):
        presence.track(pid, TOPIC, ["a"], {})
    with pytest.raises(TypeError, match=r"a presence key must be a str or an int, got True"):
        presence.track(pid, TOPIC, True, {})
    with pytest.raises(TypeError, match=r"presence meta must be a dict, got \[\]"):
        presence.track(pid, TOPIC, "x", [])
    with pytest.raises(TypeError, match=r"presence meta keys must be strings, got \[1\]"):
        presence.track(pid, TOPIC, "x", {1: "a"})
    with pytest.raises(TypeError, match=r"presence meta must be a JSON object .*: Object of type set is not JSON"):
        presence.track(pid, TOPIC, "x", {"a": {1}})
    with pytest.raises(TypeError, match=r"presence meta must be a JSON object .*Out of range float values"):
        presence.track(pid, TOPIC, "x", {"a": float("nan")})
    with pytest.raises(TypeError, match=r"track\(pid, topic, key, meta\) takes 4 arguments, got 3"):
        presence.track(pid, TOPIC, "x")
    with pytest.raises(TypeError, match=r"track\(socket, key, meta\) takes 3 arguments, got 2"):
        presence.track(SocketStruct(channel_pid=pid, topic=TOPIC), "x")
    with pytest.raises(TypeError, match=r"the topic must be a str, got 1"):
        presence.track(pid, 1, "x", {})
    with pytest.raises(TypeError, match=r"track takes a socket or a pid first, got 'alice'"):
        presence.track("alice", TOPIC, "x", {})
    with pytest.raises(PresenceError, match=r"cannot track a socket outside a channel"):
        presence.track(SocketStruct(), "x", {})
    # Nothing refused was tracked.
    assert refs(presence.list(TOPIC)) == {"alice": ["r1"]}


async def test_a_process_that_has_exited_cannot_be_tracked(presence: Presence, spawn_tracked: Callable[[], Pid]) -> None:
    pid = spawn_tracked()
    process.send(pid, "stop")
    await wait_exit(pid)
    with pytest.raises(PresenceError, match=r"cannot track <pid \d+ test tracked> in 'room:lobby': the process has exited"):
        presence.track(pid, TOPIC, "alice", {})
    assert presence.list(TOPIC) == {}


async def test_a_tracker_that_is_not_running_refuses_and_says_why(
    spawn_tracked: Callable[[], Pid], leak_check: Any
) -> None:
    presence = Presence(PubSub())
    pid = spawn_tracked()
    for call in (lambda: presence.track(pid, TOPIC, "a", {}), lambda: presence.untrack(pid),
                 lambda: presence.update(pid, TOPIC, "a", {})):
        with pytest.raises(PresenceError, match=r"presence tracker 'presence' is not running \(call presence\.start\(\) first\)"):
            call()
    assert repr(presence) == "<Presence 'presence' node='local' stopped>"
    await presence.stop()  # stopping what never started does nothing


def test_constructor_refuses_what_cannot_work() -> None:
    with pytest.raises(ValueError, match=r"need 0 < broadcast_period < down_period, got 2 and 1"):
        Presence(PubSub(), broadcast_period=2, down_period=1)
    with pytest.raises(ValueError, match=r"need 0 < broadcast_period < down_period, got 0 and 1"):
        Presence(PubSub(), broadcast_period=0, down_period=1)
    with pytest.raises(ValueError, match=r"name must be a non-empty string, got ''"):
        Presence(PubSub(), name="")


async def test_two_trackers_with_one_name_on_one_node_are_refused(leak_check: Any) -> None:
    pubsub = PubSub()
    first, second, other = Presence(pubsub), Presence(pubsub), Presence(pubsub, name="other")
    first.start()
    with pytest.raises(PresenceError, match=r"another tracker named 'presence' already runs on this node's PubSub"):
        second.start()
    other.start()
    assert first.start() == first.pid  # starting again is harmless
    await first.stop()
    await other.stop()


async def test_stop_then_start_again_begins_with_an_empty_state(
    presence: Presence, spawn_tracked: Callable[[], Pid], observers: Callable[..., Observer]
) -> None:
    pid = spawn_tracked()
    presence.track(pid, TOPIC, "alice", {})
    await presence.stop()
    assert not presence.running and presence.list(TOPIC) == {}

    observer = observers(presence.pubsub)
    presence.start()
    process.send(pid, "stop")  # its exit hook from before the stop finds nothing to do
    await wait_exit(pid)
    await observer.expect_silence()
    assert presence.track(spawn_tracked(), TOPIC, "bob", {}) == "r2"
    assert refs(presence.list(TOPIC)) == {"bob": ["r2"]}


async def test_a_tracker_that_dies_takes_its_tracked_processes_with_it(
    presence: Presence, spawn_tracked: Callable[[], Pid], observers: Callable[..., Observer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    observer = observers(presence.pubsub)
    alice, bob = spawn_tracked(), spawn_tracked()
    presence.track(alice, TOPIC, "alice", {})
    presence.track(bob, TOPIC, "bob", {})
    await observer.next_diff(), await observer.next_diff()
    watcher: asyncio.Queue[Any] = asyncio.Queue()

    async def watch() -> None:
        process.monitor(alice)
        watcher.put_nowait(await process.receive())

    process.spawn(watch, role="test watcher")
    tracker = presence.pid
    assert tracker is not None
    process.exit(tracker, "killed")

    # Everyone leaves, for this node's subscribers, and the tracked processes end, as a link would.
    assert await observer.next_diff() == diff(leaves={"alice": [{"phx_ref": "r1"}], "bob": [{"phx_ref": "r2"}]})
    down = await asyncio.wait_for(watcher.get(), seconds(2))
    assert isinstance(down.reason, PresenceError) and str(down.reason) == "presence tracker 'presence' exited"
    assert not process.is_alive(bob) and not presence.running
    assert "presence 'presence': the tracker process exited; ending the 2 processes it tracked" in caplog.messages


# Several nodes in one Python process


class Wire:
    """What Redis does for the adapter, in-process: JSON, in order, to every other node or one.

    Tests can lose messages on purpose: ``lose(predicate)`` drops the next message
    for which ``predicate(node, message)`` is true; ``cut(node)`` drops everything to
    and from a node until ``heal()``.
    """

    def __init__(self) -> None:
        self.adapters: dict[str, WireAdapter] = {}
        self._lose: list[Callable[[str, Any], bool]] = []
        self._cut: set[str] = set()
        self.lost: list[Any] = []

    def lose(self, predicate: Callable[[str, Any], bool]) -> None:
        self._lose.append(predicate)

    def cut(self, node: str) -> None:
        self._cut.add(node)

    def heal(self) -> None:
        self._cut.clear()

    def carry(self, sender: str, to: str, topic: str, message: Any, dispatcher: Dispatcher) -> None:
        data = json.dumps(message)  # what cannot cross as JSON fails here, as with Redis
        for predicate in self._lose:
            if predicate(sender, message):
                self._lose.remove(predicate)
                self.lost.append(message)
                return
        if sender in self._cut or to in self._cut:
            self.lost.append(message)
            return
        target = self.adapters.get(to)
        if target is not None:
            asyncio.get_running_loop().call_soon(target.pubsub.dispatch_local, topic, json.loads(data), None, dispatcher)


class WireAdapter:
    def __init__(self, wire: Wire, name: str) -> None:
        self.wire, self.name, self.pubsub = wire, name, None

    def node_name(self) -> str:
        return self.name

    async def start(self, pubsub: Any) -> None:
        self.pubsub = pubsub
        self.wire.adapters[self.name] = self

    async def stop(self) -> None:
        self.wire.adapters.pop(self.name, None)

    def broadcast(self, topic: str, message: Any, dispatcher: Dispatcher, from_pid: Pid | None) -> None:
        if self.wire.adapters.get(self.name) is not self:
            return  # stopped: nothing leaves this node any more
        for name in list(self.wire.adapters):
            if name != self.name:
                self.wire.carry(self.name, name, topic, message, dispatcher)

    def direct_broadcast(self, node_name: str, topic: str, message: Any, dispatcher: Dispatcher) -> None:
        if self.wire.adapters.get(self.name) is not self:
            return
        self.wire.carry(self.name, node_name, topic, message, dispatcher)


@dataclass
class Node:
    name: str
    pubsub: PubSub
    presence: Presence
    observer: Observer


@pytest.fixture
async def cluster(
    leak_check: Any, observers: Callable[..., Observer]
) -> AsyncIterator[tuple[Wire, Callable[..., Awaitable[Node]]]]:
    """A :class:`Wire` and a function that starts nodes on it, each with an observer of room:lobby."""
    wire = Wire()
    nodes: list[Node] = []

    async def start(name: str, *, track: bool = True) -> Node:
        pubsub = PubSub(WireAdapter(wire, name))
        await pubsub.start()
        presence = Presence(pubsub, make_ref=numbered(name), **FAST)
        node = Node(name, pubsub, presence, observers(pubsub))
        if track:
            presence.start()
        nodes.append(node)
        return node

    yield wire, start
    for node in nodes:
        await node.presence.stop()
        await node.pubsub.stop()


async def test_a_change_on_one_node_reaches_the_others_once(
    cluster: tuple[Wire, Callable[..., Awaitable[Node]]], spawn_tracked: Callable[[], Pid]
) -> None:
    _, start = cluster
    a, b = await start("a"), await start("b")
    pid = spawn_tracked()

    a.presence.track(pid, TOPIC, "alice", {"n": 1})
    joined = diff(joins={"alice": [{"n": 1, "phx_ref": "a1"}]})
    assert await a.observer.next_diff() == joined
    assert await b.observer.next_diff() == joined
    a.presence.update(pid, TOPIC, "alice", {"n": 2})
    updated = diff(joins={"alice": [{"n": 2, "phx_ref": "a2", "phx_ref_prev": "a1"}]},
                   leaves={"alice": [{"n": 1, "phx_ref": "a1"}]})
    assert await b.observer.next_diff() == updated
    process.send(pid, "stop")
    assert await b.observer.next_diff() == diff(leaves={"alice": [{"n": 2, "phx_ref": "a2", "phx_ref_prev": "a1"}]})

    assert a.presence.list(TOPIC) == b.presence.list(TOPIC) == {}
    assert b.presence.snapshot()["replicas"] == {"a": {"vsn": 3, "entries": []}}
    await b.observer.expect_silence(0.3)  # three heartbeats later: nothing twice


async def test_a_new_node_learns_what_the_others_track_and_they_learn_its(
    cluster: tuple[Wire, Callable[..., Awaitable[Node]]], spawn_tracked: Callable[[], Pid]
) -> None:
    _, start = cluster
    a = await start("a")
    a.presence.track(spawn_tracked(), TOPIC, "alice", {})
    await a.observer.next_diff()
    b = await start("b", track=False)
    b.presence.start()
    b.presence.track(spawn_tracked(), TOPIC, "bob", {})

    # b's tracker introduces itself; a answers with its state at once, unasked.
    assert await b.observer.next_diff() == diff(joins={"bob": [{"phx_ref": "b1"}]})
    assert await b.observer.next_diff() == diff(joins={"alice": [{"phx_ref": "a1"}]})
    assert await a.observer.next_diff() == diff(joins={"bob": [{"phx_ref": "b1"}]})
    assert refs(a.presence.list(TOPIC)) == {"alice": ["a1"], "bob": ["b1"]}
    assert refs(b.presence.list(TOPIC)) == {"bob": ["b1"], "alice": ["a1"]}


async def test_a_lost_delta_is_noticed_at_the_next_heartbeat_and_repaired(
    cluster: tuple[Wire, Callable[..., Awaitable[Node]]], spawn_tracked: Callable[[], Pid],
    presence_log: LogWatch,
) -> None:
    wire, start = cluster
    a, b = await start("a"), await start("b")
    await presence_log.wait_for("node 'a' is up", "node 'b' is up")  # they have met
    wire.lose(lambda sender, message: sender == "a" and message["event"] == "delta")

    a.presence.track(spawn_tracked(), TOPIC, "alice", {})

    assert [m["event"] for m in wire.lost] == ["delta"]
    assert await b.observer.next_diff() == diff(joins={"alice": [{"phx_ref": "a1"}]})
    assert refs(b.presence.list(TOPIC)) == {"alice": ["a1"]}
    assert b.presence.snapshot()["replicas"]["a"]["vsn"] == 1
    assert "presence 'presence': missed changes from node 'a' (have version 0, its heartbeat says version 1); " \
           "asking for its state" in presence_log.messages


async def test_a_delta_that_skips_a_version_is_not_applied_but_repaired(
    cluster: tuple[Wire, Callable[..., Awaitable[Node]]], spawn_tracked: Callable[[], Pid],
    presence_log: LogWatch,
) -> None:
    wire, start = cluster
    a, b = await start("a"), await start("b")
    await presence_log.wait_for("node 'a' is up", "node 'b' is up")
    wire.lose(lambda sender, message: sender == "a" and message["event"] == "delta")
    alice, bob = spawn_tracked(), spawn_tracked()
    a.presence.track(alice, TOPIC, "alice", {})  # lost
    a.presence.track(bob, TOPIC, "bob", {})  # arrives, from version 1: b has 0

    assert await b.observer.next_diff() == diff(joins={"alice": [{"phx_ref": "a1"}], "bob": [{"phx_ref": "a2"}]})
    assert "presence 'presence': missed changes from node 'a' (have version 0, a delta from version 1 arrived); " \
           "asking for its state" in presence_log.messages


async def test_goodbye_removes_a_nodes_presences_everywhere(
    cluster: tuple[Wire, Callable[..., Awaitable[Node]]], spawn_tracked: Callable[[], Pid],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    _, start = cluster
    a, b = await start("a"), await start("b")
    a.presence.track(spawn_tracked(), TOPIC, "alice", {})
    await b.observer.next_diff()

    await a.presence.stop()

    assert await b.observer.next_diff() == diff(leaves={"alice": [{"phx_ref": "a1"}]})
    assert "presence 'presence': node 'a' left; removed its 1 presence" in caplog.messages
    assert b.presence.snapshot()["replicas"] == {}


async def test_a_silent_node_is_removed_after_down_period_and_returns_when_heard_again(
    cluster: tuple[Wire, Callable[..., Awaitable[Node]]], spawn_tracked: Callable[[], Pid],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    wire, start = cluster
    a, b = await start("a"), await start("b")
    a.presence.track(spawn_tracked(), TOPIC, "alice", {})
    b.presence.track(spawn_tracked(), TOPIC, "bob", {})
    for node in (a, b):
        await node.observer.next_diff(), await node.observer.next_diff()

    wire.cut("a")

    # Between down_period and down_period + broadcast_period after the last word from it.
    bound = FAST["down_period"] + FAST["broadcast_period"] + 1.0
    assert await b.observer.next_diff(timeout=bound) == diff(leaves={"alice": [{"phx_ref": "a1"}]})
    assert await a.observer.next_diff(timeout=bound) == diff(leaves={"bob": [{"phx_ref": "b1"}]})
    down = [r for r in caplog.records if "is down" in r.getMessage()]
    assert sorted(r.getMessage() for r in down) == [
        "presence 'presence': node 'a' is down: nothing heard from it for more than 0.5 s; removed its 1 presence",
        "presence 'presence': node 'b' is down: nothing heard from it for more than 0.5 s; removed its 1 presence",
    ]
    assert all(r.levelname == "WARNING" and r.silence > FAST["down_period"] for r in down)  # type: ignore[attr-defined]
    assert refs(a.presence.list(TOPIC)) == {"alice": ["a1"]} and refs(b.presence.list(TOPIC)) == {"bob": ["b1"]}

    wire.heal()

    assert await b.observer.next_diff() == diff(joins={"alice": [{"phx_ref": "a1"}]})
    assert await a.observer.next_diff() == diff(joins={"bob": [{"phx_ref": "b1"}]})
    assert refs(a.presence.list(TOPIC)) == refs(b.presence.list(TOPIC)) | {} == {"alice": ["a1"], "bob": ["b1"]}


async def test_a_node_restarted_under_the_same_name_replaces_its_previous_run_at_once(
    cluster: tuple[Wire, Callable[..., Awaitable[Node]]], spawn_tracked: Callable[[], Pid],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    wire, start = cluster
    a, b = await start("a"), await start("b")
    a.presence.track(spawn_tracked(), TOPIC, "alice", {})
    await b.observer.next_diff()
    # The first run of "a" dies without a word: it leaves the wire, then its tracker goes.
    await a.pubsub.stop()
    await a.presence.stop()

    again = await start("a")
    again.presence.track(spawn_tracked(), TOPIC, "alice", {})

    assert await b.observer.next_diff() == diff(leaves={"alice": [{"phx_ref": "a1"}]})
    assert await b.observer.next_diff() == diff(joins={"alice": [{"phx_ref": "a1"}]})  # the new run's first ref
    assert "presence 'presence': node 'a' restarted; removed the 1 presences of its previous run" in caplog.messages
    assert not any("is down" in message for message in caplog.messages)


async def test_malformed_stale_and_duplicate_messages_change_nothing(
    cluster: tuple[Wire, Callable[..., Awaitable[Node]]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    wire, start = cluster
    b = await start("b")
    topic = b.presence.topic

    def arrive(message: Any) -> None:
        b.pubsub.dispatch_local(topic, message, None, default_dispatch)

    def delta(first: int, last: int, joins: list[Any], leaves: list[str]) -> dict[str, Any]:
        return {"event": "delta", "node": "x", "incarnation": "i1", "from": first, "vsn": last,
                "joins": joins, "leaves": leaves}

    for bad in (["not", "an", "object"], {"event": "hello", "node": "x", "incarnation": "i"},
                {"event": "delta", "node": "x", "incarnation": "i1", "from": 1, "vsn": 1, "joins": [], "leaves": []},
                {"event": "state", "node": "x", "incarnation": "i1", "vsn": 1, "joins": [["t", "k", {}]]},
                {"event": "heartbeat", "node": 7, "incarnation": "i1", "vsn": 1},
                {"event": "heartbeat", "node": "x", "incarnation": "i1", "vsn": -1},
                {"event": "heartbeat", "node": "x"}):
        arrive(bad)
    zed = [TOPIC, "zed", {"phx_ref": "x1"}]
    arrive(delta(0, 1, [zed], []))
    arrive(delta(0, 1, [zed], []))  # the same again: already applied
    arrive(delta(5, 6, [], ["x1"]))  # a gap: not applied; x is asked for its state

    assert await b.observer.next_diff() == diff(joins={"zed": [{"phx_ref": "x1"}]})
    await b.observer.expect_silence()
    assert refs(b.presence.list(TOPIC)) == {"zed": ["x1"]}
    malformed = [r for r in caplog.records if "ignored a malformed message" in r.getMessage()]
    assert [str(r.args[2]) for r in malformed] == [  # type: ignore[index]
        "not a JSON object but a list",
        "unknown event 'hello'",
        "a delta must go forward, got from 1 to 1",
        "an entry must be [topic, key, meta with a phx_ref], got ['t', 'k', {}]",
        "'node' and 'incarnation' must be strings",
        "'vsn' must be a version number, got -1",
        "no 'incarnation' field",
    ]
    assert malformed[0].getMessage().startswith("presence 'presence': ignored a malformed message on 'phx_presence:presence': ")
    assert "presence 'presence': node 'x' is up" in caplog.messages
    assert "presence 'presence': missed changes from node 'x' (have version 1, a delta from version 5 arrived); " \
           "asking for its state" in caplog.messages


async def test_one_node_alone_sends_nothing(
    presence: Presence, spawn_tracked: Callable[[], Pid], observers: Callable[..., Observer]
) -> None:
    """A LocalAdapter has no other node: no deltas, no heartbeats reach the tracker topic."""
    spy = observers(presence.pubsub, presence.topic)
    presence.track(spawn_tracked(), TOPIC, "alice", {})
    try:
        message = await asyncio.wait_for(spy.queue.get(), 0.2)
    except TimeoutError:
        message = None
    assert message is None


# The demo app on a real server


@pytest.fixture
async def demo(start_server: Callable[..., Awaitable[Server]]) -> Server:
    """The demo app with numbered phx_refs."""
    return await start_server(create_app(presence_options={"make_ref": numbered("r")}))


async def connect(server: Server, query: str) -> RawClient:
    return RawClient(await websockets.connect(f"{server.ws_url}/socket/websocket?{query}"))


async def join_with_presence(client: RawClient, user: str | None) -> list[Any]:
    await client.send(["1", "1", TOPIC, "phx_join", {"user": user, "presence": True}])
    return await client.recv_n(5)  # type: ignore[no-any-return]


async def test_a_presence_enabled_join_gets_its_diff_then_the_state(demo: Server) -> None:
    client = await connect(demo, "vsn=2.0.0&user_id=alice")
    assert not demo.app.presence.running  # nobody asked yet: no tracker

    frames = await join_with_presence(client, "alice")

    online_at = frames[3][4]["joins"]["alice"]["metas"][0]["online_at"]
    assert isinstance(online_at, int)
    meta = {"online_at": online_at, "phx_ref": "r1"}
    assert frames == [
        ["1", "1", TOPIC, "phx_reply", {"status": "ok", "response": {}}],
        [None, None, TOPIC, "user_entered", {"user": "alice"}],
        ["1", None, TOPIC, "joined", {"status": "connected", "user_id": "alice"}],
        [None, None, TOPIC, "presence_diff", {"joins": {"alice": {"metas": [meta]}}, "leaves": {}}],
        ["1", None, TOPIC, "presence_state", {"alice": {"metas": [meta]}}],
    ]
    await client.expect_silence()
    assert demo.app.presence.running
    await client.close()


async def test_an_anonymous_socket_is_tracked_under_a_generated_key(demo: Server) -> None:
    client = await connect(demo, "vsn=2.0.0")
    frames = await join_with_presence(client, None)
    (key,) = frames[4][4]
    assert re.fullmatch(r"anonymous-[0-9a-f]{8}", key)
    assert refs(demo.app.presence.list(TOPIC)) == {key: ["r1"]}
    await client.close()


async def test_clients_without_presence_get_no_state_and_a_room_without_it_no_presence_frame(demo: Server) -> None:
    plain = await connect(demo, "vsn=2.0.0&user_id=plain")
    await plain.send(["1", "1", TOPIC, "phx_join", {"user": "plain"}])
    assert [frame[3] for frame in await plain.recv_n(3)] == ["phx_reply", "user_entered", "joined"]
    await plain.expect_silence()
    assert not demo.app.presence.running

    # Someone with presence joins: the diff is a broadcast on the room, so it reaches
    # the plain client too (as in Phoenix), which gets no presence_state of its own.
    alice = await connect(demo, "vsn=2.0.0&user_id=alice")
    state = (await join_with_presence(alice, "alice"))[4][4]
    assert [frame[3] for frame in await plain.recv_n(2)] == ["user_entered", "presence_diff"]
    await alice.close()
    assert await plain.recv() == [None, None, TOPIC, "presence_diff", {"joins": {}, "leaves": state}]
    await plain.close()


# phoenix.js's Presence in Node


needs_node = pytest.mark.skipif(not node_available(), reason="needs node and node_modules/phoenix (npm ci)")
SCRIPT = ROOT / "tests" / "js" / "presence.js"


class PresenceScript:
    """``tests/js/presence.js`` running one scenario: read its checkpoints, let it go on, see it finish."""

    def __init__(self, child: asyncio.subprocess.Process) -> None:
        self.child = child

    @classmethod
    async def start(cls, scenario: str, endpoints: dict[str, Server]) -> PresenceScript:
        urls = {name: f"{server.ws_url}/socket" for name, server in endpoints.items()}
        child = await asyncio.create_subprocess_exec(
            shutil.which("node") or "node", str(SCRIPT), scenario, json.dumps(urls), cwd=ROOT,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        return cls(child)

    async def _line(self, timeout: float = 15.0) -> dict[str, Any]:
        assert self.child.stdout is not None
        try:
            # The servers run on this event loop: waiting here keeps them serving.
            line = await asyncio.wait_for(self.child.stdout.readline(), seconds(timeout))
        except TimeoutError:
            self.child.kill()
            raise
        if not line:
            assert self.child.stderr is not None
            stderr = await self.child.stderr.read()
            raise AssertionError(f"presence.js ended early ({await self.child.wait()}): {stderr.decode()}")
        data: dict[str, Any] = json.loads(line)
        assert "watchdog" not in data, f"presence.js waited in vain for {data}"
        return data

    async def checkpoint(self, name: str) -> dict[str, Any]:
        """The next checkpoint, which must be ``name``: ``{"lists": {client: state}, "syncs": {...}}``."""
        data = await self._line()
        assert data["checkpoint"] == name, data
        return data

    async def go_on(self) -> None:
        assert self.child.stdin is not None
        self.child.stdin.write(b"go on\n")
        await self.child.stdin.drain()

    async def finish(self) -> None:
        assert await self._line() == {"done": True}
        assert await asyncio.wait_for(self.child.wait(), seconds(5)) == 0


def by_ref(presences: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Metas of each key in phx_ref order: across nodes, the order metas arrive in is not defined."""
    return {key: sorted(value["metas"], key=lambda meta: meta["phx_ref"]) for key, value in presences.items()}


@pytest.mark.node
@needs_node
async def test_phoenix_js_presence_lists_exactly_what_the_server_does(
    start_server: Callable[..., Awaitable[Server]], caplog: pytest.LogCaptureFixture
) -> None:
    server = await start_server(create_app(presence_options={"make_ref": numbered("r")}))
    script = await PresenceScript.start("lifecycle", {"a": server})

    async def step(name: str, expected: dict[str, list[str]], syncs: dict[str, list[dict[str, list[str]]]]) -> None:
        seen = await script.checkpoint(name)
        listed = server.app.presence.list(TOPIC)
        assert refs(listed) == expected
        # Each client's phoenix.js Presence holds exactly the server's list, metas in the same order.
        for client, state in seen["lists"].items():
            assert state == listed, (name, client)
        assert seen["syncs"] == syncs, name
        await script.go_on()

    alice = {"alice": ["r1"]}
    both = {"alice": ["r1"], "bob": ["r2"]}
    await step("alice joined", alice, {"alice": [alice]})
    await step("bob joined", both, {"alice": [both], "bob": [both]})
    tabs = {"alice": ["r1", "r3"], "bob": ["r2"]}
    await step("alice opened a second tab", tabs, {"alice": [tabs], "bob": [tabs], "alice2": [tabs]})
    await step("alice closed the second tab", both, {"alice": [both], "bob": [both]})
    # Alice sees bob leave when his channel crashes, then come back under a new ref when
    # phoenix.js rejoins; bob's own Presence goes straight to the new state.
    back = {"alice": ["r1"], "bob": ["r4"]}
    await step("bob's channel crashed and phoenix.js rejoined", back, {"alice": [alice, back], "bob": [back]})
    await step("bob's connection died", alice, {"alice": [alice]})
    await script.finish()
    assert "RuntimeError('boom')" in caplog.text


# Two nodes over a real redis-server


needs_redis = pytest.mark.skipif(not os.path.exists(REDIS_SERVER), reason="needs Debian's redis-server")


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    server = RedisServer(tmp_path)
    await server.start()
    yield server
    if server.process is not None:
        await server.wait_node_clients([])  # every node the test started has let go
    await server.stop()


@pytest.fixture
async def start_node(
    redis_server: RedisServer, start_server: Callable[..., Awaitable[Server]]
) -> Callable[[str], Awaitable[Server]]:
    """A demo server as node ``name`` on the test's Redis, with fast heartbeats and refs name1, name2..."""

    async def start(name: str) -> Server:
        adapter = RedisAdapter.from_url(redis_server.url, node_name=name, backoff_initial=0.02, backoff_max=0.2)
        options = {**FAST, "make_ref": numbered(name)}
        return await start_server(create_app(pubsub=PubSub(adapter), presence_options=options))

    return start


async def next_presence_diff(client: RawClient, timeout: float = 2.0) -> dict[str, Any]:
    """The payload of the next presence_diff the client gets, skipping other events (user_entered)."""
    while True:
        frame = await client.recv(timeout)
        if frame[3] == "presence_diff":
            return frame[4]  # type: ignore[no-any-return]


def metas(server: Server, key: str) -> list[dict[str, Any]]:
    return server.app.presence.list(TOPIC)[key]["metas"]  # type: ignore[no-any-return]


@pytest.mark.redis
@pytest.mark.node
@needs_redis
@needs_node
async def test_two_nodes_over_redis_converge_and_phoenix_js_agrees(start_node: Callable[[str], Awaitable[Server]]) -> None:
    a, b = await start_node("a"), await start_node("b")
    script = await PresenceScript.start("two_nodes", {"a": a, "b": b})

    async def step(name: str, expected: dict[str, list[str]]) -> None:
        seen = await script.checkpoint(name)
        listed = by_ref(a.app.presence.list(TOPIC))
        assert by_ref(b.app.presence.list(TOPIC)) == listed
        assert {key: [meta["phx_ref"] for meta in value] for key, value in listed.items()} == expected
        for client, state in seen["lists"].items():
            assert by_ref(state) == listed, (name, client)
        await script.go_on()

    # bob's node started its tracker at his join, after alice's: a answered its hello with alice.
    await step("alice on a, bob on b", {"alice": ["a1"], "bob": ["b1"]})
    await step("alice opened a tab on b", {"alice": ["a1", "b2"], "bob": ["b1"]})
    await step("bob left", {"alice": ["a1", "b2"]})
    await script.finish()


@pytest.mark.redis
@needs_redis
async def test_a_node_cut_off_is_removed_within_down_period_plus_broadcast_period(
    start_node: Callable[[str], Awaitable[Server]], caplog: pytest.LogCaptureFixture
) -> None:
    a, b = await start_node("a"), await start_node("b")
    alice = await connect(a, "vsn=2.0.0&user_id=alice")
    await join_with_presence(alice, "alice")
    bob = await connect(b, "vsn=2.0.0&user_id=bob")
    await join_with_presence(bob, "bob")
    # Converged: each client has heard of the other, each node lists both.
    assert await next_presence_diff(alice) == {"joins": {"bob": {"metas": metas(b, "bob")}}, "leaves": {}}
    assert await next_presence_diff(bob) == {"joins": {"alice": {"metas": metas(a, "alice")}}, "leaves": {}}
    assert by_ref(a.app.presence.list(TOPIC)) == by_ref(b.app.presence.list(TOPIC))
    bob_metas = metas(a, "bob")

    # Node b loses Redis for good, without a word: from now on nothing it sends arrives.
    await b.app.pubsub.adapter.stop()

    # Removed after down_period of silence (exactly: the tracker measured it), and no later
    # than down_period + broadcast_period (here with a second's room for a loaded machine).
    bound = FAST["down_period"] + FAST["broadcast_period"]
    assert await next_presence_diff(alice, timeout=bound + 1.0) == {"joins": {}, "leaves": {"bob": {"metas": bob_metas}}}
    (record,) = [r for r in caplog.records if r.getMessage().startswith("presence 'presence': node 'b' is down")]
    assert record.getMessage() == ("presence 'presence': node 'b' is down: nothing heard from it for more than "
                                   "0.5 s; removed its 1 presence")
    assert record.silence > FAST["down_period"]  # type: ignore[attr-defined]
    assert refs(a.app.presence.list(TOPIC)) == {"alice": ["a1"]}
    # Node b, hearing nothing either, has dropped alice for its own clients.
    assert await next_presence_diff(bob, timeout=bound + 1.0) == {
        "joins": {}, "leaves": {"alice": {"metas": metas(a, "alice")}}
    }
    assert refs(b.app.presence.list(TOPIC)) == {"bob": ["b1"]}
    await alice.close()
    await bob.close()


@pytest.mark.redis
@needs_redis
async def test_after_a_redis_outage_both_nodes_drop_each_other_then_converge_again(
    start_node: Callable[[str], Awaitable[Server]], redis_server: RedisServer
) -> None:
    a, b = await start_node("a"), await start_node("b")
    alice = await connect(a, "vsn=2.0.0&user_id=alice")
    await join_with_presence(alice, "alice")
    bob = await connect(b, "vsn=2.0.0&user_id=bob")
    await join_with_presence(bob, "bob")
    assert (await next_presence_diff(alice))["joins"].keys() == {"bob"}
    assert (await next_presence_diff(bob))["joins"].keys() == {"alice"}
    alice_metas, bob_metas = metas(a, "alice"), metas(a, "bob")

    await redis_server.stop()
    bound = FAST["down_period"] + FAST["broadcast_period"] + 1.0
    assert await next_presence_diff(alice, timeout=bound) == {"joins": {}, "leaves": {"bob": {"metas": bob_metas}}}
    assert await next_presence_diff(bob, timeout=bound) == {"joins": {}, "leaves": {"alice": {"metas": alice_metas}}}

    await redis_server.start()
    # Each adapter reconnects; the first heartbeat each way brings the other's state back.
    assert await next_presence_diff(alice, timeout=5) == {"joins": {"bob": {"metas": bob_metas}}, "leaves": {}}
    assert await next_presence_diff(bob, timeout=5) == {"joins": {"alice": {"metas": alice_metas}}, "leaves": {}}
    assert by_ref(a.app.presence.list(TOPIC)) == by_ref(b.app.presence.list(TOPIC)) == {
        "alice": alice_metas, "bob": bob_metas
    }
    await alice.close()
    await bob.close()
