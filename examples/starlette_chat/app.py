"""A Starlette application with a channels_core endpoint mounted inside it.

The Phoenix way is one endpoint that is the whole application. A Python web
application usually exists already, so here the endpoint is one mount among the
routes of a Starlette app: the same server, the same lifespan, and ordinary HTTP
handlers that talk to connected clients through the endpoint's PubSub.

* ``Mount("/socket", app=endpoint)``: phoenix.js connects to ``/socket``
  (``/socket/websocket``, or ``/socket/longpoll``). The endpoint declares its
  socket at ``/``, because an endpoint's paths are relative to where it is
  mounted (see :mod:`channels_core.endpoint`).
* ``lifespan=endpoint.lifespan``: Starlette does not pass lifespan events to
  mounted apps, so the host starts the endpoint's PubSub and, at shutdown,
  stops it and every long-poll session.
* ``POST /api/rooms/{room}/messages`` with ``{"user": ..., "body": ...}`` is a
  plain HTTP handler; ``endpoint.broadcast`` sends the message to every client in
  ``room:{room}``, exactly as a channel's ``broadcast`` would.

Run it from the repository root, then open http://127.0.0.1:8000 in two tabs::

    .venv/bin/uvicorn examples.starlette_chat.app:app --port 8000

and post from outside the chat::

    curl -X POST localhost:8000/api/rooms/lobby/messages \\
         -H 'content-type: application/json' -d '{"user": "curl", "body": "hello"}'

FastAPI is Starlette underneath: ``fastapi_app.mount("/socket", endpoint)`` and
``FastAPI(lifespan=endpoint.lifespan)`` do the same.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route

from channels_core import Channel, Endpoint, Socket, SocketStruct, assign, broadcast, channel
from channels_core.demo.pages import phoenix_js_path
from channels_core.endpoint import socket

HERE = Path(__file__).parent


class RoomChannel(Channel):
    """``room:*``: everyone in a room sees every ``new_msg``, with who sent it."""

    def join(self, topic: str, payload: Any, socket: SocketStruct) -> tuple[Any, ...]:
        return ("ok", {"room": topic.split(":", 1)[1]}, socket)

    def handle_in(self, event: str, payload: Any, socket: SocketStruct) -> tuple[Any, ...]:
        if event == "new_msg":
            broadcast(socket, "new_msg", {"user": socket.assigns["user"], "body": payload["body"]})
            return ("reply", "ok", socket)
        return ("reply", ("error", {"reason": f"unknown event {event!r}"}), socket)


class ChatSocket(Socket):
    """Connects anyone who says who they are (``?user=ada``); refuses the others with 403."""

    channels = [channel("room:*", RoomChannel)]

    def connect(self, params: dict[str, Any], socket: SocketStruct) -> Any:
        user = params.get("user")
        if not user:
            return "error"
        return ("ok", assign(socket, user=user))

    def id(self, socket: SocketStruct) -> str | None:
        return f"users:{socket.assigns['user']}"


class ChatEndpoint(Endpoint):
    """The realtime part of the app; mounted at ``/socket``, so its socket is at ``/``."""

    sockets = [
        socket("/", ChatSocket, websocket={"check_origin": "conn"}, longpoll={"check_origin": "conn"}),
    ]


def create_app(endpoint: ChatEndpoint | None = None) -> Starlette:
    """The Starlette app, with ``endpoint`` (a new one by default) mounted at ``/socket``.

    The endpoint is also ``app.state.endpoint``, for handlers and tests.
    """
    endpoint = endpoint if endpoint is not None else ChatEndpoint()

    async def post_message(request: Request) -> Response:
        try:
            message = await request.json()
        except json.JSONDecodeError:
            return JSONResponse({"error": "the body must be JSON"}, status_code=400)
        if not isinstance(message, dict) or not isinstance(message.get("body"), str):
            return JSONResponse({"error": "expected {\"user\": ..., \"body\": \"...\"}"}, status_code=400)
        topic = f"room:{request.path_params['room']}"
        # No process, no connection needed: PubSub reaches every client in the room.
        endpoint.broadcast(topic, "new_msg", {"user": str(message.get("user") or "http"), "body": message["body"]})
        return JSONResponse({"broadcast": topic}, status_code=202)

    async def homepage(request: Request) -> Response:
        return FileResponse(HERE / "index.html")

    async def phoenix_js(request: Request) -> Response:
        path = phoenix_js_path()
        if path is None:
            return PlainTextResponse("phoenix.js is missing: run `npm ci` in the repository", status_code=500)
        return FileResponse(path, media_type="text/javascript")

    app = Starlette(
        routes=[
            Route("/", homepage),
            Route("/assets/phoenix.js", phoenix_js),
            Route("/api/rooms/{room}/messages", post_message, methods=["POST"]),
            Mount("/socket", app=endpoint),
        ],
        lifespan=endpoint.lifespan,
    )
    app.state.endpoint = endpoint
    return app


app = create_app()
