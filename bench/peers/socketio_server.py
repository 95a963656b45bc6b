"""python-socketio, as its documentation sets up an asyncio server: ``AsyncServer`` on ASGI, under uvicorn.

Rooms are Socket.IO's topics: ``join`` enters the room and acknowledges, ``ping``
is acknowledged with its own data, and ``bench_broadcast`` emits ``bench_msg`` to
the room ``n`` times (``await sio.emit(..., room=...)``, the documented way).
uvicorn runs it with the same WebSocket implementation our server uses, so the
HTTP and framing layers cost both the same.
"""

from __future__ import annotations

import argparse

import socketio
import uvicorn

TOPIC = "bench:1"

sio = socketio.AsyncServer(async_mode="asgi")
app = socketio.ASGIApp(sio)


@sio.event
async def join(sid: str, topic: str) -> dict:
    await sio.enter_room(sid, topic)
    return {"status": "ok"}


@sio.event
async def ping(sid: str, data: dict) -> dict:
    return data


@sio.event
async def bench_broadcast(sid: str, data: dict) -> dict:
    for i in range(1, data["n"] + 1):
        await sio.emit("bench_msg", {"i": i}, room=TOPIC)
    return {}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    from bench.loadgen import raise_fd_limit

    raise_fd_limit()
    uvicorn.run(app, host="127.0.0.1", port=parser.parse_args().port, log_level="warning",
                ws="websockets-sansio", lifespan="off", backlog=4096)
