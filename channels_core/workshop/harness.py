"""The machinery every exercise checker shares: a verdict, a live server, no traceback.

No Phoenix counterpart: this is the workshop's marking scheme. A checker is an
``async def`` that receives a :class:`Run` and the learner's objects, drives a
real server, and either returns a one-line summary of what it saw (the exercise
passed) or raises :class:`Failed` with what was wrong and a hint. :func:`exercise`
turns it into the public ``check_…`` function, which

* prints exactly one line, ``✓ exercise N: passed — …`` or
  ``✗ exercise N: … Hint: …``, and returns True or False;
* turns any exception into that one line (its type and message), whether the
  learner's code raised it in the notebook or inside a server process, where
  the server logs it: log records are collected during the check, never printed,
  and the first error among them is quoted in a failure;
* stops every server it started and disconnects every client, the learner's
  included, even when the learner's code raised or hung (each check has a
  deadline), and waits for the processes and tasks of the run to end, so that one
  check leaves nothing behind for the next.

Why one line and no traceback: a traceback points into this package, and a
workshop learner needs to know what their own code did, not where ours noticed.
"""

from __future__ import annotations

import asyncio
import collections.abc
import contextlib
import functools
import gc
import inspect
import logging
import re
import reprlib
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Generator, Iterator
from typing import Any

from .. import client, process
from ..server import Server

__all__ = ["Failed", "Run", "exercise", "show"]

#: Seconds a whole check may take before it is stopped and reported.
CHECK_TIMEOUT = 20.0
#: Seconds to wait for one expected frame, reply or connection.
WAIT = 2.0
#: Seconds to wait, after a check, for its processes and tasks to end.
SETTLE = 3.0

#: Loggers a check silences and collects: the package's and the servers' under it.
_CAPTURED = ("channels_core", "uvicorn", "uvicorn.error", "uvicorn.access", "websockets", "asyncio")

_short = reprlib.Repr()
_short.maxstring = 80
_short.maxother = 80
_short.maxdict = 6
_short.maxlist = 6
_short.maxlevel = 3


def show(value: Any) -> str:
    """A short repr of ``value`` for a verdict line."""
    return _short.repr(value)


def describe_exception(exc: BaseException) -> str:
    """``KeyError: 'user'``: an exception as one line, type and message."""
    message = _one_line(str(exc))
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


class Failed(Exception):
    """What a check found wrong, and how to put it right.

    Args:
        problem: What was wrong, saying what was expected and what was seen,
            e.g. ``"the 4th join was accepted: expected error 'too many channels joined'"``.
        hint: Where to look or what to change; None for none.
    """

    def __init__(self, problem: str, hint: str | None = None) -> None:
        super().__init__(problem)
        self.problem = _one_line(problem)
        self.hint = _one_line(hint) if hint else None


class _LogCollector(logging.Handler):
    """Keeps the records a check's servers log, for the verdict to quote."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class _LogCapture:
    """Sends the servers' log lines to a collector, not to the notebook, for one check.

    uvicorn configures its loggers again each time a server is made (its ``Config``
    does), so :meth:`install` runs again after each one; :meth:`restore` puts back
    what was there before the check.
    """

    def __init__(self) -> None:
        self.collector = _LogCollector()
        self._saved = [
            (logger, logger.handlers[:], logger.level, logger.propagate)
            for logger in map(logging.getLogger, _CAPTURED)
        ]

    def install(self) -> None:
        for logger, _handlers, level, _propagate in self._saved:
            logger.handlers[:] = [self.collector]
            logger.propagate = False
            logger.setLevel(level if logging.NOTSET < level <= logging.WARNING else logging.WARNING)

    def restore(self) -> None:
        for logger, handlers, level, propagate in self._saved:
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate


@contextlib.contextmanager
def _collect_logs() -> Iterator[_LogCapture]:
    capture = _LogCapture()
    capture.install()
    try:
        yield capture
    finally:
        capture.restore()


class Run:
    """One run of a check: the servers and connections it opens, and what the servers logged.

    A checker starts servers with :meth:`server`, clients with :meth:`client`, and
    registers anything else to close with :meth:`defer`; all of it is closed when the
    check ends. It calls the learner's code through :meth:`call` or :meth:`acall`,
    which turn an exception into a :class:`Failed` naming it.
    """

    def __init__(self, number: int, capture: _LogCapture) -> None:
        self.number = number
        self._capture = capture
        self._servers: list[Server] = []
        self._clients: list[client.Socket] = []
        self._deferred: list[Callable[[], Awaitable[Any]]] = []
        # Clients that exist before the check belong to the learner: not ours to close.
        self._known_clients = weakref.WeakSet(_live_clients())
        self._tasks_before = set(asyncio.all_tasks())
        self._processes_before = set(process.processes())

    # Servers and connections

    async def server(self, app: Any) -> Server:
        """Start ``app`` on 127.0.0.1, on a port the OS picks; stopped when the check ends."""
        server = Server(app)
        self._capture.install()  # uvicorn's Config has just configured its loggers again
        await server.start()
        self._servers.append(server)
        return server

    async def client(self, url: str, **options: Any) -> client.Socket:
        """A connected :class:`channels_core.client.Socket`; disconnected when the check ends."""
        socket = client.Socket(url, **options)
        self._clients.append(socket)
        await socket.connect()
        return socket

    def defer(self, close: Callable[[], Awaitable[Any]]) -> None:
        """Await ``close()`` when the check ends, before the servers stop."""
        self._deferred.append(close)

    def learner_clients(self) -> list[client.Socket]:
        """Clients the learner's code made during the check and left connected."""
        return [s for s in _live_clients()
                if s not in self._known_clients and not any(s is c for c in self._clients) and s.is_connected()]

    # The learner's code

    def call(self, what: str, function: Callable[..., Any], *args: Any, hint: str | None = None) -> Any:
        """Call the learner's ``function``; an exception becomes a :class:`Failed`."""
        try:
            return function(*args)
        except Failed:
            raise
        except Exception as exc:
            raise Failed(f"{what} raised {describe_exception(exc)}", hint) from None

    async def acall(self, what: str, function: Callable[..., Any], *args: Any, hint: str | None = None) -> Any:
        """Call the learner's ``function``, awaiting it if it is ``async``; an exception becomes a :class:`Failed`."""
        result = self.call(what, function, *args, hint=hint)
        if not hasattr(result, "__await__"):
            return result
        try:
            return await result
        except Failed:
            raise
        except Exception as exc:
            raise Failed(f"{what} raised {describe_exception(exc)}", hint) from None

    # What the servers said

    def server_log(self, *, skip: str | None = None) -> str | None:
        """The first of the most severe records (a warning or worse), as one line; None if none.

        ``skip`` is a pattern for lines the check expects (a refusal it provoked).
        """
        records = [r for r in self._capture.collector.records if r.levelno >= logging.WARNING
                   and not (skip and re.search(skip, r.getMessage()))]
        if not records:
            return None
        worst = max(r.levelno for r in records)
        record = next(r for r in records if r.levelno == worst)
        # A pid's number differs every run and means nothing to the learner; its role does.
        # A repr'd exception keeps its newlines as "\n": one line reads better without them.
        message = _one_line(record.getMessage().replace("\\n", " "))
        message = re.sub(r"<pid \d+ ([^>]+)>", r"<\1 process>", message)
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            if type(exc).__name__ not in message:
                message = f"{message} ({describe_exception(exc)})"
        return f"{record.levelname} {record.name}: {message}"

    def logged(self, pattern: str) -> bool:
        """Whether any record collected so far matches ``pattern``."""
        return any(re.search(pattern, r.getMessage()) for r in self._capture.collector.records)

    def with_log(self, problem: str, *, skip: str | None = None) -> str:
        """``problem``, then what the server logged, if it logged a warning or worse."""
        line = self.server_log(skip=skip)
        return f"{problem}; the server logged: {line}" if line else problem

    # The end

    async def close(self) -> None:
        """Close what the run opened, the learner's clients too; wait for its processes and tasks."""
        for close in reversed(self._deferred):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(close(), SETTLE)
        stray = [s for s in _live_clients() if s not in self._known_clients]
        for socket in stray:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(socket.disconnect(), SETTLE)
        for server in reversed(self._servers):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.stop(), SETTLE * 2)
        await self._settle()

    async def _settle(self) -> None:
        loop = asyncio.get_running_loop()
        exited: list[asyncio.Future[None]] = []
        for pid in process.processes():
            if pid not in self._processes_before:
                done = loop.create_future()
                process.on_exit(pid, lambda _pid, done=done: done.done() or done.set_result(None))
                exited.append(done)
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t not in self._tasks_before and t is not current and not t.done()]
        pending = [*exited, *tasks]
        if pending:
            # Whatever still runs after this is the learner's own (a task they started).
            await asyncio.wait(pending, timeout=SETTLE)


def _live_clients() -> list[client.Socket]:
    # type(), not isinstance(): isinstance raises on a dead weak proxy, and gc lists those too.
    return [o for o in gc.get_objects() if issubclass(type(o), client.Socket)]


class Pending(collections.abc.Coroutine):  # type: ignore[type-arg]
    """What ``check_…(…)`` returns: the check runs when it is awaited (or given to ``asyncio.run``).

    Shown without ``await``, it says so, rather than showing a bare coroutine
    object; and as the check's coroutine is only made when it first runs, no
    "coroutine was never awaited" warning follows.
    """

    def __init__(self, number: int, name: str, run: Callable[[], Coroutine[Any, Any, bool]]) -> None:
        self._number = number
        self._name = name
        self._run = run
        self._coroutine: Coroutine[Any, Any, bool] | None = None

    def _started(self) -> Coroutine[Any, Any, bool]:
        if self._coroutine is None:
            self._coroutine = self._run()
        return self._coroutine

    def __await__(self) -> Generator[Any, None, bool]:
        return self._started().__await__()

    def send(self, value: Any) -> Any:
        return self._started().send(value)

    def throw(self, *args: Any) -> Any:
        return self._started().throw(*args)

    def close(self) -> None:
        if self._coroutine is not None:
            self._coroutine.close()

    def __repr__(self) -> str:
        return (f"✗ exercise {self._number}: the check has not run. Hint: write "
                f"`await {self._name}(...)`: a check starts a server, so it is awaited.")


Checker = Callable[..., Awaitable[str]]


def exercise(number: int, *, timeout: float = CHECK_TIMEOUT) -> Callable[[Checker], Callable[..., Pending]]:
    """Make ``checker(run, *args)`` the public check of exercise ``number``.

    The checker returns a summary of what it saw pass, or raises :class:`Failed`.
    """

    def decorate(checker: Checker) -> Callable[..., Pending]:
        name = checker.__name__

        @functools.wraps(checker)
        def check(*args: Any) -> Pending:
            return Pending(number, name, functools.partial(_verdict, number, timeout, checker, args))

        check.__name__ = check.__qualname__ = name
        # What the learner calls it with: the checker's parameters after ``run``.
        signature = inspect.signature(checker)
        check.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=list(signature.parameters.values())[1:], return_annotation="Pending")
        check.exercise = number  # type: ignore[attr-defined]
        return check

    return decorate


async def _verdict(number: int, timeout: float, checker: Checker, args: tuple[Any, ...]) -> bool:
    with _collect_logs() as capture:
        run = Run(number, capture)
        deadline = asyncio.timeout(timeout)
        try:
            async with deadline:
                summary = await checker(run, *args)
        except Failed as failure:
            line = f"✗ exercise {number}: {failure.problem}"
            if failure.hint:
                line += (" " if failure.problem.endswith((".", "?", "!")) else ". ") + f"Hint: {failure.hint}"
        except TimeoutError as exc:
            if deadline.expired():
                line = run.with_log(f"✗ exercise {number}: the check did not finish within {timeout:g} s")
                line += (". Hint: something waits forever: a join or handle_in that never returns, "
                         "or a reply that never comes.")
            else:
                line = _could_not_run(number, exc)
        except Exception as exc:  # an object so unlike the one asked for that the check tripped on it
            line = _could_not_run(number, exc)
        else:
            line = f"✓ exercise {number}: passed — {summary}"
        finally:
            await run.close()
    print(line)
    return line.startswith("✓")


def _could_not_run(number: int, exc: BaseException) -> str:
    return (f"✗ exercise {number}: the check could not run your code: {describe_exception(exc)}. "
            "Hint: compare your definition with the one the exercise asks for (names, arguments, return values).")
