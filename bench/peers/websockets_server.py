"""The practical bound: a plain ``websockets`` server that broadcasts with ``websockets.broadcast``.

This is how the ``websockets`` documentation writes a broadcast server: a set of
connections, one handler coroutine per connection, and ``broadcast()`` to write a
message to every connection without a task or a queue per client. It speaks the
same V2 frames as Phoenix so that every server sends the same bytes, and it does
the least any server could: no channels, no processes, no routing beyond one
``if``. Whatever it costs per delivered message is the floor for Python here.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from websockets.asyncio.server import ServerConnection, broadcast, serve

TOPIC = "bench:1"
MEMBERS: set[ServerConnection] = set()


def reply(join_ref: str, ref: str, response: dict) -> str:
    return json.dumps([join_ref, ref, TOPIC, "phx_reply", {"status": "ok", "response": response}],
                      separators=(",", ":"))


async def handler(websocket: ServerConnection) -> None:
    try:
        async for text in websocket:
            join_ref, ref, topic, event, payload = json.loads(text)
            if event == "phx_join":
                MEMBERS.add(websocket)
                await websocket.send(reply(join_ref, ref, {}))
            elif event == "ping":
                await websocket.send(reply(join_ref, ref, payload))
            elif event == "bench_broadcast":
                for i in range(1, payload["n"] + 1):
                    frame = json.dumps([None, None, TOPIC, "bench_msg", {"i": i}], separators=(",", ":"))
                    broadcast(MEMBERS, frame)
                await websocket.send(reply(join_ref, ref, {}))
    finally:
        MEMBERS.discard(websocket)


async def main(port: int) -> None:
    async with serve(handler, "127.0.0.1", port, backlog=4096, max_size=None):
        await asyncio.get_running_loop().create_future()  # until killed


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    from bench.loadgen import raise_fd_limit

    raise_fd_limit()
    asyncio.run(main(parser.parse_args().port))
