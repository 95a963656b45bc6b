"""Unit tests for channels_core.process and channels_core.supervisor.

Everything here runs on the test's own event loop with no network. ``receive``,
``monitor`` and ``demonitor`` belong to a process, so a test that needs them runs
its body inside one with :func:`run_in_process`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from channels_core import process
from channels_core.process import Down, Pid, Ref
from channels_core.supervisor import PoolSupervisor

pytestmark = pytest.mark.usefixtures("leak_check")


# Helpers


async def run_in_process(coro_fn: Callable[..., Awaitable[Any]], *args: Any, timeout: float = 5.0) -> Any:
    """Run ``coro_fn(*args)`` as a process, return its result or re-raise its exception.

    Afterwards, wait until every process it started has exited too, so a test can
    never leave one behind.
    """
    before = set(process.processes())
    outcome: dict[str, Any] = {}

    async def body() -> None:
        try:
            outcome["value"] = await coro_fn(*args)
        except Exception as exc:  # handed to the test, not logged as a crash
            outcome["error"] = exc

    pid = process.spawn(body, role="test")
    await asyncio.wait_for(process.lookup(pid).task, timeout)  # type: ignore[union-attr, arg-type]
    await wait_gone([p for p in process.processes() if p not in before], timeout)
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


async def wait_gone(pids: list[Pid], timeout: float = 5.0) -> None:
    """Wait until ``pids`` have exited; fail if some are still alive after ``timeout``."""
    tasks = [p.task for pid in pids if (p := process.lookup(pid)) is not None and p.task is not None]
    if tasks:
        await asyncio.wait(tasks, timeout=timeout)
    alive = [pid for pid in pids if process.is_alive(pid)]
    assert alive == [], f"still running: {alive}"


async def wait_down(ref: Ref, timeout: float = 2.0) -> Down:
    return await process.receive(lambda m: isinstance(m, Down) and m.ref == ref, timeout=timeout)


async def echo() -> None:
    """A process that answers ("ping", from) with ("pong", self) until told "stop"."""
    while True:
        message = await process.receive()
        if message == "stop":
            return
        if isinstance(message, tuple) and message[0] == "ping":
            process.send(message[1], ("pong", process.current()))


async def hold() -> None:
    """A process that waits for anything, then returns: something to monitor or kill."""
    await process.receive()


# Identity


def test_pids_compare_by_number_not_role() -> None:
    assert Pid(7, "socket") == Pid(7, "channel room:lobby")
    assert hash(Pid(7, "socket")) == hash(Pid(7))
    assert repr(Pid(7, "socket")) == "<pid 7 socket>"


def test_make_ref_is_unique() -> None:
    refs = [process.make_ref() for _ in range(100)]
    assert len(set(refs)) == 100
    assert repr(Ref(3)) == "#Ref<3>"


def test_current_outside_a_process_raises() -> None:
    with pytest.raises(RuntimeError, match="^not running inside a process$"):
        process.current()
    assert process.current_pid_or_none() is None


async def test_receive_outside_a_process_raises() -> None:
    with pytest.raises(RuntimeError, match="^receive called outside a process$"):
        await process.receive(timeout=0)


def test_monitor_and_demonitor_outside_a_process_raise() -> None:
    with pytest.raises(RuntimeError, match="^monitor called outside a process$"):
        process.monitor(Pid(1))
    with pytest.raises(RuntimeError, match="^demonitor called outside a process$"):
        process.demonitor(Ref(1))


async def test_current_inside_a_process_is_its_own_pid() -> None:
    seen: list[Pid] = []

    async def record() -> None:
        seen.append(process.current())

    pid = process.spawn(record, role="recorder")
    await process.lookup(pid).task  # type: ignore[union-attr, misc]
    assert seen == [pid]
    assert seen[0].role == "recorder"


async def test_spawned_process_does_not_inherit_its_parents_identity() -> None:
    async def parent() -> tuple[Pid, Pid, Pid]:
        me = process.current()
        child = process.spawn(child_body, me)
        child_self = await process.receive(timeout=2)
        return me, child, child_self

    async def child_body(parent_pid: Pid) -> None:
        process.send(parent_pid, process.current())

    me, child, child_self = await run_in_process(parent)
    assert child_self == child != me


# send / receive


async def test_messages_arrive_in_the_order_sent() -> None:
    async def body() -> list[Any]:
        me = process.current()
        for i in range(5):
            process.send(me, i)
        return [await process.receive(timeout=1) for _ in range(5)]

    assert await run_in_process(body) == [0, 1, 2, 3, 4]


async def test_messages_between_processes_keep_their_order() -> None:
    async def producer(to: Pid) -> None:
        for i in range(5):
            process.send(to, ("n", i))
            await asyncio.sleep(0)  # interleave with the receiver on purpose

    async def body() -> list[Any]:
        process.spawn(producer, process.current())
        return [await process.receive(timeout=1) for _ in range(5)]

    assert await run_in_process(body) == [("n", i) for i in range(5)]


async def test_receive_waits_for_a_message_sent_later() -> None:
    async def late(to: Pid) -> None:
        await asyncio.sleep(0)
        process.send(to, "late")

    async def body() -> Any:
        process.spawn(late, process.current())
        return await process.receive(timeout=2)

    assert await run_in_process(body) == "late"


async def test_selective_receive_leaves_non_matching_messages_in_order() -> None:
    async def body() -> tuple[Any, list[Any]]:
        me = process.current()
        for message in ["a", ("wanted", 1), "b", ("wanted", 2), "c"]:
            process.send(me, message)
        second = await process.receive(lambda m: m == ("wanted", 2), timeout=1)
        rest = [await process.receive(timeout=1) for _ in range(4)]
        return second, rest

    second, rest = await run_in_process(body)
    assert second == ("wanted", 2)
    assert rest == ["a", ("wanted", 1), "b", "c"]


async def test_selective_receive_sees_messages_that_arrive_while_it_waits() -> None:
    async def sender(to: Pid) -> None:
        process.send(to, "noise")
        await asyncio.sleep(0)
        process.send(to, "signal")

    async def body() -> tuple[Any, list[Any]]:
        process.spawn(sender, process.current())
        got = await process.receive(lambda m: m == "signal", timeout=2)
        return got, list(process.lookup(process.current()).mailbox)  # type: ignore[union-attr]

    got, left = await run_in_process(body)
    assert (got, left) == ("signal", ["noise"])


async def test_receive_timeout_raises_timeout_error() -> None:
    async def body() -> None:
        await process.receive(timeout=0.01)

    with pytest.raises(TimeoutError, match="^no matching message$"):
        await run_in_process(body)


async def test_receive_timeout_keeps_the_non_matching_messages() -> None:
    async def body() -> list[Any]:
        process.send(process.current(), "other")
        with pytest.raises(TimeoutError):
            await process.receive(lambda m: m == "never", timeout=0)
        return list(process.lookup(process.current()).mailbox)  # type: ignore[union-attr]

    assert await run_in_process(body) == ["other"]


async def test_send_to_a_dead_pid_is_silently_dropped() -> None:
    pid = process.spawn(hold)
    process.send(pid, "go")
    await process.lookup(pid).task  # type: ignore[union-attr, misc]
    assert not process.is_alive(pid)
    process.send(pid, "into the void")  # no exception: Erlang's send never fails


# monitor / Down


async def _returns(value: Any) -> Any:
    return value


async def _raises(exc: Exception) -> None:
    raise exc


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "normal"),
        ("custom", "custom"),
        ("shutdown", "shutdown"),
        (("shutdown", "left"), ("shutdown", "left")),
    ],
)
async def test_monitor_reports_the_exit_reason(value: Any, reason: Any) -> None:
    async def body() -> Down:
        pid = process.spawn(_returns, value)
        ref = process.monitor(pid)
        down = await wait_down(ref)
        assert down.pid == pid
        return down

    down = await run_in_process(body)
    assert down.reason == reason


async def test_monitor_reports_the_exception_instance_of_a_crash() -> None:
    error = ValueError("bad input")

    async def body() -> Down:
        pid = process.spawn(_raises, error, role="crasher")
        return await wait_down(process.monitor(pid))

    down = await run_in_process(body)
    assert down.reason is error
    assert not process.is_clean_exit(down.reason)


async def test_monitor_of_a_dead_pid_is_noproc_at_once() -> None:
    async def body() -> Down:
        pid = process.spawn(_returns, None)
        await wait_down(process.monitor(pid))
        ref = process.monitor(pid)
        # Already queued: no waiting on an exit that has happened.
        mailbox = list(process.lookup(process.current()).mailbox)  # type: ignore[union-attr]
        assert mailbox == [Down(ref, pid, "noproc")]
        return await process.receive(timeout=0)

    assert (await run_in_process(body)).reason == "noproc"


async def test_each_monitor_gets_its_own_down() -> None:
    async def body() -> list[Down]:
        pid = process.spawn(hold)
        first, second = process.monitor(pid), process.monitor(pid)
        process.send(pid, "go")
        downs = [await wait_down(second), await wait_down(first)]
        assert [d.ref for d in downs] == [second, first]
        return downs

    downs = await run_in_process(body)
    assert [d.reason for d in downs] == ["normal", "normal"]


async def test_demonitor_before_exit_means_no_down() -> None:
    async def body() -> list[Any]:
        pid = process.spawn(hold)
        dropped, kept = process.monitor(pid), process.monitor(pid)
        process.demonitor(dropped)
        process.send(pid, "go")
        await wait_down(kept)
        # Down messages are delivered as the process exits, so the mailbox is final now.
        return list(process.lookup(process.current()).mailbox)  # type: ignore[union-attr]

    assert await run_in_process(body) == []


async def test_demonitor_without_flush_leaves_a_queued_down() -> None:
    async def body() -> list[Any]:
        pid = process.spawn(_returns, None)
        ref = process.monitor(pid)
        marker = process.monitor(pid)
        await wait_down(marker)  # the other Down is queued by now
        process.demonitor(ref)
        return [(m.ref, m.reason) for m in process.lookup(process.current()).mailbox]  # type: ignore[union-attr]

    queued = await run_in_process(body)
    assert len(queued) == 1 and queued[0][1] == "normal"


async def test_demonitor_with_flush_drops_a_queued_down_only() -> None:
    async def body() -> list[Any]:
        me = process.current()
        pid = process.spawn(_returns, None)
        ref = process.monitor(pid)
        marker = process.monitor(pid)
        await process.receive(lambda m: isinstance(m, Down) and m.ref == marker, timeout=2)
        process.send(me, "unrelated")
        process.demonitor(ref, flush=True)
        return list(process.lookup(me).mailbox)  # type: ignore[union-attr]

    assert await run_in_process(body) == ["unrelated"]


async def test_demonitor_of_an_unknown_ref_is_harmless() -> None:
    async def body() -> None:
        process.demonitor(process.make_ref(), flush=True)

    await run_in_process(body)


# exit/2


async def started(fn: Callable[..., Awaitable[Any]], *args: Any) -> Pid:
    """Spawn ``fn(ready_to, *args)`` and return once it has said "ready" (it is running)."""
    pid = process.spawn(fn, process.current(), *args)
    await process.receive(lambda m: m == ("ready", pid), timeout=2)
    return pid


async def ready_then_hold(ready_to: Pid) -> None:
    process.send(ready_to, ("ready", process.current()))
    await process.receive()


async def test_exit_kills_without_running_more_of_its_code() -> None:
    ran_after: list[str] = []

    async def victim(ready_to: Pid) -> None:
        process.send(ready_to, ("ready", process.current()))
        await process.receive()
        ran_after.append("after receive")

    async def body() -> Down:
        pid = await started(victim)
        ref = process.monitor(pid)
        process.exit(pid, ("shutdown", "duplicate_join"))
        process.send(pid, "too late")
        return await wait_down(ref)

    down = await run_in_process(body)
    assert down.reason == ("shutdown", "duplicate_join")
    assert ran_after == []


async def test_exit_with_an_arbitrary_reason_is_the_down_reason() -> None:
    async def body() -> Down:
        pid = await started(ready_then_hold)
        ref = process.monitor(pid)
        process.exit(pid, "kill")
        return await wait_down(ref)

    assert (await run_in_process(body)).reason == "kill"


async def test_exit_before_the_process_ever_ran_still_exits_it() -> None:
    # The task is cancelled before its first step, so the process body never starts;
    # it must still leave the registry and tell its monitors.
    async def body() -> tuple[Pid, Down]:
        pid = process.spawn(hold)
        ref = process.monitor(pid)
        process.exit(pid, ("shutdown", "early"))
        return pid, await wait_down(ref)

    pid, down = await run_in_process(body)
    assert down.reason == ("shutdown", "early")
    assert not process.is_alive(pid)


async def test_exit_normal_is_ignored() -> None:
    async def body() -> Any:
        pid = process.spawn(echo)
        process.exit(pid, "normal")
        process.send(pid, ("ping", process.current()))
        answer = await process.receive(timeout=2)
        ref = process.monitor(pid)
        process.send(pid, "stop")
        await wait_down(ref)
        return answer, pid

    answer, pid = await run_in_process(body)
    assert answer == ("pong", pid)


async def test_exit_of_a_dead_pid_is_a_no_op() -> None:
    pid = process.spawn(_returns, None)
    await process.lookup(pid).task  # type: ignore[union-attr, misc]
    process.exit(pid, "shutdown")
    assert not process.is_alive(pid)


# Crash isolation


async def test_a_crash_ends_one_process_only_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def crasher() -> None:
        await process.receive()
        raise RuntimeError("kaboom")

    async def body() -> tuple[Pid, Pid, Down, Any]:
        sibling = process.spawn(echo, role="sibling")
        doomed = process.spawn(crasher, role="crasher")
        ref = process.monitor(doomed)
        process.send(doomed, "go")
        down = await wait_down(ref)
        process.send(sibling, ("ping", process.current()))
        answer = await process.receive(timeout=2)
        assert process.is_alive(sibling)
        process.send(sibling, "stop")
        return doomed, sibling, down, answer

    with caplog.at_level(logging.ERROR, logger="channels_core.process"):
        doomed, sibling, down, answer = await run_in_process(body)

    assert isinstance(down.reason, RuntimeError) and str(down.reason) == "kaboom"
    assert answer == ("pong", sibling)
    records = [r for r in caplog.records if r.name == "channels_core.process"]
    assert [(r.levelname, r.getMessage()) for r in records] == [
        ("ERROR", f"! process <pid {doomed.id} crasher> crashed: RuntimeError('kaboom')")
    ]
    assert records[0].exc_info is not None and records[0].exc_info[1] is down.reason


async def test_a_crash_in_a_child_does_not_reach_its_parent() -> None:
    async def body() -> str:
        ref = process.monitor(process.spawn(_raises, KeyError("x")))
        await wait_down(ref)
        return "parent still running"

    assert await run_in_process(body) == "parent still running"


def test_is_clean_exit() -> None:
    assert process.is_clean_exit("normal")
    assert process.is_clean_exit("shutdown")
    assert process.is_clean_exit(("shutdown", "left"))
    assert not process.is_clean_exit("killed")
    assert not process.is_clean_exit(("error", "left"))
    assert not process.is_clean_exit(("shutdown", "a", "b"))
    assert not process.is_clean_exit(RuntimeError("boom"))


# Registry and exit hooks


async def test_processes_registry_returns_to_baseline() -> None:
    baseline = process.processes()
    pids = [process.spawn(hold, role=f"worker {i}") for i in range(3)]
    assert process.processes() == baseline + pids  # oldest first
    assert list(process.iter_processes("worker")) == pids
    assert all(process.is_alive(pid) for pid in pids)
    for pid in pids:
        process.send(pid, "go")
    await asyncio.gather(*(process.lookup(pid).task for pid in pids))  # type: ignore[union-attr, misc]
    assert process.processes() == baseline
    assert [process.lookup(pid) for pid in pids] == [None, None, None]


async def test_a_killed_process_leaves_the_registry_too() -> None:
    baseline = process.processes()

    async def body() -> None:
        pid = await started(ready_then_hold)
        ref = process.monitor(pid)
        process.exit(pid, "shutdown")
        await wait_down(ref)
        assert not process.is_alive(pid)

    await run_in_process(body)
    assert process.processes() == baseline


async def test_on_exit_hooks_run_with_the_pid_in_order() -> None:
    calls: list[tuple[str, Pid]] = []
    pid = process.spawn(hold)
    process.on_exit(pid, lambda p: calls.append(("first", p)))
    process.on_exit(pid, lambda p: calls.append(("second", p)))
    assert calls == []
    process.send(pid, "go")
    await process.lookup(pid).task  # type: ignore[union-attr, misc]
    assert calls == [("first", pid), ("second", pid)]


async def test_on_exit_of_a_dead_pid_runs_at_once() -> None:
    pid = process.spawn(_returns, None)
    await process.lookup(pid).task  # type: ignore[union-attr, misc]
    calls: list[Pid] = []
    process.on_exit(pid, calls.append)
    assert calls == [pid]


async def test_a_failing_exit_hook_is_logged_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[Pid] = []

    def broken(pid: Pid) -> None:
        raise LookupError("gone")

    pid = process.spawn(hold, role="hooked")
    process.on_exit(pid, broken)
    process.on_exit(pid, calls.append)
    process.send(pid, "go")
    with caplog.at_level(logging.ERROR, logger="channels_core.process"):
        await process.lookup(pid).task  # type: ignore[union-attr, misc]
    assert calls == [pid]
    assert [r.getMessage() for r in caplog.records] == [f"! exit hook of <pid {pid.id} hooked> failed"]


async def test_adopt_and_release_make_the_current_task_a_process() -> None:
    # How the adapter turns the server's connection task into the transport process.
    adopted = process.adopt("transport")
    watcher_done: asyncio.Future[Down] = asyncio.get_running_loop().create_future()

    async def watcher(pid: Pid) -> None:
        ref = process.monitor(pid)
        process.send(pid, "watching")
        watcher_done.set_result(await wait_down(ref))

    try:
        assert process.current() == adopted.pid
        process.spawn(watcher, adopted.pid)
        assert await process.receive(timeout=2) == "watching"
    finally:
        process.release(adopted, ("shutdown", "closed"))
    assert process.current_pid_or_none() is None
    assert not process.is_alive(adopted.pid)
    down = await asyncio.wait_for(watcher_done, 2)
    assert (down.pid, down.reason) == (adopted.pid, ("shutdown", "closed"))


# PoolSupervisor


async def test_supervisor_starts_children_and_lists_the_live_ones() -> None:
    supervisor = PoolSupervisor()
    first = supervisor.start_child(hold, role="channel a")
    second = supervisor.start_child(hold, role="channel b")
    assert supervisor.which_children() == [first, second]
    assert supervisor.count_children() == 2
    assert first.role == "channel a"

    process.send(first, "go")
    await process.lookup(first).task  # type: ignore[union-attr, misc]
    # A temporary child is not restarted: it is simply gone from the list.
    assert supervisor.which_children() == [second]

    await supervisor.shutdown()
    assert supervisor.which_children() == []


async def test_supervisor_shutdown_stops_every_child_with_the_reason() -> None:
    supervisor = PoolSupervisor()

    async def body() -> list[Any]:
        children = [supervisor.start_child(hold) for _ in range(3)]
        refs = [process.monitor(pid) for pid in children]
        await supervisor.shutdown(("shutdown", "endpoint stopped"))
        assert supervisor.which_children() == []
        return [(await wait_down(ref)).reason for ref in refs]

    reasons = await run_in_process(body)
    assert reasons == [("shutdown", "endpoint stopped")] * 3


async def test_supervisor_shutdown_with_no_children_returns_at_once() -> None:
    supervisor = PoolSupervisor()
    baseline = process.processes()
    await supervisor.shutdown()
    assert process.processes() == baseline


async def test_a_crashing_child_leaves_the_supervisor_and_its_siblings_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    supervisor = PoolSupervisor()
    sibling = supervisor.start_child(hold)
    crasher = supervisor.start_child(_raises, RuntimeError("child crash"))
    with caplog.at_level(logging.ERROR, logger="channels_core.process"):
        await asyncio.wait([process.lookup(crasher).task])  # type: ignore[union-attr, list-item]
    assert supervisor.which_children() == [sibling]
    assert f"! process {crasher!r} crashed: RuntimeError('child crash')" in caplog.messages
    await supervisor.shutdown()


async def test_supervisor_shutdown_right_after_start_child() -> None:
    supervisor = PoolSupervisor()
    children = [supervisor.start_child(hold) for _ in range(2)]
    await asyncio.wait_for(supervisor.shutdown(timeout=2), 3)
    assert supervisor.which_children() == []
    assert not any(process.is_alive(pid) for pid in children)


async def test_a_cancel_that_lands_with_a_delivery_is_not_lost() -> None:
    # asyncio.wait_for on Python 3.11 swallows a cancellation arriving in the same loop
    # step as the result; receive must not, or a cancelled process waits out its timeout.
    async def keep_receiving() -> None:
        while True:
            await process.receive(timeout=30)

    pid = process.spawn(keep_receiving, role="waiter")
    task = process.lookup(pid).task  # type: ignore[union-attr]
    await asyncio.sleep(0)  # let it reach receive(); a step of the loop, not a wait for time
    process.send(pid, "hello")
    task.cancel()  # type: ignore[union-attr]
    await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 2)
    assert not process.is_alive(pid)
