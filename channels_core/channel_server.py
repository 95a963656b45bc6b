"""The process behind every joined topic (internal).

Mirrors ``Phoenix.Channel.Server``, the GenServer that runs a channel. Users never
call it; they write a :class:`~channels_core.channel.Channel` and this module runs
it, one message at a time, in its own process. Three things happen here that the
talk singles out:

* The channel's process is started **before** ``join`` runs (:func:`join`): the
  socket spawns it under the supervisor, sends it the join request and waits for
  the answer. So a channel can ``send`` itself a message from ``join`` and handle
  it right after the join reply has gone out.
* After a successful join, :meth:`ChannelServer.init_join` monitors the transport
  and subscribes to the topic with *fastlane* metadata.
* Every other message is routed by its shape: a client ``Message`` goes to
  ``handle_in``, an intercepted ``Broadcast`` to ``handle_out``, the transport's
  exit stops the channel, and anything else goes to ``handle_info``.

A callback that raises ends this process only: ``terminate`` runs, the socket
sees the exit and tells the client ``phx_error``.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
import time
from dataclasses import dataclass
from typing import Any

from . import process, telemetry, tracing
from .exceptions import CallbackError
from .message import Broadcast, Message, Reply
from .process import Down, Pid, Ref
from .pubsub.fastlane import Fastlane
from .socket import SocketClose, SocketStruct

logger = logging.getLogger("channels_core.channel_server")


#: Shared by every channel that intercepts nothing: one empty set, not one per join.
_NO_INTERCEPTS: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class JoinRequest:
    """Phoenix's ``{Phoenix.Channel, payload, from, socket}``: the first message a channel gets."""

    payload: Any
    reply_to: Pid
    ref: Ref
    socket: SocketStruct


@dataclass(frozen=True, slots=True)
class JoinResult:
    """The answer to a :class:`JoinRequest`: ``("ok", reply)`` or ``("error", reply)``."""

    ref: Ref
    status: str
    reply: Any


@dataclass(frozen=True, slots=True)
class Close:
    """Ask a channel to stop as if its client had gone (used by channel tests)."""


# Socket API


async def join(
    socket: SocketStruct, channel: Any, message: Message, options: Any, *,
    on_start: Callable[[Pid], None] | None = None,
) -> tuple[Any, ...]:
    """Start a channel process for ``message.topic`` and wait for its ``join`` to answer.

    ``on_start(pid)``, if given, runs in the caller as soon as the process exists:
    channel tests monitor it there, so that an exit right after the join reply is
    still seen with its reason (Phoenix's ``starter`` option serves its channel
    tests alike).

    Returns ``("ok", reply, pid)`` or ``("error", reply)``.
    """
    assigns = {**socket.assigns, **dict(options or {}).get("assigns", {})}
    socket = socket.replace(
        topic=message.topic,
        channel=channel,
        join_ref=message.join_ref if message.join_ref is not None else message.ref,
        assigns=assigns,
    )
    supervisor = socket.endpoint.supervisor
    reply_to = process.current()
    ref = process.make_ref()
    tracing.hop("channel_server", "channel_server.join", topic=message.topic)
    pid = supervisor.start_child(_run, channel, reply_to, role=f"channel {message.topic}")
    if on_start is not None:
        on_start(pid)
    # The process exists before join runs: that is what lets join send itself messages.
    process.send(pid, JoinRequest(message.payload, reply_to, ref, socket))
    monitor = process.monitor(pid)
    answer = await process.receive(
        lambda m: (isinstance(m, JoinResult) and m.ref == ref)
        or (isinstance(m, Down) and m.ref == monitor)
    )
    if isinstance(answer, Down):
        logger.error("channel %s crashed while joining %r: %r", getattr(channel, "__name__", channel),
                     message.topic, answer.reason)
        # The client learns only that the join crashed; the details stay in the log.
        return ("error", {"reason": "join crashed"})
    process.demonitor(monitor, flush=True)
    if answer.status == "ok":
        return ("ok", answer.reply, pid)
    return ("error", answer.reply)


async def _run(channel_class: Any, starter: Pid) -> Any:
    # Until the join arrives, the only process we care about is the one that started us.
    starter_monitor = process.monitor(starter)
    first = await process.receive(
        lambda m: isinstance(m, JoinRequest) or (isinstance(m, Down) and m.ref == starter_monitor)
    )
    if isinstance(first, Down):
        return first.reason
    process.demonitor(starter_monitor, flush=True)
    server = ChannelServer(channel_class() if isinstance(channel_class, type) else channel_class)
    return await server.run(first)


class ChannelServer:
    """The state of one channel process: the user's channel and its socket."""

    def __init__(self, channel: Any) -> None:
        self.channel = channel
        self.socket: SocketStruct | None = None

    # Joins

    async def run(self, request: JoinRequest) -> Any:
        """Join, then handle messages one at a time until told to stop."""
        socket = request.socket.replace(channel_pid=process.current())
        start = time.perf_counter_ns()
        try:
            result = await self._join(socket, request.payload)
        except Exception as exc:
            # No terminate: the channel never had a joined state to clean up.
            logger.error("channel %s crashed in join/3 for %r: %r", self._name, socket.topic, exc,
                         exc_info=exc)
            return exc
        status, reply, socket = result
        telemetry.execute(
            telemetry.CHANNEL_JOINED,
            {"duration": time.perf_counter_ns() - start},
            {"params": request.payload, "socket": socket, "result": status},
        )
        if status == "error":
            process.send(request.reply_to, JoinResult(request.ref, "error", reply))
            self.socket = socket
            await self._terminate("shutdown")
            return "shutdown"
        self.socket = self.init_join(socket)
        process.send(request.reply_to, JoinResult(request.ref, "ok", reply))
        return await self._loop()

    async def _join(self, socket: SocketStruct, payload: Any) -> tuple[str, Any, SocketStruct]:
        tracing.hop("channel", f"{self._name}.join", topic=socket.topic)
        result = await _call(self.channel.join, socket.topic, payload, socket)
        if isinstance(result, tuple):
            if len(result) == 2 and result[0] == "ok" and isinstance(result[1], SocketStruct):
                return ("ok", {}, result[1])
            if len(result) == 3 and result[0] == "ok" and isinstance(result[2], SocketStruct):
                return ("ok", result[1], result[2])
            if len(result) == 2 and result[0] == "error":
                return ("error", result[1], socket)
        raise CallbackError(
            f"channel {self._name}.join/3 is expected to return one of:\n\n"
            "    ('ok', socket) |\n    ('ok', reply, socket) |\n    ('error', reply)\n\n"
            f"got {result!r}"
        )

    def init_join(self, socket: SocketStruct) -> SocketStruct:
        """Watch the transport, and subscribe to the topic with fastlane metadata."""
        tracing.hop("channel_server", "ChannelServer.init_join", topic=socket.topic)
        self._transport_monitor = process.monitor(socket.transport_pid)  # type: ignore[arg-type]
        intercepts = frozenset(getattr(self.channel, "intercept", ()) or ()) or _NO_INTERCEPTS
        fastlane = Fastlane(socket.transport_pid, socket.serializer, intercepts)  # type: ignore[arg-type]
        socket.pubsub_server.subscribe(socket.topic, fastlane)
        return socket.replace(joined=True)

    # The mailbox loop

    async def _loop(self) -> Any:
        while True:
            message = await process.receive()
            try:
                outcome = await self._handle(message)
            except Exception as exc:
                logger.error("channel %s for %r crashed handling %s: %r", self._name,
                             self.socket.topic, _describe(message), exc, exc_info=exc)  # type: ignore[union-attr]
                await self._terminate(exc)
                return exc
            if outcome is not None:
                return outcome

    async def _handle(self, message: Any) -> Any:
        """Route one message; return an exit reason to stop, or None to go on."""
        socket = self.socket
        assert socket is not None
        if isinstance(message, Message) and message.topic == socket.topic:
            if message.event == "phx_leave":
                tracing.hop("channel_server", "ChannelServer.handle_info:phx_leave", topic=socket.topic)
                return await self._handle_in_result(("stop", ("shutdown", "left"), "ok",
                                                     socket.replace(ref=message.ref)))
            return await self._handle_in(message)
        if isinstance(message, Broadcast) and message.topic == socket.topic:
            if tracing.active is not None:
                tracing.hop("channel", f"{self._name}.handle_out", event=message.event)
            handle_out = getattr(self.channel, "handle_out", None) or _default_handle_out
            result = await _call(handle_out, message.event, message.payload, socket)
            return await self._result(result, "handle_out")
        if isinstance(message, Down) and message.pid == socket.transport_pid:
            if tracing.active is not None:
                tracing.hop("channel_server", "ChannelServer.handle_info:DOWN", reason=_describe(message.reason))
            reason = ("shutdown", "closed") if message.reason == "normal" else message.reason
            return await self._stop(reason)
        if isinstance(message, Close):
            return await self._stop(("shutdown", "closed"))
        handle_info = getattr(self.channel, "handle_info", None)
        if handle_info is None:
            logger.warning("%s received unexpected message in handle_info/2: %r", self._name, message)
            return None
        if tracing.active is not None:
            tracing.hop("channel", f"{self._name}.handle_info", message=_describe(message))
        result = await _call(handle_info, message, socket)
        return await self._result(result, "handle_info")

    async def _handle_in(self, message: Message) -> Any:
        socket = self.socket.replace(ref=message.ref)  # type: ignore[union-attr]
        if tracing.active is not None:
            tracing.hop("channel", f"{self._name}.handle_in", event=message.event)
        start = time.perf_counter_ns()
        result = await _call(self.channel.handle_in, message.event, message.payload, socket)
        telemetry.execute(
            telemetry.CHANNEL_HANDLED_IN,
            {"duration": time.perf_counter_ns() - start},
            {"ref": message.ref, "event": message.event, "params": message.payload, "socket": socket},
        )
        return await self._handle_in_result(result)

    # Handle results

    async def _handle_in_result(self, result: Any) -> Any:
        if isinstance(result, tuple) and len(result) == 3 and result[0] == "reply" \
                and isinstance(result[2], SocketStruct):
            self._reply(result[2], result[1])
            self.socket = result[2].replace(ref=None)
            return None
        if isinstance(result, tuple) and len(result) == 4 and result[0] == "stop" \
                and isinstance(result[3], SocketStruct):
            self._reply(result[3], result[2])
            return await self._result(("stop", result[1], result[3]), "handle_in")
        return await self._result(result, "handle_in")

    async def _result(self, result: Any, callback: str) -> Any:
        if isinstance(result, tuple) and len(result) == 2 and result[0] == "noreply" \
                and isinstance(result[1], SocketStruct):
            self.socket = result[1].replace(ref=None)
            return None
        if isinstance(result, tuple) and len(result) == 3 and result[0] == "stop" \
                and isinstance(result[2], SocketStruct):
            self.socket = result[2]
            return await self._stop(result[1])
        shapes = (
            "    ('noreply', socket) |\n"
            "    ('reply', status | (status, response), socket) |\n"
            "    ('stop', reason, socket) |\n"
            "    ('stop', reason, status | (status, response), socket)"
            if callback == "handle_in"
            else "    ('noreply', socket) |\n    ('stop', reason, socket)"
        )
        raise CallbackError(f"expected {callback} to return one of:\n\n{shapes}\n\ngot {result!r}")

    def _reply(self, socket: SocketStruct, reply: Any) -> None:
        if isinstance(reply, str):
            status, payload = reply, {}
        elif isinstance(reply, tuple) and len(reply) == 2 and isinstance(reply[0], str):
            status, payload = reply
        else:
            raise CallbackError(
                "channel replies from handle_in/3 are expected to be one of:\n\n"
                "    status\n    (status, response)\n\n"
                "for example ('reply', 'ok', socket) or ('reply', ('ok', {}), socket)\n\n"
                f"got {reply!r}"
            )
        if tracing.active is not None:
            tracing.hop("channel_server", "ChannelServer.reply", status=status)
        frame = socket.serializer.encode(  # type: ignore[union-attr]
            Reply(topic=socket.topic, status=status, payload=payload, ref=socket.ref, join_ref=socket.join_ref)
        )
        process.send(socket.transport_pid, frame)  # type: ignore[arg-type]

    async def _stop(self, reason: Any) -> Any:
        socket = self.socket
        assert socket is not None
        if process.is_clean_exit(reason):
            # A clean stop is announced to the transport, which tells the client phx_close.
            process.send(socket.transport_pid, SocketClose(process.current(), reason))  # type: ignore[arg-type]
        await self._terminate(reason)
        return reason

    async def _terminate(self, reason: Any) -> None:
        terminate = getattr(self.channel, "terminate", None)
        if terminate is None or self.socket is None:
            return
        tracing.hop("channel", f"{self._name}.terminate", reason=_describe(reason))
        try:
            await _call(terminate, reason, self.socket)
        except Exception as exc:
            logger.error("channel %s raised in terminate/2: %r", self._name, exc, exc_info=exc)

    @property
    def _name(self) -> str:
        channel = self.channel
        return channel.__name__ if isinstance(channel, type) else type(channel).__name__


def _default_handle_out(event: str, payload: Any, socket: SocketStruct) -> tuple[str, SocketStruct]:
    frame = socket.serializer.encode(  # type: ignore[union-attr]
        Message(topic=socket.topic, event=event, payload=payload, join_ref=socket.join_ref)
    )
    process.send(socket.transport_pid, frame)  # type: ignore[arg-type]
    return ("noreply", socket)


async def _call(function: Any, *args: Any) -> Any:
    """Call a user callback, awaiting it when it is ``async def``."""
    result = function(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


def _describe(value: Any) -> str:
    if isinstance(value, Message):
        return f"event {value.event!r}"
    if isinstance(value, Exception):
        return f"{type(value).__name__}: {value}"
    return repr(value)
