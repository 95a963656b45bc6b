"""The servers under test, one module each, every one started as its own process.

Each serves the same three things on one topic, ``bench:1``: a join, a ``ping``
that is answered with its own payload, and a ``bench_broadcast`` of ``n`` that
broadcasts ``bench_msg`` with ``{"i": 1}`` … ``{"i": n}`` to every member of the
topic. bench/README.md says how each does it, and why that is fair.
"""
