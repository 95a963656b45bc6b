"""pytest fixtures for channel tests: ``channel_case``, given an ``endpoint`` fixture.

Phoenix generates a ``ChannelCase`` module for every application: ``use
MyAppWeb.ChannelCase`` imports ``Phoenix.ChannelTest`` and sets ``@endpoint``. The
pytest equivalent is a fixture. Installing channels-anatomy registers this module
as a pytest plugin (the ``pytest11`` entry point ``channels_core``), so any test
can ask for ``channel_case``; it only needs to be told which endpoint to use, by
an ``endpoint`` fixture of your own, the ``@endpoint`` of Phoenix::

    import pytest
    from channels_core.testing import assert_reply, connect, push, subscribe_and_join

    @pytest.fixture
    def endpoint():
        return MyEndpoint()

    async def test_ping(channel_case):
        socket = connect(UserSocket, {"user_id": "u1"})
        _, room = await subscribe_and_join(socket, RoomChannel, "room:lobby")
        await assert_reply(push(room, "ping", {"n": 1}), "ok", {"n": 1})

``channel_case`` runs the test inside ``channels_core.testing.channel_test`` (see
there for what that means). It is an async fixture, so it needs pytest-asyncio
(0.25 or later, which hands the fixture's context variables on to the test) and
an async test. Disable the plugin with ``-p no:channels_core``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - the fixture then explains what is missing
    pytest_asyncio = None


if pytest_asyncio is not None:

    @pytest_asyncio.fixture
    async def channel_case(endpoint: Any) -> AsyncIterator[Any]:
        """The test process of a channel test: ``channel_test(endpoint)`` around the test."""
        from .testing import channel_test  # imported late: plugins load before the code under test

        async with channel_test(endpoint) as case:
            yield case

else:  # pragma: no cover

    @pytest.fixture
    def channel_case() -> None:
        raise pytest.UsageError("the channel_case fixture needs pytest-asyncio: pip install pytest-asyncio")
