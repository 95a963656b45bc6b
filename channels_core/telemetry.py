"""Instrumentation events, mirroring Erlang's ``:telemetry`` as Phoenix uses it.

Phoenix does not log or measure anything itself; it calls
``:telemetry.execute/3`` at interesting moments and lets whoever cares attach
a handler. The handler table is process-wide (an ETS table in Erlang, a module
global here) and handlers run synchronously in the caller, which is why a
handler that raises is detached and logged instead of being allowed to break
the code that emitted the event. Emitting is on the hot path, so an event
nobody listens to costs one dict lookup.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CHANNEL_HANDLED_IN",
    "CHANNEL_JOINED",
    "SOCKET_CONNECTED",
    "Event",
    "Handler",
    "HandlerFunction",
    "attach",
    "attach_many",
    "detach",
    "execute",
    "list_handlers",
    "span",
]

Event = tuple[str, ...]
HandlerFunction = Callable[[Event, dict[str, Any], dict[str, Any], Any], None]

SOCKET_CONNECTED: Event = ("phoenix", "socket_connected")
CHANNEL_JOINED: Event = ("phoenix", "channel_joined")
CHANNEL_HANDLED_IN: Event = ("phoenix", "channel_handled_in")

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Handler:
    """One attached handler, as returned by :func:`list_handlers`.

    Attributes:
        id: The id given to :func:`attach`; shared by every event of an
            :func:`attach_many` call.
        event_name: The event this entry listens to.
        function: Called as ``function(event, measurements, metadata, config)``.
        config: Passed back to ``function`` untouched.
    """

    id: str
    event_name: Event
    function: HandlerFunction
    config: Any


# Readers never lock: writers build a new tuple and swap it in, so execute()
# always iterates a consistent snapshot, even while a handler detaches itself.
_by_event: dict[Event, tuple[Handler, ...]] = {}
# Keyed by handler id, in attach order; gives detach() and list_handlers()
# what they need without scanning every event.
_by_id: dict[str, tuple[Handler, ...]] = {}
_lock = threading.Lock()


def attach(
    handler_id: str,
    event: Event,
    function: HandlerFunction,
    config: Any = None,
) -> None:
    """Call ``function`` every time ``event`` is executed.

    Args:
        handler_id: A unique name for this handler, used to detach it.
        event: The event name, a tuple of strings such as
            ``("phoenix", "channel_joined")``.
        function: Called as ``function(event, measurements, metadata, config)``.
        config: Any value, handed back to ``function`` on every call.

    Raises:
        ValueError: If ``handler_id`` is already attached.
        TypeError: If ``event`` is not a non-empty tuple of strings.
    """
    attach_many(handler_id, [event], function, config)


def attach_many(
    handler_id: str,
    events: Iterable[Event],
    function: HandlerFunction,
    config: Any = None,
) -> None:
    """Call ``function`` for each of ``events``, under a single handler id.

    Args:
        handler_id: A unique name for this handler, used to detach it from
            all of ``events`` at once.
        events: The event names to listen to.
        function: Called as ``function(event, measurements, metadata, config)``.
        config: Any value, handed back to ``function`` on every call.

    Raises:
        ValueError: If ``handler_id`` is already attached.
        TypeError: If an event is not a non-empty tuple of strings.
    """
    # dict.fromkeys drops repeats while keeping order, so listing an event
    # twice does not make the handler run twice.
    unique = list(dict.fromkeys(events))
    for event in unique:
        _check_event(event)
    handlers = tuple(Handler(handler_id, event, function, config) for event in unique)
    with _lock:
        if handler_id in _by_id:
            raise ValueError(f"handler {handler_id!r} is already attached")
        _by_id[handler_id] = handlers
        for handler in handlers:
            _by_event[handler.event_name] = (*_by_event.get(handler.event_name, ()), handler)


def detach(handler_id: str) -> bool:
    """Stop calling the handler attached under ``handler_id``.

    Args:
        handler_id: The id given to :func:`attach` or :func:`attach_many`.

    Returns:
        ``True`` if a handler was detached, ``False`` if none had that id.
    """
    with _lock:
        handlers = _by_id.pop(handler_id, None)
        if handlers is None:
            return False
        for handler in handlers:
            remaining = tuple(h for h in _by_event[handler.event_name] if h.id != handler_id)
            if remaining:
                _by_event[handler.event_name] = remaining
            else:
                # Drop the key so execute() takes its fastest path again.
                del _by_event[handler.event_name]
        return True


def execute(event: Event, measurements: dict[str, Any], metadata: dict[str, Any]) -> None:
    """Emit ``event``, calling every handler attached to it, in attach order.

    A handler that raises is detached and the error logged; the caller of
    ``execute`` never sees it.

    Args:
        event: The event name.
        measurements: Numbers describing the event, such as a duration.
        metadata: Context about the event, such as the topic or the socket.
    """
    handlers = _by_event.get(event)
    if not handlers:
        return
    for handler in handlers:
        try:
            handler.function(event, measurements, metadata, handler.config)
        # Exception, not BaseException: KeyboardInterrupt and SystemExit are
        # requests to stop, not handler bugs, and must reach the caller.
        except Exception:
            detach(handler.id)
            logger.exception(
                "handler %r has failed and has been detached for event %r",
                handler.id,
                event,
            )


def list_handlers(prefix: Event) -> list[Handler]:
    """Return the handlers whose event starts with ``prefix``.

    Args:
        prefix: An event name or the start of one; ``()`` matches all.

    Returns:
        The matching handlers, in attach order.
    """
    n = len(prefix)
    with _lock:
        return [
            handler
            for handlers in _by_id.values()
            for handler in handlers
            if handler.event_name[:n] == prefix
        ]


def _check_event(event: object) -> None:
    # Checked at attach time, so that a list (unhashable) or a bare string
    # fails loudly here instead of silently never matching in execute().
    if (
        not isinstance(event, tuple)
        or not event
        or not all(isinstance(part, str) for part in event)
    ):
        raise TypeError(f"event must be a non-empty tuple of strings, got {event!r}")


@contextmanager
def span(event_prefix: Event, start_metadata: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Time a block of code, emitting start and stop (or exception) events.

    Mirrors ``:telemetry.span/3``. On entry it emits
    ``event_prefix + ("start",)`` with ``system_time`` and ``monotonic_time``.
    On a normal exit it emits ``event_prefix + ("stop",)`` with ``duration``
    and ``monotonic_time``; if the block raises it emits
    ``event_prefix + ("exception",)`` instead, with ``kind``, ``reason`` and
    ``stacktrace`` in the metadata, and re-raises. Times are integer
    nanoseconds, and ``duration`` is the difference of the two
    ``monotonic_time`` values.

    Every event's metadata also carries ``telemetry_span_context``, an object
    unique to this span, so handlers can pair a start with its stop.

    Args:
        event_prefix: The span's name, such as ``("phoenix", "channel_joined")``.
        start_metadata: Metadata for the start event.

    Yields:
        The stop metadata: a copy of ``start_metadata`` that the block may
        update with what it learned, such as a result.
    """
    context = object()
    stop_metadata = dict(start_metadata)
    start_time = time.monotonic_ns()
    execute(
        (*event_prefix, "start"),
        {"system_time": time.time_ns(), "monotonic_time": start_time},
        {**start_metadata, "telemetry_span_context": context},
    )
    try:
        yield stop_metadata
    except BaseException as exc:
        stop_time = time.monotonic_ns()
        execute(
            (*event_prefix, "exception"),
            {"duration": stop_time - start_time, "monotonic_time": stop_time},
            {
                **start_metadata,
                # Erlang's kinds: "error" for a raised error, "exit" for the
                # process being told to stop, which in Python is any
                # BaseException that is not an Exception.
                "kind": "error" if isinstance(exc, Exception) else "exit",
                "reason": exc,
                # A summary rather than the live traceback, so handlers that
                # keep it around do not keep every frame's locals alive.
                "stacktrace": traceback.extract_tb(exc.__traceback__),
                "telemetry_span_context": context,
            },
        )
        raise
    stop_time = time.monotonic_ns()
    execute(
        (*event_prefix, "stop"),
        {"duration": stop_time - start_time, "monotonic_time": stop_time},
        {**stop_metadata, "telemetry_span_context": context},
    )
