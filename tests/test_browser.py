"""The demo chat page in a real browser: two tabs, one room, one message, who is online.

pytest starts the demo app on a real server; ``tests/js/chat_browser.js`` drives
Debian's headless chromium through playwright-core: it opens the page in two
browser contexts, joins ``room:lobby`` in each through the page's form, waits
until each tab's online list (phoenix.js's ``Presence``, fed by the server's
``presence_state`` and ``presence_diff``) names both users, sends a message from
the first and waits for it in the second. It prints what each tab
shows as JSON and saves a screenshot of the second tab to ``artifacts/chat.png``.

The page talks to the server only through the official phoenix.js, served by the
demo, so this is the whole stack as a visitor meets it.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import struct
from pathlib import Path
from typing import Any

import pytest
from helpers import ROOT, seconds

from channels_core.server import Server

CHROMIUM = Path("/usr/bin/chromium")
SCRIPT = ROOT / "tests" / "js" / "chat_browser.js"
SCREENSHOT = ROOT / "artifacts" / "chat.png"
#: Markup and non-ASCII on purpose: the page must show it as text, unchanged.
MESSAGE = "hello from tab 1 <b>not bold</b> & ünïcode"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not (CHROMIUM.is_file() and shutil.which("node") and (ROOT / "node_modules" / "playwright-core").is_dir()),
        reason="needs /usr/bin/chromium, node and node_modules/playwright-core",
    ),
]


async def run_chat_script(server: Server, timeout: float = 60.0) -> dict[str, Any]:
    """Run the browser script against ``server``; return the JSON it printed."""
    child = await asyncio.create_subprocess_exec(
        "node", str(SCRIPT), server.url, str(SCREENSHOT), MESSAGE,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(child.communicate(), seconds(timeout))
    except TimeoutError:
        child.kill()
        await child.wait()
        raise
    assert child.returncode == 0, f"chat_browser.js failed:\n{stderr.decode()}"
    return json.loads(stdout)  # type: ignore[no-any-return]


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


async def test_a_message_sent_in_one_tab_shows_in_both(demo_server: Server) -> None:
    SCREENSHOT.unlink(missing_ok=True)

    result = await run_chat_script(demo_server)

    line = {"text": f"alice: {MESSAGE}", "system": False}
    # Tab 2 joined second: it sees its own arrival, then tab 1's message.
    assert result["tab2"]["messages"] == [{"text": "bob entered", "system": True}, line]
    # Tab 1 shows its message only once the broadcast brings it back.
    assert result["tab1"]["messages"] == [
        {"text": "alice entered", "system": True},
        {"text": "bob entered", "system": True},
        line,
    ]
    for tab in ("tab1", "tab2"):
        # Both tabs list both users: each tab is tracked under its user_id.
        assert result[tab]["online"] == ["alice", "bob"]
        assert result[tab]["status"] == "joined room:lobby"
        assert result[tab]["joined"] == "room:lobby"
        assert result[tab]["inputDisabled"] is False
        assert result[tab]["errors"] == []
    assert result["tab1"]["input"] == ""  # the form clears after sending

    assert result["screenshot"] == str(SCREENSHOT)
    width, height = png_size(SCREENSHOT)
    assert width == 760 and height >= 560
