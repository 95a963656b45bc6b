"""The endpoint as one ASGI app among others: mounted in Starlette, served by hypercorn.

Phoenix's endpoint is the whole application; a Python endpoint often joins an
application that exists already. These tests take it there for real:

* mounted with Starlette's ``Mount`` (which keeps the prefix in ``path`` and sets
  ``root_path``) and with a mount that strips the prefix, as Starlette did before
  0.33, and served alone; in each case the dispatch table matches the path under
  the mount point and ``connect_info["uri"]`` names the full path;
* the host's lifespan starting and stopping the endpoint (``endpoint.lifespan``),
  or, without it, the first request starting it;
* the example app ``examples/starlette_chat``, driven by phoenix.js in Node over
  uvicorn, including an HTTP POST whose handler broadcasts to the room;
* the same app under hypercorn, started here on an ephemeral port: a raw
  WebSocket client and phoenix.js join, push, receive broadcasts and get refused
  with 403, and the server stops cleanly;
* a server without the ASGI ``websocket.http.response`` extension, where a
  refused upgrade degrades to a close before accept, which ASGI makes a 403.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import websockets
from helpers import ROOT, RawClient, node_available, seconds
from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config as HypercornConfig
from starlette.applications import Starlette
from starlette.routing import Mount

from channels_core import process
from channels_core.adapter import mount_paths
from channels_core.channel import Channel
from channels_core.demo import create_app as create_demo_app
from channels_core.endpoint import Endpoint
from channels_core.endpoint import socket as declare_socket
from channels_core.pubsub import PubSub
from channels_core.pubsub.local import LocalAdapter
from channels_core.server import Server
from channels_core.socket import Socket, SocketStruct, assign, channel
from channels_core.transports import longpoll

pytestmark = pytest.mark.usefixtures("leak_check")

StartServer = Callable[..., Awaitable[Server]]


def _load_example() -> Any:
    """examples/starlette_chat/app.py, loaded by path: examples/ is not a package on sys.path."""
    path = ROOT / "examples" / "starlette_chat" / "app.py"
    spec = importlib.util.spec_from_file_location("starlette_chat_example", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


example = _load_example()


# An endpoint that reports where it thinks it is


class ProbeChannel(Channel):
    def join(self, topic: str, payload: Any, socket: SocketStruct) -> Any:
        return ("ok", {"path": socket.assigns["uri"]["path"]}, socket)


class ProbeSocket(Socket):
    channels = [channel("probe:*", ProbeChannel)]

    def connect(self, params: dict[str, Any], socket: SocketStruct, connect_info: dict[str, Any]) -> Any:
        return ("ok", assign(socket, uri=connect_info["uri"]))


class MountableProbe(Endpoint):
    """Declared at ``/``: meant to be mounted, wherever."""

    sockets = [declare_socket("/", ProbeSocket, websocket={"connect_info": ["uri"]})]


class StandaloneProbe(Endpoint):
    """Declared at ``/socket``: served alone, as the demo is."""

    sockets = [declare_socket("/socket", ProbeSocket, websocket={"connect_info": ["uri"]})]


def stripping_mount(prefix: str, app: Any) -> Any:
    """Mount ``app`` at ``prefix`` as Starlette before 0.33 did: ``root_path`` grows, ``path`` loses the prefix."""

    async def host(scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "/")
        if scope["type"] in ("http", "websocket") and (path == prefix or path.startswith(prefix + "/")):
            scope = {**scope, "root_path": scope.get("root_path", "") + prefix, "path": path[len(prefix):] or "/"}
            await app(scope, receive, send)
        elif scope["type"] == "lifespan":
            await app(scope, receive, send)
        elif scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.close", "code": 1000})
        else:
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})

    return host


def without_denial_extension(app: Any) -> Any:
    """``app`` as a server without the ``websocket.http.response`` extension would call it."""

    async def server_side(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            extensions = {k: v for k, v in (scope.get("extensions") or {}).items() if k != "websocket.http.response"}
            scope = {**scope, "extensions": extensions}
        await app(scope, receive, send)

    return server_side


class RecordingAdapter(LocalAdapter):
    """A single-node adapter that notes when it is started and stopped."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []

    async def start(self, pubsub: Any) -> None:
        self.events.append("start")

    async def stop(self) -> None:
        self.events.append("stop")


class GatedAdapter(LocalAdapter):
    """An adapter whose start waits for the test, and can fail once, as a Redis outage would."""

    def __init__(self) -> None:
        super().__init__()
        self.starts = 0
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()
        self.fail_next = False

    async def start(self, pubsub: Any) -> None:
        self.starts += 1
        self.entered.set()
        await self.gate.wait()
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("pubsub backend unreachable")


async def join_probe(ws_url: str, path: str) -> Any:
    """Connect to ``path``, join probe:1, and return the join reply's response."""
    connection = await websockets.connect(f"{ws_url}{path}?vsn=2.0.0")
    client = RawClient(connection)
    try:
        await client.send(["1", "1", "probe:1", "phx_join", {}])
        frame = await client.recv()
    finally:
        await client.close()
    assert frame[:4] == ["1", "1", "probe:1", "phx_reply"]
    assert frame[4]["status"] == "ok"
    return frame[4]["response"]


async def upgrade_status(ws_url: str, path: str) -> tuple[int, bytes]:
    """The HTTP status and body that refuse an upgrade on ``path`` (fails if it is accepted)."""
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(f"{ws_url}{path}")
    return refused.value.response.status_code, bytes(refused.value.response.body or b"")


# mount_paths, the rule


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ({"path": "/socket/websocket"}, ("/socket/websocket", "/socket/websocket")),
        ({"path": "/socket/websocket", "root_path": ""}, ("/socket/websocket", "/socket/websocket")),
        # Starlette 0.33+: the prefix stays in path.
        ({"path": "/socket/websocket", "root_path": "/socket"}, ("/socket/websocket", "/websocket")),
        # Older Starlette, some proxies: the prefix was taken off path.
        ({"path": "/websocket", "root_path": "/socket"}, ("/socket/websocket", "/websocket")),
        ({"path": "/socket", "root_path": "/socket"}, ("/socket", "/")),
        ({"path": "/socket/", "root_path": "/socket/"}, ("/socket/", "/")),
        # /socketry does not start with the segment /socket: it was stripped already.
        ({"path": "/socketry/websocket", "root_path": "/socket"},
         ("/socket/socketry/websocket", "/socketry/websocket")),
        ({"path": "/a/b/websocket", "root_path": "/a/b"}, ("/a/b/websocket", "/websocket")),
    ],
)
def test_mount_paths_follows_starlettes_rule(scope: dict[str, Any], expected: tuple[str, str]) -> None:
    assert mount_paths(scope) == expected


# Mounted, stripped, standalone: real servers


async def test_one_endpoint_class_mounted_twice_in_starlette_matches_under_each_mount(
    start_server: StartServer,
) -> None:
    app = Starlette(routes=[
        Mount("/socket", app=MountableProbe()),
        Mount("/realtime/v2", app=MountableProbe()),
    ])
    server = await start_server(app)
    assert await join_probe(server.ws_url, "/socket/websocket") == {"path": "/socket/websocket"}
    assert await join_probe(server.ws_url, "/realtime/v2/websocket") == {"path": "/realtime/v2/websocket"}
    # Under the mount, a path the endpoint does not serve is its 404, not the host's.
    assert await upgrade_status(server.ws_url, "/socket/socket/websocket") == (404, b"not found")


async def test_a_mount_that_strips_the_prefix_matches_the_same_paths(start_server: StartServer) -> None:
    server = await start_server(stripping_mount("/socket", MountableProbe()))
    assert await join_probe(server.ws_url, "/socket/websocket") == {"path": "/socket/websocket"}
    assert await upgrade_status(server.ws_url, "/socket/nope") == (404, b"not found")


async def test_served_alone_the_table_keys_are_full_paths(start_server: StartServer) -> None:
    server = await start_server(StandaloneProbe())
    assert await join_probe(server.ws_url, "/socket/websocket") == {"path": "/socket/websocket"}
    assert await upgrade_status(server.ws_url, "/websocket") == (404, b"not found")


async def test_plain_http_on_the_mounted_websocket_path_is_400(start_server: StartServer) -> None:
    server = await start_server(Starlette(routes=[Mount("/socket", app=MountableProbe())]))
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{server.url}/socket/websocket")
    assert response.status_code == 400
    assert response.text == "'connection' header must contain 'upgrade', got [\"keep-alive\"]"


# Lifespan


def chat_app_with(adapter: LocalAdapter, *, lifespan: bool = True) -> tuple[Starlette, Endpoint]:
    endpoint = example.ChatEndpoint(pubsub=PubSub(adapter))
    if lifespan:
        return example.create_app(endpoint), endpoint
    return Starlette(routes=[Mount("/socket", app=endpoint)]), endpoint


async def open_longpoll_session(server: Server) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{server.url}/socket/longpoll", params={"vsn": "2.0.0", "user": "ada"})
    body = response.json()
    assert (response.status_code, body["status"]) == (200, 410)


async def test_the_hosts_lifespan_starts_the_endpoint_and_its_shutdown_stops_sessions_and_pubsub(
    start_server: StartServer,
) -> None:
    adapter = RecordingAdapter()
    app, endpoint = chat_app_with(adapter)
    server = await start_server(app)
    # Started by the lifespan, before any request.
    assert endpoint.started and adapter.events == ["start"]
    await open_longpoll_session(server)
    (session,) = longpoll.sessions(endpoint).values()
    assert process.is_alive(session.pid)

    await server.stop()

    assert not endpoint.started
    assert adapter.events == ["start", "stop"]
    assert longpoll.sessions(endpoint) == {}
    assert not process.is_alive(session.pid)


async def test_without_the_lifespan_the_first_request_starts_the_endpoint_and_the_host_must_stop_it(
    start_server: StartServer,
) -> None:
    adapter = RecordingAdapter()
    app, endpoint = chat_app_with(adapter, lifespan=False)
    server = await start_server(app)
    assert not endpoint.started and adapter.events == []
    await open_longpoll_session(server)
    assert endpoint.started and adapter.events == ["start"]
    (session,) = longpoll.sessions(endpoint).values()

    await server.stop()
    # Starlette never told the mounted endpoint: the session outlives the server...
    assert process.is_alive(session.pid)
    # ...until the host shuts the endpoint down, as the docstring asks.
    await endpoint.shutdown()
    assert not process.is_alive(session.pid)
    assert adapter.events == ["start", "stop"]


async def test_lifespan_also_nests_in_a_lifespan_of_the_hosts_own() -> None:
    adapter = RecordingAdapter()
    endpoint = example.ChatEndpoint(pubsub=PubSub(adapter))
    async with endpoint.lifespan():
        assert endpoint.started
    assert not endpoint.started and adapter.events == ["start", "stop"]


async def test_requests_racing_to_start_the_endpoint_start_it_once() -> None:
    adapter = GatedAdapter()
    endpoint = example.ChatEndpoint(pubsub=PubSub(adapter))
    racing = [asyncio.ensure_future(endpoint.startup()) for _ in range(3)]
    await asyncio.wait_for(adapter.entered.wait(), seconds(2))
    adapter.gate.set()
    await asyncio.wait_for(asyncio.gather(*racing), seconds(2))
    assert endpoint.started and adapter.starts == 1
    await endpoint.shutdown()


async def test_a_failed_start_fails_its_request_and_the_next_one_tries_again() -> None:
    adapter = GatedAdapter()
    adapter.fail_next = True
    endpoint = example.ChatEndpoint(pubsub=PubSub(adapter))
    first = asyncio.ensure_future(endpoint.startup())
    second = asyncio.ensure_future(endpoint.startup())
    await asyncio.wait_for(adapter.entered.wait(), seconds(2))
    adapter.gate.set()
    results = await asyncio.wait_for(asyncio.gather(first, second, return_exceptions=True), seconds(2))
    assert [type(r).__name__ if r else r for r in results] == ["ConnectionError", None]
    assert endpoint.started and adapter.starts == 2
    await endpoint.shutdown()


async def test_a_cancelled_request_does_not_cancel_the_start_it_waits_for() -> None:
    adapter = GatedAdapter()
    endpoint = example.ChatEndpoint(pubsub=PubSub(adapter))
    starting = asyncio.ensure_future(endpoint.startup())
    waiting = asyncio.ensure_future(endpoint.startup())
    await asyncio.wait_for(adapter.entered.wait(), seconds(2))
    waiting.cancel()
    adapter.gate.set()
    await asyncio.wait_for(starting, seconds(2))
    assert waiting.cancelled() and endpoint.started and adapter.starts == 1
    await endpoint.shutdown()


# The example app, over uvicorn


async def run_chat_js(base_url: str, scenario: str, transport: str, timeout: float = 20.0) -> list[dict[str, Any]]:
    """Run tests/js/mounted_chat.js and return its observations."""
    proc = await asyncio.create_subprocess_exec(
        "node", str(ROOT / "tests" / "js" / "mounted_chat.js"), scenario, transport, base_url,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), seconds(timeout))
    except TimeoutError:
        proc.kill()
        stdout, stderr = await proc.communicate()
        raise AssertionError(f"node {scenario} {transport} timed out:\n{stdout.decode()}{stderr.decode()}") from None
    printed = stdout.decode()
    assert proc.returncode == 0, f"node {scenario} {transport} exited {proc.returncode}:\n{printed}{stderr.decode()}"
    lines = [json.loads(line) for line in printed.splitlines()]
    assert lines[-1] == {"done": True}, printed
    return lines[:-1]


CONNECTION_CLASS = {"websocket": "WebSocket", "longpoll": "LongPoll"}
needs_node = pytest.mark.skipif(not node_available(), reason="needs node and node_modules/phoenix (npm ci)")


def assert_chat_run(lines: list[dict[str, Any]], transport: str) -> None:
    assert lines[:4] == [
        {"event": "socket_open", "connection": CONNECTION_CLASS[transport]},
        {"event": "join", "status": "ok", "response": {"room": "lobby"}},
        # new_msg is not intercepted: the fastlane frame was queued before the reply.
        {"event": "new_msg", "payload": {"user": "ada", "body": "from phoenix.js"}},
        {"event": "reply", "status": "ok", "response": {}},
    ]
    # The HTTP response and the broadcast it caused travel on two connections: either may land first.
    assert sorted(lines[4:], key=json.dumps) == sorted([
        {"event": "http", "status": 202, "body": {"broadcast": "room:lobby"}},
        {"event": "new_msg", "payload": {"user": "http", "body": "from an HTTP handler"}},
    ], key=json.dumps)


REFUSED_WEBSOCKET = [
    {"event": "socket_error", "error": "Unexpected server response: 403", "connection": "WebSocket"},
    {"event": "socket_close", "code": 1006, "was_clean": False},
    {"event": "state", "connected": False},
]


@needs_node
@pytest.mark.node
@pytest.mark.parametrize("transport", ["websocket", "longpoll"])
async def test_phoenix_js_chats_through_the_mount_and_hears_an_http_post(
    start_server: StartServer, transport: str
) -> None:
    server = await start_server(example.create_app())
    assert_chat_run(await run_chat_js(server.url, "chat", transport), transport)


@needs_node
@pytest.mark.node
async def test_phoenix_js_is_refused_through_the_mount_with_403(start_server: StartServer) -> None:
    server = await start_server(example.create_app())
    assert await run_chat_js(server.url, "refused", "websocket") == REFUSED_WEBSOCKET


async def test_the_http_handler_refuses_a_message_without_a_body(start_server: StartServer) -> None:
    server = await start_server(example.create_app())
    async with httpx.AsyncClient() as http:
        not_json = await http.post(f"{server.url}/api/rooms/lobby/messages", content=b"hello")
        no_body = await http.post(f"{server.url}/api/rooms/lobby/messages", json={"user": "x"})
    assert (not_json.status_code, not_json.json()) == (400, {"error": "the body must be JSON"})
    assert (no_body.status_code, no_body.json()) == (400, {"error": 'expected {"user": ..., "body": "..."}'})


async def test_the_example_serves_its_page_and_phoenix_js(start_server: StartServer) -> None:
    server = await start_server(example.create_app())
    async with httpx.AsyncClient() as http:
        page = await http.get(f"{server.url}/")
        script = await http.get(f"{server.url}/assets/phoenix.js")
    assert page.status_code == 200 and 'new Phoenix.Socket("/socket"' in page.text
    assert script.status_code == 200 and "Phoenix" in script.text


# Hypercorn


class _BoundConfig(HypercornConfig):
    """Hypercorn's config, reporting the port it bound (we ask for port 0)."""

    def __init__(self) -> None:
        super().__init__()
        self.bound: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def create_sockets(self) -> Any:
        sockets = super().create_sockets()
        for sock in sockets.insecure_sockets:
            # Listening now, not when hypercorn gets to it: a client may connect at once.
            sock.listen(self.backlog)
        self.bound.set_result(sockets.insecure_sockets[0].getsockname()[1])
        return sockets


class HypercornServer:
    """An ASGI app under hypercorn, started programmatically on 127.0.0.1:<ephemeral>."""

    def __init__(self, app: Any, graceful_timeout: float = 2.0) -> None:
        self.app = app
        self.port: int | None = None
        self.config: _BoundConfig | None = None
        self.graceful_timeout = graceful_timeout
        self._shutdown = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self) -> HypercornServer:
        config = self.config = _BoundConfig()
        config.bind = ["127.0.0.1:0"]
        config.graceful_timeout = self.graceful_timeout
        config.accesslog = None
        self._task = asyncio.ensure_future(
            hypercorn_serve(  # type: ignore[arg-type]
                self.app, config, shutdown_trigger=self._shutdown.wait, mode="asgi"
            )
        )
        await asyncio.wait({config.bound, self._task}, timeout=seconds(10), return_when=asyncio.FIRST_COMPLETED)
        if self._task.done():
            self._task.result()
        assert config.bound.done(), "hypercorn did not bind within 10 s"
        self.port = config.bound.result()
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._shutdown.set()
            await asyncio.wait_for(self._task, seconds(self.graceful_timeout + 10))
            self._task = None


@pytest.fixture
async def hypercorn_server() -> AsyncIterator[Callable[..., Awaitable[HypercornServer]]]:
    servers: list[HypercornServer] = []
    tasks_before = set(asyncio.all_tasks())

    async def start(app: Any, **options: Any) -> HypercornServer:
        server = await HypercornServer(app, **options).start()
        servers.append(server)
        return server

    yield start
    for server in reversed(servers):
        await server.stop()
    current = asyncio.current_task()
    pending = [t for t in asyncio.all_tasks() if t not in tasks_before and t is not current and not t.done()]
    if pending:
        await asyncio.wait(pending, timeout=seconds(5))
    assert [t for t in pending if not t.done()] == []


async def test_hypercorn_serves_the_mounted_endpoint_to_a_raw_client(hypercorn_server: Any) -> None:
    app = example.create_app()
    endpoint = app.state.endpoint
    server = await hypercorn_server(app)
    assert endpoint.started  # hypercorn runs the host's lifespan
    client = RawClient(await websockets.connect(f"{server.ws_url}/socket/websocket?vsn=2.0.0&user=ada"))
    await client.send(["1", "1", "room:lobby", "phx_join", {}])
    assert await client.recv() == ["1", "1", "room:lobby", "phx_reply", {"response": {"room": "lobby"}, "status": "ok"}]
    await client.send(["1", "2", "room:lobby", "new_msg", {"body": "hi"}])
    assert await client.recv_n(2) == [
        [None, None, "room:lobby", "new_msg", {"user": "ada", "body": "hi"}],
        ["1", "2", "room:lobby", "phx_reply", {"response": {}, "status": "ok"}],
    ]
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{server.url}/api/rooms/lobby/messages", json={"user": "ops", "body": "deploy"})
    assert response.status_code == 202
    assert await client.recv() == [None, None, "room:lobby", "new_msg", {"user": "ops", "body": "deploy"}]
    endpoint.broadcast("room:lobby", "new_msg", {"user": "job", "body": "from Python"})
    assert await client.recv() == [None, None, "room:lobby", "new_msg", {"user": "job", "body": "from Python"}]

    # hypercorn has the denial extension: exact statuses and bodies.
    assert await upgrade_status(server.ws_url, "/socket/websocket?vsn=2.0.0") == (403, b"")
    assert await upgrade_status(server.ws_url, "/socket/nope") == (404, b"not found")

    await client.close()
    await server.stop()
    assert not endpoint.started


async def test_hypercorn_stopping_with_a_client_connected_closes_it_with_1012(hypercorn_server: Any) -> None:
    closed: list[tuple[str, Any]] = []

    class Farewell(example.RoomChannel):
        def terminate(self, reason: Any, socket: SocketStruct) -> None:
            closed.append((socket.topic, reason))

    class FarewellSocket(example.ChatSocket):
        channels = [channel("room:*", Farewell)]

    class FarewellEndpoint(Endpoint):
        sockets = [declare_socket("/", FarewellSocket)]

    endpoint = FarewellEndpoint()
    server = await hypercorn_server(example.create_app(endpoint), graceful_timeout=0.2)
    client = RawClient(await websockets.connect(f"{server.ws_url}/socket/websocket?vsn=2.0.0&user=ada"))
    await client.send(["1", "1", "room:lobby", "phx_join", {}])
    assert (await client.recv())[3] == "phx_reply"

    # hypercorn does not tell the app it is stopping: after its graceful timeout it
    # cancels the connection, and the adapter turns that into 1012, as uvicorn sends.
    stopping = asyncio.ensure_future(server.stop())
    assert await client.wait_closed(timeout=5) == (1012, "")
    await stopping
    assert closed == [("room:lobby", ("shutdown", "closed"))]
    assert not endpoint.started


@needs_node
@pytest.mark.node
@pytest.mark.parametrize("transport", ["websocket", "longpoll"])
async def test_phoenix_js_under_hypercorn(hypercorn_server: Any, transport: str) -> None:
    server = await hypercorn_server(example.create_app())
    assert_chat_run(await run_chat_js(server.url, "chat", transport), transport)


@needs_node
@pytest.mark.node
async def test_phoenix_js_refused_under_hypercorn(hypercorn_server: Any) -> None:
    server = await hypercorn_server(example.create_app())
    assert await run_chat_js(server.url, "refused", "websocket") == REFUSED_WEBSOCKET


# A server without the denial extension


async def test_without_the_denial_extension_uvicorn_refuses_with_a_close_and_a_403(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    await refusals_degrade(await start_server(without_denial_extension(create_demo_app())), caplog)


async def test_without_the_denial_extension_hypercorn_refuses_with_a_close_and_a_403(
    hypercorn_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    await refusals_degrade(await hypercorn_server(without_denial_extension(create_demo_app())), caplog)


async def refusals_degrade(server: Server | HypercornServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="channels_core.adapter")

    # connect refused: 403 was meant, 403 it is; nothing lost, nothing logged.
    assert await upgrade_status(server.ws_url, "/socket/websocket?vsn=2.0.0&reject=true") == (403, b"")
    assert [r for r in caplog.records if r.name == "channels_core.adapter"] == []

    # An unknown path meant 404 "not found": the client sees 403, and the log says why.
    status, _body = await upgrade_status(server.ws_url, "/nope/websocket")
    assert status == 403
    assert [r.getMessage() for r in caplog.records if r.name == "channels_core.adapter"] == [
        "x refused WebSocket upgrade on /nope/websocket answered 403 instead of 404 'not found': "
        "the server lacks the websocket.http.response extension"
    ]

    # Accepted connections do not need the extension at all.
    client = RawClient(await websockets.connect(f"{server.ws_url}/socket/websocket?vsn=2.0.0&user_id=u1"))
    await client.send(["1", "1", "room:lobby", "phx_join", {"user": "ada"}])
    assert await client.recv() == ["1", "1", "room:lobby", "phx_reply", {"response": {}, "status": "ok"}]
    await client.close()
