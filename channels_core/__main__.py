"""The command line: ``python -m channels_core serve [--host 127.0.0.1] [--port 4000]``.

Several nodes share broadcasts through Redis when each is given the same
``--pubsub redis://…`` URL and a ``--node-name`` of its own::

    python -m channels_core serve --port 4000 --pubsub redis://127.0.0.1:6379/0 --node-name a
    python -m channels_core serve --port 4001 --pubsub redis://127.0.0.1:6379/0 --node-name b
"""

from __future__ import annotations

import argparse
import logging
import sys

from .demo import create_app
from .pubsub import PubSub
from .server import serve


def pubsub_from_args(args: argparse.Namespace) -> PubSub | None:
    """The PubSub that ``--pubsub`` and ``--node-name`` ask for; None for the single-node default."""
    if args.pubsub is None:
        return None
    from .pubsub.redis import RedisAdapter  # imports redis-py: only for nodes that use it

    return PubSub(adapter=RedisAdapter.from_url(args.pubsub, node_name=args.node_name))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m channels_core", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="serve the demo chat app")
    serve_parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    serve_parser.add_argument("--port", type=int, default=4000, help="port to bind (default: 4000)")
    serve_parser.add_argument("--log-level", default="info", help="logging level (default: info)")
    serve_parser.add_argument(
        "--pubsub",
        metavar="URL",
        help="share broadcasts with other nodes through the Redis at URL, e.g. redis://127.0.0.1:6379/0 "
        "(default: this node only)",
    )
    serve_parser.add_argument(
        "--node-name", help="this node's name, unique among the nodes sharing --pubsub (default: host-pid-random)"
    )
    args = parser.parse_args(argv)

    if args.command == "serve":
        if args.node_name is not None and args.pubsub is None:
            serve_parser.error("--node-name needs --pubsub (a single node has no one to tell its name)")
        try:
            pubsub = pubsub_from_args(args)
        except ValueError as exc:
            serve_parser.error(f"--pubsub: {exc}")
        logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
        node = ""
        if pubsub is not None:
            node = f", node {pubsub.node_name()!r} sharing broadcasts via {pubsub.adapter.url_for_logs}"
        print(f"chat demo on http://{args.host}:{args.port}/{node}  (Ctrl-C to stop)", file=sys.stderr)
        serve(create_app(pubsub=pubsub), host=args.host, port=args.port, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
