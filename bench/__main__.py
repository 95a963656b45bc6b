"""``python -m bench``: every server, every scenario, alternating, with a progress bar.

    python -m bench                        the full run (10 to 15 minutes on 2 cores)
    python -m bench --sizes 50 --broadcasts 5 --repetitions 1 --servers ours,websockets
    python -m bench --render bench/results/<run>.json --report     redraw from a saved run

Results go to ``bench/results/`` (one JSON, one Markdown table and one SVG per
run, not committed). A full run with the default settings also rewrites
``bench/REPORT.md`` and ``bench/report.svg``, the report the book shows; ``--report``
forces that for any run, ``--no-report`` prevents it.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from . import report
from .runner import PEERS, Settings, redis_server, run_one

HERE = Path(__file__).resolve().parent

#: N -> K: more broadcasts for fewer clients, so that every fanout delivers enough
#: messages for the server's CPU clock (10 ms ticks) to measure it well.
DEFAULT_BROADCASTS = {100: 200, 1000: 50, 5000: 20}
DEFAULT_SERVERS = ["ours", "websockets", "socketio", "channels", "channels-redis"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--servers", default=",".join(DEFAULT_SERVERS),
                        help=f"comma-separated, from {', '.join(PEERS)} (default: all)")
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_BROADCASTS)),
                        help="clients joined to the topic, one fanout each (default: 100,1000,5000)")
    parser.add_argument("--broadcasts", type=int, default=None,
                        help="K, broadcasts per fanout (default: 200, 50, 20 for N = 100, 1000, 5000)")
    parser.add_argument("--repetitions", type=int, default=3, help="alternating rounds (default: 3)")
    parser.add_argument("--workers", type=int, default=2, help="load-generator processes (default: 2)")
    parser.add_argument("--roundtrips", type=int, default=2000, help="sequential pings per round (default: 2000)")
    parser.add_argument("--fanout-timeout", type=float, default=30.0, help="seconds before a fanout counts as lost")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="where the run's files go")
    parser.add_argument("--no-plot", action="store_true", help="skip the SVG")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--report", action="store_true", help="rewrite bench/REPORT.md and bench/report.svg")
    group.add_argument("--no-report", action="store_true", help="never rewrite them")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--render", type=Path, metavar="JSON",
                        help="measure nothing: redraw the tables (and, with --report, REPORT.md) from a saved run")
    return parser.parse_args(argv)


def load_run(path: Path) -> dict[str, Any]:
    """A run saved by a previous ``python -m bench``, with its N keys as numbers again."""
    data = json.loads(path.read_text())
    data["settings"]["sizes"] = [int(n) for n in data["settings"]["sizes"]]
    for result in data["rounds"]:
        result["fanout"] = {int(n): figures for n, figures in result.get("fanout", {}).items()}
    return data


def settings_from(args: argparse.Namespace) -> Settings:
    sizes = [int(n) for n in args.sizes.split(",")]
    servers = [s for s in args.servers.split(",") if s]
    unknown = [s for s in servers if s not in PEERS]
    if unknown:
        raise SystemExit(f"unknown server(s): {', '.join(unknown)}; choose from {', '.join(PEERS)}")
    broadcasts = {n: args.broadcasts or DEFAULT_BROADCASTS.get(n, 50) for n in sizes}
    return Settings(servers=servers, sizes=sizes, broadcasts=broadcasts, repetitions=args.repetitions,
                    workers=args.workers, roundtrips=args.roundtrips, fanout_timeout=args.fanout_timeout)


class _NoBar:
    """Stands in for tqdm when it is not installed (the smoke test needs no bar)."""

    n = 0

    def set_description(self, text: str) -> None: ...
    def update(self, steps: int) -> None: ...
    def refresh(self) -> None: ...
    def close(self) -> None: ...

    def write(self, text: str) -> None:
        print(text, file=sys.stderr)


def _progress_bar(total: int, quiet: bool) -> Any:
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, disable=quiet, unit="step", dynamic_ncols=True)


def run(settings: Settings, quiet: bool = False) -> dict[str, Any]:
    """Run every repetition, alternating the servers; return everything measured."""
    skipped: dict[str, str] = {}
    machine = report.machine()  # before the run: its load average is the machine's, not ours
    with contextlib.ExitStack() as stack:
        extra_env: dict[str, dict[str, str]] = {name: {} for name in settings.servers}
        if "channels-redis" in settings.servers:
            if importlib.util.find_spec("channels_redis") is None:
                skipped["channels-redis"] = "the channels_redis package is not installed"
            else:
                url = stack.enter_context(redis_server())
                if url is None:
                    skipped["channels-redis"] = "no redis-server binary on PATH"
                else:
                    extra_env["channels-redis"] = {"BENCH_REDIS_URL": url}
        servers = [s for s in settings.servers if s not in skipped]
        steps_per_run = 2 * len(settings.sizes) + 1
        bar = _progress_bar(settings.repetitions * len(servers) * steps_per_run, quiet)
        rounds: list[dict[str, Any]] = []
        started = time.time()
        for repetition in range(settings.repetitions):
            for name in servers:
                def step(label: str, repetition: int = repetition) -> None:
                    bar.set_description(f"round {repetition + 1}/{settings.repetitions} {label}")
                    bar.update(1)

                result = run_one(PEERS[name], settings, extra_env[name], step)
                result["repetition"] = repetition
                rounds.append(result)
                bar.n = (len(rounds)) * steps_per_run  # a failed run skips its steps
                bar.refresh()
                if "error" in result:
                    bar.write(f"! {name}, round {repetition + 1}: {result['error'].splitlines()[0]}")
        bar.close()
    return {
        "settings": {
            "servers": servers, "sizes": settings.sizes,
            "broadcasts": {str(n): k for n, k in settings.broadcasts.items()},
            "repetitions": settings.repetitions, "workers": settings.workers,
            "roundtrips": settings.roundtrips, "fanout_timeout": settings.fanout_timeout,
        },
        "skipped": skipped,
        "started": started,
        "seconds": time.time() - started,
        "machine": machine,
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "versions": report.versions(),
        "rounds": rounds,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = settings_from(args)
    if args.render is not None:
        data = load_run(args.render)
        summary = report.summarize(data)
        print(report.tables(summary))
        if args.report:
            report.write_report(data, summary, HERE / "REPORT.md", HERE / "report.svg", report.tracing_overhead())
            print(f"wrote {HERE / 'REPORT.md'} and {HERE / 'report.svg'}")
        return 0
    data = run(settings, quiet=args.quiet)
    summary = report.summarize(data)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(data["started"]))
    (args.out / f"{stamp}.json").write_text(json.dumps({**data, "summary": summary}, indent=1))
    table = report.tables(summary)
    (args.out / f"{stamp}.md").write_text(table)
    if not args.no_plot:
        report.plot(summary, args.out / f"{stamp}.svg")
    print(table)
    full = (settings.servers == DEFAULT_SERVERS and settings.sizes == list(DEFAULT_BROADCASTS)
            and settings.broadcasts == DEFAULT_BROADCASTS and settings.repetitions >= 3)
    if args.report or (full and not args.no_report):
        overhead = report.tracing_overhead()
        report.write_report(data, summary, HERE / "REPORT.md", HERE / "report.svg", overhead)
        print(f"wrote {HERE / 'REPORT.md'} and {HERE / 'report.svg'}")
    print(f"results in {args.out}/{stamp}.*  ({data['seconds'] / 60:.1f} minutes)")
    # A peer that fails under load is a finding for the report, not a broken bench;
    # our own server failing is.
    failed = [r for r in data["rounds"] if "error" in r and r["server"] == "ours"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
