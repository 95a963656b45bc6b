"""channels_core: Phoenix Channels, rebuilt in Python to be read, run and traced.

The package follows the path of a request through the layers the talk
"Anatomy of a Real-Time Elixir App" reads in Phoenix's source:

=====================  ==========================================  =====================
layer                  channels_core                               Phoenix
=====================  ==========================================  =====================
web server             :mod:`~channels_core.server` (uvicorn)      Cowboy
server adapter         :mod:`~channels_core.adapter`               Endpoint.Cowboy2Handler
endpoint               :mod:`~channels_core.endpoint`              Phoenix.Endpoint
transports             :mod:`~channels_core.transports`            Phoenix.Transports.*
socket                 :mod:`~channels_core.socket`                Phoenix.Socket
channel                :mod:`~channels_core.channel`               Phoenix.Channel
channel process        :mod:`~channels_core.channel_server`        Phoenix.Channel.Server
serializers            :mod:`~channels_core.serializers`           Phoenix.Socket.V*.JSONSerializer
pubsub                 :mod:`~channels_core.pubsub`                Phoenix.PubSub
presence               :mod:`~channels_core.presence`              Phoenix.Presence
processes              :mod:`~channels_core.process`               the BEAM
=====================  ==========================================  =====================

The names most applications need are re-exported here.
"""

from __future__ import annotations

from .channel import (
    Channel,
    broadcast,
    broadcast_from,
    local_broadcast,
    push,
    reply,
    socket_ref,
)
from .endpoint import Endpoint
from .message import Broadcast, Message, Reply
from .pubsub import PubSub
from .server import Server
from .socket import Socket, SocketStruct, assign, channel

__all__ = [
    "Broadcast",
    "Channel",
    "Endpoint",
    "Message",
    "PubSub",
    "Reply",
    "Server",
    "Socket",
    "SocketStruct",
    "assign",
    "broadcast",
    "broadcast_from",
    "channel",
    "local_broadcast",
    "push",
    "reply",
    "socket_ref",
]
