"""The load run behind ``bench/LOAD.md``: 2,000 sockets on one topic, 100 broadcasts.

``tests/test_load.py`` makes the same promise at a size CI can afford (200 sockets,
20 broadcasts, server and clients in one process). This script makes it at full
size, with the server in a process of its own so that its memory and CPU can be
read apart from the clients':

1. start the demo server (``channels_core.demo``) in a child process, with one
   extra page, ``/stats``, that reports what lives inside it: processes, asyncio
   tasks, PubSub topics and subscriptions, monitors, channel processes, live
   objects of the package's classes, resident memory;
2. connect N WebSocket clients (``vsn=2.0.0``), each joined to ``bench:load``;
3. have one of them ask its channel for M broadcasts (the demo's
   ``bench_broadcast``, the way a chat message is broadcast), and check that every
   client receives exactly ``bench_msg`` 1..M, once each, in order, and nothing else;
4. close every client and wait until the server reports its baseline again;
5. do it all again (three rounds in all): memory that grows from one round to the
   next is a leak, memory that Python's allocator keeps after the first round is not.

Run it with ``.venv/bin/python bench/load_2000.py`` (``--sockets`` and
``--broadcasts`` to change the size, ``--no-write`` to leave LOAD.md alone). It
raises its soft file-descriptor limit to the hard limit: 2,000 sockets need more
than the usual 1,024. Linux only (it reads ``/proc``).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import ctypes
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import uvicorn
import websockets

HERE = Path(__file__).resolve().parent
TOPIC = "bench:load"
#: What the server keeps per connection, as /stats counts it: all must return to the baseline.
PER_CONNECTION = ("processes", "channels", "tasks", "topics", "subscribed_pids", "monitors", "package_objects")


def raise_fd_limit() -> tuple[int, int]:
    """Raise the soft limit on open files to the hard limit; return the new (soft, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def rss_kib(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


# --------------------------------------------------------------------------
# The server process
# --------------------------------------------------------------------------


def serve() -> None:
    """Serve the demo app on an ephemeral port; print the port; answer /stats."""
    raise_fd_limit()
    from channels_core import process
    from channels_core.demo import create_app
    from channels_core.demo.pages import pages
    from channels_core.server import Server

    app = create_app()

    try:
        libc: Any = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: resident memory is then read as it is
        libc = None

    def stats() -> dict[str, Any]:
        gc.collect()
        if libc is not None:
            # glibc keeps freed memory for the process's next allocations; hand it back,
            # so that resident memory shows what is in use rather than what once was.
            libc.malloc_trim(0)
        objects: collections.Counter[str] = collections.Counter()
        for obj in gc.get_objects():
            module = type(obj).__module__
            if isinstance(module, str) and module.startswith("channels_core"):
                objects[type(obj).__qualname__] += 1
        monitors = 0
        for pid in process.processes():
            proc = process.lookup(pid)
            if proc is not None:
                monitors += len(proc._monitoring)
        return {
            "rss_kib": rss_kib(),
            "processes": len(process.processes()),
            "channels": app.supervisor.count_children(),
            "tasks": len(asyncio.all_tasks()),
            "topics": len(app.pubsub.topics()),
            "subscribers": len(app.pubsub.subscribers(TOPIC)),
            "subscribed_pids": len(app.pubsub._topics_by_pid),
            "monitors": monitors,
            "package_objects": sum(objects.values()),
            "all_objects": len(gc.get_objects()),
            "objects_by_class": dict(objects.most_common(12)),
        }

    async def plug(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/stats":
            body = json.dumps(stats()).encode()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await pages(scope, receive, send)

    app.plug = plug

    async def main() -> None:
        # A listen backlog as large as the burst of handshakes the run makes.
        server = Server(app, log_level="error", backlog=4096)
        port = await server.start()
        print(port, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent says stop
        await server.stop()

    asyncio.run(main())


# --------------------------------------------------------------------------
# The clients
# --------------------------------------------------------------------------


async def http_stats(port: int) -> dict[str, Any]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /stats HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
    response = await reader.read()
    writer.close()
    return json.loads(response.split(b"\r\n\r\n", 1)[1])


async def wait_for_baseline(port: int, baseline: dict[str, Any], timeout: float = 60.0) -> tuple[dict[str, Any], float]:
    """Poll /stats until the server's structures are back to ``baseline``; return them and the wait."""
    keys = PER_CONNECTION
    start = time.perf_counter()
    while True:
        now = await http_stats(port)
        if all(now[key] <= baseline[key] for key in keys) or time.perf_counter() - start > timeout:
            return now, time.perf_counter() - start
        await asyncio.sleep(0.2)


async def join(url: str) -> websockets.ClientConnection:
    connection = await websockets.connect(url, max_queue=None, open_timeout=60)
    await connection.send(json.dumps(["1", "1", TOPIC, "phx_join", {}]))
    reply = json.loads(await connection.recv())
    if reply != ["1", "1", TOPIC, "phx_reply", {"response": {}, "status": "ok"}]:
        raise AssertionError(f"unexpected join reply {reply!r}")
    return connection


async def collect(connection: websockets.ClientConnection, count: int, deadline: float) -> tuple[list[Any], float]:
    """The next ``count`` bench_msg frames (anything else too, to be counted), and when the last came."""
    frames = []
    while len(frames) < count:
        remaining = deadline - time.perf_counter()
        try:
            frame = json.loads(await asyncio.wait_for(connection.recv(), max(remaining, 0.001)))
        except TimeoutError:
            break
        if frame[3] == "phx_reply":  # the sender's reply to bench_broadcast, after its broadcasts
            continue
        frames.append(frame)
    return frames, time.perf_counter()


async def one_round(port: int, sockets: int, broadcasts: int, server_pid: int) -> dict[str, Any]:
    url = f"ws://127.0.0.1:{port}/socket/websocket?vsn=2.0.0"
    baseline = await http_stats(port)
    figures: dict[str, Any] = {"baseline": baseline}

    started = time.perf_counter()
    connections: list[websockets.ClientConnection] = []
    for start in range(0, sockets, 200):  # batches: the handshakes, not the backlog, are measured
        connections += await asyncio.gather(*(join(url) for _ in range(min(200, sockets - start))))
    figures["join_seconds"] = time.perf_counter() - started
    figures["joined"] = await http_stats(port)

    expected = [[None, None, TOPIC, "bench_msg", {"i": i}] for i in range(1, broadcasts + 1)]
    cpu_before = cpu_seconds(server_pid)
    sent_at = time.perf_counter()
    await connections[0].send(json.dumps(["1", "2", TOPIC, "bench_broadcast", {"n": broadcasts}]))
    results = await asyncio.gather(*(collect(c, broadcasts, sent_at + 120) for c in connections))
    figures["server_cpu_seconds"] = cpu_seconds(server_pid) - cpu_before
    finished = [at - sent_at for _, at in results]
    finished.sort()
    figures["delivery_seconds"] = {"first_client_done": finished[0], "median_client_done": finished[len(finished) // 2],
                                   "last_client_done": finished[-1]}
    delivered = sum(len(frames) for frames, _ in results)
    figures["frames_expected"] = sockets * broadcasts
    figures["frames_delivered"] = delivered
    figures["clients_exact"] = sum(frames == expected for frames, _ in results)
    figures["clients_wrong"] = [i for i, (frames, _) in enumerate(results) if frames != expected][:10]
    figures["after_broadcasts"] = await http_stats(port)

    # Nothing more arrives: no duplicates trailing behind.
    extra = await asyncio.gather(*(collect(c, 1, time.perf_counter() + 0.5) for c in connections))
    figures["extra_frames"] = sum(len(frames) for frames, _ in extra)

    await asyncio.gather(*(c.close() for c in connections))
    figures["after_disconnect"], figures["settle_seconds"] = await wait_for_baseline(port, baseline)
    return figures


async def run(sockets: int, broadcasts: int, rounds: int) -> dict[str, Any]:
    server = subprocess.Popen([sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        results = {"rounds": [await one_round(port, sockets, broadcasts, server.pid) for _ in range(rounds)]}
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=60)
    return results


# --------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f} MiB"


def report(args: argparse.Namespace, results: dict[str, Any], limits: tuple[int, int]) -> str:
    rounds = results["rounds"]
    first, last = rounds[0], rounds[-1]
    cpu = platform.processor() or "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    lines = [
        f"# Load run: {args.sockets:,} sockets, one topic, {args.broadcasts} broadcasts",
        "",
        "Written by `bench/load_2000.py`; `tests/test_load.py` checks the same promise at",
        "200 sockets and 20 broadcasts on every CI run. The server (the demo app, uvicorn,",
        "one process, one event loop) and the clients (the `websockets` asyncio client, one",
        "process) share the machine. One client asks its channel for the broadcasts",
        "(`bench_broadcast`), and the fastlane encodes each once and hands it to every",
        f"transport. Every client must then receive `bench_msg` 1 to {args.broadcasts} exactly once, in",
        f"order, and nothing else. The whole run is made {len(rounds)} times, on the same server.",
        "",
        "## Machine",
        "",
        f"- {os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}",
        f"- Python {platform.python_version()}, uvicorn {uvicorn.__version__}, websockets {websockets.__version__}",
        f"- open-files limit raised to {limits[0]} (soft) / {limits[1]} (hard)",
        "",
        "## Delivery",
        "",
        f"| round | sockets | broadcasts | frames expected | frames delivered | clients with exactly 1..{args.broadcasts} in order "
        "| extra frames | connect + join | last client done | server CPU |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for number, r in enumerate(rounds, start=1):
        lines.append(
            f"| {number} | {args.sockets} | {args.broadcasts} | {r['frames_expected']} | {r['frames_delivered']} "
            f"| {r['clients_exact']} of {args.sockets} | {r['extra_frames']} | {r['join_seconds']:.1f} s "
            f"| {r['delivery_seconds']['last_client_done']:.2f} s | {r['server_cpu_seconds']:.2f} s |"
        )
    lines += [
        "",
        "\"Last client done\" is the time from the request for broadcasts to the moment the",
        f"last client had read its last frame (median client: "
        + ", ".join(f"{r['delivery_seconds']['median_client_done']:.2f} s" for r in rounds)
        + ").",
        "The clients' own work is part of it: they share the machine with the server.",
        "",
        "## The server before, during and after",
        "",
        "| round | moment | resident memory | processes | channels | asyncio tasks | PubSub topics "
        "| subscribers on bench:load | monitors | objects of channels_core classes | all objects the GC tracks |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for number, r in enumerate(rounds, start=1):
        for moment, key in (("before connecting", "baseline"), ("all joined", "joined"),
                            ("after the broadcasts", "after_broadcasts"), ("after disconnecting", "after_disconnect")):
            s = r[key]
            lines.append(
                f"| {number} | {moment} | {mib(s['rss_kib'])} | {s['processes']} | {s['channels']} | {s['tasks']} "
                f"| {s['topics']} | {s['subscribers']} | {s['monitors']} | {s['package_objects']} "
                f"| {s['all_objects']} |"
            )
    joined_growth = (first["joined"]["rss_kib"] - first["baseline"]["rss_kib"]) / args.sockets
    lines += [
        "",
        f"Each joined socket (its transport process, its channel process, their monitors, the",
        f"subscription, uvicorn's connection) costs about {joined_growth:.0f} KiB of resident memory",
        "(first round, all joined, less the baseline).",
        "",
        "## Does memory return to its baseline?",
        "",
        *settled_lines(rounds),
        "",
        "Resident memory is a coarser measure, read after a garbage collection and glibc's",
        "`malloc_trim` (the server hands freed memory back before each reading). CPython",
        "keeps the arenas and free lists a round used for the next one, so the first round",
        f"leaves the process larger than it started ({mib(first['baseline']['rss_kib'])} before, "
        f"{mib(first['after_disconnect']['rss_kib'])} after). A leak would show as growth from one",
        "round to the next, in proportion to the connections: after each round, resident",
        "memory was " + ", ".join(mib(r["after_disconnect"]["rss_kib"]) for r in rounds)
        + f"; with everything joined, {', '.join(mib(r['joined']['rss_kib']) for r in rounds)}.",
        f"A leak of even 1 KiB per connection would add {args.sockets / 1024:.1f} MiB a round. The count of",
        "every object the garbage collector tracks says more than resident memory can: after",
        "each round it was " + ", ".join(str(r["after_disconnect"]["all_objects"]) for r in rounds)
        + f" (the first round's extra {first['after_disconnect']['all_objects'] - first['baseline']['all_objects']}"
        " over its baseline are what runs once: imports, caches).",
        "",
    ]
    return "\n".join(lines)


def settled_lines(rounds: list[dict[str, Any]]) -> list[str]:
    lines = []
    for number, r in enumerate(rounds, start=1):
        left = {key: r["after_disconnect"][key] - r["baseline"][key] for key in PER_CONNECTION
                if r["after_disconnect"][key] != r["baseline"][key]}
        if left:
            lines.append(f"- Round {number}: NOT back to the baseline after {r['settle_seconds']:.1f} s: {left}.")
        else:
            lines.append(f"- Round {number}: every count ({', '.join(PER_CONNECTION)}) back to its figure before "
                         f"the round, {r['settle_seconds']:.1f} s after the clients closed.")
    return ["What the server keeps per connection:", "", *lines]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sockets", type=int, default=2000)
    parser.add_argument("--broadcasts", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print the report, leave bench/LOAD.md alone")
    args = parser.parse_args()
    if args.serve:
        serve()
        return
    limits = raise_fd_limit()
    results = asyncio.run(run(args.sockets, args.broadcasts, args.rounds))
    text = report(args, results, limits)
    print(text)
    print(json.dumps(results, indent=1), file=sys.stderr)
    failed = [r for r in results["rounds"]
              if r["clients_exact"] != args.sockets or r["extra_frames"] or r["clients_wrong"]
              or any(r["after_disconnect"][key] != r["baseline"][key] for key in PER_CONNECTION)]
    if not args.no_write:
        (HERE / "LOAD.md").write_text(text)
    if failed:
        raise SystemExit("a promise was broken: see the report above")


if __name__ == "__main__":
    main()
