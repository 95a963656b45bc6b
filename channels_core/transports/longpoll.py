"""LongPoll transport (being written)."""

from __future__ import annotations

from typing import Any, NamedTuple


class HTTPResponse(NamedTuple):
    status: int
    headers: list[tuple[str, str]]
    body: str | bytes


async def serve(endpoint: Any, handler: type, config: Any, conn: Any, body: bytes) -> HTTPResponse:
    return HTTPResponse(404, [], "")
