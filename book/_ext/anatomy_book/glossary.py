"""Phoenix names from the talk, and where each one lives in ``channels_core``.

Each entry holds the Python object itself, not its name: the glossary page takes
the module and qualified name from the object (``__module__``, ``__qualname__``),
so renaming or moving one breaks the book's build instead of leaving a stale
page behind. Entries are grouped by the layer of the talk, top to bottom, in the
order a request meets them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from channels_core import adapter, client, process, telemetry, token
from channels_core.adapter import WebSocketHandler
from channels_core.channel import Channel, broadcast, push, reply
from channels_core.channel_server import ChannelServer
from channels_core.channel_server import join as channel_server_join
from channels_core.demo.app import DemoEndpoint, RoomChannel, UserSocket
from channels_core.endpoint import Endpoint
from channels_core.endpoint import socket as endpoint_socket
from channels_core.message import Broadcast, Message, Reply
from channels_core.pubsub.fastlane import Fastlane, fastlane_dispatch
from channels_core.pubsub.pubsub import PubSub
from channels_core.serializers import V1JSONSerializer, V2JSONSerializer
from channels_core.serializers.serializer import Serializer
from channels_core.server import Server
from channels_core.socket import Socket, SocketState, SocketStruct
from channels_core.socket import channel as socket_channel
from channels_core.socket import connect as socket_connect
from channels_core.supervisor import PoolSupervisor
from channels_core.transports import longpoll, transport
from channels_core.transports import websocket as websocket_transport
from channels_core.transports.longpoll import LongPollServer
from channels_core.transports.transport import Conn, check_origin, connect_info, load_config

__all__ = ["GLOSSARY", "Entry"]


@dataclass(frozen=True)
class Entry:
    """One Phoenix name and its home.

    Attributes:
        phoenix: The name as the talk (or Phoenix's source) writes it.
        home: The function, class, method or module that plays its part here.
        note: What it does, in a few words, where the names alone do not say.
    """

    phoenix: str
    home: Any
    note: str = ""


#: (layer, entries), in the order a request meets the layers.
GLOSSARY: tuple[tuple[str, tuple[Entry, ...]], ...] = (
    ("Web server and adapter", (
        Entry("Cowboy", Server, "uvicorn, started and stopped by this class"),
        Entry("Phoenix.Endpoint.Cowboy2Handler", adapter, "ASGI events in, cowboy-style callbacks out"),
        Entry("Cowboy2Handler.init/4", adapter.handle, "looks the path up with `__handler__`, then connects"),
        Entry(":cowboy_websocket", WebSocketHandler,
              "`init`, `websocket_init`, `websocket_handle`, `websocket_info`, `terminate`"),
        Entry("Cowboy2Handler.websocket_handle/2", WebSocketHandler.websocket_handle,
              "text and binary frames go to the socket's `handle_in`"),
        Entry("Cowboy2Handler.websocket_info/2", WebSocketHandler.websocket_info,
              "messages from other processes: frames to write, closes"),
    )),
    ("Endpoint and dispatch", (
        Entry("Phoenix.Endpoint", Endpoint),
        Entry("Phoenix.Endpoint.socket/3", endpoint_socket, '`socket("/socket", UserSocket, websocket=True)`'),
        Entry("Phoenix.Endpoint.__before_compile__", Endpoint.__init_subclass__,
              "class creation stands in for compilation"),
        Entry("socket_paths/4, do_handler clauses", Endpoint._compile, "one dispatch entry per transport"),
        Entry("Phoenix.Endpoint.__handler__/2", Endpoint.__handler__, 'falls through to `("plug", ...)`'),
        Entry("DemoWeb.Endpoint", DemoEndpoint, "the talk's demo app"),
    )),
    ("Transports", (
        Entry("Phoenix.Socket.Transport", transport),
        Entry("Phoenix.Socket.Transport.load_config/2", load_config, "`path`, `serializer`, `timeout`, ..."),
        Entry("Transport.check_origin/4", check_origin),
        Entry("Transport.connect_info/3", connect_info),
        Entry("Plug.Conn", Conn, "the request as plain data"),
        Entry("Phoenix.Transports.WebSocket", websocket_transport),
        Entry("Phoenix.Transports.WebSocket.connect/4", websocket_transport.connect,
              "a function pipeline, not a router"),
        Entry("Phoenix.Transports.LongPoll", longpoll),
        Entry("Phoenix.Transports.LongPoll.Server", LongPollServer, "one process per long-poll session"),
    )),
    ("Socket", (
        Entry("Phoenix.Socket (the behaviour)", Socket, "`connect`, `id`, `channel` routes"),
        Entry("%Phoenix.Socket{}", SocketStruct, "`assigns`, `topic`, `transport_pid`, `serializer`"),
        Entry("channel/3", socket_channel, '`channel("room:*", RoomChannel)`'),
        Entry("__channel__/1", Socket.__channel__, "topic to channel route"),
        Entry("Phoenix.Socket.__connect__, user_connect/6", socket_connect,
              "serializer by `vsn`, then `connect/3` or `connect/2`"),
        Entry("Phoenix.Socket (the machinery)", SocketState, "`channels` and `channels_inverse`"),
        Entry("Phoenix.Socket.__in__/2", SocketState.handle_in, "decode, then look the topic up"),
        Entry("handle_in/4 clauses", SocketState._handle_in,
              "heartbeat, join, duplicate join, leave, message, unmatched topic"),
        Entry("handle_in(nil, %{event: \"phx_join\"}, ...)", SocketState._join),
        Entry("put_channel/4", SocketState._put_channel, "monitor the channel, map topic and pid"),
        Entry("Phoenix.Socket.__info__/2", SocketState.handle_info, "`DOWN`, `socket_push`, `socket_close`"),
        Entry("DemoWeb.UserSocket", UserSocket, "the talk's demo app"),
    )),
    ("Channel", (
        Entry("Phoenix.Channel", Channel, "`join`, `handle_in`, `handle_out`, `handle_info`, `terminate`"),
        Entry("Phoenix.Channel.push/3", push),
        Entry("Phoenix.Channel.reply/2", reply),
        Entry("Phoenix.Channel.broadcast!/3", broadcast),
        Entry("Phoenix.Channel.Server", ChannelServer, "the process behind every joined topic"),
        Entry("Phoenix.Channel.Server.join/4", channel_server_join, "start the process, then ask it to join"),
        Entry("PoolSupervisor.start_child/4", PoolSupervisor.start_child),
        Entry("handle_info({Phoenix.Channel, ...}), channel_join/4", ChannelServer._join),
        Entry("init_join/3", ChannelServer.init_join, "monitor the transport, subscribe with fastlane"),
        Entry("handle_info(%Message{}, socket)", ChannelServer._handle_in, "the channel's `handle_in`, with telemetry"),
        Entry("handle_in({:reply, ...}), handle_reply/2, reply/6", ChannelServer._reply),
        Entry("handle_info/2 (proxy)", ChannelServer._handle, "anything else goes to the channel's `handle_info`"),
        Entry("DemoWeb.RoomChannel", RoomChannel, "the talk's demo app"),
    )),
    ("Messages and serializers", (
        Entry("Phoenix.Socket.Message", Message),
        Entry("Phoenix.Socket.Reply", Reply),
        Entry("Phoenix.Socket.Broadcast", Broadcast),
        Entry("Phoenix.Socket.Serializer", Serializer, "`fastlane`, `encode`, `decode`"),
        Entry("Phoenix.Socket.V1.JSONSerializer", V1JSONSerializer),
        Entry("Phoenix.Socket.V2.JSONSerializer", V2JSONSerializer),
        Entry("V2.JSONSerializer.encode!/1", V2JSONSerializer.encode),
    )),
    ("PubSub", (
        Entry("Phoenix.PubSub", PubSub),
        Entry("Phoenix.PubSub.subscribe/3", PubSub.subscribe),
        Entry("{:fastlane, pid, serializer, intercepts}", Fastlane),
        Entry("Phoenix.Channel.Server.dispatch/3 (fastlane)", fastlane_dispatch,
              "encode once per serializer, send straight to transports"),
    )),
    ("The BEAM and friends", (
        Entry("Process.monitor/1", process.monitor),
        Entry("Process.demonitor/2", process.demonitor),
        Entry("send/2", process.send),
        Entry("receive", process.receive),
        Entry("spawn/1", process.spawn),
        Entry(":telemetry.execute/3", telemetry.execute),
        Entry("Phoenix.Token", token),
    )),
    ("phoenix.js", (
        Entry("Socket", client.Socket),
        Entry("Channel", client.Channel),
        Entry("Push", client.Push),
    )),
)
