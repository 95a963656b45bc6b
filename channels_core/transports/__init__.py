"""Transports: how a connection reaches a socket (WebSocket or LongPoll).

Mirrors ``Phoenix.Socket.Transport`` and its two implementations. A transport owns
the connection; the socket behind it only ever sees decoded frames and messages.
"""
