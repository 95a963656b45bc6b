"""The demo's plain HTTP side: the chat page and phoenix.js, both read from disk.

phoenix.js is not copied into this repository: ``npm ci`` installs it, and this
module serves the file from ``node_modules``. Set ``CHANNELS_CORE_PHOENIX_JS`` to
serve it from elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

STATIC = Path(__file__).parent / "static"


def phoenix_js_path() -> Path | None:
    """Where phoenix.js (the browser build) is, or None if npm has not installed it."""
    override = os.environ.get("CHANNELS_CORE_PHOENIX_JS")
    if override:
        return Path(override)
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "node_modules" / "phoenix" / "priv" / "static" / "phoenix.js"
        if candidate.is_file():
            return candidate
    return None


async def pages(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI app serving ``/`` and ``/assets/phoenix.js``; 404 for the rest."""
    if scope["type"] != "http":
        return
    path = scope.get("path", "/")
    status, content_type, body = 404, "text/plain; charset=utf-8", b"not found"
    if path in ("/", "/index.html"):
        status, content_type, body = 200, "text/html; charset=utf-8", (STATIC / "index.html").read_bytes()
    elif path == "/assets/phoenix.js":
        source = phoenix_js_path()
        if source is None:
            status, body = 500, b"phoenix.js is missing: run `npm ci` in the project folder"
        else:
            status, content_type, body = 200, "text/javascript; charset=utf-8", source.read_bytes()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})
