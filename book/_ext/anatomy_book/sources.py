"""Where an object of ``channels_core`` lives, and which chapters show its source.

A chapter shows source through the toolkit's ``show_source``, whose stored output
starts with a header such as ``channels_core/socket.py 368–397 (SocketState._join)``.
Reading those headers from the notebooks' stored outputs tells, without running
anything, which chapters show which lines of which file.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from channels_core.anatomy import show_source

__all__ = ["Chapter", "Home", "View", "home_of", "read_chapter"]

#: show_source's header: path, first and last line (an en dash between), and the name shown.
_HEADER = re.compile(r"^(?P<path>channels_core/\S+\.py) (?P<start>\d+)–(?P<end>\d+)(?: \((?P<name>.+)\))?$")


@dataclass(frozen=True)
class Home:
    """Where an object is defined.

    Attributes:
        module: e.g. ``"channels_core.socket"``.
        qualname: e.g. ``"SocketState._join"``; empty for a module.
        path: The file, relative to the package's parent, e.g. ``"channels_core/socket.py"``.
        line: The line its definition starts on (1 for a module).
    """

    module: str
    qualname: str
    path: str
    line: int

    @property
    def spec(self) -> str:
        """``module:qualname``, the form ``show_source`` accepts; the module alone for a module."""
        return f"{self.module}:{self.qualname}" if self.qualname else self.module


def home_of(obj: Any) -> Home:
    """Where ``obj`` (a module, class, function or method of the package) is defined.

    The toolkit's ``show_source`` finds it, so the glossary and the chapters can
    never disagree on where a name lives.

    Raises:
        TypeError: ``obj`` is not defined in a source file of ``channels_core``.
    """
    try:
        view = show_source(obj)
    except ValueError as exc:
        raise TypeError(str(exc)) from None
    if not view.path.startswith("channels_core/"):
        raise TypeError(f"{obj!r} is defined in {view.path}, outside channels_core")
    if isinstance(obj, ModuleType):
        return Home(obj.__name__, "", view.path, 1)
    target = inspect.unwrap(obj) if callable(obj) else obj
    return Home(target.__module__, target.__qualname__, view.path, view.start)


@dataclass(frozen=True)
class View:
    """A stretch of source a chapter shows: ``path`` lines ``start`` to ``end``."""

    path: str
    start: int
    end: int
    name: str | None

    def shows(self, home: Home) -> bool:
        """Whether the line where ``home`` is defined is in this view."""
        return self.path == home.path and self.start <= home.line <= self.end


@dataclass(frozen=True)
class Chapter:
    """A walkthrough chapter: its document name in the book, title and source views."""

    docname: str
    number: int
    title: str
    views: tuple[View, ...]

    def shows(self, home: Home) -> bool:
        return any(view.shows(home) for view in self.views)


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def read_chapter(docname: str, path: Path) -> Chapter:
    """Read a chapter notebook's title and the source views in its stored outputs."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    title = path.stem
    views = []
    for cell in notebook["cells"]:
        if cell["cell_type"] == "markdown" and title == path.stem:
            first = _text(cell["source"]).lstrip().splitlines()[:1]
            if first and first[0].startswith("# "):
                title = first[0][2:].strip()
        for output in cell.get("outputs", []):
            plain = output.get("data", {}).get("text/plain")
            if plain is None:
                continue
            match = _HEADER.match(_text(plain).split("\n", 1)[0])
            if match:
                views.append(View(match["path"], int(match["start"]), int(match["end"]), match["name"]))
    number = int(path.stem.split("_", 1)[0])
    return Chapter(docname, number, title, tuple(views))


def chapters_showing(home: Home, chapters: Iterable[Chapter]) -> list[Chapter]:
    return [chapter for chapter in chapters if chapter.shows(home)]
