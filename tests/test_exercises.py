"""The workshop exercises: every check can fail, and every check can pass.

The exercise notebooks (``exercises/NN_*.ipynb``, the *starters*) are made from the
solution notebooks (``exercises/solutions/``) by ``exercises/make_starters.py``.
These tests hold the pieces together:

* the committed starters are exactly what the script makes from the solutions;
* each check, run on the objects a starter defines, fails with the message
  expected here, and run on the objects its solution defines, passes. The objects
  come from executing the notebooks' own code cells (the setup, given and
  ``solution``/``todo`` cells); the arguments from the ``check`` cell itself;
* the mistakes the facilitator guide lists get the verdicts it promises, and a
  check never lets a traceback out, not even for a learner's exception or hang;
* each starter runs from top to bottom in a real kernel without an error, and
  each of its check cells prints one ``✗`` line (the documented rule for starters;
  the solutions run under nbval in ``make test``);
* each walkthrough chapter's closing line links to its exercise notebook.

A check starts its own server and stops it; ``leak_check`` (conftest.py) then
makes sure no process outlived it.
"""

from __future__ import annotations

import ast
import asyncio
import importlib.util
import json
import re
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import nbformat
import pytest
from helpers import ROOT

from channels_core import workshop
from channels_core.workshop import EXERCISES
from channels_core.workshop.harness import exercise

EXERCISES_DIR = ROOT / "exercises"
SOLUTIONS_DIR = EXERCISES_DIR / "solutions"
STARTERS = sorted(EXERCISES_DIR.glob("[0-9][0-9]_*.ipynb"))
SOLUTIONS = sorted(SOLUTIONS_DIR.glob("[0-9][0-9]_*.ipynb"))
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))

#: What each check says about the untouched starter: the start of the verdict, and more of it.
STARTER_VERDICTS: dict[int, list[str]] = {
    1: ["chat returned None: expected the payload of the new_msg Bob received"],
    2: ["the dispatch table has no /admin/websocket", "got only ['/socket/websocket']"],
    3: ["a valid token for 'alice' connected, but the socket remembers user_id None"],
    4: ["a 4th topic joined: expected the 4th join to be refused", "too many channels joined"],
    5: ["topics_of(app, 'user_sockets:alice') returned [] after alice joined room:a and room:b",
        "expected ['room:a', 'room:b']"],
    6: ["the join was refused with {'reason': 'join crashed'}",
        "ChannelsError('push/3 can only be called after the socket has joined')"],
    7: ["no reply to 'add' {'a': 2, 'b': 3} within 2 s"],
    8: ["JOIN_REPLY_LAYER is None: expected your answer"],
    9: ["after the join frame {'event': 'phx_join', 'join_ref': '1', 'payload': {}, 'ref': '1', 'topic': 'echo:1'}, "
        "the server closed the connection with code 1011",
        "the server logged: ERROR channels_core.adapter: ! socket <socket process> crashed: decode "
        "(NotImplementedError: decode)"],
    10: ["carol, who muted alice, received alice's new_msg"],
    11: ["your trace holds no ↑ boom frame"],
    12: ["no ping reached room:lobby over LongPoll (longpoll_ping returned None)"],
    13: ["joining with {'start': 5} got ('ok', {}): expected ('ok', {'count': 5})"],
    14: ["alice, on node a, received the notice of broadcast_to_node(endpoint_a, 'b', 'room:lobby', 'notice', "
         "{'text': 'for node b only, sent from node a'}): expected only the clients on node b"],
    15: ["after alice's join, alice's presence_state lists {'alice': [{}]} (phx_ref aside): expected each user "
         "with one meta, 'status': 'online'"],
}


def _load_make_starters() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_starters", EXERCISES_DIR / "make_starters.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_starters = _load_make_starters()


def tags(cell: Any) -> list[str]:
    return list(cell.metadata.get("tags", []))


def check_calls(path: Path) -> dict[int, tuple[str, list[str]]]:
    """exercise number → (check function, argument names), from the notebook's check cells."""
    calls = {}
    for cell in nbformat.read(path, as_version=4).cells:
        if "check" not in tags(cell):
            continue
        [statement] = ast.parse(cell.source).body
        call = statement.value.value  # Expr(Await(Call))
        name = call.func.id
        number = getattr(workshop, name).exercise
        calls[number] = (name, [arg.id for arg in call.args])
    return calls


def definitions(path: Path) -> dict[str, Any]:
    """The names a notebook defines: its code cells run in order, checks and live explorations left out."""
    namespace: dict[str, Any] = {"__name__": f"exercise_notebook_{path.stem}"}
    for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
        if cell.cell_type == "code" and not {"check", "explore"} & set(tags(cell)):
            exec(compile(cell.source, f"{path.name}, cell {index}", "exec"), namespace)
    return namespace


def notebook_of(number: int, directory: Path) -> Path:
    chapter = EXERCISES[number][0]
    [path] = directory.glob(f"{chapter:02d}_*_exercises.ipynb")
    return path


@pytest.fixture
def quiet_notebook_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The notebooks' setup calls plain_logs(), which is for a kernel: keep pytest's logging as it is."""
    monkeypatch.setattr(workshop, "plain_logs", lambda *args, **kwargs: None)


async def run_check(number: int, directory: Path, capsys: pytest.CaptureFixture[str]) -> tuple[bool, str]:
    path = notebook_of(number, directory)
    name, args = check_calls(path)[number]
    namespace = definitions(path)
    tasks_before = set(asyncio.all_tasks())
    passed = await getattr(workshop, name)(*(namespace[arg] for arg in args))
    left = [t for t in asyncio.all_tasks() if t not in tasks_before and not t.done()]
    assert left == [], f"the check left tasks running: {left}"
    return passed, capsys.readouterr().out


# The starters are made from the solutions


def test_there_is_one_exercise_notebook_per_chapter_and_a_solution_for_each() -> None:
    with_exercises = sorted({chapter for chapter, *_ in EXERCISES.values()})
    assert with_exercises == list(range(1, 13))
    chapters = [p.stem for p in CHAPTERS if int(p.stem[:2]) in with_exercises]
    assert [p.stem for p in STARTERS] == [f"{c}_exercises" for c in chapters]
    assert [p.name for p in SOLUTIONS] == [p.name for p in STARTERS]


def test_no_stored_output_holds_a_path_of_this_machine() -> None:
    for path in SOLUTIONS:
        for cell in nbformat.read(path, as_version=4).cells:
            for output in cell.get("outputs", []):
                found = re.search(r"(/work/|/tmp/|/root/|/home/|/usr/)", json.dumps(output))
                assert found is None, f"{path.name}: {cell.source[:60]!r} shows {found.group(0)!r}"


def test_the_starters_are_what_make_starters_makes_from_the_solutions(capsys: pytest.CaptureFixture[str]) -> None:
    assert make_starters.main(["--verify"]) == 0, capsys.readouterr().err


def test_verify_names_a_stale_starter_and_a_starter_without_solution(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    solutions, starters = tmp_path / "solutions", tmp_path / "starters"
    solutions.mkdir()
    starters.mkdir()
    shutil.copy(SOLUTIONS[1], solutions)
    shutil.copy(STARTERS[1], starters)
    assert make_starters.main(["--verify"], solutions=solutions, starters=starters) == 0

    stale = nbformat.read(starters / STARTERS[1].name, as_version=4)
    stale.cells[0].source += "\nAn edit made by hand."
    nbformat.write(stale, starters / STARTERS[1].name)
    shutil.copy(STARTERS[0], starters)

    assert make_starters.main(["--verify"], solutions=solutions, starters=starters) == 1
    err = capsys.readouterr().err
    assert f"exercises/{STARTERS[1].name} is not what its solution makes" in err
    assert f"exercises/{STARTERS[0].name} has no solution in exercises/solutions/" in err

    (starters / STARTERS[0].name).unlink()
    assert make_starters.main([], solutions=solutions, starters=starters) == 0
    assert capsys.readouterr().out == f"wrote {STARTERS[1].name}\n"
    assert (starters / STARTERS[1].name).read_text() == STARTERS[1].read_text()


def test_a_solution_cell_without_its_starter_is_refused() -> None:
    notebook = nbformat.read(SOLUTIONS[0], as_version=4)
    cell = next(c for c in notebook.cells if "solution" in tags(c) and c.cell_type == "code")
    del cell.metadata["starter"]
    with pytest.raises(ValueError, match="a cell tagged 'solution' has no 'starter' in its metadata"):
        make_starters.starter_of(notebook)


def test_a_starter_keeps_the_checks_and_leaves_out_the_answers() -> None:
    for solution, starter in zip(SOLUTIONS, STARTERS, strict=True):
        solved = nbformat.read(solution, as_version=4)
        made = nbformat.read(starter, as_version=4)
        replaced = [c for c in solved.cells if "solution" in tags(c)]
        assert replaced, f"{solution.name} has no answer to replace"
        for cell in replaced:
            assert "TODO" in cell.metadata["starter"] or cell.cell_type == "markdown", cell.source[:60]
            assert cell.source not in {c.source for c in made.cells}, f"{starter.name} shows an answer"
        assert not any("solution-only" in tags(c) or "solution" in tags(c) for c in made.cells)
        assert [c.source for c in made.cells if "check" in tags(c)] == \
               [c.source for c in solved.cells if "check" in tags(c)]
        assert all(c.outputs == [] and c.execution_count is None for c in made.cells if c.cell_type == "code")
        assert made.cells[0].source.startswith("# Exercises for chapter ")
        assert solved.cells[0].source.startswith("# Solutions for chapter ")


# The notebooks' shape: one check per exercise, awaited, and nothing else awaited at the top


def awaits_at_the_top(source: str) -> bool:
    """Whether a cell awaits outside any function, which only a kernel (or nbval) can run."""
    try:
        compile(source, "<cell>", "exec")
    except SyntaxError:
        return True
    return False


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_each_exercise_has_its_heading_and_one_check(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    chapter = int(path.name[:2])
    expected = [(n, level) for n, (c, level, _, _) in EXERCISES.items() if c == chapter]
    headings = [re.match(r"## Exercise (\d+) \((\w+)\): \S", c.source) for c in notebook.cells
                if c.cell_type == "markdown" and c.source.startswith("## Exercise ")]
    assert [(int(m[1]), m[2]) for m in headings if m] == expected
    assert sorted(check_calls(path)) == [n for n, _ in expected]
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        if "check" in tags(cell):
            assert len(ast.parse(cell.source).body) == 1, "a check cell holds the check and nothing else"
        elif awaits_at_the_top(cell.source):
            assert "explore" in tags(cell), f"only check and explore cells may await: {cell.source[:60]!r}"
        if "solution" in tags(cell):
            assert not awaits_at_the_top(cell.metadata["starter"]), "a starter's TODO cell defines, never awaits"


def test_every_exercise_is_in_a_notebook_and_in_the_guide() -> None:
    found = {n for path in SOLUTIONS for n in check_calls(path)}
    assert found == set(EXERCISES) and len(EXERCISES) >= 10
    guide = (ROOT / "book" / "workshop.md").read_text()
    for number, (chapter, level, _title, check) in EXERCISES.items():
        assert f"| {number} | [{chapter}](chapters/{CHAPTERS[chapter - 1].name}) | {level} |" in guide, number
    levels = [level for _, level, _, _ in EXERCISES.values()]
    assert levels.count("easy") >= 3 and levels.count("hard") >= 3


def test_each_chapter_closes_with_a_link_to_its_exercises() -> None:
    for chapter in CHAPTERS:
        if int(chapter.stem[:2]) not in {c for c, *_ in EXERCISES.values()}:
            continue
        last = nbformat.read(chapter, as_version=4).cells[-1]
        link = f"exercises/{chapter.stem}_exercises.ipynb"
        assert f"**Exercises:** [{link}]({link})" in last.source, chapter.name
    # JupyterLab runs on notebooks/, and the book reads notebooks/: both see exercises/ through this link.
    assert (ROOT / "notebooks" / "exercises").readlink() == Path("../exercises")


# Each check fails on the starter and passes on the solution


@pytest.mark.parametrize("number", sorted(EXERCISES))
async def test_the_check_fails_on_the_starter(
    number: int, capsys: pytest.CaptureFixture[str], quiet_notebook_logs: None, leak_check: None
) -> None:
    passed, out = await run_check(number, EXERCISES_DIR, capsys)
    assert passed is False
    assert out.startswith(f"✗ exercise {number}: {STARTER_VERDICTS[number][0]}"), out
    for part in STARTER_VERDICTS[number][1:]:
        assert part in out, out
    assert ". Hint: " in out or "Hint: " in out, out
    assert out.count("\n") == 1 and "Traceback" not in out, out


@pytest.mark.parametrize("number", sorted(EXERCISES))
async def test_the_check_passes_on_the_solution(
    number: int, capsys: pytest.CaptureFixture[str], quiet_notebook_logs: None, leak_check: None
) -> None:
    passed, out = await run_check(number, SOLUTIONS_DIR, capsys)
    assert out.startswith(f"✓ exercise {number}: passed — "), out
    assert passed is True
    assert out.count("\n") == 1, out


# The mistakes the guide lists, and what the learner is told


def solution_objects(number: int) -> dict[str, Any]:
    return definitions(notebook_of(number, SOLUTIONS_DIR))


async def verdict(check: Any, *args: Any, capsys: pytest.CaptureFixture[str]) -> str:
    passed = await check(*args)
    out = capsys.readouterr().out
    assert passed is False and out.count("\n") == 1 and "Traceback" not in out, out
    return out


async def test_clients_left_connected_fail_exercise_1(
    capsys: pytest.CaptureFixture[str], quiet_notebook_logs: None, leak_check: None
) -> None:
    from channels_core.client import Socket

    async def chat(url: str) -> Any:
        alice, bob = Socket(url, params={"user_id": "alice"}), Socket(url, params={"user_id": "bob"})
        await alice.connect()
        await bob.connect()
        a, b = alice.channel("room:lobby", {"user": "alice"}), bob.channel("room:lobby", {"user": "bob"})
        await a.join()
        await b.join()
        await a.push("new_msg", {"body": "hello, bob"})
        return (await b.next_message("new_msg")).payload

    out = await verdict(workshop.check_first_client, chat, capsys=capsys)
    assert out.startswith("✗ exercise 1: chat returned with 2 connection(s) still open"), out
    assert "Hint: await alice.disconnect()" in out


async def test_a_token_error_not_caught_is_reported_with_the_servers_words(
    capsys: pytest.CaptureFixture[str], quiet_notebook_logs: None, leak_check: None
) -> None:
    from channels_core import token
    from channels_core.socket import Socket, assign

    class TokenSocket(Socket):
        def connect(self, params: Any, socket: Any, connect_info: Any) -> Any:
            user = token.verify(socket.endpoint.secret_key_base, "user socket", connect_info["auth_token"],
                                max_age=3600)
            return ("ok", assign(socket, user_id=user))

        def id(self, socket: Any) -> str:
            return f"user_sockets:{socket.assigns['user_id']}"

    out = await verdict(workshop.check_token_socket, TokenSocket, capsys=capsys)
    assert out.startswith("✗ exercise 3: a connection without a token got HTTP 500: expected 403"), out
    assert "the server logged: ERROR uvicorn.error: Exception in ASGI application (InvalidToken: missing token)" in out
    assert "Hint: catch channels_core.exceptions.TokenError" in out


async def test_a_join_that_sends_itself_a_message_nobody_handles(
    capsys: pytest.CaptureFixture[str], quiet_notebook_logs: None, leak_check: None
) -> None:
    from channels_core import process
    from channels_core.channel import Channel

    class GreeterChannel(Channel):
        def join(self, topic: str, payload: Any, socket: Any) -> Any:
            process.send(process.current(), ("after_join", payload))
            return ("ok", socket)

    out = await verdict(workshop.check_after_join, GreeterChannel, capsys=capsys)
    assert out.startswith("✗ exercise 6: no welcome push came within 2 s of the join reply"), out
    assert ("the server logged: WARNING channels_core.channel: GreeterChannel received unexpected message "
            "in handle_info/2: ('after_join', {'user': 'ann'})") in out


async def test_a_welcome_broadcast_to_everyone_is_refused(
    capsys: pytest.CaptureFixture[str], quiet_notebook_logs: None, leak_check: None
) -> None:
    from channels_core import process
    from channels_core.channel import Channel, broadcast

    class GreeterChannel(Channel):
        def join(self, topic: str, payload: Any, socket: Any) -> Any:
            process.send(process.current(), ("after_join", payload))
            return ("ok", socket)

        def handle_info(self, message: Any, socket: Any) -> Any:
            broadcast(socket, "welcome", {"user": message[1]["user"], "topic": socket.topic})
            return ("noreply", socket)

    out = await verdict(workshop.check_after_join, GreeterChannel, capsys=capsys)
    assert ("expected a push of this join, ['1', None, 'greet:lobby', 'welcome', ...]: "
            "a broadcast reaches everyone") in out


async def test_a_reply_of_the_wrong_shape_quotes_the_channel_server(
    capsys: pytest.CaptureFixture[str], quiet_notebook_logs: None, leak_check: None
) -> None:
    from channels_core.channel import Channel

    class CalcChannel(Channel):
        def join(self, topic: str, payload: Any, socket: Any) -> Any:
            return ("ok", socket)

        def handle_in(self, event: str, payload: Any, socket: Any) -> Any:
            return ("reply", "ok", {"sum": payload["a"] + payload["b"]})

    out = await verdict(workshop.check_handle_in_reply, CalcChannel, capsys=capsys)
    assert out.startswith("✗ exercise 7: 'add' {'a': 2, 'b': 3} crashed the channel (phx_error)"), out
    assert ("crashed handling event 'add': CallbackError(\"expected handle_in to return one of: "
            "('noreply', socket) |") in out


@pytest.mark.parametrize(("answers", "expected"), [
    (("serializer", "channel_server", "x:y"),
     "JOIN_REPLY_LAYER is 'serializer': that layer does not put join_ref on the join's reply. Hint: the "
     "serializer writes the join_ref it is given"),
    (("socket", "channel", "x:y"),
     "PING_REPLY_LAYER is 'channel': that layer does not put join_ref on the ping's reply. Hint: your "
     "channel's handle_in returns"),
    (("socket", "channel_server", "ChannelServer._handle_in_result"),
     "PING_REPLY_FUNCTION 'ChannelServer._handle_in_result' is not where the ping's Reply gets its join_ref"),
    (("socket", "channel_server", "channels_core.nowhere:Nothing"),
     "PING_REPLY_FUNCTION 'channels_core.nowhere:Nothing' names no function show_source can find"),
])
async def test_wrong_answers_about_join_ref_get_a_hint(
    answers: tuple[str, str, str], expected: str, capsys: pytest.CaptureFixture[str], leak_check: None
) -> None:
    out = await verdict(workshop.check_join_ref_layers, *answers, capsys=capsys)
    assert out.startswith(f"✗ exercise 8: {expected}"), out


async def test_a_handle_out_without_intercept_is_never_called(
    capsys: pytest.CaptureFixture[str], quiet_notebook_logs: None, leak_check: None
) -> None:
    channel = solution_objects(10)["MuteChannel"]
    forgetful = type("MuteChannel", (channel,), {"intercept": ()})
    out = await verdict(workshop.check_mute, forgetful, capsys=capsys)
    assert out.startswith("✗ exercise 10: carol, who muted alice, received alice's new_msg"), out


async def test_a_channel_that_inherits_is_refused_for_exercise_13(
    capsys: pytest.CaptureFixture[str], quiet_notebook_logs: None
) -> None:
    from channels_core.channel import Channel

    tally = solution_objects(13)["TallyChannel"]
    methods = {name: value for name, value in vars(tally).items() if not name.startswith("__")}
    out = await verdict(workshop.check_no_inheritance, type("TallyChannel", (Channel,), methods), capsys=capsys)
    assert out.startswith("✗ exercise 13: TallyChannel inherits from Channel: expected a class with no base"), out


@pytest.mark.redis
async def test_a_direct_broadcast_through_the_default_dispatcher_is_told_from_the_fastlane(
    capsys: pytest.CaptureFixture[str], quiet_notebook_logs: None, leak_check: None
) -> None:
    from channels_core.message import Broadcast
    from channels_core.pubsub import default_dispatch

    def broadcast_to_node(endpoint: Any, node_name: str, topic: str, event: str, payload: Any) -> None:
        endpoint.pubsub.direct_broadcast(node_name, topic, Broadcast(topic, event, payload), default_dispatch)

    out = await verdict(workshop.check_direct_broadcast, broadcast_to_node, capsys=capsys)
    assert out.startswith("✗ exercise 14: bob received ['1', None, 'room:lobby', 'notice', "
                          "{'text': 'for node b only, sent from node a', 'transport': ':websocket'}]: expected the "
                          "fastlane's frame"), out
    assert "Hint: pass fastlane_dispatch as direct_broadcast's last argument" in out


async def test_a_second_track_instead_of_update_quotes_the_tracker(
    capsys: pytest.CaptureFixture[str], quiet_notebook_logs: None, leak_check: None
) -> None:
    status_channel = solution_objects(15)["StatusChannel"]

    def handle_in(self: Any, event: str, payload: Any, socket: Any) -> Any:
        socket.endpoint.presence.track(socket, socket.assigns["user_id"], {"status": payload["status"]})
        return ("reply", ("ok", {}), socket)

    tracking = type("StatusChannel", (status_channel,), {"handle_in": handle_in})
    out = await verdict(workshop.check_presence_status, tracking, capsys=capsys)
    assert out.startswith("✗ exercise 15: bob's set_status {'status': 'away'} got ['1', '1', 'status:lobby', "
                          "'phx_error', {'reason': 'channel_crash'}]: expected the reply ok"), out
    assert ("PresenceError(\"<channel status:lobby process> is already tracked under 'bob' in 'status:lobby'\")"
            in out), out
    assert "Hint: on 'set_status', socket.endpoint.presence.update(socket" in out


async def test_not_a_class_where_a_class_is_expected(capsys: pytest.CaptureFixture[str]) -> None:
    out = await verdict(workshop.check_channel_limit, "LimitedEndpoint", capsys=capsys)
    assert out == ("✗ exercise 4: LimitedEndpoint is 'LimitedEndpoint': expected a class. Hint: pass the class "
                   "itself, LimitedEndpoint: its name, without quotes or ()\n")


# The harness: no traceback, whatever the learner's code does


def test_a_check_not_awaited_says_so() -> None:
    pending = workshop.check_mute(object)
    assert repr(pending) == ("✗ exercise 10: the check has not run. Hint: write `await check_mute(...)`: "
                             "a check starts a server, so it is awaited.")


async def test_a_learners_exception_is_one_line(
    capsys: pytest.CaptureFixture[str], quiet_notebook_logs: None, leak_check: None
) -> None:
    async def chat(url: str) -> Any:
        return {"body": "hello, bob"}["user"]

    out = await verdict(workshop.check_first_client, chat, capsys=capsys)
    assert out == ("✗ exercise 1: chat(url) raised KeyError: 'user'. Hint: run it on its own to see where: "
                   "await chat(url) after starting the demo\n")


async def test_a_check_that_hangs_is_stopped_with_what_the_server_logged(
    capsys: pytest.CaptureFixture[str], leak_check: None
) -> None:
    import logging

    async def forever(run: Any) -> str:
        logging.getLogger("channels_core.socket").warning("a line the server logged")
        await asyncio.Event().wait()
        return "never"

    check = exercise(99, timeout=0.2)(forever)
    passed = await check()
    out = capsys.readouterr().out
    assert passed is False
    assert out == ("✗ exercise 99: the check did not finish within 0.2 s; the server logged: WARNING "
                   "channels_core.socket: a line the server logged. Hint: something waits forever: a join or "
                   "handle_in that never returns, or a reply that never comes.\n")


async def test_the_servers_log_lines_stay_out_of_the_notebook(
    capsys: pytest.CaptureFixture[str], quiet_notebook_logs: None, leak_check: None
) -> None:
    import logging

    handler_before = list(logging.getLogger("channels_core").handlers)
    await run_check(6, EXERCISES_DIR, capsys)  # the starter's join crashes: the server logs an ERROR
    captured = capsys.readouterr()
    assert captured.err == ""
    assert logging.getLogger("channels_core").handlers == handler_before


# Each starter runs top to bottom: no cell raises, every check says ✗


@pytest.mark.notebook
@pytest.mark.slow
async def test_every_starter_runs_top_to_bottom_and_every_check_fails() -> None:
    from nbclient import NotebookClient

    async def execute(path: Path) -> nbformat.NotebookNode:
        notebook = nbformat.read(path, as_version=4)
        client = NotebookClient(notebook, timeout=60, kernel_name="python3", allow_errors=False,
                                resources={"metadata": {"path": str(path.parent)}})
        await client.async_execute()
        return notebook

    # Two at a time: each kernel is a process of its own, and CI has two cores.
    limit = asyncio.Semaphore(2)

    async def bounded(path: Path) -> nbformat.NotebookNode:
        async with limit:
            return await execute(path)

    notebooks = await asyncio.gather(*(bounded(p) for p in STARTERS))
    for path, notebook in zip(STARTERS, notebooks, strict=True):
        for cell in notebook.cells:
            if cell.cell_type != "code":
                continue
            text = "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")
            assert "Traceback" not in text and not any(o.get("name") == "stderr" for o in cell.outputs), \
                f"{path.name}: {cell.source[:60]!r} wrote {text!r}"
            if "check" in tags(cell):
                number = getattr(workshop, ast.parse(cell.source).body[0].value.value.func.id).exercise
                lines = text.splitlines()
                assert len(lines) == 1 and lines[0].startswith(f"✗ exercise {number}: "), (path.name, text)
                result = [o for o in cell.outputs if o.get("output_type") == "execute_result"]
                assert ["".join(o["data"]["text/plain"]) for o in result] == ["False"]
