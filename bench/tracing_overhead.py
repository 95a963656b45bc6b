"""What the tracing hooks cost when no trace is running.

Every layer reports to :mod:`channels_core.tracing` with either a guarded hook
(``if tracing.active is not None: ...``) in hot paths, or a plain
``tracing.hop(...)`` call elsewhere. This script times four hot paths in three
builds of the same code:

* **no hooks**: the package's modules recompiled from their source with every
  hook statement removed (an AST rewrite, so nothing else changes);
* **hooks, idle**: the package as it ships, with ``tracing.active`` None;
* **hooks, tracing**: the same with a trace recording, for scale.

The paths:

* ``fanout``: a broadcast through PubSub and the fastlane to 1000 subscribers:
  encoded once, then one ``process.send`` per transport;
* ``encode``: ``V2JSONSerializer.encode`` of a push;
* ``push``: ``channel.push`` (encode, then send to the transport);
* ``heartbeat``: ``SocketState.handle_in`` for a heartbeat frame (decode, the
  heartbeat clause, encode the reply);
* ``handle_in``: a channel process handling a client message (``ChannelServer``
  routes it to the demo's ``BenchChannel.handle_in``, then encodes and sends the reply).

Run it with ``python bench/tracing_overhead.py`` (``--quick`` for fewer rounds).
It prints figures; it asserts nothing, because a timing is not a test.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import platform
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from channels_core import process, tracing  # noqa: E402
from channels_core.anatomy import trace  # noqa: E402
from channels_core.demo.app import BenchChannel  # noqa: E402
from channels_core.message import Broadcast, Message  # noqa: E402
from channels_core.socket import SocketStruct  # noqa: E402

HOOKED_MODULES = [
    "channels_core.process",
    "channels_core.serializers.v2_json",
    "channels_core.pubsub.fastlane",
    "channels_core.pubsub.pubsub",
    "channels_core.channel",
    "channels_core.socket",
    "channels_core.channel_server",
]


# Building the hook-free modules


def _is_tracing(node: ast.AST) -> bool:
    """``tracing.<anything>``, the attribute every hook starts with."""
    return (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            and node.value.id == "tracing") or (
        isinstance(node, ast.Attribute) and _is_tracing(node.value))


class _StripHooks(ast.NodeTransformer):
    """Remove ``if tracing.active is not None:`` blocks and ``tracing.*(...)`` calls."""

    removed = 0

    def visit_If(self, node: ast.If) -> Any:
        test = node.test
        if (isinstance(test, ast.Compare) and _is_tracing(test.left) and not node.orelse
                and any(_is_tracing(n) for n in ast.walk(test))):
            self.removed += 1
            return None
        return self.generic_visit(node)

    def visit_Expr(self, node: ast.Expr) -> Any:
        if isinstance(node.value, ast.Call) and _is_tracing(node.value.func):
            self.removed += 1
            return None
        return node

    def generic_visit(self, node: ast.AST) -> ast.AST:
        super().generic_visit(node)
        for name in ("body", "orelse", "finalbody"):
            block = getattr(node, name, None)
            if isinstance(block, list) and not block and name == "body":
                block.append(ast.Pass())
        return node


def build_hook_free() -> tuple[dict[str, ModuleType], int]:
    """Recompile each hooked module without its hooks, and wire them to each other."""
    stripped: dict[str, ModuleType] = {}
    total = 0
    for name in HOOKED_MODULES:
        original = importlib.import_module(name)
        tree = ast.parse(inspect.getsource(original))
        transformer = _StripHooks()
        tree = ast.fix_missing_locations(transformer.visit(tree))
        total += transformer.removed
        module = ModuleType(name)
        module.__package__ = original.__package__
        module.__file__ = original.__file__
        exec(compile(tree, f"<{name} without hooks>", "exec"), module.__dict__)  # noqa: S102
        stripped[name] = module
    # The process table is shared: the hook-free send must reach the same mailboxes.
    free_process = stripped["channels_core.process"]
    free_process._registry = process._registry  # type: ignore[attr-defined]
    free_process._current = process._current  # type: ignore[attr-defined]
    for module in stripped.values():
        if getattr(module, "process", None) is process:
            module.process = free_process  # type: ignore[attr-defined]
    stripped["channels_core.channel"].fastlane_dispatch = stripped[  # type: ignore[attr-defined]
        "channels_core.pubsub.fastlane"].fastlane_dispatch
    return stripped, total


# The hot paths


def _run(coroutine: Any) -> Any:
    """Drive a coroutine that never suspends, without an event loop."""
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return stop.value
    raise RuntimeError("the benchmarked path suspended; it must not")


class Build:
    """One build of the code under test: the shipped modules, or the hook-free ones."""

    def __init__(self, modules: dict[str, ModuleType], subscribers: int) -> None:
        self.serializer = modules["channels_core.serializers.v2_json"].V2JSONSerializer()
        fastlane = modules["channels_core.pubsub.fastlane"]
        self.dispatch = fastlane.fastlane_dispatch
        self.pubsub = modules["channels_core.pubsub.pubsub"].PubSub()
        self.transports = []
        for _ in range(subscribers):
            channel, transport = process.Process("channel bench"), process.Process("socket")
            for proc in (channel, transport):
                process._registry[proc.pid] = proc
            self.transports.append(transport)
            self.pubsub.subscribe("bench:1", fastlane.Fastlane(transport.pid, self.serializer, frozenset()),
                                  pid=channel.pid)
        # One struct class for both builds: channel_server checks results with isinstance.
        self.socket = SocketStruct(
            topic="bench:1", joined=True, join_ref="1", serializer=self.serializer,
            transport_pid=self.transports[0].pid,
        )
        self.push = modules["channels_core.channel"].push
        self.state = modules["channels_core.socket"].SocketState(None, self.socket)
        self.server = modules["channels_core.channel_server"].ChannelServer(BenchChannel())
        self.server.socket = self.socket
        self.ping = Message("bench:1", "ping", {"n": 1}, "9", "1")
        self.broadcast = Broadcast("bench:1", "bench_msg", {"i": 1})
        self.message = Message("bench:1", "bench_msg", {"i": 1, "body": "hello"}, None, "1")

    def drain(self) -> None:
        for transport in self.transports:
            transport.mailbox.clear()

    def paths(self) -> dict[str, tuple[Callable[[], Any], int]]:
        heartbeat = '[null,"7","phoenix","heartbeat",{}]'
        return {
            "fanout 1000": (lambda: self.pubsub.broadcast("bench:1", self.broadcast, self.dispatch), 1),
            "encode": (lambda: self.serializer.encode(self.message), 200),
            "push": (lambda: self.push(self.socket, "bench_msg", {"i": 1}), 200),
            "heartbeat": (lambda: _run(self.state.handle_in(heartbeat, "text")), 200),
            "handle_in": (lambda: _run(self.server._handle(self.ping)), 200),
        }

    def close(self) -> None:
        for transport in self.transports:
            process._registry.pop(transport.pid, None)
        for pid in list(process._registry):
            if pid.role == "channel bench":
                process._registry.pop(pid, None)


def best(function: Callable[[], Any], inner: int, number: int, repeat: int) -> float:
    """Nanoseconds per call: the best of ``repeat`` runs of ``number`` batches of ``inner`` calls."""
    def batch() -> None:
        for _ in range(inner):
            function()
    timer = timeit.Timer(batch)
    return min(timer.repeat(repeat=repeat, number=number)) / (number * inner) * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, for a smoke run")
    args = parser.parse_args()
    number, repeat, rounds = (20, 3, 2) if args.quick else (100, 7, 5)

    hook_free_modules, removed = build_hook_free()
    shipped_modules = {name: importlib.import_module(name) for name in HOOKED_MODULES}
    builds = {"no hooks": Build(hook_free_modules, 1000), "hooks, idle": Build(shipped_modules, 1000)}
    assert tracing.active is None
    # The comparison means something only if the hook-free build reports nothing at all.
    with trace() as t:
        for function, _ in builds["no hooks"].paths().values():
            function()
    builds["no hooks"].drain()
    if t.events:
        raise SystemExit(f"the 'no hooks' build still reports: {t.events[0]}")

    print(f"tracing overhead: Python {platform.python_version()} on {platform.machine()}; "
          f"{removed} hook statements removed for the 'no hooks' build (it records nothing under a trace)")
    print(f"best of {repeat} x {number} batches, alternated over {rounds} rounds; ns per call\n")
    results: dict[str, dict[str, float]] = {}
    for _ in range(rounds):
        # Alternate the builds, so that a slow spell of the machine hits both.
        for label, build in builds.items():
            for path, (function, inner) in build.paths().items():
                took = best(function, inner, number, repeat)
                build.drain()
                slot = results.setdefault(path, {})
                slot[label] = min(took, slot.get(label, float("inf")))
    shipped = builds["hooks, idle"]
    with trace():
        for path, (function, inner) in shipped.paths().items():
            results[path]["hooks, tracing"] = best(function, inner, max(1, number // 10), repeat)
            shipped.drain()
    for build in builds.values():
        build.close()

    print(f"{'path':<12} {'no hooks':>10} {'hooks, idle':>12} {'idle cost':>10} {'hooks, tracing':>15}")
    for path, figures in results.items():
        free, idle, traced = figures["no hooks"], figures["hooks, idle"], figures["hooks, tracing"]
        print(f"{path:<12} {free:>10.0f} {idle:>12.0f} {(idle - free) / free:>+10.1%} {traced:>15.0f}")
    guard = best(lambda: tracing.active is not None, 1000, number, repeat)
    call = best(lambda: tracing.hop("bench", "idle", n=1), 1000, number, repeat)
    empty = best(lambda: None, 1000, number, repeat)
    print(f"\none idle hook, measured alone (minus an empty call): guarded check {max(0.0, guard - empty):.0f} ns, "
          f"tracing.hop() call {max(0.0, call - empty):.0f} ns")
    print("'idle cost' is the hooks' price when no trace runs; differences of a few percent either way "
          "are the noise of the machine.")


if __name__ == "__main__":
    main()
