"""Diagrams of a live run: sequence, process tree, dispatch table, PubSub subscriptions.

Each function returns a :class:`graphviz.Digraph`, which Jupyter (and a book
built from notebooks) renders as SVG. The DOT source is deterministic: nodes have
stable ids, and everything is emitted in the order of the trace or of the data it
was drawn from, so a stored diagram equals a fresh one. Only what Debian's
graphviz 2.43 renders well is used: ``dot``, plain shapes, 6-digit hex colours.

The sequence diagram is a grid: one column of tiny point nodes per lifeline,
one ``rank=same`` row per step, and each message an edge between two points of
its row. An arrow that spans several columns is drawn as a chain of edges between
neighbouring columns, with the label on one link, because dot bends a labelled
edge between distant nodes of one rank and keeps it straight between neighbours.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import graphviz

from .tracer import LAYERS, Down, Exit, Frame, Hop, Monitor, Send, Spawn, Trace, _Names

__all__ = ["dispatch_diagram", "process_tree", "pubsub_diagram", "sequence_diagram"]

FONT = "Helvetica"

#: Header colours of the lifelines: one hue per layer, from the wire inwards.
LAYER_COLOURS = {
    "client": "#dbe9f6",
    "adapter": "#e3f2fd",
    "endpoint": "#e8eaf6",
    "transport": "#ede7f6",
    "socket": "#e0f2f1",
    "channel_server": "#f1f8e9",
    "channel": "#fff8e1",
    "serializer": "#fbe9e7",
    "pubsub": "#fce4ec",
}

#: How each kind of step is drawn: edge colour, style, pen width, note fill.
STYLES = {
    "up": ("#1f5fbf", "solid", "1.4", "#dbe9f6"),
    "down": ("#2e7d32", "solid", "1.4", "#e8f5e9"),
    "hop": ("#37474f", "solid", "1.0", "#fff3cc"),
    "send": ("#7b1fa2", "dashed", "1.0", "#f3e5f5"),
    "spawn": ("#555555", "dashed", "1.0", "#eeeeee"),
    "monitor": ("#1565c0", "dotted", "1.0", "#e3f2fd"),
    "down_msg": ("#c62828", "bold", "1.4", "#f8d7da"),
    "exit": ("#616161", "solid", "1.0", "#eeeeee"),
    "crash": ("#c62828", "solid", "1.0", "#f8d7da"),
}


def _label(*lines: str, justify: str = "\\n") -> Any:
    """A DOT label from plain text lines: backslashes kept, never read as HTML."""
    text = justify.join(line.replace("\\", "\\\\") for line in lines)
    if justify == "\\l":
        text += "\\l"
    return graphviz.nohtml(text)


class Diagram(graphviz.Digraph):
    """A :class:`graphviz.Digraph` that also shows its DOT source as plain text.

    Jupyter displays the SVG; the ``text/plain`` form is the DOT source, which is
    what a notebook's validation compares: the SVG bytes change with the graphviz
    release, the DOT source only with the trace.
    """

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, **kwargs: Any) -> dict[str, Any]:
        bundle = super()._repr_mimebundle_(include, exclude, **kwargs)
        bundle["text/plain"] = self.source
        return bundle


def _digraph(name: str, title: str | None, **graph_attr: str) -> Diagram:
    graph = Diagram(name)
    graph.attr(fontname=FONT, fontsize="11", **graph_attr)
    if title:
        graph.attr(label=_label(title), labelloc="t", fontsize="13")
    graph.attr("node", fontname=FONT, fontsize="10")
    graph.attr("edge", fontname=FONT, fontsize="9")
    return graph


# Sequence diagrams


@dataclass(frozen=True)
class _Step:
    """One row of a sequence diagram: an arrow from ``source`` to ``target``, or a note."""

    source: str
    target: str
    label: str
    kind: str


def _select(trace: Trace, between: Any, events: Any) -> set[int]:
    """The indexes of the events a diagram is asked to show."""
    selected = trace
    if between is not None:
        start, end = between if isinstance(between, tuple) else (between, None)
        selected = selected.between(start, end)
    if events is not None:
        if isinstance(events, range):
            wanted = set(events)
            selected = selected.filter(lambda e: e.index in wanted)
        else:
            first, last = events
            selected = selected.span(first, last)
    return {e.index for e in selected.events}


def _hop_text(hop: Hop, details: bool) -> str:
    if not details or not hop.detail:
        return hop.function
    return hop.function + " " + " ".join(f"{k}={v!r}" for k, v in hop.detail.items())


#: The layer each file of the package belongs to, to tell which layer called which.
FILE_LAYERS = {
    "channels_core/adapter.py": "adapter",
    "channels_core/server.py": "adapter",
    "channels_core/endpoint.py": "endpoint",
    "channels_core/transports/": "transport",
    "channels_core/socket.py": "socket",
    "channels_core/channel_server.py": "channel_server",
    "channels_core/supervisor.py": "channel_server",
    "channels_core/channel.py": "channel",
    "channels_core/serializers/": "serializer",
    "channels_core/pubsub/": "pubsub",
}

#: Layers that are called and return (pure functions, tables): control goes back
#: to the caller's layer after them.
LEAF_LAYERS = frozenset({"endpoint", "serializer", "pubsub"})

#: The hop the adapter reports for every request it is handed: an arrow from the client.
REQUEST_HOP = "adapter.handle"


def _file_layer(where: str | None) -> str | None:
    if where is None:
        return None
    file = where.rsplit(":", 1)[0]
    for prefix, layer in FILE_LAYERS.items():
        if file == prefix or (prefix.endswith("/") and file.startswith(prefix)):
            return layer
    return None


def _layer_steps(
    trace: Trace, shown: set[int], *, details: bool, internal: bool, width: int
) -> list[_Step]:
    """Steps between layers, read from where each hop was reported and called from.

    Within a process, a hop is an arrow from the layer that called into it: the
    file that reported it when that belongs to another layer (a channel callback
    is reported by the channel server), else the layer the process is in, else
    the file that called the reporting function. A message to another process
    is a dashed arrow to the layer where that process takes its messages (its
    *home*: where its first hop was reported, e.g. the adapter for a socket, the
    channel server for a channel; leaf layers such as pubsub do not count),
    drawn when it is sent.
    """
    last: dict[str | None, str] = {}
    home: dict[str, str] = {}
    woken: dict[str, str] = {}  # process -> its home, once a message has reached it
    held: dict[str, list[tuple[str, str, bool]]] = {}  # messages sent before the receiver's home was known
    steps: list[_Step] = []

    def message(origin: str, receiver: str, label: str, emit: bool) -> None:
        text = f"{label} → {receiver}"
        if receiver in home:
            if emit:
                steps.append(_Step(origin, home[receiver], text, "send"))
            woken[receiver] = home[receiver]
        else:
            held.setdefault(receiver, []).append((origin, text, emit))

    for event in trace.events:
        emit = event.index in shown
        if isinstance(event, Frame):
            last[event.process] = "adapter"
            if emit:
                if event.direction == "↑":
                    steps.append(_Step("client", "adapter", f"↑ {event.short(width)}", "up"))
                else:
                    steps.append(_Step("adapter", "client", f"↓ {event.short(width)}", "down"))
        elif isinstance(event, Hop):
            layer, here = event.layer, event.process
            reporter = _file_layer(event.file)
            caller = _file_layer(event.caller)
            if here is not None and here not in home and (reporter or layer) not in LEAF_LAYERS:
                home[here] = reporter or layer
                for origin, text, shown_message in held.pop(here, []):
                    if shown_message:
                        steps.append(_Step(origin, home[here], text, "send"))
                    woken[here] = home[here]
            if here in woken:
                last[here] = woken.pop(here)  # type: ignore[arg-type]
            if event.function == REQUEST_HOP:
                source = "client"  # an HTTP request or a WebSocket upgrade arrives
            elif layer == "endpoint":
                source = caller or "client"  # the dispatch table answers whoever asked
            elif reporter is not None and reporter != layer:
                source = reporter
            elif last.get(here) == layer:
                source = layer
            elif caller is not None and not (caller == "endpoint" and layer == "adapter"):
                # (The endpoint's ASGI __call__ only hands each connection to the
                # adapter, which then drives it: it is not the caller that matters.)
                source = caller
            else:
                source = last.get(here, layer)
            if layer not in LEAF_LAYERS:
                last[here] = layer
            elif here not in last:
                last[here] = source
            if emit:
                steps.append(_Step(source, layer, _hop_text(event, details), "hop"))
        elif isinstance(event, Spawn):
            # A spawned process starts where its parent is. An adopted one is a task
            # that was already running in its own layer (the adapter, for a
            # connection): it starts where its first hop says it is.
            origin = last.get(event.parent)
            if origin is not None and not event.adopted:
                last[event.pid] = origin
        elif isinstance(event, Send):
            origin = _file_layer(event.where) or last.get(event.sender)
            if origin is None:
                continue
            if event.sender == event.receiver:
                if emit and (internal or not event.kind.startswith("_")):
                    steps.append(_Step(origin, origin, f"send to self: {event.label}", "send"))
            elif event.kind == "SocketPush":
                # A frame on its way to the transport process, which writes it.
                if emit:
                    target = home.get(event.receiver, "adapter")
                    steps.append(_Step(origin, target, f"{event.label} → {event.receiver}", "send"))
            else:
                message(origin, event.receiver, event.label, emit)
        elif isinstance(event, Down):
            origin = last.get(event.pid)
            if origin is not None:
                message(origin, event.watcher, f"DOWN {event.reason}", emit)
        elif isinstance(event, Exit):
            place = last.get(event.pid)
            if emit and place is not None:
                kind = "exit" if _clean(event.reason) else "crash"
                steps.append(_Step(place, place, f"{event.pid} exits: {event.reason}", kind))
    return steps


OUTSIDE = "(no process)"


def _process_steps(
    trace: Trace, shown: set[int], *, details: bool, internal: bool, width: int
) -> list[_Step]:
    """Steps between processes: what each process did, and the messages between them."""
    steps: list[_Step] = []
    for event in trace.events:
        if event.index not in shown:
            continue
        here = event.process or OUTSIDE
        if isinstance(event, Frame):
            if event.direction == "↑":
                steps.append(_Step("client", here, f"↑ {event.short(width)}", "up"))
            else:
                steps.append(_Step(here, "client", f"↓ {event.short(width)}", "down"))
        elif isinstance(event, Hop):
            steps.append(_Step(here, here, f"{event.layer}: {_hop_text(event, details)}", "hop"))
        elif isinstance(event, Send):
            if event.kind.startswith("_") and not internal:
                continue
            sender = event.sender or OUTSIDE
            if sender == event.receiver:
                steps.append(_Step(sender, sender, f"send to self: {event.label}", "send"))
            else:
                steps.append(_Step(sender, event.receiver, event.label, "send"))
        elif isinstance(event, Spawn):
            if event.parent is None:
                how = "adopted in" if event.adopted else "spawned in"
                steps.append(_Step(event.pid, event.pid, f"{how} {event.via}", "spawn"))
            else:
                steps.append(_Step(event.parent, event.pid, f"spawn ({event.via})", "spawn"))
        elif isinstance(event, Monitor):
            steps.append(_Step(event.watcher, event.watched, "monitor", "monitor"))
        elif isinstance(event, Down):
            steps.append(_Step(event.pid, event.watcher, f"DOWN {event.reason}", "down_msg"))
        elif isinstance(event, Exit):
            kind = "exit" if _clean(event.reason) else "crash"
            steps.append(_Step(event.pid, event.pid, f"exit: {event.reason}", kind))
    return steps


def _clean(reason: str) -> bool:
    return reason in ("normal", "shutdown") or reason.startswith("('shutdown',")


def sequence_diagram(
    trace: Trace,
    *,
    between: tuple[Any, Any] | Any = None,
    events: tuple[int, int] | range | None = None,
    layers: Iterable[str] | None = None,
    lifelines: str = "layers",
    details: bool = False,
    internal: bool = False,
    width: int = 60,
    title: str | None = None,
) -> graphviz.Digraph:
    """Draw a trace as a sequence diagram, numbered arrows in time order.

    Args:
        trace: What to draw.
        between: Zoom on part of the run, e.g. ``("phx_join", "phx_reply")``:
            from the frame carrying the first event to the frame carrying the
            second (see :meth:`Trace.between`).
        events: Or an event index range: ``(12, 30)`` (both included) or a ``range``.
        layers: Keep only these lifelines, e.g. ``{"socket", "channel"}``. Wire
            frames are drawn when ``"client"`` or ``"adapter"`` is kept.
        lifelines: ``"layers"``: one lifeline per layer (client, adapter,
            endpoint, transport, socket, channel_server, channel, serializer,
            pubsub); ``"processes"``: one per process, with the messages, spawns,
            monitors and DOWNs between them.
        details: Add each hop's detail (``topic='room:lobby'``) to its label.
        internal: Also draw the adapter's own plumbing (the ``_Frame`` messages
            its reader task drops in the transport's mailbox).
        width: Cut frames longer than this many characters.
        title: A caption above the diagram.
    """
    if lifelines not in ("layers", "processes"):
        raise ValueError(f"lifelines must be 'layers' or 'processes', got {lifelines!r}")
    shown = _select(trace, between, events)
    if lifelines == "layers":
        steps = _layer_steps(trace, shown, details=details, internal=internal, width=width)
    else:
        steps = _process_steps(trace, shown, details=details, internal=internal, width=width)

    if layers is not None:
        keep = set(layers)
        if "adapter" in keep:
            keep.add("client")
        if lifelines == "processes":
            # Hop notes name their layer; process lifelines stay, their other hops go.
            steps = [s for s in steps if s.kind != "hop" or s.label.split(":", 1)[0] in keep]
        else:
            filtered = []
            for step in steps:
                if step.target not in keep:
                    continue
                if step.source not in keep:
                    step = _Step(step.target, step.target, step.label, step.kind)
                filtered.append(step)
            steps = filtered

    columns: list[str] = []
    if lifelines == "layers":
        used = {s.source for s in steps} | {s.target for s in steps}
        columns = [layer for layer in LAYERS if layer in used]
        columns += sorted(used - set(LAYERS))
    else:
        for step in steps:
            for column in (step.source, step.target):
                if column not in columns:
                    columns.append(column)
        if "client" in columns:
            columns.remove("client")
            columns.insert(0, "client")
    return _draw_sequence(columns, steps, title=title, name="sequence")


def _draw_sequence(
    columns: list[str], steps: list[_Step], *, title: str | None, name: str
) -> graphviz.Digraph:
    graph = _digraph(name, title, splines="line", nodesep="0.3", ranksep="0.12")
    if not columns:
        graph.node("empty", "(no steps to draw)", shape="plaintext")
        return graph
    index = {column: i for i, column in enumerate(columns)}
    count = len(columns)

    def header(prefix: str) -> None:
        with graph.subgraph() as row:
            row.attr(rank="same")
            for i, column in enumerate(columns):
                row.node(f"{prefix}{i}", _label(column), shape="box", style="filled",
                         fillcolor=LAYER_COLOURS.get(column, "#eeeeee"), color="#607d8b")
        for i in range(count - 1):
            graph.edge(f"{prefix}{i}", f"{prefix}{i + 1}", style="invis")

    header("h")
    for number, step in enumerate(steps, 1):
        colour, style, penwidth, fill = STYLES[step.kind]
        text = f"{number}. {step.label}"
        a, b = index[step.source], index[step.target]
        with graph.subgraph() as row:
            row.attr(rank="same")
            for i in range(count):
                node = f"r{number}c{i}"
                if a == b == i:
                    row.node(node, _label(text), shape="box", style="rounded,filled", fillcolor=fill,
                             color=colour, fontsize="9", height="0.2", margin="0.05,0.02")
                else:
                    row.node(node, "", shape="point", width="0.03", color="#9e9e9e")
        low, high = min(a, b), max(a, b)
        middle = (low + high - 1) // 2
        for i in range(count - 1):
            tail, head = f"r{number}c{i}", f"r{number}c{i + 1}"
            if not (low <= i < high):
                graph.edge(tail, head, style="invis")
                continue
            attrs = {"color": colour, "style": style, "penwidth": penwidth}
            if i == middle:
                attrs["label"] = _label(text)
                attrs["fontcolor"] = colour
            if a < b:
                attrs["arrowhead"] = "normal" if i == high - 1 else "none"
            else:
                attrs["dir"] = "back"
                attrs["arrowtail"] = "normal" if i == low else "none"
            graph.edge(tail, head, **attrs)
    if len(steps) > 12:
        header("f")  # the names again at the bottom of a long diagram
    last = "f" if len(steps) > 12 else None
    for i in range(count):
        chain = [f"h{i}"] + [f"r{n}c{i}" for n in range(1, len(steps) + 1)] + ([f"{last}{i}"] if last else [])
        for tail, head in zip(chain, chain[1:]):
            graph.edge(tail, head, style="dashed", color="#b0bec5", arrowhead="none", weight="100")
    return graph


# Process tree


def process_tree(trace: Trace, *, title: str | None = None) -> graphviz.Digraph:
    """The processes of a trace: who started whom, who monitors whom, who died how.

    Channel processes hang under the supervisor that started them, connection
    processes under the server task they adopted. Dashed blue edges are
    monitors; a red edge is a ``DOWN`` message, labelled with the exit reason.
    A crashed process is red, one that exited cleanly grey, a live one green.
    """
    graph = _digraph("process_tree", title, rankdir="TB", nodesep="0.5", ranksep="0.6")
    infos = trace.processes()
    ids = {info.name: f"p{i}" for i, info in enumerate(infos, 1)}
    roots: dict[str, str] = {}

    def root(via: str | None, kind: str) -> str:
        key = f"{kind}:{via}"
        if key not in roots:
            node = roots[key] = f"root{len(roots) + 1}"
            if kind in ("supervisor", "longpoll supervisor"):
                what = "(channel supervisor)" if kind == "supervisor" else "(long-poll sessions)"
                graph.node(node, _label("PoolSupervisor", what), shape="box",
                           style="filled", fillcolor="#eceff1", color="#455a64")
            elif kind == "adopted":
                graph.node(node, _label("server connection task", f"(adopted in {via})"),
                           shape="box", style="dashed", color="#78909c")
            else:
                graph.node(node, _label("outside any process", f"(spawned in {via})"),
                           shape="box", style="dashed", color="#78909c")
        return roots[key]

    for info in infos:
        lines = [info.name]
        if info.via:
            lines.append(f"started by {info.via}")
        if info.exit_reason is None:
            fill, border = "#e8f5e9", "#2e7d32"
            lines.append("running")
        elif info.crashed:
            fill, border = "#f8d7da", "#c62828"
            lines.append(f"exit: {info.exit_reason}")
        else:
            fill, border = "#eeeeee", "#757575"
            lines.append(f"exit: {info.exit_reason}")
        graph.node(ids[info.name], _label(*lines), shape="box", style="rounded,filled",
                   fillcolor=fill, color=border)

    for info in infos:
        node = ids[info.name]
        if info.via == "PoolSupervisor.start_child":
            # Long-poll sessions have a supervisor of their own, as Phoenix's LongPoll.Supervisor.
            kind = "longpoll supervisor" if info.role == "longpoll session" else "supervisor"
            graph.edge(root(info.via, kind), node, label=_label("supervises"), color="#455a64")
            if info.parent is not None:
                graph.edge(ids[info.parent], node, label=_label("start_child"), style="dotted",
                           color="#90a4ae", fontcolor="#78909c", constraint="false")
        elif info.parent is not None:
            graph.edge(ids[info.parent], node, label=_label("spawn"), color="#455a64")
        elif info.via is not None:
            kind = "adopted" if info.adopted else "outside"
            graph.edge(root(info.via, kind), node, label=_label("adopt" if info.adopted else "spawn"),
                       style="dashed", color="#78909c")

    seen: set[tuple[str, str]] = set()
    for event in trace.events:
        if isinstance(event, Monitor) and (event.watcher, event.watched) not in seen:
            seen.add((event.watcher, event.watched))
            graph.edge(ids[event.watcher], ids[event.watched], label=_label("monitors"), style="dashed",
                       color="#1565c0", fontcolor="#1565c0", constraint="false")
        elif isinstance(event, Down):
            graph.edge(ids[event.pid], ids[event.watcher], label=_label(f"DOWN {event.reason}"),
                       color="#c62828", fontcolor="#c62828", penwidth="1.6", constraint="false")
    return graph


# Dispatch table


def _config_lines(config: Any, kind: str) -> list[str]:
    from ..transports.transport import LONGPOLL_DEFAULTS, WEBSOCKET_DEFAULTS

    defaults = WEBSOCKET_DEFAULTS if kind == "websocket" else LONGPOLL_DEFAULTS
    serializers = ", ".join(f"{type(s).__name__} {req}" for s, req in config.serializer)
    lines = [f"serializers: {serializers}"]
    for name in ("check_origin", "auth_token", "connect_info", "timeout", "max_frame_size",
                 "subprotocols", "window_ms", "pubsub_timeout_ms"):
        value = getattr(config, name)
        if name in ("window_ms", "pubsub_timeout_ms") and kind != "longpoll":
            continue
        if value != getattr(defaults, name) or name in ("check_origin", "timeout"):
            lines.append(f"{name}: {value!r}")
    return lines


def dispatch_diagram(endpoint: Any, *, title: str | None = None) -> graphviz.Digraph:
    """An endpoint's dispatch table: path → transport → socket handler → channel routes.

    Drawn from ``Endpoint.__dispatch__`` (what ``__handler__`` looks paths up in)
    and each handler's ``channels`` routes. Accepts the endpoint class or instance.
    """
    cls = endpoint if isinstance(endpoint, type) else type(endpoint)
    graph = _digraph("dispatch", title, rankdir="LR", nodesep="0.3", ranksep="0.5")
    graph.node("endpoint", _label(cls.__name__, "__handler__(path_info)"), shape="box", style="filled",
               fillcolor=LAYER_COLOURS["endpoint"], color="#3949ab")
    handlers: dict[Any, str] = {}
    routes: dict[tuple[Any, int], str] = {}
    channels: dict[Any, str] = {}
    for number, (segments, entry) in enumerate(cls.__dispatch__.items(), 1):
        path = "/" + "/".join(segments)
        path_node, transport_node = f"path{number}", f"transport{number}"
        graph.node(path_node, _label(path), shape="note", style="filled", fillcolor="#ffffff")
        graph.edge("endpoint", path_node)
        options = _config_lines(entry.config, entry.kind)
        graph.node(transport_node, _label(entry.kind, *options, justify="\\l"), shape="box", style="filled",
                   fillcolor=LAYER_COLOURS["transport"], color="#5e35b1")
        graph.edge(path_node, transport_node)
        handler = entry.handler
        if handler not in handlers:
            node = handlers[handler] = f"handler{len(handlers) + 1}"
            arity = handler.connect_arity() if hasattr(handler, "connect_arity") else 2
            graph.node(node, _label(handler.__name__, f"connect/{arity}, id/1"), shape="box", style="filled",
                       fillcolor=LAYER_COLOURS["socket"], color="#00897b")
            for position, route in enumerate(getattr(handler, "channels", ()), 1):
                route_node = routes[(handler, position)] = f"{node}_route{position}"
                graph.node(route_node, _label(f'channel "{route.pattern}"'), shape="cds", style="filled",
                           fillcolor="#ffffff", color="#00897b")
                graph.edge(node, route_node)
                channel = route.channel
                if channel not in channels:
                    channel_node = channels[channel] = f"channel{len(channels) + 1}"
                    name = getattr(channel, "__name__", type(channel).__name__)
                    intercepts = list(getattr(channel, "intercept", ()) or ())
                    lines = [name] + ([f"intercept: {', '.join(intercepts)}"] if intercepts else [])
                    graph.node(channel_node, _label(*lines), shape="box", style="rounded,filled",
                               fillcolor=LAYER_COLOURS["channel"], color="#f9a825")
                graph.edge(route_node, channels[channel])
        graph.edge(transport_node, handlers[handler], label=_label("connect"))
    graph.node("plug", _label("any other path", "→ plug (plain HTTP)"), shape="box", style="dashed",
               color="#9e9e9e")
    graph.edge("endpoint", "plug", style="dashed", color="#9e9e9e")
    return graph


# PubSub


def pubsub_diagram(
    pubsub: Any,
    *,
    trace: Trace | None = None,
    topics: Iterable[str] | None = None,
    title: str | None = None,
) -> graphviz.Digraph:
    """Topics and their subscribers, with each channel's fastlane to its transport.

    A subscriber that joined through a channel subscribed with ``Fastlane``
    metadata: broadcasts skip its process and go, already encoded, straight to
    the transport (the green edge). Events it intercepts go through the channel's
    ``handle_out`` instead, and are listed on it.

    Args:
        pubsub: A :class:`~channels_core.pubsub.PubSub`, or an endpoint that has one.
        trace: Name processes as this trace does (``socket#1``); without one they
            are numbered by role in the order they are drawn.
        topics: Draw only these topics (default: all, sorted).
    """
    from ..pubsub.fastlane import Fastlane

    server = getattr(pubsub, "pubsub", pubsub)
    names = trace.name if trace is not None else _Names().pid
    graph = _digraph("pubsub", title, rankdir="LR", nodesep="0.3", ranksep="0.7")
    chosen = sorted(server.topics()) if topics is None else list(topics)
    nodes: dict[str, str] = {}

    def process_node(name: str, fill: str) -> str:
        if name not in nodes:
            nodes[name] = f"pid{len(nodes) + 1}"
            graph.node(nodes[name], _label(name), shape="box", style="rounded,filled", fillcolor=fill)
        return nodes[name]

    fastlanes: set[tuple[str, str]] = set()
    for number, topic in enumerate(chosen, 1):
        topic_node = f"topic{number}"
        graph.node(topic_node, _label(f"topic {topic}"), shape="box", style="filled",
                   fillcolor=LAYER_COLOURS["pubsub"], color="#ad1457")
        subscribers = server.subscribers(topic)
        if not subscribers:
            graph.node(f"{topic_node}_none", "(no subscribers)", shape="plaintext")
            graph.edge(topic_node, f"{topic_node}_none", style="invis")
        for pid, metadata in subscribers:
            name = names(pid)
            fill = LAYER_COLOURS["channel"] if isinstance(metadata, Fastlane) else LAYER_COLOURS["socket"]
            node = process_node(name, fill)
            if isinstance(metadata, Fastlane):
                intercepts = sorted(metadata.intercepts)
                label = "subscribed (fastlane)"
                if intercepts:
                    label += "\\nintercepts: " + ", ".join(intercepts)
                graph.edge(topic_node, node, label=graphviz.nohtml(label), color="#ad1457")
                transport = process_node(names(metadata.transport_pid), LAYER_COLOURS["socket"])
                key = (node, transport)
                if key not in fastlanes:
                    fastlanes.add(key)
                    serializer = type(metadata.serializer).__name__
                    graph.edge(node, transport, label=_label(f"fastlane: {serializer}"),
                               color="#2e7d32", fontcolor="#2e7d32", style="bold")
            else:
                described = "" if metadata is None else f" ({type(metadata).__name__})"
                graph.edge(topic_node, node, label=_label(f"subscribed{described}"), color="#ad1457")
    if not chosen:
        graph.node("empty", "(no topics)", shape="plaintext")
    return graph
