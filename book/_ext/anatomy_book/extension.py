"""The Sphinx side of the book's extension: two directives and their bookkeeping.

Two directives, each writing MyST that Sphinx then reads like any other page:

``{protocol-frame} <kind>``
    One kind of frame (see :mod:`.frames`) in every protocol version it exists in,
    made by the real serializers, with the serializer calls that made it and the
    function of ``channels_core`` that sends or handles it.

``{phoenix-glossary} <layer>``
    The glossary table of one layer (see :mod:`.glossary`): Phoenix names, their
    ``module:qualname`` homes taken from the objects, source lines, and the
    chapters whose source listings show them.

Prose and headings around them are written by hand; the frames and names are not.
After reading, every frame kind and every glossary layer must have been shown
exactly once, or the build warns (and ``-W`` makes that an error), so that a
frame kind added to the catalogue cannot silently miss the page.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

from . import frames, glossary
from .sources import Chapter, Home, chapters_showing, home_of, read_chapter

__all__ = ["setup"]

logger = logging.getLogger(__name__)

CHAPTER_PREFIX = "chapters/"
PROTOCOL_NAMES = {"2.0.0": "V2", "1.0.0": "V1"}


def _chapters(env: BuildEnvironment) -> list[Chapter]:
    """The walkthrough chapters in this build, read from their notebooks."""
    chapters = []
    for docname in sorted(d for d in env.found_docs if d.startswith(CHAPTER_PREFIX)):
        path = Path(env.doc2path(docname))
        try:
            chapters.append(read_chapter(docname, path))
        except (OSError, ValueError, KeyError) as exc:
            logger.warning("cannot read chapter %s for its source listings: %s", path.name, exc,
                           type="anatomy", subtype="chapter")
    return chapters


def _home_markdown(home: Home, chapters: Iterable[Chapter]) -> tuple[str, str, str]:
    """The MyST for a home: its spec, its source line, and links to chapters showing it."""
    shown = chapters_showing(home, chapters)
    links = ", ".join(f"{{doc}}`{c.number} </{c.docname}>`" for c in shown) or "–"
    return f"`{home.spec}`", f"`{home.path}:{home.line}`", links


class _GeneratedDirective(SphinxDirective):
    """Renders generated MyST in place, and records what it showed."""

    required_arguments = 1
    final_argument_whitespace = True
    has_content = False
    #: The env attribute recording which keys each document showed.
    record: str = ""

    def markdown(self, key: str) -> str:
        raise NotImplementedError

    def keys(self) -> list[str]:
        raise NotImplementedError

    def run(self) -> list[nodes.Node]:
        key = self.arguments[0].strip()
        if key not in self.keys():
            raise self.error(f"unknown {self.name} {key!r}; expected one of: {', '.join(self.keys())}")
        shown: dict[str, list[str]] = getattr(self.env, self.record, {})
        setattr(self.env, self.record, shown)
        shown.setdefault(self.env.docname, []).append(key)
        generated = self.markdown(key)
        container = nodes.container(classes=[self.name])
        self.state.nested_parse(StringList(generated.splitlines(), source=f"<{self.name} {key}>"),
                                self.content_offset, container)
        return [container]


class ProtocolFrame(_GeneratedDirective):
    """``{protocol-frame} join``: one kind of frame, made by the real serializers."""

    record = "anatomy_frames_shown"

    def keys(self) -> list[str]:
        return [k.key for k in frames.FRAME_KINDS]

    def markdown(self, key: str) -> str:
        kind = frames.kind(key)
        where = home_of(kind.code)
        chapters = chapters_showing(where, _chapters(self.env))
        home, line, links = _home_markdown(where, chapters)
        if kind.direction == frames.UP:
            lead = f"**↑ client to server**, event `{kind.event}`, handled by {home} ({line})"
        else:
            lead = f"**↓ server to client**, event `{kind.event}`, sent by {home} ({line})"
        if len(chapters) == 1:
            lead += f"; chapter {links} shows that code"
        elif chapters:
            lead += f"; chapters {links} show that code"
        out = [lead + ".", ""]
        calls = []
        for vsn in kind.protocols:
            rendered = frames.render(kind, vsn)
            caption = f"{PROTOCOL_NAMES[vsn]} (vsn={vsn}), {rendered.opcode} frame"
            if rendered.opcode == "text":
                out += ["```{code-block} json", f":caption: {caption}", "", str(rendered.data), "```", ""]
            else:
                assert isinstance(rendered.data, bytes)
                parts = frames.binary_fields(kind.direction, rendered.data)
                width = max(len(p.data.hex(" ")) for p in parts)
                table = [f"{p.data.hex(' '):<{width}}   {p.meaning}" for p in parts]
                out += ["```{code-block} text", f":caption: {caption}, byte by byte", "", *table, "```", ""]
            calls += [f">>> {rendered.call}", repr(rendered.result)]
        out += [
            ":::{dropdown} The serializer calls behind these frames",
            "```pycon",
            ">>> from channels_core.message import Broadcast, Message, Reply",
            ">>> from channels_core.serializers import V1JSONSerializer, V2JSONSerializer",
            *calls,
            "```",
            ":::",
        ]
        return "\n".join(out)



class PhoenixGlossary(_GeneratedDirective):
    """``{phoenix-glossary} Socket``: one layer's Phoenix names and their homes here."""

    record = "anatomy_glossary_shown"

    def keys(self) -> list[str]:
        return [layer for layer, _ in glossary.GLOSSARY]

    def markdown(self, key: str) -> str:
        entries = dict(glossary.GLOSSARY)[key]
        chapters = _chapters(self.env)
        rows = [
            "```{list-table}", ":header-rows: 1", ":widths: 38 50 12", ":class: anatomy-glossary", "",
            "* - Phoenix (the talk)", "  - channels_core", "  - Chapters",
        ]
        for entry in entries:
            where = home_of(entry.home)
            home, _, links = _home_markdown(where, chapters)
            rows += [f"* - `{entry.phoenix}`"]
            if entry.note:
                rows += ["", f"    {entry.note}"]
            rows += [f"  - {home}", "", f"    line {where.line}", f"  - {links}"]
        rows.append("```")
        return "\n".join(rows)


# Keeping the generated pages current and complete


def _purge(app: Sphinx, env: BuildEnvironment, docname: str) -> None:
    for record in (ProtocolFrame.record, PhoenixGlossary.record):
        getattr(env, record, {}).pop(docname, None)


def _merge(app: Sphinx, env: BuildEnvironment, docnames: set[str], other: BuildEnvironment) -> None:
    for record in (ProtocolFrame.record, PhoenixGlossary.record):
        mine = getattr(env, record, {})
        setattr(env, record, mine)
        mine.update({d: keys for d, keys in getattr(other, record, {}).items() if d in docnames})


def _always_reread(app: Sphinx, env: BuildEnvironment, added: set[str], changed: set[str],
                   removed: set[str]) -> list[str]:
    # The pages depend on the package and the notebooks, which Sphinx does not track.
    pages = set()
    for record in (ProtocolFrame.record, PhoenixGlossary.record):
        pages |= set(getattr(env, record, {}))
    return sorted(pages - removed)


def _check_complete(app: Sphinx, env: BuildEnvironment) -> None:
    checks = (
        (ProtocolFrame.record, "protocol-frame", [k.key for k in frames.FRAME_KINDS]),
        (PhoenixGlossary.record, "phoenix-glossary", [layer for layer, _ in glossary.GLOSSARY]),
    )
    for record, directive, expected in checks:
        shown = [key for keys in getattr(env, record, {}).values() for key in keys]
        missing = [key for key in expected if key not in shown]
        twice = sorted({key for key in shown if shown.count(key) > 1})
        if missing:
            logger.warning("no page shows {%s} %s", directive, ", ".join(missing), type="anatomy", subtype="missing")
        if twice:
            logger.warning("{%s} shown more than once: %s", directive, ", ".join(twice),
                           type="anatomy", subtype="duplicate")


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("protocol-frame", ProtocolFrame)
    app.add_directive("phoenix-glossary", PhoenixGlossary)
    app.connect("env-purge-doc", _purge)
    app.connect("env-merge-info", _merge)
    app.connect("env-get-outdated", _always_reread)
    app.connect("env-check-consistency", _check_complete)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True, "env_version": 1}

