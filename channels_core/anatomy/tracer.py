"""The tracer: a record of one live run, layer hop by layer hop, frame by frame.

Every layer of the package reports what it does through
:mod:`channels_core.tracing` (one ``is None`` test when nobody listens). While a
``with trace() as t:`` block runs, this module listens and keeps, in order:

* :class:`Hop`: a request passed through a layer's function; with the layer, the
  name the layer reported, and the qualified name, file and line of the code that
  reported it (read from the caller's frame, a cost paid only while tracing);
* :class:`Frame`: a frame crossed the wire, ``↑`` from the client or ``↓`` to it;
* process events: :class:`Spawn`, :class:`Exit`, :class:`Send`, :class:`Monitor`
  and :class:`Down`, the BEAM vocabulary of :mod:`channels_core.process`.

A trace is plain data, a list of frozen events, and it is *normalised* as it is
recorded, so that the same scenario run twice gives equal traces and a notebook's
stored output equals a fresh run: pids are named by role in order of first
appearance (``socket#1``, ``channel room:lobby#1``), refs become ``r1``, ``r2``,
connections ``ws#1``, and ``host:port`` pairs ``host:PORT``.

Phoenix has no module like this; the BEAM has ``:dbg`` and ``:sys.trace``, which
is what this plays at: an observer outside the code it observes.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, ClassVar

from .. import process as process_module
from .. import tracing
from ..process import Pid, Ref
from .wire import ParsedFrame, format_payload, parse_frame

__all__ = [
    "Down",
    "Event",
    "Exit",
    "Frame",
    "Hop",
    "Monitor",
    "ProcessInfo",
    "Send",
    "Spawn",
    "Trace",
    "relative_path",
    "trace",
]

#: The directory that holds the ``channels_core`` package: paths are shown relative to it.
PACKAGE_ROOT = Path(__file__).resolve().parent.parent.parent

#: Lifelines of a sequence diagram, in the order a request meets them.
LAYERS = ("client", "adapter", "endpoint", "transport", "socket", "channel_server",
          "channel", "serializer", "pubsub")

_TRACING_FILE = tracing.__file__
_PROCESS_FILE = process_module.__file__
_THIS_FILE = __file__


@lru_cache(maxsize=512)
def relative_path(filename: str) -> str:
    """``channels_core/socket.py`` for a file of the package; a short stable name otherwise."""
    path = Path(filename)
    try:
        return path.resolve().relative_to(PACKAGE_ROOT).as_posix()
    except (ValueError, OSError):
        pass
    # A notebook cell's file is a temporary path that changes with every kernel.
    if "ipykernel" in filename or filename.startswith("<"):
        return "<cell>"
    return path.name


# Events


@dataclass(frozen=True, kw_only=True)
class Event:
    """What every event has: its position and the process it happened in.

    Attributes:
        index: Its position in the trace that recorded it, from 1. Filtered traces
            keep the original indexes, so an event can be found again.
        process: The process the code ran in, e.g. ``"socket#1"``, or None.
    """

    tag: ClassVar[str] = "event"
    index: int
    process: str | None

    @property
    def event(self) -> str | None:
        """The protocol event this is about (``"phx_join"``), where there is one."""
        return None

    def describe(self) -> str:
        """One line of text, without the index and process columns."""
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True)
class Hop(Event):
    """A layer reported that a request passed through one of its functions.

    Attributes:
        layer: e.g. ``"socket"``.
        function: The name the layer reported, e.g. ``"socket.handle_in:phx_join"``.
        qualname: The Python function the report came from, e.g. ``"SocketState._join"``.
        file: Relative to the package's parent, e.g. ``"channels_core/socket.py"``.
        line: The line of the report in that file.
        caller: The nearest call site in another file, e.g.
            ``"channels_core/socket.py:436"``: which module called into this one.
        detail: What the layer added, normalised, e.g. ``{"topic": "room:lobby"}``.
    """

    tag: ClassVar[str] = "hop"
    layer: str
    function: str
    qualname: str
    file: str
    line: int
    caller: str | None = None
    detail: dict[str, Any] = field(default_factory=dict, hash=False)

    @property
    def event(self) -> str | None:
        event = self.detail.get("event")
        if isinstance(event, str):
            return event
        _, sep, clause = self.function.partition(":")
        return clause if sep else None

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}"

    def describe(self) -> str:
        detail = "".join(f" {key}={value!r}" for key, value in self.detail.items())
        return f"{self.layer:<14} {self.function}{detail}  [{self.location}]"


@dataclass(frozen=True, kw_only=True)
class Frame(Event):
    """A WebSocket frame, ``↑`` from the client or ``↓`` to it.

    Attributes:
        direction: ``"↑"`` or ``"↓"``.
        connection: e.g. ``"ws#1"``.
        opcode: ``"text"`` or ``"binary"``.
        data: The frame exactly as it crossed the wire.
    """

    tag: ClassVar[str] = "frame"
    direction: str
    connection: str
    opcode: str
    data: str | bytes

    @cached_property
    def parsed(self) -> ParsedFrame:
        """The frame's fields (topic, event, refs, payload)."""
        return parse_frame(self.direction, self.opcode, self.data)

    @property
    def event(self) -> str | None:
        event = self.parsed.event
        return event if isinstance(event, str) else None

    @property
    def topic(self) -> Any:
        return self.parsed.topic

    def short(self, width: int = 64) -> str:
        """The frame as text, cut to ``width`` characters."""
        text = self.data if isinstance(self.data, str) else format_payload(self.data)
        return text if len(text) <= width else text[: width - 1] + "…"

    def describe(self) -> str:
        return f"{self.direction} {self.connection} {self.opcode} {self.short(200)}"


@dataclass(frozen=True, kw_only=True)
class Spawn(Event):
    """A process started, or a running task became one (``adopted``).

    Attributes:
        pid: The new process, e.g. ``"channel room:lobby#1"``.
        parent: The process that spawned it, or None (an adopted task, or a
            spawn from code outside any process).
        via: The function that started it, e.g. ``"PoolSupervisor.start_child"``.
        adopted: True for a task the server started and ``process.adopt`` took
            over, as a WebSocket connection's task is.
    """

    tag: ClassVar[str] = "spawn"
    pid: str
    parent: str | None
    via: str
    adopted: bool = False

    def describe(self) -> str:
        if self.adopted:
            return f"{self.pid} adopted in {self.via}"
        by = f" by {self.parent}" if self.parent else ""
        return f"{self.pid}{by} via {self.via}"


@dataclass(frozen=True, kw_only=True)
class Exit(Event):
    """A process ended, with its exit reason (``"normal"``, ``"('shutdown', 'left')"``...)."""

    tag: ClassVar[str] = "exit"
    pid: str
    reason: str

    @property
    def crashed(self) -> bool:
        """True unless the reason is normal or a shutdown."""
        return not (self.reason in ("normal", "shutdown") or self.reason.startswith("('shutdown',"))

    def describe(self) -> str:
        return f"{self.pid} reason {self.reason}"


@dataclass(frozen=True, kw_only=True)
class Send(Event):
    """A message dropped in a mailbox.

    Attributes:
        sender: The sending process, or None outside any process.
        receiver: The receiving process.
        kind: The message's type name, e.g. ``"SocketPush"``, ``"JoinRequest"``, ``"tuple"``.
        message_event: The event it carries, where there is one, e.g. ``"phx_reply"``.
        where: The code that sent it, e.g. ``"channels_core/channel.py:122"``.
    """

    tag: ClassVar[str] = "send"
    sender: str | None
    receiver: str
    kind: str
    message_event: str | None = None
    where: str | None = None

    @property
    def event(self) -> str | None:
        return self.message_event

    @property
    def label(self) -> str:
        return f"{self.kind} {self.message_event}" if self.message_event else self.kind

    def describe(self) -> str:
        return f"{self.sender or '(no process)'} → {self.receiver}: {self.label}"


@dataclass(frozen=True, kw_only=True)
class Monitor(Event):
    """``watcher`` asked to be told when ``watched`` exits."""

    tag: ClassVar[str] = "monitor"
    watcher: str
    watched: str

    def describe(self) -> str:
        return f"{self.watcher} watches {self.watched}"


@dataclass(frozen=True, kw_only=True)
class Down(Event):
    """``watcher`` was told that ``pid`` exited, and why."""

    tag: ClassVar[str] = "DOWN"
    watcher: str
    pid: str
    reason: str

    def describe(self) -> str:
        return f"{self.watcher} ← {self.pid} reason {self.reason}"


@dataclass(frozen=True)
class ProcessInfo:
    """A process as a trace saw it.

    Attributes:
        name: e.g. ``"socket#1"``.
        parent: Who spawned it, if the trace saw the spawn.
        via: The function that started it, e.g. ``"WebSocketHandler.run"``.
        exit_reason: Why it ended, or None if it was still running when the trace ended.
        adopted: Whether it is a server task that became a process.
    """

    name: str
    parent: str | None = None
    via: str | None = None
    exit_reason: str | None = None
    adopted: bool = False

    @property
    def role(self) -> str:
        return self.name.rpartition("#")[0]

    @property
    def crashed(self) -> bool:
        reason = self.exit_reason
        return reason is not None and not (
            reason in ("normal", "shutdown") or reason.startswith("('shutdown',")
        )


# Normalisation

_PID_REPR = re.compile(r"<pid (\d+) ([^>]*)>")
_REF_REPR = re.compile(r"#Ref<(\d+)>")
_HOST_PORT = re.compile(r"\b(127\.0\.0\.1|0\.0\.0\.0|localhost|\[::1\]):\d{1,5}\b")
# LongPoll sessions name their connection "longpoll-<n>", in frames and hop details alike.
_LONGPOLL_ID = re.compile(r"\blongpoll-\d+\b")


class _Names:
    """Stable names for the things that differ between runs: pids, refs, connections."""

    def __init__(self) -> None:
        self._pids: dict[int, str] = {}
        self.pid_objects: dict[str, Pid] = {}
        self._refs: dict[int, str] = {}
        self._connections: dict[Any, str] = {}
        self._counts: Counter[str] = Counter()
        self._connection_counts: Counter[str] = Counter()

    def pid(self, pid: Pid | None) -> str | None:
        if pid is None:
            return None
        name = self._pids.get(pid.id)
        if name is None:
            self._counts[pid.role] += 1
            name = self._pids[pid.id] = f"{pid.role}#{self._counts[pid.role]}"
            self.pid_objects[name] = pid
        return name

    def ref(self, ref: Ref) -> str:
        name = self._refs.get(ref.id)
        if name is None:
            name = self._refs[ref.id] = f"r{len(self._refs) + 1}"
        return name

    def connection(self, connection: Any) -> str:
        name = self._connections.get(connection)
        if name is None:
            if isinstance(connection, int):
                prefix = "ws"
            elif "longpoll" in str(connection).lower() or str(connection).startswith("lp"):
                prefix = "lp"
            else:
                prefix = "conn"
            self._connection_counts[prefix] += 1
            name = self._connections[connection] = f"{prefix}#{self._connection_counts[prefix]}"
        return name

    def text(self, text: str) -> str:
        text = _PID_REPR.sub(lambda m: f"<{self.pid(Pid(int(m[1]), m[2]))}>", text)
        text = _REF_REPR.sub(lambda m: self.ref(Ref(int(m[1]))), text)
        text = _LONGPOLL_ID.sub(lambda m: self.connection(m[0]), text)
        return _HOST_PORT.sub(r"\1:PORT", text)

    def value(self, value: Any) -> Any:
        if value is None or isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, Pid):
            return self.pid(value)
        if isinstance(value, Ref):
            return self.ref(value)
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, (list, tuple)):
            return tuple(self.value(item) for item in value)
        return self.text(repr(value))

    def reason(self, reason: Any) -> str:
        return self.text(reason) if isinstance(reason, str) else self.text(repr(reason))


def _message_kind(message: Any) -> tuple[str, str | None]:
    """The type name of a message and the event it carries, if any."""
    from ..serializers import SocketPush

    kind = type(message).__name__
    event: Any = getattr(message, "event", None)
    if isinstance(message, SocketPush):
        event = parse_frame("↓", message.opcode, message.data).event
    elif type(message) is tuple and message and isinstance(message[0], str):
        event = message[0]  # ("after_join", payload): the tag is the event
    return kind, event if isinstance(event, str) else None


def _caller(skip_file: str) -> Any:
    """The first frame outside ``skip_file`` and this module."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename in (skip_file, _THIS_FILE):
        frame = frame.f_back
    return frame


def _outside(frame: Any) -> Any:
    """The nearest caller of ``frame`` in another file: the module that called in."""
    filename = frame.f_code.co_filename
    caller = frame.f_back
    while caller is not None and caller.f_code.co_filename == filename:
        caller = caller.f_back
    return caller


def _where(frame: Any) -> str | None:
    """``file:line`` of a frame of the project (or a notebook cell); None for the
    standard library and installed packages, whose paths and lines vary by machine."""
    if frame is None:
        return None
    path = relative_path(frame.f_code.co_filename)
    if path != "<cell>" and "/" not in path:
        return None
    return f"{path}:{frame.f_lineno}"


class _Recorder:
    """What sits in ``tracing.active`` during a trace: turns hook calls into events."""

    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        self.names = trace._names
        self.closed = False

    def _current(self) -> str | None:
        return self.names.pid(process_module.current_pid_or_none())

    def _name(self, pid: Pid) -> str:
        return self.names.pid(pid) or "?"

    # The Tracer protocol

    def hop(self, layer: str, function: str, detail: dict[str, Any] | None = None) -> None:
        if self.closed:
            return
        frame = _caller(_TRACING_FILE)
        code, names = frame.f_code, self.names
        self.trace._add(Hop(
            index=0, process=self._current(), layer=layer, function=names.text(function),
            qualname=code.co_qualname, file=relative_path(code.co_filename), line=frame.f_lineno,
            caller=_where(_outside(frame)),
            detail={key: names.value(value) for key, value in (detail or {}).items()},
        ))

    def frame(self, direction: str, connection: Any, opcode: str, data: str | bytes) -> None:
        if self.closed:
            return
        self.trace._add(Frame(
            index=0, process=self._current(), direction=direction,
            connection=self.names.connection(connection), opcode=opcode, data=data,
        ))

    def process_spawn(self, parent: Any, pid: Any) -> None:
        if self.closed:
            return
        via = _caller(_PROCESS_FILE).f_code.co_qualname
        adopted = sys._getframe(1).f_code.co_name == "adopt"
        parent_name = self.names.pid(parent)
        self.trace._add(Spawn(index=0, process=self._current(), pid=self._name(pid), parent=parent_name,
                              via=via, adopted=adopted))

    def process_exit(self, pid: Any, reason: Any) -> None:
        if self.closed:
            return
        self.trace._add(Exit(index=0, process=self._current(), pid=self._name(pid),
                             reason=self.names.reason(reason)))

    def process_send(self, sender: Any, receiver: Any, message: Any) -> None:
        if self.closed:
            return
        kind, event = _message_kind(message)
        self.trace._add(Send(
            index=0, process=self._current(), sender=self.names.pid(sender), receiver=self._name(receiver),
            kind=kind, message_event=event, where=_where(_caller(_PROCESS_FILE)),
        ))

    def process_monitor(self, watcher: Any, watched: Any) -> None:
        if self.closed:
            return
        self.trace._add(Monitor(index=0, process=self._current(), watcher=self._name(watcher),
                                watched=self._name(watched)))

    def process_down(self, watcher: Any, pid: Any, reason: Any) -> None:
        if self.closed:
            return
        self.trace._add(Down(index=0, process=self._current(), watcher=self._name(watcher),
                             pid=self._name(pid), reason=self.names.reason(reason)))


# The trace

EventMatch = str | int | Callable[[Event], bool]


class Trace:
    """A recorded run: a list of events, in order, with ways to look at them.

    Record one with ``with trace() as t:`` or ``async with trace() as t:``. After
    the block, ``t.events`` holds every event; the filters below return new
    traces that keep the original event indexes.
    """

    def __init__(self, events: Iterable[Event] = (), *, _names: _Names | None = None) -> None:
        self.events: list[Event] = list(events)
        self._names = _names if _names is not None else _Names()
        self._recorder: _Recorder | None = None
        self._previous: Any = None
        self._waiters: list[tuple[Callable[[Event], bool], asyncio.Future[Event]]] = []
        self.recording = False

    # Recording

    def __enter__(self) -> Trace:
        self._start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._stop()

    async def __aenter__(self) -> Trace:
        self._start()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        self._stop()

    def _start(self) -> None:
        if tracing.active is not None:
            raise RuntimeError(
                f"another tracer is already installed ({tracing.active!r}): traces do not nest; "
                "end the outer `with trace()` block before starting a new one"
            )
        if self._recorder is not None:
            raise RuntimeError("this trace has already been recorded; start a new one with trace()")
        self._recorder = _Recorder(self)
        self._previous = tracing.active
        self.recording = True
        tracing.active = self._recorder

    def _stop(self) -> None:
        assert self._recorder is not None
        self._recorder.closed = True
        self.recording = False
        tracing.active = self._previous
        for _, waiter in self._waiters:
            if not waiter.done():
                waiter.cancel()
        self._waiters.clear()

    def _add(self, event: Event) -> None:
        object.__setattr__(event, "index", len(self.events) + 1)
        self.events.append(event)
        if self._waiters:
            for item in list(self._waiters):
                predicate, waiter = item
                if not waiter.done() and predicate(event):
                    waiter.set_result(event)
                    self._waiters.remove(item)

    async def wait_for(self, match: EventMatch, timeout: float = 5.0) -> Event:
        """Wait until an event matching ``match`` is recorded, and return it.

        ``match`` is a predicate, an event index, or a string that the event's
        tag and description contain (e.g. ``"exit channel room:lobby#1"`` or
        ``"↓ ws#1 text [\"1\",\"1\",\"room:lobby\",\"phx_reply\""``). Events recorded before
        the call count too. Servers run in the background; this is how a
        notebook waits for the server side of a run to finish without sleeping.

        Raises:
            TimeoutError: nothing matched within ``timeout`` seconds.
        """
        predicate = _predicate(match)
        for event in self.events:
            if predicate(event):
                return event
        if not self.recording:
            raise TimeoutError(f"no event matches {match!r}, and the trace is no longer recording")
        waiter: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        entry = (predicate, waiter)
        self._waiters.append(entry)
        try:
            return await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            raise TimeoutError(
                f"no event matched {match!r} within {timeout} s; the last one was: "
                f"{_line(self.events[-1]) if self.events else '(none)'}"
            ) from None
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)

    # Plain data

    def __len__(self) -> int:
        return len(self.events)

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return self._derive(self.events[index])
        return self.events[index]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Trace) and self.events == other.events

    __hash__ = None  # type: ignore[assignment]

    def _derive(self, events: Iterable[Event]) -> Trace:
        return Trace(events, _names=self._names)

    def hops(self, layer: str | None = None) -> list[Hop]:
        """The layer hops, optionally of one layer only."""
        return [e for e in self.events if isinstance(e, Hop) and (layer is None or e.layer == layer)]

    def frames(self, connection: str | None = None) -> list[Frame]:
        """The wire frames, optionally of one connection (``"ws#1"``) only."""
        return [e for e in self.events
                if isinstance(e, Frame) and (connection is None or e.connection == connection)]

    def sends(self) -> list[Send]:
        return [e for e in self.events if isinstance(e, Send)]

    def processes(self) -> list[ProcessInfo]:
        """Every process the trace saw, in order of first appearance."""
        seen: dict[str, ProcessInfo] = {}

        def note(name: str | None) -> None:
            if name is not None and name not in seen:
                seen[name] = ProcessInfo(name)

        for event in self.events:
            for name in _process_names(event):
                note(name)
            if isinstance(event, Spawn):
                seen[event.pid] = ProcessInfo(event.pid, event.parent, event.via, seen[event.pid].exit_reason,
                                              event.adopted)
            elif isinstance(event, Exit):
                info = seen[event.pid]
                seen[event.pid] = ProcessInfo(info.name, info.parent, info.via, event.reason, info.adopted)
        return list(seen.values())

    def pid(self, name: str) -> Pid:
        """The live :class:`~channels_core.process.Pid` behind a name such as ``"socket#1"``."""
        try:
            return self._names.pid_objects[name]
        except KeyError:
            known = ", ".join(self._names.pid_objects) or "none"
            raise KeyError(f"no process named {name!r} in this trace (known: {known})") from None

    def name(self, pid: Pid | Ref) -> str:
        """The trace's name for a pid (``"socket#1"``) or a ref (``"r3"``).

        One the trace never saw gets the next number, so that live state read
        after a run (a socket's ``channels`` map, say) prints the same every run.
        """
        if isinstance(pid, Ref):
            return self._names.ref(pid)
        return self._names.pid(pid)  # type: ignore[return-value]

    # Filters

    def between(self, start: EventMatch, end: EventMatch | None = None) -> Trace:
        """From the first event matching ``start`` to the first after it matching ``end``.

        Both ends are included. Each is an event index, a predicate, or a
        protocol event name: ``t.between("phx_join", "phx_reply")`` runs from
        the frame that carried the join to the frame that carried its reply (a
        name matches frames when some frame carries it, any event otherwise).

        Raises:
            ValueError: no event matches ``start``, or none after it matches ``end``.
        """
        first = self._find(start, 0)
        if first is None:
            raise ValueError(f"no event in this trace matches {start!r}")
        if end is None:
            return self._derive(self.events[first:])
        last = self._find(end, first + 1)
        if last is None:
            raise ValueError(f"no event after #{self.events[first].index} matches {end!r}")
        return self._derive(self.events[first : last + 1])

    def span(self, first: int, last: int) -> Trace:
        """The events whose index is between ``first`` and ``last``, both included."""
        return self._derive(e for e in self.events if first <= e.index <= last)

    def only(
        self,
        *,
        layers: Iterable[str] | None = None,
        kinds: Iterable[type[Event] | str] | None = None,
        processes: Iterable[str] | None = None,
    ) -> Trace:
        """Keep some events: hops of ``layers`` (other events stay), events of
        ``kinds`` (classes or tags such as ``"hop"``, ``"frame"``, ``"send"``),
        events that happened in ``processes``."""
        events = self.events
        if layers is not None:
            wanted = set(layers)
            events = [e for e in events if not isinstance(e, Hop) or e.layer in wanted]
        if kinds is not None:
            tags = {k if isinstance(k, str) else k.tag for k in kinds}
            events = [e for e in events if e.tag in tags]
        if processes is not None:
            names = set(processes)
            events = [e for e in events if e.process in names]
        return self._derive(events)

    def filter(self, predicate: Callable[[Event], bool]) -> Trace:
        return self._derive(e for e in self.events if predicate(e))

    def _find(self, match: EventMatch, start: int) -> int | None:
        def on_the_wire(event: Event) -> bool:
            return isinstance(event, Frame) and event.event == match

        predicate: Callable[[Event], bool]
        if isinstance(match, str) and any(on_the_wire(e) for e in self.events[start:]):
            predicate = on_the_wire
        elif isinstance(match, str):
            predicate = lambda e: e.event == match  # noqa: E731
        elif isinstance(match, int):
            predicate = lambda e: e.index == match  # noqa: E731
        else:
            predicate = match
        for position in range(start, len(self.events)):
            if predicate(self.events[position]):
                return position
        return None

    # Text

    def summary(self) -> str:
        """A few lines: how many hops per layer, which processes, how many frames."""
        hops = self.hops()
        layers = Counter(h.layer for h in hops)
        ordered = sorted(layers, key=lambda name: (LAYERS.index(name) if name in LAYERS else len(LAYERS), name))
        frames = self.frames()
        connections = sorted({f.connection for f in frames}, key=_natural)
        lines = [f"{len(self.events)} events"]
        lines.append(f"  hops: {len(hops)} in {len(layers)} layers"
                     + (f" ({', '.join(f'{layer} {layers[layer]}' for layer in ordered)})" if hops else ""))
        for info in self.processes():
            state = "running" if info.exit_reason is None else f"exit {info.exit_reason}"
            lines.append(f"  process {info.name}: {state}")
        for connection in connections:
            up = sum(1 for f in frames if f.connection == connection and f.direction == "↑")
            down = sum(1 for f in frames if f.connection == connection and f.direction == "↓")
            lines.append(f"  frames {connection}: {up} ↑, {down} ↓")
        counts = Counter(e.tag for e in self.events)
        lines.append(
            f"  sends {counts['send']}, spawns {counts['spawn']}, exits {counts['exit']}, "
            f"monitors {counts['monitor']}, DOWNs {counts['DOWN']}"
        )
        return "\n".join(lines)

    def __str__(self) -> str:
        if not self.events:
            return "(empty trace)"
        width = max(len(e.process or "-") for e in self.events)
        return "\n".join(_line(e, width) for e in self.events)

    def __repr__(self) -> str:
        return f"<Trace {len(self.events)} events{' (recording)' if self.recording else ''}>"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


def _line(event: Event, width: int = 0) -> str:
    tag = event.direction if isinstance(event, Frame) else event.tag
    return f"{event.index:>3}  {tag:<7} {(event.process or '-'):<{width}}  {event.describe()}".rstrip()


def _predicate(match: EventMatch) -> Callable[[Event], bool]:
    if isinstance(match, str):
        return lambda e: match in f"{e.tag} {e.describe()}"
    if isinstance(match, int):
        return lambda e: e.index == match
    return match


def _process_names(event: Event) -> list[str | None]:
    if isinstance(event, Spawn):
        return [event.parent, event.pid]
    if isinstance(event, Send):
        return [event.sender, event.receiver]
    if isinstance(event, Monitor):
        return [event.watcher, event.watched]
    if isinstance(event, Down):
        return [event.watcher, event.pid]
    if isinstance(event, Exit):
        return [event.pid]
    return [event.process]


def _natural(name: str) -> tuple[str, int]:
    prefix, _, number = name.rpartition("#")
    return (prefix, int(number) if number.isdigit() else 0)


def trace() -> Trace:
    """Record a live run: ``with trace() as t:`` (or ``async with``).

    The tracer installs itself in ``channels_core.tracing.active`` when the
    block starts and removes itself when it ends, also when the block raises.
    Traces do not nest: starting one inside another raises ``RuntimeError``.
    """
    return Trace()
