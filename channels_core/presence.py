"""Presence: who is online in each topic, kept right across tabs, crashes and nodes.

Mirrors ``Phoenix.Presence`` and, underneath it, ``Phoenix.Tracker`` (from the
``phoenix_pubsub`` package). A channel *tracks* its own process under a key (a user
id, say) with a map of metadata::

    presence.track(socket, "alice", {"online_at": 1712345678})
    push(socket, "presence_state", presence.list(socket))

and :meth:`Presence.list` answers who is in the topic, grouped by key::

    {"alice": {"metas": [{"online_at": 1712345678, "phx_ref": "Fz3k0b5E2rU="},
                         {"online_at": 1712345690, "phx_ref": "m1TQ9Xb8T1g="}]},
     "bob":   {"metas": [{"online_at": 1712345701, "phx_ref": "o2S8bq4RHeI="}]}}

One key, one person; one meta per process tracking it, so two tabs are one key
with two metas, and each meta carries a ``phx_ref`` no other meta has. That shape
is the one phoenix.js's ``Presence`` consumes: ``Presence.syncState`` takes it
whole (the ``presence_state`` event a channel pushes after joining), and
``Presence.syncDiff`` takes each change as ``{"joins": {...}, "leaves": {...}}``
in the same shape (the ``presence_diff`` event, broadcast to the topic by
:meth:`Presence.handle_diff`). :meth:`Presence.update` replaces a meta with one
that has a new ``phx_ref`` and names the old one in ``phx_ref_prev``.

An entry lives exactly as long as its process. Nobody has to untrack a tab that
was closed or a channel that crashed: the tracker hooks the process's exit, as
PubSub does for subscriptions (Phoenix's tracker links to the process instead),
and the entry leaves with a ``presence_diff`` like any other.

Across nodes
------------
Each node runs one tracker process per :class:`Presence`, subscribed to a private
topic, ``"phx_presence:<name>"``, through which trackers talk over the PubSub
adapter (Redis, for instance; every message is plain JSON). The design is simpler
than Phoenix's, and its convergence is stated here and tested:

* **Every entry has one owner**: the node where the tracked process runs. Only the
  owner adds, changes or removes it, and it numbers its changes: its *version*
  goes up by one per change, and a fresh tracker starts a new *incarnation* at
  version 0.
* **Every other node keeps a copy** of each owner's entries, stamped with the
  owner's version it reflects. A *delta* (one change: joins and leaves) is sent
  to every node at once; a node applies it only if it follows the version it has,
  exactly. Otherwise, or when a *heartbeat* (sent every ``broadcast_period``,
  with the owner's version) shows it is behind, it asks the owner for its whole
  *state*, and replaces its copy with it if that is newer.
* So a copy only ever moves forward, to a state its owner really had. Merging is
  "keep the newest version of each owner's set": commutative, associative and
  idempotent, which makes the whole a state-based CRDT (a map of
  version-stamped registers, one per node); deltas only save sending whole sets.
* **Convergence.** While messages get through, a change reaches every node after
  one hop. A lost message (the Redis adapter delivers at most once) is noticed at
  the owner's next delta or heartbeat, and repaired by a state transfer: every
  node agrees within ``broadcast_period`` plus two hops of the last change. A node
  that stops says goodbye and its entries go at once. A node that dies, or is cut
  off, is declared down by the others between ``down_period`` and
  ``down_period + broadcast_period`` after they last heard from it, and its
  entries are removed; if it comes back, its first heartbeat gets them back. A
  node restarted under the same name is a new incarnation: the old one's entries
  go as soon as the new one is heard.
* Every node computes the diffs of every change itself and broadcasts them to its
  own subscribers of the topic (``local_broadcast``), so clients on every node see
  every join and leave, once.

Defaults: ``broadcast_period=1.5`` s, ``down_period=5.0`` s. A single node
(:class:`~channels_core.pubsub.LocalAdapter`) has nobody to tell: no deltas, no
heartbeats.

Phoenix.Tracker, for comparison, keeps a delta-CRDT with a causal context per
replica, batches deltas into each ``broadcast_period`` (1.5 s), sends a bare
heartbeat only after ``max_silent_periods`` (15 s), marks a replica down after
``down_period`` (30 s) and forgets it for good after ``permdown_period`` (20
minutes), restoring its entries if it returns in between. It also shards each
tracker by topic across processes; one asyncio loop has no cores to spread over,
so there is one tracker process per node.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, overload

from . import process, tracing
from .exceptions import ChannelsError
from .message import Broadcast
from .process import Pid
from .pubsub import LocalAdapter, PubSub
from .pubsub.fastlane import fastlane_dispatch
from .socket import SocketStruct

__all__ = ["Presence", "PresenceError"]

logger = logging.getLogger("channels_core.presence")

#: The default seconds between heartbeats, and of silence before a node is down.
BROADCAST_PERIOD = 1.5
DOWN_PERIOD = 5.0

_STOP = object()  # asks the tracker process to say goodbye and end


class PresenceError(ChannelsError):
    """A presence call that cannot be done: already tracked, not tracked, tracker not running."""


def random_ref() -> str:
    """A ``phx_ref`` as Phoenix makes them: 8 random bytes, base64."""
    return base64.b64encode(secrets.token_bytes(8)).decode("ascii")


@dataclass(slots=True)
class _Entry:
    """One tracked process under one key in one topic; ``pid`` is known on its own node only."""

    topic: str
    key: str
    meta: dict[str, Any]  # always holds "phx_ref"
    pid: Pid | None = None

    @property
    def ref(self) -> str:
        return self.meta["phx_ref"]  # type: ignore[no-any-return]


@dataclass(slots=True)
class _Replica:
    """What this node knows of another node's entries."""

    incarnation: str
    vsn: int = 0
    entries: dict[str, _Entry] = field(default_factory=dict)  # phx_ref -> entry, in arrival order
    last_seen: float = 0.0
    asked_at: float | None = None  # when we last asked it for its state


class _Remote(NamedTuple):
    """A tracker message from another node, checked."""

    kind: str
    node: str
    incarnation: str
    vsn: int
    from_vsn: int
    joins: list[_Entry]
    leaves: list[str]


_KINDS = ("heartbeat", "delta", "state", "state_request", "bye")


class Presence:
    """Track processes under keys per topic, list them, and tell every node and client.

    Create one per node, beside the PubSub, and :meth:`start` it; every node that
    shares the PubSub uses the same ``name``.

    Args:
        pubsub: The node's PubSub; its adapter carries the trackers' messages.
        name: Names the tracker across nodes (its topic is ``"phx_presence:<name>"``).
        broadcast_period: Seconds between heartbeats (1.5).
        down_period: Seconds without a word from a node before its entries are
            removed (5.0); more than ``broadcast_period``.
        make_ref: Makes each ``phx_ref``; random by default, as Phoenix's are. Pass
            a numbering function for examples that must read the same every run.
    """

    def __init__(
        self,
        pubsub: PubSub,
        *,
        name: str = "presence",
        broadcast_period: float = BROADCAST_PERIOD,
        down_period: float = DOWN_PERIOD,
        make_ref: Callable[[], str] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        if not 0 < broadcast_period < down_period:
            raise ValueError(
                f"need 0 < broadcast_period < down_period, got {broadcast_period} and {down_period}"
            )
        self.pubsub = pubsub
        self.name = name
        self.topic = f"phx_presence:{name}"
        self.broadcast_period = broadcast_period
        self.down_period = down_period
        self._make_ref = make_ref if make_ref is not None else random_ref
        self._pid: Pid | None = None
        self._stopping = False
        self._replicating = False
        self._incarnation = ""
        self._vsn = 0
        # This node's own entries, and the same by process so that an exit finds its own.
        self._local: dict[str, _Entry] = {}
        self._by_pid: dict[Pid, dict[str, None]] = {}
        # Every entry of every node by topic, in the order they arrived here: what list() reads.
        self._topics: dict[str, dict[str, _Entry]] = {}
        self._replicas: dict[str, _Replica] = {}

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Presence {self.name!r} node={self.node_name!r} {state}>"

    @property
    def node_name(self) -> str:
        """This node's name, as its PubSub adapter knows it."""
        return self.pubsub.node_name()

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._pid is not None

    @property
    def pid(self) -> Pid | None:
        """The tracker process, while running."""
        return self._pid

    # Lifecycle

    def start(self) -> Pid:
        """Start the tracker process (if it is not running) and return its pid.

        It introduces itself to the other nodes at once; they answer with what they
        track, so a new node learns the cluster's presences within one round trip.
        """
        if self._pid is not None:
            return self._pid
        if self.pubsub.subscribers(self.topic):
            raise PresenceError(
                f"another tracker named {self.name!r} already runs on this node's PubSub; "
                "give each Presence of a node its own name"
            )
        self._stopping = False
        self._replicating = not isinstance(self.pubsub.adapter, LocalAdapter)
        self._incarnation = secrets.token_hex(6)
        self._vsn = 0
        pid = process.spawn(self._run, role=f"tracker {self.name}")
        self._pid = pid
        self.pubsub.subscribe(self.topic, pid=pid)
        process.on_exit(pid, self._tracker_exited)
        if self._replicating:
            self._send(self._message("heartbeat", vsn=0))
        return pid

    async def stop(self) -> None:
        """Say goodbye to the other nodes (they drop this node's entries) and end the tracker."""
        pid = self._pid
        if pid is None:
            return
        self._stopping = True
        process.send(pid, _STOP)
        runtime = process.lookup(pid)
        if runtime is not None and runtime.task is not None:
            await asyncio.wait({runtime.task})

    # Tracking

    @overload
    def track(self, socket: SocketStruct, key: str | int, meta: dict[str, Any]) -> str: ...

    @overload
    def track(self, pid: Pid, topic: str, key: str | int, meta: dict[str, Any]) -> str: ...

    def track(self, target: SocketStruct | Pid, *args: Any) -> str:
        """Track a channel (``socket``) or any process (``pid, topic``) under ``key`` with ``meta``.

        Returns the new meta's ``phx_ref``. Every subscriber of the topic on every
        node gets a ``presence_diff`` with the join.

        Raises:
            PresenceError: the tracker is not running, the process has exited, or it
                is tracked under this key in this topic already.
            TypeError: the key is not a str or int, or the meta is not a JSON object.
        """
        pid, topic, key, meta = _target("track", target, args, 2)
        self._require_running("track")
        key, meta = _check_key(key), _check_meta(meta)
        if not process.is_alive(pid):
            raise PresenceError(f"cannot track {pid!r} in {topic!r}: the process has exited")
        if self._find(pid, topic, key) is not None:
            raise PresenceError(f"{pid!r} is already tracked under {key!r} in {topic!r}")
        entry = _Entry(topic, key, {**meta, "phx_ref": self._make_ref()}, pid)
        tracing.hop("presence", "Presence.track", topic=topic, key=key)
        self._change(joins=[entry], leaves=[])
        return entry.ref

    @overload
    def untrack(self, socket: SocketStruct, key: str | int) -> None: ...

    @overload
    def untrack(self, pid: Pid, topic: str, key: str | int) -> None: ...

    @overload
    def untrack(self, pid: Pid) -> None: ...

    def untrack(self, target: SocketStruct | Pid, *args: Any) -> None:
        """Stop tracking a channel under ``key``, a process under ``topic, key``, or a process everywhere.

        Untracking what is not tracked does nothing, as in Phoenix.
        """
        self._require_running("untrack")
        if isinstance(target, Pid) and not args:
            leaves = [self._local[ref] for ref in self._by_pid.get(target, ())]
        else:
            pid, topic, key, _ = _target("untrack", target, args, 1)
            found = self._find(pid, topic, _check_key(key))
            leaves = [] if found is None else [found]
        if leaves:
            tracing.hop("presence", "Presence.untrack", topic=leaves[0].topic, key=leaves[0].key)
            self._change(joins=[], leaves=leaves)

    @overload
    def update(
        self, socket: SocketStruct, key: str | int, meta: dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]]
    ) -> str: ...

    @overload
    def update(
        self, pid: Pid, topic: str, key: str | int,
        meta: dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]],
    ) -> str: ...

    def update(self, target: SocketStruct | Pid, *args: Any) -> str:
        """Replace a tracked meta with ``meta``, or with ``meta(old_meta)`` if it is a function.

        The new meta gets a new ``phx_ref`` and ``phx_ref_prev`` names the old one;
        subscribers get one ``presence_diff`` that leaves the old and joins the new.
        Returns the new ``phx_ref``.

        Raises:
            PresenceError: the tracker is not running, or nothing is tracked there.
        """
        pid, topic, key, meta = _target("update", target, args, 2)
        self._require_running("update")
        key = _check_key(key)
        old = self._find(pid, topic, key)
        if old is None:
            raise PresenceError(f"{pid!r} is not tracked under {key!r} in {topic!r}: nothing to update")
        if callable(meta):
            meta = meta(dict(old.meta))
        meta = _check_meta(meta)
        meta.pop("phx_ref_prev", None)
        entry = _Entry(topic, key, {**meta, "phx_ref": self._make_ref(), "phx_ref_prev": old.ref}, pid)
        tracing.hop("presence", "Presence.update", topic=topic, key=key)
        self._change(joins=[entry], leaves=[old])
        return entry.ref

    # Reading

    def list(self, topic: str | SocketStruct) -> dict[str, dict[str, list[dict[str, Any]]]]:
        """Who is in ``topic`` (or the socket's topic) on every node: ``{key: {"metas": [meta, ...]}}``.

        Keys and metas come in the order they arrived on this node; the result is
        passed through :meth:`fetch`, and is a copy the caller may keep.
        """
        if isinstance(topic, SocketStruct):
            topic = topic.topic
        return self.fetch(topic, _group(self._topics.get(topic, {}).values()))

    def get_by_key(self, topic: str | SocketStruct, key: str | int) -> dict[str, list[dict[str, Any]]] | None:
        """``{"metas": [...]}`` for one key of ``topic``, or None if it is not there."""
        return self.list(topic).get(_check_key(key))

    def snapshot(self) -> dict[str, Any]:
        """This node's tracker state as plain data: its own entries and its copy of each other node's.

        ``{"node": "a", "vsn": 3, "entries": [...], "replicas": {"b": {"vsn": 2,
        "entries": [...]}}}``, each entry ``{"topic", "key", "meta"}`` (and, for this
        node's own, the tracked ``pid``). For diagrams and tests; replicas by name.
        """
        def dump(entry: _Entry) -> dict[str, Any]:
            data = {"topic": entry.topic, "key": entry.key, "meta": copy.deepcopy(entry.meta)}
            if entry.pid is not None:
                data["pid"] = entry.pid
            return data

        return {
            "node": self.node_name,
            "vsn": self._vsn,
            "entries": [dump(entry) for entry in self._local.values()],
            "replicas": {
                node: {"vsn": replica.vsn, "entries": [dump(entry) for entry in replica.entries.values()]}
                for node, replica in sorted(self._replicas.items())
            },
        }

    # Callbacks a subclass may override

    def fetch(self, topic: str, presences: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Add data to presences before they are listed or sent, as ``Phoenix.Presence.fetch/2`` does.

        Called with ``{key: {"metas": [...]}}`` for :meth:`list` and for both halves
        of every diff; returns the same shape, with any extra fields per key (a
        user's name from the database, say). The default returns it unchanged.
        """
        return presences

    def handle_diff(self, topic: str, diff: dict[str, Any]) -> None:
        """Tell this node's subscribers of ``topic`` about a change: the ``presence_diff`` broadcast.

        Runs on every node for every change, wherever it was made, so each client
        hears of it once, from its own node (a local broadcast, through the fastlane).
        """
        tracing.hop("presence", "Presence.handle_diff", topic=topic,
                    joins=len(diff["joins"]), leaves=len(diff["leaves"]))
        self.pubsub.local_broadcast(topic, Broadcast(topic, "presence_diff", diff), fastlane_dispatch)

    # Private: this node's changes

    def _require_running(self, function: str) -> None:
        if self._pid is None:
            raise PresenceError(
                f"cannot {function}: presence tracker {self.name!r} is not running (call presence.start() first)"
            )

    def _find(self, pid: Pid, topic: str, key: str) -> _Entry | None:
        for ref in self._by_pid.get(pid, ()):
            entry = self._local[ref]
            if entry.topic == topic and entry.key == key:
                return entry
        return None

    def _change(self, joins: list[_Entry], leaves: list[_Entry]) -> None:
        """Apply one change of this node's own entries: a new version, a delta to the others, a diff."""
        self._vsn += 1
        if self._replicating:
            self._send(self._message(
                "delta", vsn=self._vsn, **{"from": self._vsn - 1},
                joins=[[entry.topic, entry.key, entry.meta] for entry in joins],
                leaves=[entry.ref for entry in leaves],
            ))
        for entry in leaves:
            del self._local[entry.ref]
            refs = self._by_pid.get(entry.pid)  # type: ignore[arg-type]
            if refs is not None:
                refs.pop(entry.ref, None)
        for entry in joins:
            self._local[entry.ref] = entry
            refs = self._by_pid.get(entry.pid)  # type: ignore[arg-type]
            if refs is None:
                refs = self._by_pid[entry.pid] = {}  # type: ignore[index]
                process.on_exit(entry.pid, self._process_exited)  # type: ignore[arg-type]
            refs[entry.ref] = None
        self._report(joins, leaves)

    def _process_exited(self, pid: Pid) -> None:
        refs = self._by_pid.pop(pid, None)
        if not refs or self._pid is None:
            return
        self._change(joins=[], leaves=[self._local[ref] for ref in refs])

    def _tracker_exited(self, pid: Pid) -> None:
        if pid != self._pid:
            return
        crashed = not self._stopping
        tracked = list(self._by_pid)
        everything = [entry for entries in self._topics.values() for entry in entries.values()]
        self._pid = None
        self._local.clear()
        self._by_pid.clear()
        self._topics.clear()
        self._replicas.clear()
        if not crashed:
            return  # stopped: the node is going away, and the other nodes were told
        # Its state is gone: this node's clients hear everyone leave, and, as a link would
        # in Phoenix, the processes it tracked end too, so that their clients rejoin (and
        # are tracked again) rather than stay online unlisted.
        logger.error("presence %r: the tracker process exited; ending the %d processes it tracked",
                     self.name, len(tracked))
        self._report([], everything)
        for tracked_pid in tracked:
            process.exit(tracked_pid, PresenceError(f"presence tracker {self.name!r} exited"))

    def _report(self, joins: list[_Entry], leaves: list[_Entry]) -> None:
        """Put joins in and take leaves out of the topic index, then hand each topic's diff out."""
        diffs: dict[str, tuple[list[_Entry], list[_Entry]]] = {}
        for entry in leaves:
            entries = self._topics.get(entry.topic)
            if entries is not None and entries.pop(entry.ref, None) is not None and not entries:
                del self._topics[entry.topic]
            diffs.setdefault(entry.topic, ([], []))[1].append(entry)
        for entry in joins:
            self._topics.setdefault(entry.topic, {})[entry.ref] = entry
            diffs.setdefault(entry.topic, ([], []))[0].append(entry)
        for topic, (joined, left) in diffs.items():
            self.handle_diff(topic, {
                "joins": self.fetch(topic, _group(joined)),
                "leaves": self.fetch(topic, _group(left)),
            })

    # Private: talking to the other nodes

    def _message(self, kind: str, **fields: Any) -> dict[str, Any]:
        return {"event": kind, "node": self.node_name, "incarnation": self._incarnation, **fields}

    def _send(self, message: dict[str, Any], to: str | None = None) -> None:
        if to is None:
            self.pubsub.broadcast_from(self._pid, self.topic, message)  # type: ignore[arg-type]
        else:
            self.pubsub.direct_broadcast(to, self.topic, message)

    def _send_state(self, node: str) -> None:
        entries = [[entry.topic, entry.key, entry.meta] for entry in self._local.values()]
        self._send(self._message("state", vsn=self._vsn, joins=entries), to=node)

    async def _run(self) -> Any:
        period = self.broadcast_period
        next_tick = time.monotonic() + period if self._replicating else None
        while True:
            timeout = None if next_tick is None else max(0.0, next_tick - time.monotonic())
            try:
                message = await process.receive(timeout=timeout)
            except TimeoutError:
                message = None
            if message is _STOP:
                if self._replicating:
                    self._send(self._message("bye"))
                return "shutdown"
            if message is not None:
                self._receive(message)
            # Checked after every message too, so that a busy tracker still beats on time.
            if next_tick is not None and time.monotonic() >= next_tick:
                self._tick()
                next_tick = time.monotonic() + period

    def _tick(self) -> None:
        self._send(self._message("heartbeat", vsn=self._vsn))
        now = time.monotonic()
        for node, replica in list(self._replicas.items()):
            silence = now - replica.last_seen
            if silence > self.down_period:
                logger.warning(
                    "presence %r: node %r is down: nothing heard from it for more than %s s; "
                    "removed its %d presence%s",
                    self.name, node, self.down_period, len(replica.entries), "" if len(replica.entries) == 1 else "s",
                    extra={"silence": silence},
                )
                self._forget(node)

    def _receive(self, message: Any) -> None:
        try:
            remote = _parse(message)
        except (ValueError, TypeError, KeyError) as exc:
            logger.warning("presence %r: ignored a malformed message on %r: %s (%.120r)",
                           self.name, self.topic, exc, message)
            return
        node = remote.node
        if node == self.node_name:
            return
        if tracing.active is not None:
            tracing.hop("presence", "Presence.receive", event=remote.kind, node=node)
        replica = self._replicas.get(node)
        if remote.kind == "bye":
            if replica is not None and replica.incarnation == remote.incarnation:
                logger.info("presence %r: node %r left; removed its %d presence%s", self.name, node,
                            len(replica.entries), "" if len(replica.entries) == 1 else "s")
                self._forget(node)
            return
        now = time.monotonic()
        if replica is None or replica.incarnation != remote.incarnation:
            if replica is not None:
                logger.info("presence %r: node %r restarted; removed the %d presences of its previous run",
                            self.name, node, len(replica.entries))
                self._forget(node)
            else:
                logger.info("presence %r: node %r is up", self.name, node)
            replica = self._replicas[node] = _Replica(remote.incarnation)
            if remote.kind != "state_request":
                # A node new to us may not know us either: tell it what we track, unasked.
                self._send_state(node)
        replica.last_seen = now
        if remote.kind == "heartbeat":
            if remote.vsn > replica.vsn:
                self._ask(node, replica, now, f"its heartbeat says version {remote.vsn}")
        elif remote.kind == "delta":
            if remote.vsn <= replica.vsn:
                return  # seen already
            if remote.from_vsn != replica.vsn:
                self._ask(node, replica, now, f"a delta from version {remote.from_vsn} arrived")
                return
            leaves = [entry for ref in remote.leaves if (entry := replica.entries.pop(ref, None)) is not None]
            for entry in remote.joins:
                replica.entries[entry.ref] = entry
            replica.vsn = remote.vsn
            self._report(remote.joins, leaves)
        elif remote.kind == "state":
            if remote.vsn <= replica.vsn:
                return  # ours is as new
            old, new = replica.entries, {entry.ref: entry for entry in remote.joins}
            replica.entries, replica.vsn, replica.asked_at = new, remote.vsn, None
            self._report([entry for ref, entry in new.items() if ref not in old],
                         [entry for ref, entry in old.items() if ref not in new])
        else:  # state_request
            self._send_state(node)

    def _ask(self, node: str, replica: _Replica, now: float, why: str) -> None:
        """Ask ``node`` for its whole state, at most once per broadcast period."""
        if replica.asked_at is not None and now - replica.asked_at < self.broadcast_period:
            return
        replica.asked_at = now
        logger.debug("presence %r: missed changes from node %r (have version %d, %s); asking for its state",
                     self.name, node, replica.vsn, why)
        self._send(self._message("state_request"), to=node)

    def _forget(self, node: str) -> None:
        replica = self._replicas.pop(node)
        self._report([], list(replica.entries.values()))


# Helpers


def _target(function: str, target: Any, args: tuple[Any, ...], after_key: int) -> tuple[Pid, str, Any, Any]:
    """``(pid, topic, key, meta)`` from ``(socket, key[, meta])`` or ``(pid, topic, key[, meta])``."""
    if isinstance(target, SocketStruct):
        if len(args) != after_key:
            raise TypeError(f"{function}(socket, key{', meta' if after_key == 2 else ''}) takes "
                            f"{after_key + 1} arguments, got {len(args) + 1}")
        if target.channel_pid is None or target.topic is None:
            raise PresenceError(f"cannot {function} a socket outside a channel: it has no channel process or topic")
        return (target.channel_pid, target.topic, args[0], args[1] if after_key == 2 else None)
    if isinstance(target, Pid):
        if len(args) != after_key + 1:
            raise TypeError(f"{function}(pid, topic, key{', meta' if after_key == 2 else ''}) takes "
                            f"{after_key + 2} arguments, got {len(args) + 1}")
        if not isinstance(args[0], str):
            raise TypeError(f"the topic must be a str, got {args[0]!r}")
        return (target, args[0], args[1], args[2] if after_key == 2 else None)
    raise TypeError(f"{function} takes a socket or a pid first, got {target!r}")


def _check_key(key: Any) -> str:
    # JSON object keys are strings: an int key (a user id) is listed as its string, as in Phoenix.
    if isinstance(key, bool) or not isinstance(key, (str, int)):
        raise TypeError(f"a presence key must be a str or an int, got {key!r}")
    return str(key)


def _check_meta(meta: Any) -> dict[str, Any]:
    """A copy of ``meta`` as every node and client will see it: JSON, through and through."""
    if not isinstance(meta, dict):
        raise TypeError(f"presence meta must be a dict, got {meta!r}")
    if not all(isinstance(name, str) for name in meta):
        raise TypeError(f"presence meta keys must be strings, got {list(meta)!r}")
    try:
        return json.loads(json.dumps(meta, allow_nan=False))  # type: ignore[no-any-return]
    except (TypeError, ValueError) as exc:
        raise TypeError(f"presence meta must be a JSON object (it goes to clients and other nodes): {exc}") from None


def _group(entries: Any) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """``{key: {"metas": [...]}}``, with copies of the metas: what is handed out is the caller's to change."""
    grouped: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for entry in entries:
        grouped.setdefault(entry.key, {"metas": []})["metas"].append(copy.deepcopy(entry.meta))
    return grouped


def _parse(message: Any) -> _Remote:
    """Check a message from another tracker; ValueError (or TypeError, KeyError) if it is not one."""
    if not isinstance(message, dict):
        raise TypeError(f"not a JSON object but a {type(message).__name__}")
    missing = [name for name in ("event", "node", "incarnation") if name not in message]
    if missing:
        raise ValueError(f"no {missing[0]!r} field")
    kind, node, incarnation = message["event"], message["node"], message["incarnation"]
    if kind not in _KINDS:
        raise ValueError(f"unknown event {kind!r}")
    if not isinstance(node, str) or not isinstance(incarnation, str):
        raise ValueError("'node' and 'incarnation' must be strings")
    vsn = from_vsn = 0
    joins: list[_Entry] = []
    leaves: list[str] = []
    if kind in ("heartbeat", "delta", "state"):
        vsn = _version(message["vsn"], "vsn")
    if kind == "delta":
        from_vsn = _version(message["from"], "from")
        if from_vsn >= vsn:
            raise ValueError(f"a delta must go forward, got from {from_vsn} to {vsn}")
        leaves = message["leaves"]
        if not isinstance(leaves, list) or not all(isinstance(ref, str) for ref in leaves):
            raise ValueError("'leaves' must be a list of phx_refs")
    if kind in ("delta", "state"):
        items = message["joins"]
        if not isinstance(items, list):
            raise ValueError("'joins' must be a list")
        for item in items:
            if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], str)
                    and isinstance(item[1], str) and isinstance(item[2], dict)
                    and isinstance(item[2].get("phx_ref"), str)):
                raise ValueError(f"an entry must be [topic, key, meta with a phx_ref], got {item!r:.80}")
            joins.append(_Entry(item[0], item[1], item[2]))
    return _Remote(kind, node, incarnation, vsn, from_vsn, joins, leaves)


def _version(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name!r} must be a version number, got {value!r}")
    return value
