"""The HTML book: its table of contents, its generated pages, and the book in a browser.

The book is built by ``book/build.py`` (``make book``). The fast tests check the
pieces without building anything: the table of contents, the protocol frames
against the golden transcripts recorded from a real Phoenix server, the glossary's
homes, the link checker and the chapter reader. One more builds a tiny Sphinx
project to show that the extension refuses an unknown frame kind and a page that
leaves frames out.

The browser test uses the built book in ``book/_build/html`` when it was built
from the files as they are now (``make book`` in CI runs just before the tests),
and builds it otherwise. ``tests/js/book_browser.js`` then opens it from disk in
Debian's headless chromium, page by page, as a reader would. It checks that every
chapter's diagrams (SVG) decode and are shown, that every source listing shows
its real line numbers, highlights and colours, that nothing fails to load and
nothing is fetched from the network, and that the table of contents lists every
chapter. It saves screenshots to ``artifacts/book/``.
"""

from __future__ import annotations

import asyncio
import html
import importlib
import importlib.util
import json
import re
import shutil
import struct
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from helpers import GOLDEN, ROOT, seconds

from channels_core import client
from channels_core.anatomy import show_source

BOOK = ROOT / "book"
CHROMIUM = Path("/usr/bin/chromium")
SCRIPT = ROOT / "tests" / "js" / "book_browser.js"
ARTIFACTS = ROOT / "artifacts" / "book"
CHAPTERS = [
    "01_real_time_app", "02_dispatch", "03_connect", "04_socket", "05_join", "06_message_and_reply",
    "07_broadcast_and_fastlane", "08_faults", "09_longpoll", "10_channel_without_inheritance", "11_scaling_out",
    "12_presence",
]

sys.path.insert(0, str(BOOK / "_ext"))
frames = importlib.import_module("anatomy_book.frames")
glossary = importlib.import_module("anatomy_book.glossary")
sources = importlib.import_module("anatomy_book.sources")


def _load_build() -> ModuleType:
    spec = importlib.util.spec_from_file_location("book_build", BOOK / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


build = _load_build()


def stored_notebooks() -> list[Path]:
    return sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def exercise_pages() -> list[tuple[str, str]]:
    """The exercise notebooks, as the sidebar lists them under the workshop guide: (title, page)."""
    return [(expected_page(p)["title"], f"chapters/exercises/{p.stem}.html")
            for p in sorted((ROOT / "exercises").glob("[0-9][0-9]_*.ipynb"))]


# The table of contents


def test_the_toc_lists_the_chapters_in_order_then_the_reference() -> None:
    toc = yaml.safe_load((BOOK / "_toc.yml").read_text())
    assert toc["root"] == "intro"
    walkthrough, guides, reference = toc["parts"]
    assert [c["file"] for c in walkthrough["chapters"]] == [f"chapters/{name}" for name in CHAPTERS]
    assert [c["file"] for c in guides["chapters"]] == ["testing-channels", "workshop"]
    # The workshop guide lists every exercise notebook, which reaches the book through notebooks/exercises.
    sections = [s["file"] for s in guides["chapters"][1]["sections"]]
    assert sections == [page.removesuffix(".html") for _, page in exercise_pages()]
    assert [c["file"] for c in reference["chapters"]] == ["protocol", "glossary", "reliability", "performance", "running"]
    # The chapters are the notebooks themselves, through a link committed to git.
    assert (BOOK / "chapters").is_symlink() and (BOOK / "chapters").readlink() == Path("../notebooks")


def test_the_build_toc_leaves_out_chapters_not_written_yet(tmp_path: Path) -> None:
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    for name in ("01_real_time_app", "03_connect"):
        (notebooks / f"{name}.ipynb").write_text("{}")
    out = tmp_path / "toc.yml"

    left_out = build.write_toc(notebooks=notebooks, out=out)

    assert left_out == [f"chapters/{name}" for name in CHAPTERS if name not in ("01_real_time_app", "03_connect")]
    written = yaml.safe_load(out.read_text())
    assert [c["file"] for c in written["parts"][0]["chapters"]] == ["chapters/01_real_time_app", "chapters/03_connect"]
    assert [c["file"] for c in written["parts"][2]["chapters"]] == ["protocol", "glossary", "reliability", "performance", "running"]


def test_a_notebook_missing_from_the_toc_stops_the_build(tmp_path: Path) -> None:
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    (notebooks / "01_real_time_app.ipynb").write_text("{}")
    (notebooks / "11_presence.ipynb").write_text("{}")

    with pytest.raises(SystemExit, match=r"notebooks/11_presence\.ipynb is not in _toc\.yml"):
        build.write_toc(notebooks=notebooks, out=tmp_path / "toc.yml")


def test_a_page_missing_from_the_toc_stops_the_build(tmp_path: Path) -> None:
    book = tmp_path / "book"
    (book / "_build").mkdir(parents=True)
    shutil.copy(BOOK / "_toc.yml", book / "_toc.yml")
    for page in ("intro", "protocol", "glossary", "running", "testing-channels", "faq", "_build/stale"):
        (book / f"{page}.md").write_text("# A page\n")
    (book / "README.md").write_text("# Not a page of the book\n")

    with pytest.raises(SystemExit, match=r"book/faq\.md is not in _toc\.yml; add it there \(not listed: faq\)"):
        build.write_toc(toc=book / "_toc.yml", out=tmp_path / "toc.yml")


def test_every_stored_notebook_is_a_chapter_of_the_book() -> None:
    assert {p.stem for p in stored_notebooks()} <= set(CHAPTERS)


# The protocol reference's frames


def golden_frame(name: str, seq: int) -> dict[str, Any]:
    path = GOLDEN / f"{name}.jsonl"
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record["seq"] == seq:
            return record
    raise AssertionError(f"no seq {seq} in {path}")


GOLDEN_CASES = [(k, vsn, name, seq) for k in frames.FRAME_KINDS for vsn, name, seq in k.golden]


@pytest.mark.skipif(not GOLDEN.is_dir(), reason=f"no golden transcripts at {GOLDEN}")
@pytest.mark.parametrize(("kind", "vsn", "name", "seq"), GOLDEN_CASES,
                         ids=[f"{k.key}-v{vsn[0]}" for k, vsn, _, _ in GOLDEN_CASES])
def test_each_frame_is_the_one_phoenix_sent(kind: Any, vsn: str, name: str, seq: int) -> None:
    rendered = frames.render(kind, vsn)
    recorded = golden_frame(name, seq)

    assert recorded["dir"] == kind.direction
    assert recorded["opcode"] == rendered.opcode
    if rendered.opcode == "binary":
        assert rendered.data == bytes.fromhex(recorded["hex"])
        return
    ours, phoenix = json.loads(rendered.data), json.loads(recorded["data"])
    if kind.key == "phx-error":
        # Phoenix 1.8 (and this package) give the reason; the 1.7 transcripts do not.
        assert (ours[4] if vsn == "2.0.0" else ours["payload"]) == {"reason": "channel_crash"}
        assert (phoenix[4] if vsn == "2.0.0" else phoenix["payload"]) == {}
        ours = ours[:4] if vsn == "2.0.0" else {k: v for k, v in ours.items() if k != "payload"}
        phoenix = phoenix[:4] if vsn == "2.0.0" else {k: v for k, v in phoenix.items() if k != "payload"}
    # Key order does not matter to any client; null against absent does.
    assert ours == phoenix
    if kind.direction == frames.UP:
        assert frames.PROTOCOLS[vsn].decode(recorded["data"], "text") == rendered.value


def test_the_catalogue_has_every_kind_of_frame_once() -> None:
    keys = [k.key for k in frames.FRAME_KINDS]
    assert keys == list(dict.fromkeys(keys)), "frame kinds are named once each"
    assert set(keys) == {
        "join", "message", "heartbeat", "leave", "binary-message",
        "join-reply-ok", "join-reply-error", "too-many-channels", "unmatched-topic", "reply", "heartbeat-reply",
        "leave-reply", "push", "broadcast", "phx-close", "phx-error", "binary-push", "binary-reply",
        "binary-broadcast",
    }
    assert [k.protocols for k in frames.FRAME_KINDS if k.binary] == [("2.0.0",)] * 4


@pytest.mark.parametrize("kind", [k for k in frames.FRAME_KINDS if k.direction == frames.DOWN],
                         ids=lambda k: k.key)
def test_what_the_server_sends_is_what_the_client_reads(kind: Any) -> None:
    for vsn in kind.protocols:
        rendered = frames.render(kind, vsn)
        read = (client.decode_v2 if vsn == "2.0.0" else client.decode_v1)(rendered.data)
        value = rendered.value
        assert read.topic == value.topic
        if hasattr(value, "status"):  # a Reply
            assert (read.event, read.payload) == ("phx_reply", {"status": value.status, "response": value.payload})
            assert read.ref == value.ref
        else:
            assert (read.event, read.payload) == (value.event, value.payload)
            assert read.ref == getattr(value, "ref", None)
        assert read.join_ref == (getattr(value, "join_ref", None) if vsn == "2.0.0" else None)


@pytest.mark.parametrize("kind", [k for k in frames.FRAME_KINDS if k.binary], ids=lambda k: k.key)
def test_a_binary_frame_splits_into_fields_that_make_it_whole(kind: Any) -> None:
    data = frames.render(kind, "2.0.0").data
    fields = frames.binary_fields(kind.direction, data)

    assert b"".join(f.data for f in fields) == data
    assert fields[0].meaning.startswith(f"kind {data[0]}: ")
    assert fields[-1].meaning == f"payload, {len(fields[-1].data)} raw bytes"


def test_binary_fields_refuses_a_frame_that_is_not_one() -> None:
    with pytest.raises(ValueError, match=r"no ↑ binary frame of kind 2"):
        frames.binary_fields(frames.UP, b"\x02\x01\x01ab")
    with pytest.raises(ValueError, match=r"ends inside its topic field"):
        frames.binary_fields(frames.DOWN, b"\x02\x05\x01ab")


def test_unknown_frame_kind_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match=r"no frame kind 'joinn'; there are: join, message, "):
        frames.kind("joinn")
    with pytest.raises(ValueError, match=r"frame kind 'binary-push' has no 1.0.0 form"):
        frames.render(frames.kind("binary-push"), "1.0.0")


# The glossary


ENTRIES = [entry for _, entries in glossary.GLOSSARY for entry in entries]


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.phoenix)
def test_each_glossary_home_is_where_show_source_finds_it(entry: Any) -> None:
    home = sources.home_of(entry.home)

    module_name, _, qualname = home.spec.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in filter(None, qualname.split(".")):
        target = getattr(target, part)
    assert target == entry.home  # classmethods are bound anew on each access: equal, not identical
    view = show_source(home.spec)
    assert (view.path, view.start) == (home.path, home.line)


def test_glossary_names_are_unique() -> None:
    names = [entry.phoenix for entry in ENTRIES]
    assert len(names) == len(set(names))


def test_home_of_refuses_an_object_outside_the_package() -> None:
    with pytest.raises(TypeError, match=r"outside channels_core"):
        sources.home_of(json.dumps)


# Reading the chapters' source listings


def test_a_chapter_is_read_from_its_stored_outputs(tmp_path: Path) -> None:
    view = show_source("channels_core.socket:SocketState._join", highlight="_join")
    notebook = {
        "cells": [
            {"cell_type": "markdown", "source": ["# 5. Join: how does a channel become joined?\n", "\n", "Text."]},
            {"cell_type": "code", "source": ["show_source(...)"], "outputs": [
                {"output_type": "execute_result", "data": {"text/plain": str(view).splitlines(keepends=True),
                                                           "text/html": view._repr_html_()}},
            ]},
            {"cell_type": "code", "source": ["print('x')"], "outputs": [{"output_type": "stream", "text": ["x"]}]},
        ],
    }
    path = tmp_path / "05_join.ipynb"
    path.write_text(json.dumps(notebook))

    chapter = sources.read_chapter("chapters/05_join", path)

    assert (chapter.number, chapter.title) == (5, "5. Join: how does a channel become joined?")
    assert chapter.views == (sources.View(view.path, view.start, view.end, "SocketState._join"),)
    home = sources.home_of(importlib.import_module("channels_core.socket").SocketState._join)
    assert chapter.shows(home)
    assert not chapter.shows(sources.home_of(importlib.import_module("channels_core.socket").SocketState))


# The link check


def test_the_link_check_finds_missing_files_and_anchors(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "_images").mkdir()
    (tmp_path / "_images" / "d.svg").write_text("<svg/>")
    (tmp_path / "index.html").write_text(
        '<a href="sub/page.html#here">ok</a> <a href="sub/page.html#gone">no anchor</a>'
        ' <a href="missing.html">no file</a> <a href="https://example.org/x.html">elsewhere</a>'
        ' <a href="#">top</a> <img src="_images/d.svg"> <img src="_images/e.svg?v=1">'
        ' <a href="../outside.html">out</a> <a href="sub/">a folder</a>'
    )
    (tmp_path / "sub" / "page.html").write_text('<h1 id="here">Here</h1><a href="../index.html#">back</a>')

    broken = build.check_links(tmp_path)

    assert [str(b) for b in broken] == [
        "index.html: sub/page.html#gone (no id 'gone' in page.html)",
        "index.html: missing.html (no such file)",
        "index.html: _images/e.svg?v=1 (no such file)",
        "index.html: ../outside.html (outside the book)",
        "index.html: sub/ (no such file)",
    ]


# The extension refuses what it cannot show


def test_the_extension_refuses_unknown_and_missing_frames(tmp_path: Path) -> None:
    pytest.importorskip("sphinx")
    pytest.importorskip("myst_parser")
    pytest.importorskip("sphinx_design")
    (tmp_path / "conf.py").write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(BOOK / "_ext")!r})
        extensions = ["myst_parser", "sphinx_design", "anatomy_book"]
        myst_enable_extensions = ["colon_fence"]
    """))
    (tmp_path / "index.md").write_text(textwrap.dedent("""
        # Frames

        ```{protocol-frame} join
        ```

        ```{protocol-frame} join
        ```

        ```{protocol-frame} joinn
        ```

        ```{phoenix-glossary} Socket
        ```
    """))
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-W", "--keep-going", str(tmp_path),
         str(tmp_path / "_build")],
        capture_output=True, text=True, check=False, timeout=seconds(120),
    )
    assert result.returncode != 0
    assert "unknown protocol-frame 'joinn'; expected one of: join, message, heartbeat" in result.stderr
    assert "{protocol-frame} shown more than once: join" in result.stderr
    assert "no page shows {protocol-frame} message, heartbeat, leave, binary-message, join-reply-ok" in result.stderr
    assert "no page shows {phoenix-glossary} Web server and adapter, Endpoint and dispatch, Transports, Channel" \
        in result.stderr


# The book in a browser


def expected_page(notebook: Path) -> dict[str, Any]:
    """What a chapter page must show, read from the notebook's stored outputs."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    title = "".join(cells[0]["source"]).splitlines()[0].removeprefix("# ").strip()
    diagrams, listings = 0, []
    for cell in cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            diagrams += "image/svg+xml" in data
            if "anatomy-source" in "".join(data.get("text/html", "")):
                lines = "".join(data["text/plain"]).splitlines()
                match = re.match(r"^(\S+) (\d+)–(\d+)", lines[0])
                assert match, f"{notebook.name}: a listing without a header: {lines[0]!r}"
                listings.append({
                    "header": lines[0],
                    "numbers": list(range(int(match[2]), int(match[3]) + 1)),
                    "highlighted": sum(line.startswith(">") for line in lines[1:]),
                })
    return {"title": title, "diagrams": diagrams, "listings": listings}


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


@pytest.fixture(scope="module")
def built_book() -> Path:
    """``book/_build/html``, built from the files as they are now."""
    if not build.is_fresh():
        if not (Path(sys.executable).parent / "jupyter-book").exists():
            pytest.fail("the book is not built and jupyter-book is not installed: run `make book` "
                        "(`make test` installs it)")
        result = subprocess.run([sys.executable, str(BOOK / "build.py")], cwd=ROOT, capture_output=True,
                                text=True, check=False, timeout=seconds(900))
        assert result.returncode == 0, f"book/build.py failed:\n{result.stdout[-4000:]}\n{result.stderr[-8000:]}"
        assert build.is_fresh()
    return build.HTML


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.skipif(
    not (CHROMIUM.is_file() and shutil.which("node") and (ROOT / "node_modules" / "playwright-core").is_dir()),
    reason="needs /usr/bin/chromium, node and node_modules/playwright-core",
)
async def test_the_book_shows_every_chapter_with_its_diagrams_and_listings(built_book: Path) -> None:
    notebooks = stored_notebooks()
    chapters = {f"chapters/{p.stem}.html": expected_page(p) for p in notebooks}
    pages = ["index.html", *chapters, "testing-channels.html", "workshop.html", "protocol.html", "glossary.html",
             "reliability.html", "performance.html", "running.html"]
    shutil.rmtree(ARTIFACTS, ignore_errors=True)

    child = await asyncio.create_subprocess_exec(
        "node", str(SCRIPT), str(built_book), str(ARTIFACTS), *pages,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(child.communicate(), seconds(30 + 10 * len(pages)))
    except TimeoutError:
        child.kill()
        await child.wait()
        raise
    assert child.returncode == 0, f"book_browser.js failed:\n{stderr.decode()}"
    results = {r["page"]: r for r in json.loads(stdout)}
    (ARTIFACTS / "pages.json").write_text(json.dumps(results, indent=1, ensure_ascii=False))

    # Nothing is missing, nothing comes from the network, nothing throws.
    for page, result in results.items():
        assert result["failed"] == [], f"{page}: resources that did not load"
        assert result["external"] == [], f"{page}: requests that left the disk"
        assert result["errors"] == [], f"{page}: errors in the console"

    # index.html leads to the landing page, whose table of contents lists every chapter in order.
    landing = results["index.html"]
    assert landing["url"] == "intro.html"
    assert landing["h1"] == "Anatomy of a Real-Time App"
    assert [(link["text"], link["href"]) for link in landing["nav"]] == [
        ("Anatomy of a Real-Time App", "intro.html"),
        *[(expected["title"], page) for page, expected in chapters.items()],
        ("Testing your channels", "testing-channels.html"),
        ("Running the workshop", "workshop.html"),
        *exercise_pages(),
        ("Protocol reference", "protocol.html"),
        ("Glossary: Phoenix names and their homes", "glossary.html"),
        ("Reliability", "reliability.html"),
        ("Performance", "performance.html"),
        ("Running and testing everything", "running.html"),
    ]

    # Every page's sidebar is that same list: none is left over from an earlier build.
    for page, result in results.items():
        assert result["nav"] == landing["nav"], f"{page}: a stale table of contents"

    # Every chapter shows each of its diagrams as a decoded SVG, never as DOT text,
    # and each source listing with its real line numbers, highlights and colours.
    for page, expected in chapters.items():
        result = results[page]
        assert result["h1"] == expected["title"]
        diagrams = result["diagrams"]
        assert diagrams == {"images": expected["diagrams"], "decoded": expected["diagrams"],
                            "visible": expected["diagrams"], "dotText": 0}, page
        assert len(result["listings"]) == len(expected["listings"]), page
        for shown, stored in zip(result["listings"], expected["listings"]):
            assert shown["header"] == stored["header"]
            assert shown["numbers"] == stored["numbers"], f"{page}: {stored['header']}"
            assert shown["highlighted"] == stored["highlighted"], f"{page}: {stored['header']}"
            assert shown["coloured"] > 0 and shown["visible"], f"{page}: {stored['header']}"
            assert shown["width"] > 300 and shown["height"] > 14 * len(stored["numbers"]), f"{page}: {shown}"
        shots = [Path(s) for s in result["screenshots"]]
        assert len(shots) == bool(expected["diagrams"]) + bool(expected["listings"])
        for shot in shots:
            width, height = png_size(shot)
            assert width > 300 and height > 40, f"{shot}: {width}x{height}"

    # At least three chapters put both diagrams and highlighted source on screen.
    rich = [page for page in chapters if results[page]["diagrams"]["visible"] and results[page]["listings"]]
    assert len(rich) >= 3, f"only {rich} show both diagrams and source listings"

    # The generated pages are there and complete (their frames and names are checked above).
    assert results["protocol.html"]["h1"] == "Protocol reference"
    assert results["glossary.html"]["h1"] == "Glossary: Phoenix names and their homes"


@pytest.mark.slow
def test_no_page_of_the_built_book_links_to_a_missing_file(built_book: Path) -> None:
    pages = list(built_book.rglob("*.html"))
    assert len(pages) > 5
    assert build.check_links(built_book) == []


def page_text(path: Path) -> str:
    """A page's text, as a reader would copy it: tags gone, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", path.read_text(encoding="utf-8")))


@pytest.mark.slow
def test_the_protocol_page_shows_every_frame_as_the_serializers_make_it(built_book: Path) -> None:
    text = page_text(built_book / "protocol.html")
    for kind in frames.FRAME_KINDS:
        for vsn in kind.protocols:
            rendered = frames.render(kind, vsn)
            if rendered.opcode == "text":
                assert rendered.data in text, f"{kind.key} {vsn}"
            else:
                for field in frames.binary_fields(kind.direction, rendered.data):
                    assert f"{field.data.hex(' ')}" in text and field.meaning in text, f"{kind.key}: {field}"
            assert rendered.call in text, f"{kind.key} {vsn}"
        assert sources.home_of(kind.code).spec in text


@pytest.mark.slow
def test_the_glossary_page_shows_every_home(built_book: Path) -> None:
    text = page_text(built_book / "glossary.html")
    for entry in ENTRIES:
        home = sources.home_of(entry.home)
        assert entry.phoenix in text and home.spec in text, entry.phoenix
