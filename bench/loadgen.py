"""The load generator: WebSocket clients in worker processes, driven by the runner.

One load generator serves every server under test, so that the clients cost the
same whatever they talk to. Each worker process runs one asyncio loop with many
connections, and answers the runner's commands over a pipe: connect and join,
arm a fanout, trigger it, wait for it, time round trips, close everything. Each
reply carries the CPU time the worker itself spent (``time.process_time``), so
that the client's share of the machine is reported apart from the server's.

A client is an ``asyncio.Protocol`` around the ``websockets`` sans-I/O
``ClientProtocol``: no task per connection and no queue, only parsing, which keeps
the client as cheap as it can be on a machine it shares with the server.

Two wire dialects are spoken (see :class:`Dialect`): Phoenix's V2 JSON arrays,
used by our server and, so that the frames are the same size, by the plain
``websockets`` peer and the Django Channels peer; and Socket.IO (Engine.IO 4),
for python-socketio.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing.connection
import resource
import time
from collections.abc import Callable
from typing import Any

from websockets.client import ClientProtocol
from websockets.frames import Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

TOPIC = "bench:1"


def raise_fd_limit() -> None:
    """Thousands of sockets need thousands of file descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# What each server speaks


class Dialect:
    """Phoenix V2 frames: ``[join_ref, ref, topic, event, payload]``."""

    name = "phoenix"
    #: Our server closes a connection that sends nothing for 60 s, as Phoenix does.
    heartbeat_every: float | None = None

    def __init__(self, path: str) -> None:
        self.path = path

    def handshake(self, client: Client) -> None:
        """Anything to send before joining (Socket.IO's namespace connect)."""
        client.opened.set_result(None)

    def join(self, ref: int) -> str:
        return json.dumps(["1", str(ref), TOPIC, "phx_join", {}])

    def push(self, ref: int, event: str, payload: dict[str, Any]) -> str:
        return json.dumps(["1", str(ref), TOPIC, event, payload])

    def heartbeat(self) -> str:
        return '[null,"hb","phoenix","heartbeat",{}]'

    def on_text(self, client: Client, text: str) -> None:
        if text.startswith("[null,null,"):  # a broadcast: [null,null,topic,"bench_msg",{"i":i}]
            client.on_broadcast(json.loads(text)[4]["i"])
            return
        frame = json.loads(text)
        if frame[3] == "phx_reply" and frame[1] is not None:
            client.on_reply(int(frame[1]) if frame[1] != "hb" else -1, frame[4]["status"] == "ok")


class SocketIODialect(Dialect):
    """Engine.IO 4 / Socket.IO 5 over WebSocket: ``42["event", data]``, acks ``43<id>[data]``."""

    name = "socketio"

    def handshake(self, client: Client) -> None:
        pass  # wait for the server's open packet ("0{...}"), then connect to the namespace

    def join(self, ref: int) -> str:
        return f'42{ref}["join","{TOPIC}"]'

    def push(self, ref: int, event: str, payload: dict[str, Any]) -> str:
        return f"42{ref}" + json.dumps([event, payload])

    def on_text(self, client: Client, text: str) -> None:
        if text.startswith('42["bench_msg"'):
            client.on_broadcast(json.loads(text[2:])[1]["i"])
        elif text.startswith("43"):
            bracket = text.index("[")
            client.on_reply(int(text[2:bracket]), True)
        elif text == "2":  # Engine.IO ping: answer or be dropped
            client.send_text("3")
        elif text.startswith("0{"):
            client.send_text("40")
        elif text.startswith("40"):
            if not client.opened.done():
                client.opened.set_result(None)
        elif text.startswith("44"):
            if not client.opened.done():
                client.opened.set_exception(ConnectionError(f"socket.io refused: {text}"))


class PhoenixWithHeartbeat(Dialect):
    """Our server, which closes a silent connection after 60 s, as Phoenix does."""

    heartbeat_every = 30.0


DIALECTS: dict[str, Callable[[], Dialect]] = {
    "ours": lambda: PhoenixWithHeartbeat("/socket/websocket?vsn=2.0.0"),
    "websockets": lambda: Dialect("/"),
    "channels": lambda: Dialect("/socket"),
    "channels-redis": lambda: Dialect("/socket"),
    "socketio": lambda: SocketIODialect("/socket.io/?EIO=4&transport=websocket"),
}


# One connection


class Client(asyncio.Protocol):
    """One WebSocket connection that records the broadcasts it receives."""

    def __init__(self, url: str, dialect: Dialect) -> None:
        self.dialect = dialect
        self.ws = ClientProtocol(parse_uri(url), max_size=None)
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.replies: dict[int, asyncio.Future[bool]] = {}
        self.next_ref = 1
        self.arm(0)

    # The fanout record: which of 1..k arrived, how often, in what order.

    def arm(self, k: int) -> None:
        self.expected = k
        self.seen = bytearray(k + 1)
        self.received = 0
        self.distinct = 0
        self.reordered = 0
        self.highest = 0
        self.done = asyncio.get_running_loop().create_future() if k else None

    def on_broadcast(self, i: int) -> None:
        self.received += 1
        if 0 < i <= self.expected and not self.seen[i]:
            self.seen[i] = 1
            self.distinct += 1
            if i < self.highest:
                self.reordered += 1
            else:
                self.highest = i
            if self.distinct == self.expected and self.done is not None and not self.done.done():
                self.done.set_result(None)

    def on_reply(self, ref: int, ok: bool) -> None:
        future = self.replies.pop(ref, None)
        if future is not None and not future.done():
            future.set_result(ok)

    # Sending

    def send_text(self, text: str) -> None:
        self.ws.send_text(text.encode())
        self._flush()

    def request(self, make: Callable[[int], str]) -> asyncio.Future[bool]:
        """Send a frame that the server answers, and return the future of the answer."""
        ref = self.next_ref
        self.next_ref += 1
        future = asyncio.get_running_loop().create_future()
        self.replies[ref] = future
        self.send_text(make(ref))
        return future

    def _flush(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            for chunk in self.ws.data_to_send():
                if chunk:
                    self.transport.write(chunk)

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.ws.send_request(self.ws.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if isinstance(event, Response):
                if event.status_code != 101:
                    self.opened.set_exception(ConnectionError(f"upgrade refused: {event.status_code}"))
                else:
                    self.dialect.handshake(self)
            elif event.opcode is Opcode.TEXT:
                self.dialect.on_text(self, event.data.decode())
        self._flush()  # pongs, close replies
        if self.ws.close_expected() and self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"connection lost during handshake: {exc}"))
        if not self.closed.done():
            self.closed.set_result(None)
        for future in self.replies.values():
            if not future.done():
                future.set_exception(ConnectionError("connection lost"))

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.ws.send_close(1000)
            self._flush()
            self.transport.close()


# The worker


class Worker:
    """The clients of one worker process, and the commands the runner gives them."""

    def __init__(self, host: str, port: int, server: str) -> None:
        self.host, self.port = host, port
        self.dialect = DIALECTS[server]()
        self.url = f"ws://{host}:{port}{self.dialect.path}"
        self.clients: list[Client] = []
        self._heartbeat: asyncio.Task[None] | None = None

    async def open_one(self) -> Client:
        loop = asyncio.get_running_loop()
        _, client = await loop.create_connection(lambda: Client(self.url, self.dialect), self.host, self.port)
        await client.opened
        if not await client.request(self.dialect.join):
            raise ConnectionError("join refused")
        return client

    async def connect(self, count: int, concurrency: int, timeout: float) -> dict[str, Any]:
        """Open ``count`` connections, each joined to the topic, ``concurrency`` at a time."""
        limit = asyncio.Semaphore(concurrency)
        failures: list[str] = []

        async def one() -> None:
            async with limit:
                try:
                    self.clients.append(await self.open_one())
                except (OSError, ConnectionError) as exc:
                    failures.append(repr(exc))

        try:
            await asyncio.wait_for(asyncio.gather(*(one() for _ in range(count))), timeout)
        except TimeoutError:
            failures.append(f"timed out after {timeout} s")
        if self.dialect.heartbeat_every and self._heartbeat is None:
            self._heartbeat = asyncio.get_running_loop().create_task(self._heartbeats())
        return {"connected": len(self.clients), "failures": failures[:3], "failed": len(failures)}

    async def _heartbeats(self) -> None:
        frame = self.dialect.heartbeat()
        while True:
            await asyncio.sleep(self.dialect.heartbeat_every)  # type: ignore[arg-type]
            for client in self.clients:
                client.send_text(frame)

    def mark(self) -> dict[str, Any]:
        """Nothing but the reply: its ``cpu`` starts a measurement."""
        return {}

    def arm(self, k: int) -> dict[str, Any]:
        for client in self.clients:
            client.arm(k)
        return {}

    def trigger(self, k: int) -> dict[str, Any]:
        """Ask the server, through our first client, to broadcast ``k`` messages to the topic."""
        reply = self.clients[0].request(lambda ref: self.dialect.push(ref, "bench_broadcast", {"n": k}))
        # Nobody waits for this reply; a server restarted mid-fanout fails it, quietly.
        reply.add_done_callback(lambda future: future.cancelled() or future.exception())
        return {}

    async def wait_fanout(self, timeout: float) -> dict[str, Any]:
        waiting = [c.done for c in self.clients if c.done is not None and not c.done.done()]
        complete = True
        if waiting:
            _, pending = await asyncio.wait(waiting, timeout=timeout)
            complete = not pending
        expected = sum(c.expected for c in self.clients)
        distinct = sum(c.distinct for c in self.clients)
        received = sum(c.received for c in self.clients)
        return {
            "complete": complete,
            "expected": expected,
            "delivered": distinct,
            "lost": expected - distinct,
            "duplicated": received - distinct,
            "reordered": sum(c.reordered for c in self.clients),
        }

    async def roundtrip(self, count: int) -> dict[str, Any]:
        """``count`` pushes, one after the other, each waiting for its reply: nanoseconds each."""
        client = self.clients[0]
        took: list[int] = []
        clock = time.perf_counter_ns
        for n in range(count):
            start = clock()
            await client.request(lambda ref, n=n: self.dialect.push(ref, "ping", {"n": n}))
            took.append(clock() - start)
        return {"ns": took}

    async def close_all(self) -> dict[str, Any]:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None
        for client in self.clients:
            client.close()
        if self.clients:
            await asyncio.wait([c.closed for c in self.clients], timeout=10)
        self.clients.clear()
        return {}


async def _serve(pipe: multiprocessing.connection.Connection, worker: Worker) -> None:
    loop = asyncio.get_running_loop()
    commands: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    loop.add_reader(pipe.fileno(), lambda: commands.put_nowait(pipe.recv()))
    while True:
        command = await commands.get()
        op = command.pop("op")
        if op == "quit":
            await worker.close_all()
            pipe.send({"cpu": time.process_time()})
            return
        try:
            result = getattr(worker, op)(**command)
            if asyncio.iscoroutine(result):
                result = await result
        except Exception as exc:  # the runner reports it; the worker stays up
            result = {"error": f"{op}: {exc!r}"}
        # The worker's own CPU so far: the runner subtracts two replies to time a phase.
        result["cpu"] = time.process_time()
        pipe.send(result)


def worker_main(pipe: multiprocessing.connection.Connection, host: str, port: int, server: str) -> None:
    """The entry point of a worker process."""
    raise_fd_limit()
    asyncio.run(_serve(pipe, Worker(host, port, server)))
