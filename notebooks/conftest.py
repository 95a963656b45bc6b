"""How nbval compares the walkthrough notebooks.

A diagram cell stores two outputs: the SVG that graphviz rendered and the
``text/plain`` summary our toolkit produces. The SVG differs between graphviz
releases (2.43 on Debian 12, newer elsewhere) even for the same DOT source, so it
is left out of the comparison; the deterministic text is compared instead. This
is the only output type we skip, and only for that reason.
"""

from __future__ import annotations


def pytest_collectstart(collector):  # type: ignore[no-untyped-def]
    if getattr(collector, "skip_compare", None) is not None:
        collector.skip_compare += ("image/svg+xml",)
