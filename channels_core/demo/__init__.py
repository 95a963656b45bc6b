"""The demo app: a chat server, and the reference app every test and notebook uses.

It behaves exactly like the app in Phoenix's own
``test/phoenix/integration/websocket_channels_test.exs``, against which the golden
wire transcripts in this project were recorded, so any frame our server sends can
be compared with the frame real Phoenix sent. It adds a chat page at ``/`` (two
browser tabs can talk) and token authentication for phoenix.js's ``authToken``.

Presence (who is online, :mod:`channels_core.presence`) is opt in, per join, so
that the frames above stay exactly Phoenix's: a client that joins a ``room:*``
topic with ``{"presence": true}`` in its join payload is tracked under its
``user_id`` (an anonymous socket under a generated ``anonymous-<hex>`` key) with
an ``online_at`` meta, and gets ``presence_state`` right after ``joined`` (and
after the ``presence_diff`` of its own join, which phoenix.js's ``Presence``
holds until the state has arrived). The
``presence_diff`` that each join and leave of a tracked client causes is a
broadcast on the room's topic, as in Phoenix, so every subscriber of that room
receives it, opted in or not; a client without presence ignores it (phoenix.js
drops events it has no binding for). A room where nobody asked for presence
never sees a presence frame, and a server where nobody did never starts a
tracker. The chat page at ``/`` asks for it, and lists who is online.

Read it as a user's app: :class:`UserSocket` is ``use Phoenix.Socket``,
:class:`RoomChannel` is ``use Phoenix.Channel``, :class:`DemoEndpoint` is the
endpoint with its ``socket "/socket", ...`` line.
"""

from __future__ import annotations

from .app import BenchChannel, DemoEndpoint, RoomChannel, UserSocket, create_app, sign_user_token

__all__ = ["BenchChannel", "DemoEndpoint", "RoomChannel", "UserSocket", "create_app", "sign_user_token"]
