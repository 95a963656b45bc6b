"""Django Channels, as its tutorial builds a chat: a JSON consumer, groups on a channel layer, daphne.

``AsyncJsonWebsocketConsumer`` is the documented consumer for JSON over WebSocket;
a join adds the consumer's channel to the group, a ``bench_broadcast`` calls
``group_send`` ``n`` times, and each member's ``bench_msg`` handler writes the
frame. The frames are Phoenix's V2 arrays, as for the plain ``websockets`` peer.

The layer is the in-memory one, or Redis (``channels_redis``) when the runner
sets ``BENCH_CHANNEL_LAYER=redis`` and ``BENCH_REDIS_URL``. The in-memory layer's
per-channel capacity is raised from 100 to 10,000 (a documented setting), so that
a burst of broadcasts is not dropped by design before it is measured.

Run by daphne, the server the Channels documentation recommends::

    DJANGO_SETTINGS_MODULE=bench.peers.django_channels python -m daphne bench.peers.django_channels:application
"""

from __future__ import annotations

import os

from django.conf import settings

TOPIC = "bench:1"
GROUP = "bench_1"  # group names may not contain ":"

if not settings.configured:
    if os.environ.get("BENCH_CHANNEL_LAYER") == "redis":
        layer = {"BACKEND": "channels_redis.core.RedisChannelLayer",
                 "CONFIG": {"hosts": [os.environ["BENCH_REDIS_URL"]], "capacity": 10_000}}
    else:
        layer = {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 10_000}}
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench only",
        ALLOWED_HOSTS=["*"],
        INSTALLED_APPS=["channels"],
        CHANNEL_LAYERS={"default": layer},
        ASGI_APPLICATION="bench.peers.django_channels.application",
    )

import django  # noqa: E402

django.setup()

from channels.generic.websocket import AsyncJsonWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402


class BenchConsumer(AsyncJsonWebsocketConsumer):
    async def receive_json(self, content, **kwargs):  # type: ignore[no-untyped-def]
        join_ref, ref, topic, event, payload = content
        response: dict = {}
        if event == "phx_join":
            await self.channel_layer.group_add(GROUP, self.channel_name)
        elif event == "ping":
            response = payload
        elif event == "bench_broadcast":
            for i in range(1, payload["n"] + 1):
                await self.channel_layer.group_send(GROUP, {"type": "bench.msg", "i": i})
        await self.send_json([join_ref, ref, TOPIC, "phx_reply", {"status": "ok", "response": response}])

    async def bench_msg(self, event):  # type: ignore[no-untyped-def]
        await self.send_json([None, None, TOPIC, "bench_msg", {"i": event["i"]}])

    async def disconnect(self, code):  # type: ignore[no-untyped-def]
        await self.channel_layer.group_discard(GROUP, self.channel_name)

    @classmethod
    async def encode_json(cls, content):  # type: ignore[no-untyped-def]
        # Compact separators, as the other servers write, so every peer sends the same bytes.
        import json

        return json.dumps(content, separators=(",", ":"))


application = ProtocolTypeRouter({"websocket": URLRouter([path("socket", BenchConsumer.as_asgi())])})
