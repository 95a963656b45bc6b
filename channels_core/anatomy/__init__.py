"""The anatomy toolkit: watch a live run of the stack, and read the code that ran.

Phoenix has no counterpart in its source; on the BEAM this is the job of
``:dbg``, ``:sys.trace`` and the Observer. Every walkthrough notebook uses it the
same way::

    from channels_core.anatomy import trace, sequence_diagram, WireLog, show_source

    async with trace() as t:
        ...                                   # a real client against a real server
    t.summary()                               # what happened, in a few lines
    sequence_diagram(t, between=("phx_join", "phx_reply"))
    WireLog(t)                                # the frames, as a network inspector shows them
    show_source("channels_core.socket:SocketState._join", highlight="join\\(")

The pieces:

* :func:`trace` records layer hops, process events and wire frames through the
  hooks of :mod:`channels_core.tracing` (free when no trace runs), with names
  that are the same from one run to the next (``socket#1``, ``ws#1``, ``r1``).
* :func:`sequence_diagram`, :func:`process_tree`, :func:`dispatch_diagram` and
  :func:`pubsub_diagram` return :class:`graphviz.Digraph` objects.
* :class:`WireLog` tabulates the frames of a trace.
* :func:`show_source` and :func:`grep` read the package's source from disk.
"""

from __future__ import annotations

from .diagrams import Diagram, dispatch_diagram, process_tree, pubsub_diagram, sequence_diagram
from .source import GrepResult, SourceView, grep, show_source
from .tracer import Down, Event, Exit, Frame, Hop, Monitor, ProcessInfo, Send, Spawn, Trace, trace
from .wire import ParsedFrame, WireLog, parse_frame, wire_log

__all__ = [
    "Diagram",
    "Down",
    "Event",
    "Exit",
    "Frame",
    "GrepResult",
    "Hop",
    "Monitor",
    "ParsedFrame",
    "ProcessInfo",
    "Send",
    "SourceView",
    "Spawn",
    "Trace",
    "WireLog",
    "dispatch_diagram",
    "grep",
    "parse_frame",
    "process_tree",
    "pubsub_diagram",
    "sequence_diagram",
    "show_source",
    "trace",
    "wire_log",
]
