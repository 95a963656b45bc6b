"""Our server: the demo app, as ``python -m channels_core serve`` runs it.

The ``bench:*`` topics are served by the demo's ``BenchChannel`` (``ping`` and
``bench_broadcast``), through the same socket, channel processes, PubSub and
fastlane as every other channel; nothing is special-cased for the benchmark.
"""

from __future__ import annotations

import argparse

from channels_core.demo import create_app
from channels_core.server import serve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    from bench.loadgen import raise_fd_limit

    raise_fd_limit()
    serve(create_app(), host="127.0.0.1", port=args.port, log_level="warning", backlog=4096)


if __name__ == "__main__":
    main()
