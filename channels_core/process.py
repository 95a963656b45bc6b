"""BEAM-style processes on asyncio: the ground everything else stands on.

Phoenix never says "process" in its API, yet every answer the talk gives ends in
one: a socket is a process, a channel is a process, a reply is a message sent to a
process. This module gives Python the same vocabulary. A process is an asyncio task
with a mailbox; ``spawn`` starts one, ``send`` drops a message in its mailbox,
``receive`` takes the first message that matches (selective receive, as Erlang's
``receive ... after``), and ``monitor`` asks to be told, with a :class:`Down`
message, when another process exits and why.

An exception inside a process ends that process only: it is logged, its monitors
get ``Down(reason=<the exception>)``, and every other process carries on. That is
the whole promise of "let it crash", and the rest of the package relies on it.

Exit reasons are plain values, as in Erlang: ``"normal"``, ``"shutdown"``,
``("shutdown", detail)`` for a clean stop with a reason, or the exception that
ended the process. :func:`is_clean_exit` tells which is which.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from . import tracing

__all__ = [
    "Down",
    "Pid",
    "Process",
    "Ref",
    "current",
    "demonitor",
    "exit",
    "is_alive",
    "is_clean_exit",
    "make_ref",
    "monitor",
    "on_exit",
    "processes",
    "receive",
    "send",
    "spawn",
]

logger = logging.getLogger("channels_core.process")

_pid_counter = itertools.count(1)
_ref_counter = itertools.count(1)

#: Every live process, by pid: the registry that tests and the tracer read.
_registry: dict[Pid, Process] = {}

#: The process the running task belongs to, like Erlang's ``self()``.
_current: contextvars.ContextVar[Process | None] = contextvars.ContextVar(
    "channels_core_current_process", default=None
)


@dataclass(frozen=True, slots=True)
class Pid:
    """A process identifier: cheap to copy, hash and send around.

    Attributes:
        id: A number unique for the life of the Python process, e.g. ``12``.
        role: What the process is for, e.g. ``"socket"`` or ``"channel room:lobby"``.
    """

    id: int
    role: str = field(default="process", compare=False)

    def __repr__(self) -> str:
        return f"<pid {self.id} {self.role}>"


@dataclass(frozen=True, slots=True)
class Ref:
    """A unique reference, as Erlang's ``make_ref()``: names a monitor or a request."""

    id: int

    def __repr__(self) -> str:
        return f"#Ref<{self.id}>"


def make_ref() -> Ref:
    """Return a reference no other call to ``make_ref`` will return."""
    return Ref(next(_ref_counter))


@dataclass(frozen=True, slots=True)
class Down:
    """The message a monitoring process receives when the monitored one exits.

    Attributes:
        ref: The reference :func:`monitor` returned.
        pid: The process that exited.
        reason: Why: ``"normal"``, ``"shutdown"``, ``("shutdown", "left")``,
            ``"noproc"`` if it was already dead, or the exception that ended it.
    """

    ref: Ref
    pid: Pid
    reason: Any


def is_clean_exit(reason: Any) -> bool:
    """Tell a clean exit (normal or shutdown) from a crash, as OTP does."""
    if reason in ("normal", "shutdown"):
        return True
    return isinstance(reason, tuple) and len(reason) == 2 and reason[0] == "shutdown"


class Process:
    """The runtime side of a pid: its task, mailbox and monitors.

    User code rarely touches this class; it talks to pids through :func:`send`,
    :func:`receive` and :func:`monitor`, as Erlang code does.
    """

    # Slots, not a __dict__: a server keeps two processes per joined topic alive, and
    # thousands of small dicts are memory, and work for the garbage collector.
    __slots__ = ("pid", "mailbox", "task", "exit_reason", "fast_receiver", "max_mailbox", "on_mailbox_full",
                 "_monitored_by", "_monitoring", "_waiter", "_kill_reason", "_exit_hooks")

    # Public attributes

    pid: Pid
    mailbox: deque[Any]
    """Messages not received yet, oldest first."""
    fast_receiver: Callable[[Any], bool] | None
    """Takes a message at once, in the sender's call, when the mailbox is empty; see :meth:`_deliver`."""
    max_mailbox: int | None
    """How many messages may wait; None (the default, and Erlang's only way) for no bound."""
    on_mailbox_full: Callable[[Pid], None] | None
    """Called, once, with the pid when a message finds ``max_mailbox`` waiting; see :meth:`_deliver`."""

    def __init__(self, role: str) -> None:
        self.pid = Pid(next(_pid_counter), role)
        self.mailbox = deque()
        self.task: asyncio.Task[None] | None = None
        self.fast_receiver = None
        self.max_mailbox = None
        self.on_mailbox_full = None
        self.exit_reason: Any = None
        # ref -> the pid that asked to be told when we exit
        self._monitored_by: dict[Ref, Pid] = {}
        # ref -> the pid we monitor, so that demonitor can find the other side
        self._monitoring: dict[Ref, Pid] = {}
        self._waiter: asyncio.Future[None] | None = None
        self._kill_reason: Any = None
        self._exit_hooks: list[Callable[[Pid], None]] = []

    # Private methods

    def _deliver(self, message: Any) -> None:
        # The one shortcut in the process model. A process whose whole job for some
        # messages is to pass them on (a transport writing frames to its client) may
        # set a fast receiver: while nothing waits in its mailbox it is offered each
        # message first, in the sender's own call, and returns True if it took it.
        # Order is kept: a message is only ever taken this way when every message
        # sent before it has been handled already (the mailbox is empty, and the
        # receiver itself declines while it is busy with one). Anything declined
        # goes to the mailbox, as always.
        receiver = self.fast_receiver
        if receiver is not None and not self.mailbox and receiver(message):
            return
        if self.max_mailbox is not None and len(self.mailbox) >= self.max_mailbox:
            self._mailbox_full()  # a bounded mailbox drops what does not fit
            return
        self.mailbox.append(message)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _mailbox_full(self) -> None:
        # A bound Erlang does not put on mailboxes, and the one way here to stop a process
        # that cannot keep up from holding ever more: a transport whose client stopped
        # reading waits in its write, and cannot police its own mailbox meanwhile. Like
        # Erlang's max_heap_size flag, the runtime enforces it on the process's behalf:
        # the message is dropped, and the owner is told (once) to end the process.
        hook, self.on_mailbox_full = self.on_mailbox_full, None
        if hook is not None:
            hook(self.pid)

    async def _run(self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...]) -> None:
        _current.set(self)
        reason: Any = "normal"
        try:
            result = await fn(*args)
            # A process function may return its exit reason, as a GenServer's stop does.
            if result is not None:
                reason = result
        except asyncio.CancelledError:
            # Cancellation is how exit/2 reaches a task; the reason was stored first.
            reason = self._kill_reason if self._kill_reason is not None else "killed"
        except Exception as exc:
            reason = exc
            logger.error("! process %r crashed: %r", self.pid, exc, exc_info=exc)
        finally:
            self._exit(reason)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        # A task cancelled before its first step never enters _run, so its finally
        # never runs: exit/2 right after spawn would otherwise leave a zombie pid.
        if self.pid in _registry:
            self._exit(self._kill_reason if self._kill_reason is not None else "killed")

    def _exit(self, reason: Any) -> None:
        self.exit_reason = reason
        self.fast_receiver = self.on_mailbox_full = None
        _registry.pop(self.pid, None)
        if tracing.active is not None:
            tracing.active.process_exit(self.pid, reason)
        for ref, watched in self._monitoring.items():
            target = _registry.get(watched)
            if target is not None:
                target._monitored_by.pop(ref, None)
        self._monitoring.clear()
        for ref, watcher in self._monitored_by.items():
            _deliver_down(watcher, ref, self.pid, reason)
        self._monitored_by.clear()
        self.mailbox.clear()
        for hook in self._exit_hooks:
            try:
                hook(self.pid)
            except Exception:
                logger.exception("! exit hook of %r failed", self.pid)
        self._exit_hooks.clear()


def _deliver_down(watcher: Pid, ref: Ref, pid: Pid, reason: Any) -> None:
    process = _registry.get(watcher)
    if process is None:
        return
    process._monitoring.pop(ref, None)
    if tracing.active is not None:
        tracing.active.process_down(watcher, pid, reason)
    process._deliver(Down(ref, pid, reason))


# Public API


def spawn(fn: Callable[..., Awaitable[Any]], *args: Any, role: str = "process") -> Pid:
    """Start ``fn(*args)`` as a new process and return its pid at once.

    The function runs in its own task; inside it, :func:`current` is the new pid.
    Whatever ``fn`` returns becomes the exit reason (``None`` means ``"normal"``).
    """
    process = Process(role)
    _registry[process.pid] = process
    if tracing.active is not None:
        tracing.active.process_spawn(current_pid_or_none(), process.pid)
    # A fresh context, so that the new process does not inherit its parent's identity.
    ctx = contextvars.copy_context()
    process.task = asyncio.get_running_loop().create_task(
        process._run(fn, args), name=repr(process.pid), context=ctx
    )
    process.task.add_done_callback(process._task_done)
    return process.pid


def adopt(role: str) -> Process:
    """Make the running task a process, for tasks we do not start ourselves.

    The ASGI server starts one task per connection; adopting it makes that task the
    transport process, as Cowboy's connection process is for Phoenix. Call
    :func:`release` when the task is done.
    """
    process = Process(role)
    process.task = asyncio.current_task()  # type: ignore[assignment]
    _registry[process.pid] = process
    _current.set(process)
    if tracing.active is not None:
        tracing.active.process_spawn(None, process.pid)
    return process


def release(process: Process, reason: Any) -> None:
    """End an adopted process: its monitors get ``Down`` with ``reason``."""
    _current.set(None)
    process._exit(reason)


def current() -> Pid:
    """The pid of the calling process, like Erlang's ``self()``.

    Raises:
        RuntimeError: if the caller is not running inside a process.
    """
    process = _current.get()
    if process is None:
        raise RuntimeError("not running inside a process")
    return process.pid


def current_pid_or_none() -> Pid | None:
    process = _current.get()
    return None if process is None else process.pid


def send(pid: Pid, message: Any) -> None:
    """Drop ``message`` in the mailbox of ``pid``; a dead pid drops it silently.

    Sending never blocks and never fails, exactly as in Erlang: whoever cares
    whether the message arrived monitors the receiver.
    """
    process = _registry.get(pid)
    if tracing.active is not None:
        tracing.active.process_send(current_pid_or_none(), pid, message)
    if process is not None:
        process._deliver(message)


async def receive(
    match: Callable[[Any], bool] | None = None, *, timeout: float | None = None
) -> Any:
    """Take the oldest message in the caller's mailbox that ``match`` accepts.

    Messages that do not match stay in the mailbox, in order, for a later
    ``receive``: that is selective receive, and it is what lets a socket wait for
    one channel's join reply while other messages queue up behind it.

    Raises:
        TimeoutError: if nothing matched within ``timeout`` seconds.
    """
    process = _current.get()
    if process is None:
        raise RuntimeError("receive called outside a process")
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    scanned = 0
    while True:
        mailbox = process.mailbox
        if match is None:
            if mailbox:
                return mailbox.popleft()
        else:
            # Only scan what arrived since the last look: older ones did not match.
            for index in range(scanned, len(mailbox)):
                message = mailbox[index]
                if match(message):
                    del mailbox[index]
                    return message
            scanned = len(mailbox)
        remaining = None if deadline is None else deadline - loop.time()
        if remaining is not None and remaining <= 0:
            raise TimeoutError("no matching message")
        waiter = loop.create_future()
        process._waiter = waiter
        try:
            if remaining is None:
                await waiter
            else:
                # Not asyncio.wait_for: on Python 3.11 it swallows a cancellation that
                # lands in the same loop iteration as a delivery, and the process would
                # then wait out its whole timeout after being cancelled.
                async with asyncio.timeout(remaining):
                    await waiter
        except TimeoutError:
            pass
        finally:
            process._waiter = None


def monitor(pid: Pid) -> Ref:
    """Ask to receive ``Down(ref, pid, reason)`` when ``pid`` exits.

    Monitoring a pid that is already dead delivers ``Down`` with reason
    ``"noproc"`` at once, so the caller never waits for an exit that happened.
    """
    watcher = _current.get()
    if watcher is None:
        raise RuntimeError("monitor called outside a process")
    ref = make_ref()
    target = _registry.get(pid)
    if tracing.active is not None:
        tracing.active.process_monitor(watcher.pid, pid)
    if target is None:
        watcher._deliver(Down(ref, pid, "noproc"))
        return ref
    target._monitored_by[ref] = watcher.pid
    watcher._monitoring[ref] = pid
    return ref


def demonitor(ref: Ref, *, flush: bool = False) -> None:
    """Stop a monitor; with ``flush``, also drop a ``Down`` for it already queued."""
    watcher = _current.get()
    if watcher is None:
        raise RuntimeError("demonitor called outside a process")
    pid = watcher._monitoring.pop(ref, None)
    if pid is not None:
        target = _registry.get(pid)
        if target is not None:
            target._monitored_by.pop(ref, None)
    if flush:
        for message in list(watcher.mailbox):
            if isinstance(message, Down) and message.ref == ref:
                watcher.mailbox.remove(message)


def exit(pid: Pid, reason: Any) -> None:  # noqa: A001 - Erlang's name, on purpose
    """End ``pid`` from outside with ``reason``, like Erlang's ``exit/2``.

    The target does not get to run any more code of its own (no ``terminate``):
    this is how a duplicate join kills the old channel. ``"normal"`` is ignored,
    as it is for a process that does not trap exits.
    """
    if reason == "normal":
        return
    process = _registry.get(pid)
    if process is None or process.task is None or process.task.done():
        return
    process._kill_reason = reason
    process.task.cancel()


def on_exit(pid: Pid, hook: Callable[[Pid], None]) -> None:
    """Call ``hook(pid)`` when ``pid`` exits (at once if it already has).

    This is how a table keyed by pid, such as PubSub's subscribers, cleans up after
    a process without being a process itself: Elixir's Registry does the same with
    links.
    """
    process = _registry.get(pid)
    if process is None:
        hook(pid)
    else:
        process._exit_hooks.append(hook)


def is_alive(pid: Pid) -> bool:
    """True while ``pid`` has not exited."""
    return pid in _registry


def processes() -> list[Pid]:
    """The pids of every live process, oldest first."""
    return list(_registry)


def lookup(pid: Pid) -> Process | None:
    """The :class:`Process` behind ``pid``, or None once it has exited."""
    return _registry.get(pid)


def iter_processes(role_prefix: str = "") -> Iterator[Pid]:
    """Live pids whose role starts with ``role_prefix``."""
    return (pid for pid in _registry if pid.role.startswith(role_prefix))
