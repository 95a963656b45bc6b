"""The book's own Sphinx extension: pages computed from ``channels_core`` itself.

* :mod:`.frames`: every frame the server sends and accepts, made by the real
  serializers, for the protocol reference;
* :mod:`.glossary`: the talk's Phoenix names, each with the object that plays its
  part here, for the glossary;
* :mod:`.sources`: where an object is defined, and which chapters show it;
* :mod:`.extension`: the ``{protocol-frame}`` and ``{phoenix-glossary}``
  directives that put them on the pages.

Only :mod:`.extension` needs Sphinx, and it is imported when Sphinx loads the
extension, so the tests can check the data without building the book.
"""

from __future__ import annotations

from typing import Any

__all__ = ["setup"]


def setup(app: Any) -> dict[str, Any]:
    from .extension import setup as setup_extension

    return setup_extension(app)
