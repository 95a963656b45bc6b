"""The demo app: a chat server, and the reference app every test and notebook uses.

It behaves exactly like the app in Phoenix's own
``test/phoenix/integration/websocket_channels_test.exs``, against which the golden
wire transcripts in this project were recorded, so any frame our server sends can
be compared with the frame real Phoenix sent. It adds a chat page at ``/`` (two
browser tabs can talk) and token authentication for phoenix.js's ``authToken``.

Read it as a user's app: :class:`UserSocket` is ``use Phoenix.Socket``,
:class:`RoomChannel` is ``use Phoenix.Channel``, :class:`DemoEndpoint` is the
endpoint with its ``socket "/socket", ...`` line.
"""

from __future__ import annotations

from .app import BenchChannel, DemoEndpoint, RoomChannel, UserSocket, create_app, sign_user_token

__all__ = ["BenchChannel", "DemoEndpoint", "RoomChannel", "UserSocket", "create_app", "sign_user_token"]
