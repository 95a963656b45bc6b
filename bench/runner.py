"""The runner: starts each server in its own process, drives the load generator, measures.

For every repetition it goes through the servers in turn (A B C A B C …), so that
a slow spell of the machine weighs on every server alike. For each server it
starts a fresh server process and fresh load-generator workers, then:

1. warms up (a few connections and round trips, closed again);
2. reads the server's RSS, opens the largest N connections, each joined to the
   topic, and reads it again: that gives the connect + join rate and the memory
   per joined connection;
3. runs the fanout at that N, then closes everything and does the same for each
   smaller N (connect, join, fanout);
4. times sequential round trips (push → reply) on one client while the smallest
   N stay joined.

The server's CPU is read with psutil on its pid before and after each phase; the
workers report their own CPU, so the two are never mixed. A fanout that does not
finish in time counts what did not arrive as lost, and the server is restarted
before the next phase, so that its backlog does not weigh on what follows.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from .loadgen import worker_main

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


@dataclass
class Peer:
    """A server under test: how to start it, and what to call it."""

    name: str
    label: str
    command: Callable[[int], list[str]]
    env: dict[str, str] = field(default_factory=dict)


def _module(module: str) -> Callable[[int], list[str]]:
    return lambda port: [sys.executable, "-m", module, "--port", str(port)]


def _daphne(port: int) -> list[str]:
    return [sys.executable, "-m", "daphne", "-b", HOST, "-p", str(port), "--verbosity", "0",
            "bench.peers.django_channels:application"]


CHANNELS_ENV = {"DJANGO_SETTINGS_MODULE": "bench.peers.django_channels"}

PEERS: dict[str, Peer] = {
    "ours": Peer("ours", "channels_core (ours)", _module("bench.peers.ours")),
    "websockets": Peer("websockets", "websockets (bound)", _module("bench.peers.websockets_server")),
    "socketio": Peer("socketio", "python-socketio", _module("bench.peers.socketio_server")),
    "channels": Peer("channels", "Django Channels (in-memory)", _daphne,
                     {**CHANNELS_ENV, "BENCH_CHANNEL_LAYER": "memory"}),
    "channels-redis": Peer("channels-redis", "Django Channels (Redis)", _daphne,
                           {**CHANNELS_ENV, "BENCH_CHANNEL_LAYER": "redis"}),
}


@dataclass
class Settings:
    """What one run measures."""

    servers: list[str]
    sizes: list[int]  # N, largest first is how they run
    broadcasts: dict[int, int]  # N -> K
    repetitions: int = 3
    workers: int = 2
    roundtrips: int = 2000
    concurrency: int = 50  # connections opening at once, per worker
    fanout_timeout: float = 30.0
    connect_timeout: float = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"server did not listen on {port} within {timeout} s")


@contextlib.contextmanager
def redis_server() -> Iterator[str | None]:
    """A throwaway redis-server for the Channels Redis layer, or None without one."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    port = free_port()
    with tempfile.TemporaryDirectory() as workdir:
        proc = subprocess.Popen([binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no",
                                 "--dir", workdir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_listening(port, proc)  # type: ignore[arg-type]
            yield f"redis://{HOST}:{port}/0"
        finally:
            proc.terminate()
            proc.wait(10)


class ServerUnderTest:
    """One server process and the load-generator workers pointed at it."""

    def __init__(self, peer: Peer, workers: int, extra_env: dict[str, str]) -> None:
        self.peer = peer
        self.worker_count = workers
        self.extra_env = extra_env
        self.proc: subprocess.Popen[bytes] | None = None
        self.pipes: list[Any] = []
        self.workers: list[multiprocessing.Process] = []
        self.log = tempfile.TemporaryFile()

    # Lifecycle

    def start(self) -> None:
        port = free_port()
        env = {**os.environ, "PYTHONPATH": str(ROOT), **self.peer.env, **self.extra_env}
        self.proc = subprocess.Popen(self.peer.command(port), cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log)
        wait_listening(port, self.proc)
        self.ps = psutil.Process(self.proc.pid)
        context = multiprocessing.get_context("spawn")
        for _ in range(self.worker_count):
            parent, child = context.Pipe()
            worker = context.Process(target=worker_main, args=(child, HOST, port, self.peer.name), daemon=True)
            worker.start()
            self.pipes.append(parent)
            self.workers.append(worker)

    def stop(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError, EOFError):
                pipe.send({"op": "quit"})
                if pipe.poll(15):
                    pipe.recv()
        for worker in self.workers:
            worker.join(5)
            if worker.is_alive():
                worker.kill()
        self.pipes.clear()
        self.workers.clear()
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def server_log(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-2000:]

    # Talking to the workers

    def command(self, op: str, only: int | None = None, per_worker: list[dict[str, Any]] | None = None,
                wait: float = 300.0, **args: Any) -> list[dict[str, Any]]:
        """Send ``op`` to one worker or all, and gather their replies (at most ``wait`` seconds)."""
        targets = [only] if only is not None else list(range(len(self.pipes)))
        for index in targets:
            extra = per_worker[index] if per_worker else {}
            self.pipes[index].send({"op": op, **args, **extra})
        replies = []
        for index in targets:
            if not self.pipes[index].poll(wait):
                raise RuntimeError(f"worker {index} did not answer {op!r} within {wait} s")
            reply = self.pipes[index].recv()
            if "error" in reply:
                raise RuntimeError(f"worker {index}: {reply['error']}\nserver log:\n{self.server_log()}")
            replies.append(reply)
        return replies

    def cpu(self) -> tuple[float, float]:
        """The server's (user, system) CPU seconds so far."""
        times = self.ps.cpu_times()
        return times.user, times.system

    def rss(self) -> int:
        return self.ps.memory_info().rss

    # Phases

    def connect(self, count: int, concurrency: int, timeout: float) -> dict[str, Any]:
        split = [count // len(self.pipes) + (1 if i < count % len(self.pipes) else 0) for i in range(len(self.pipes))]
        before = self.command("mark")
        user0, sys0 = self.cpu()
        start = time.perf_counter()
        replies = self.command("connect", per_worker=[{"count": n} for n in split], concurrency=concurrency,
                               timeout=timeout, wait=timeout + 30)
        elapsed = time.perf_counter() - start
        user1, sys1 = self.cpu()
        connected = sum(r["connected"] for r in replies)
        failures = [f for r in replies for f in r["failures"]]
        server_cpu = (user1 - user0) + (sys1 - sys0)
        return {
            "wanted": count,
            "connected": connected,
            "failed": sum(r["failed"] for r in replies),
            "failures": failures,
            "seconds": elapsed,
            "rate": connected / elapsed if elapsed else 0.0,
            "server_cpu_us": server_cpu / max(connected, 1) * 1e6,
            "client_cpu_us": sum(r["cpu"] - b["cpu"] for r, b in zip(replies, before)) / max(connected, 1) * 1e6,
        }

    def fanout(self, k: int, timeout: float) -> dict[str, Any]:
        armed = self.command("arm", k=k)
        user0, sys0 = self.cpu()
        start = time.perf_counter()
        self.command("trigger", only=0, k=k)
        replies = self.command("wait_fanout", timeout=timeout, wait=timeout + 30)
        elapsed = time.perf_counter() - start
        user1, sys1 = self.cpu()
        delivered = sum(r["delivered"] for r in replies)
        server_cpu = (user1 - user0) + (sys1 - sys0)
        per = max(delivered, 1)
        return {
            "k": k,
            "complete": all(r["complete"] for r in replies),
            "expected": sum(r["expected"] for r in replies),
            "delivered": delivered,
            "lost": sum(r["lost"] for r in replies),
            "duplicated": sum(r["duplicated"] for r in replies),
            "reordered": sum(r["reordered"] for r in replies),
            "seconds": elapsed,
            "throughput": delivered / elapsed if elapsed else 0.0,
            "server_cpu_us": server_cpu / per * 1e6,
            "server_sys_share": (sys1 - sys0) / server_cpu if server_cpu else 0.0,
            "client_cpu_us": sum(r["cpu"] - a["cpu"] for r, a in zip(replies, armed)) / per * 1e6,
        }

    def roundtrip(self, count: int) -> dict[str, Any]:
        user0, sys0 = self.cpu()
        reply = self.command("roundtrip", only=0, count=count)[0]
        user1, sys1 = self.cpu()
        took = sorted(reply["ns"])
        return {
            "count": len(took),
            "p50_us": took[len(took) // 2] / 1000,
            "p99_us": took[min(len(took) - 1, int(len(took) * 0.99))] / 1000,
            "server_cpu_us": ((user1 - user0) + (sys1 - sys0)) / max(len(took), 1) * 1e6,
        }


def run_one(peer: Peer, settings: Settings, extra_env: dict[str, str], step: Callable[[str], None]) -> dict[str, Any]:
    """Every scenario against one fresh server process."""
    sut = ServerUnderTest(peer, settings.workers, extra_env)
    result: dict[str, Any] = {"server": peer.name, "fanout": {}}
    try:
        sut.start()
        sut.connect(4 * settings.workers, settings.concurrency, 30)  # warm-up: imports, caches, first paths
        sut.command("roundtrip", only=0, count=50)
        sut.command("close_all")
        time.sleep(0.2)
        sizes = sorted(settings.sizes, reverse=True)
        for index, n in enumerate(sizes):
            step(f"{peer.name}: connect {n}")
            rss_before = sut.rss()
            connect = sut.connect(n, settings.concurrency, settings.connect_timeout)
            if index == 0:
                result["connect"] = connect
                result["rss_per_conn_kib"] = (sut.rss() - rss_before) / max(connect["connected"], 1) / 1024
                result["rss_n"] = connect["connected"]
            step(f"{peer.name}: fanout {n}")
            fanout = sut.fanout(settings.broadcasts[n], settings.fanout_timeout)
            fanout["connected"] = connect["connected"]
            fanout["wanted"] = n
            result["fanout"][n] = fanout
            if not fanout["complete"]:
                sut.restart()  # its backlog must not weigh on what follows
                if index == len(sizes) - 1:
                    sut.connect(n, settings.concurrency, settings.connect_timeout)
            if index == len(sizes) - 1:
                step(f"{peer.name}: round trip")
                result["roundtrip"] = sut.roundtrip(settings.roundtrips)
            sut.command("close_all")
            time.sleep(0.2)
    except Exception as exc:  # one server failing must not lose the others' figures
        result["error"] = f"{exc}"
    finally:
        sut.stop()
    return result
