"""The workshop: checks for the exercise notebooks in ``exercises/``.

No Phoenix counterpart: this is teaching material, like :mod:`channels_core.anatomy`.
Each walkthrough chapter has an exercise notebook; each exercise asks the learner
to write or change some code, and ends with a check::

    from channels_core.workshop import check_after_join

    await check_after_join(GreeterChannel)
    # ✓ exercise 6: passed — the join reply came first, then welcome ...
    # ✗ exercise 6: the join was refused with {'reason': 'join crashed'}; ... Hint: ...

A check runs the learner's code against a real server on 127.0.0.1, prints one
verdict line (never a traceback) and returns True or False. :data:`EXERCISES`
lists them all: number → (chapter, difficulty, title, check).

The checks live in the package rather than next to the notebooks so that they
import the same way from anywhere: the exercise notebooks, their solutions one
directory down, a learner's own scratch notebook, and the tests.
"""

from __future__ import annotations

from .checks import (
    EXERCISES,
    check_after_join,
    check_channel_limit,
    check_crash_and_rejoin,
    check_direct_broadcast,
    check_first_client,
    check_handle_in_reply,
    check_join_ref_layers,
    check_longpoll_ping,
    check_mute,
    check_no_inheritance,
    check_presence_status,
    check_second_socket,
    check_serializer,
    check_token_socket,
    check_topics_of,
)
from .harness import Failed
from ..anatomy.notebook import plain_logs

__all__ = [
    "EXERCISES",
    "Failed",
    "check_after_join",
    "check_channel_limit",
    "check_crash_and_rejoin",
    "check_direct_broadcast",
    "check_first_client",
    "check_handle_in_reply",
    "check_join_ref_layers",
    "check_longpoll_ping",
    "check_mute",
    "check_no_inheritance",
    "check_presence_status",
    "check_second_socket",
    "check_serializer",
    "check_token_socket",
    "check_topics_of",
    "plain_logs",
]
