"""Reading the package's own source: ``show_source`` and ``grep``.

The talk reads Phoenix's source with its line numbers on screen; a notebook
does the same with this package. :func:`show_source` shows a function, a class,
a module or a line range exactly as it is on disk, with the file's real line
numbers and some lines highlighted; :func:`grep` finds where a name appears.
Paths are always relative to the directory holding the package
(``channels_core/socket.py``), never absolute, so what a notebook shows is the
same on every machine.

Both results render as HTML in a notebook and as deterministic plain text
everywhere else (``  212 | code``), which is the form notebook validation compares.
"""

from __future__ import annotations

import html
import importlib
import inspect
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from pygments import highlight as pygments_highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer
from pygments.styles.default import DefaultStyle

from .tracer import PACKAGE_ROOT, Hop, relative_path

__all__ = ["GrepMatch", "GrepResult", "SourceView", "grep", "show_source"]

PACKAGE_DIR = PACKAGE_ROOT / "channels_core"


class _SourceStyle(DefaultStyle):
    """Pygments' default colours; highlighted lines in a yellow that reads on both themes."""

    highlight_color = "#fff3b0"


# show_source


@dataclass(frozen=True)
class SourceView:
    """A stretch of a source file, with its real line numbers.

    Attributes:
        path: Relative to the package's parent, e.g. ``"channels_core/socket.py"``.
        start: The number of the first line shown.
        lines: The lines, as on disk, without their line endings.
        highlight: Line numbers (of the file) to emphasise.
        name: What was asked for, e.g. ``"SocketState._join"``, or None for a range.
    """

    path: str
    start: int
    lines: tuple[str, ...]
    highlight: frozenset[int] = frozenset()
    name: str | None = None

    @property
    def end(self) -> int:
        return self.start + len(self.lines) - 1

    @property
    def header(self) -> str:
        where = f"{self.path} {self.start}–{self.end}"
        return f"{where} ({self.name})" if self.name else where

    def __str__(self) -> str:
        width = len(str(self.end))
        body = []
        for number, text in enumerate(self.lines, self.start):
            mark = ">" if number in self.highlight else " "
            body.append(f"{mark} {number:>{width}} | {text}".rstrip())
        return "\n".join([self.header, *body])

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def _repr_html_(self) -> str:
        formatter = HtmlFormatter(
            linenos="inline",
            linenostart=self.start,
            hl_lines=sorted(n - self.start + 1 for n in self.highlight),
            noclasses=True,
            style=_SourceStyle,
            wrapcode=True,
        )
        code = "\n".join(self.lines) + "\n"
        body = pygments_highlight(code, PythonLexer(stripnl=False, ensurenl=True), formatter)
        return (
            "<div class='anatomy-source'>"
            "<div style='font-family:monospace;font-weight:bold;padding:2px 0'>"
            f"{html.escape(self.header)}</div>{body}</div>"
        )


def _resolve_name(spec: str) -> Any:
    module_name, _, qualname = spec.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import module {module_name!r} from {spec!r}: {exc}") from None
    for part in filter(None, qualname.split(".")):
        try:
            target = inspect.getattr_static(target, part)
        except AttributeError:
            raise ValueError(f"{spec!r}: {module_name} has no {qualname!r} (no attribute {part!r})") from None
        if isinstance(target, (staticmethod, classmethod)):
            target = target.__func__
    return target


def _file_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def _package_file(spec: str) -> Path:
    candidate = Path(spec)
    path = candidate if candidate.is_absolute() else PACKAGE_ROOT / candidate
    if not path.is_file():
        raise ValueError(f"no such source file: {spec!r} (paths are relative to {PACKAGE_ROOT.name}'s parent,"
                         " e.g. 'channels_core/socket.py')")
    return path


_RANGE = re.compile(r"^(?P<path>.+\.py):(?P<first>\d+)(?:-(?P<last>\d+))?$")


def _locate(target: Any) -> tuple[Path, int, int, str | None]:
    """The file, first and last line of ``target``, and the name to show."""
    if isinstance(target, Hop):
        module = target.file[:-3].replace("/", ".") if target.file.endswith(".py") else None
        if module and "<locals>" not in target.qualname:
            try:
                return _locate(_resolve_name(f"{module}:{target.qualname}"))
            except ValueError:
                pass
        path = _package_file(target.file)
        return path, max(1, target.line - 5), min(len(_file_lines(path)), target.line + 5), target.qualname
    if isinstance(target, str):
        match = _RANGE.match(target)
        if match:
            path = _package_file(match["path"])
            last = int(match["last"] or match["first"])
            return path, int(match["first"]), last, None
        if target.endswith(".py") or "/" in target:
            path = _package_file(target)
            return path, 1, len(_file_lines(path)), None
        name = target.partition(":")[2] or None
        return (*_locate(_resolve_name(target))[:3], name)
    obj = target.fget if isinstance(target, property) else target
    obj = inspect.unwrap(obj) if callable(obj) else obj
    try:
        filename = inspect.getsourcefile(obj)
        lines, first = inspect.getsourcelines(obj)
    except (TypeError, OSError) as exc:
        raise ValueError(f"no source available for {target!r}: {exc}") from None
    if filename is None:
        raise ValueError(f"no source file for {target!r}")
    first = max(first, 1)  # a module's lines start at 0 in inspect's count
    if isinstance(obj, ModuleType):
        name = None
    else:
        name = getattr(obj, "__qualname__", None)
    return Path(filename), first, first + len(lines) - 1, name


def show_source(
    target: Any,
    highlight: int | Iterable[int] | str | None = None,
    *,
    lines: tuple[int, int] | None = None,
) -> SourceView:
    """Show source code from disk with its real line numbers.

    Args:
        target: A function, method, class or module; ``"module:qualname"``
            (``"channels_core.socket:SocketState._join"``); a path relative to the
            package's parent (``"channels_core/socket.py"``), optionally with a
            range (``"channels_core/socket.py:212-240"``); or a
            :class:`~channels_core.anatomy.tracer.Hop` from a trace (its function,
            with the reporting line highlighted).
        highlight: Line numbers of the file to emphasise, or a regular expression:
            every shown line it matches is emphasised.
        lines: Show this range of the target's file instead, e.g. ``(212, 240)``.

    Raises:
        ValueError: the target has no source, a line is outside the file or the
            view, or the pattern matches no line.
    """
    path, first, last, name = _locate(target)
    all_lines = _file_lines(path)
    if lines is not None:
        first, last = lines
        name = None
    if not 1 <= first <= last <= len(all_lines):
        raise ValueError(
            f"lines {first}–{last} are outside {relative_path(str(path))}, which has {len(all_lines)} lines"
        )
    shown = tuple(all_lines[first - 1 : last])
    view = SourceView(relative_path(str(path)), first, shown, frozenset(), name)
    if highlight is None and isinstance(target, Hop) and lines is None:
        highlight = [target.line]
    if highlight is None:
        return view
    if isinstance(highlight, str):
        try:
            pattern = re.compile(highlight)
        except re.error as exc:
            raise ValueError(f"invalid highlight pattern {highlight!r}: {exc}") from None
        marked = {n for n, text in enumerate(shown, first) if pattern.search(text)}
        if not marked:
            raise ValueError(f"no line of {view.header} matches {highlight!r}")
    else:
        marked = {highlight} if isinstance(highlight, int) else set(highlight)
        outside = sorted(n for n in marked if not first <= n <= last)
        if outside:
            raise ValueError(f"highlighted line(s) {outside} are outside {view.header}")
    return SourceView(view.path, first, shown, frozenset(marked), name)


# grep


@dataclass(frozen=True)
class GrepMatch:
    """One matching line: ``file`` relative to the package's parent, ``line`` from 1."""

    file: str
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.text.strip()}"


class GrepResult(Sequence[GrepMatch]):
    """The matches of :func:`grep`, by file then line; a table in a notebook."""

    def __init__(self, pattern: str, matches: list[GrepMatch]) -> None:
        self.pattern = pattern
        self.matches = matches

    def __len__(self) -> int:
        return len(self.matches)

    def __getitem__(self, index: Any) -> Any:
        return self.matches[index]

    def files(self) -> list[str]:
        """The files with at least one match, in order."""
        return list(dict.fromkeys(m.file for m in self.matches))

    def __str__(self) -> str:
        if not self.matches:
            return f"no match for {self.pattern!r}"
        return "\n".join(str(m) for m in self.matches)

    def __repr__(self) -> str:
        return f"<GrepResult {self.pattern!r}: {len(self.matches)} matches in {len(self.files())} files>"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(m.file)}</td><td style='text-align:right'>{m.line}</td>"
            f"<td style='text-align:left'><code>{html.escape(m.text.strip())}</code></td></tr>"
            for m in self.matches
        ) or f"<tr><td colspan='3'>no match for {html.escape(repr(self.pattern))}</td></tr>"
        return (
            "<table class='anatomy-grep' style='font-size:12px'><thead><tr><th>file</th><th>line</th>"
            f"<th style='text-align:left'>{html.escape(self.pattern)}</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
        )


def grep(
    pattern: str,
    *,
    path: str = "channels_core",
    glob: str = "*.py",
    ignore_case: bool = False,
    exclude: Sequence[str] = ("channels_core/anatomy", "channels_core/workshop"),
) -> GrepResult:
    """Find the lines of the package's source that match a regular expression.

    Args:
        pattern: A Python regular expression, e.g. ``"__handler__"`` or ``r"def \\w+_join"``.
        path: A directory or file relative to the package's parent.
        glob: Which files under ``path`` to read.
        ignore_case: Match regardless of case.
        exclude: Directories (relative paths) to skip. By default this toolkit
            itself and the workshop's checks: they are the microscope and the
            exam, not the specimen.

    Raises:
        ValueError: the pattern is not a valid regular expression, or ``path`` does not exist.
    """
    try:
        regex = re.compile(pattern, re.IGNORECASE if ignore_case else 0)
    except re.error as exc:
        raise ValueError(f"invalid pattern {pattern!r}: {exc}") from None
    base = PACKAGE_ROOT / path
    if not base.exists():
        raise ValueError(f"no such path: {path!r} (paths are relative to {PACKAGE_ROOT.name}'s parent)")
    files = [base] if base.is_file() else [p for p in base.rglob(glob) if p.is_file()]
    relative = sorted(
        (p.relative_to(PACKAGE_ROOT).as_posix(), p) for p in files if "__pycache__" not in p.parts
    )
    matches = []
    for name, file in relative:
        if any(name == skip or name.startswith(skip.rstrip("/") + "/") for skip in exclude):
            continue
        for number, text in enumerate(_file_lines(file), 1):
            if regex.search(text):
                matches.append(GrepMatch(name, number, text))
    return GrepResult(pattern, matches)
