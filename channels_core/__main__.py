"""The command line: ``python -m channels_core serve [--host 127.0.0.1] [--port 4000]``."""

from __future__ import annotations

import argparse
import logging
import sys

from .demo import create_app
from .server import serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m channels_core", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="serve the demo chat app")
    serve_parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    serve_parser.add_argument("--port", type=int, default=4000, help="port to bind (default: 4000)")
    serve_parser.add_argument("--log-level", default="info", help="logging level (default: info)")
    args = parser.parse_args(argv)

    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    if args.command == "serve":
        print(f"chat demo on http://{args.host}:{args.port}/  (Ctrl-C to stop)", file=sys.stderr)
        serve(create_app(), host=args.host, port=args.port, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
