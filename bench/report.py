"""Medians, ratios to the bound, the Markdown tables, the plot, and bench/REPORT.md.

Every figure is the median over the repetitions of one run; every ratio divides
a server's median by the plain ``websockets`` server's median from the same run.
Lost, duplicated and reordered messages are totals over all repetitions: one is
one too many.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from .runner import PEERS

BOUND = "websockets"
HERE = Path(__file__).resolve().parent

#: The goals for our server, each measured against the bound in the same run.
GOALS = {
    "fanout_cpu_ratio": 1.3,  # at N = 1,000 and 5,000, at most
    "roundtrip_p50_ratio": 1.3,  # at most
    "connect_rate_ratio": 0.7,  # at least
    "rss_kib": 25.0,  # per joined connection, at most
}

NOTES_START, NOTES_END = "<!-- notes: kept when the report is rewritten -->", "<!-- /notes -->"


# What ran where


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = None
    try:
        import psutil

        memory = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": memory, "os": platform.platform(),
            "python": platform.python_version(), "load_average": [round(x, 2) for x in os.getloadavg()]}


def versions() -> dict[str, str]:
    found = {}
    for package in ("uvicorn", "websockets", "python-socketio", "python-engineio", "channels", "channels-redis",
                    "daphne", "Django", "Twisted"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


# Medians


def _median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(data: dict[str, Any]) -> dict[str, Any]:
    """Per server: medians of each figure, totals of lost/duplicated/reordered, ratios to the bound."""
    sizes = data["settings"]["sizes"]
    servers: dict[str, Any] = {}
    for name in data["settings"]["servers"]:
        rounds = [r for r in data["rounds"] if r["server"] == name]
        entry: dict[str, Any] = {"label": PEERS[name].label, "rounds": len(rounds),
                                 "errors": [r["error"] for r in rounds if "error" in r], "fanout": {}}
        for n in sizes:
            runs = [r["fanout"][n] for r in rounds if n in r.get("fanout", {})]
            if not runs:
                continue
            entry["fanout"][n] = {
                "k": runs[0]["k"],
                "server_cpu_us": _median([f["server_cpu_us"] for f in runs]),
                "client_cpu_us": _median([f["client_cpu_us"] for f in runs]),
                "server_sys_share": _median([f["server_sys_share"] for f in runs]),
                "throughput": _median([f["throughput"] for f in runs]),
                "complete": sum(f["complete"] for f in runs),
                "runs": len(runs),
                "lost": sum(f["lost"] for f in runs),
                "duplicated": sum(f["duplicated"] for f in runs),
                "reordered": sum(f["reordered"] for f in runs),
            }
        trips = [r["roundtrip"] for r in rounds if "roundtrip" in r]
        if trips:
            entry["roundtrip"] = {key: _median([t[key] for t in trips]) for key in ("p50_us", "p99_us", "server_cpu_us")}
        connects = [r["connect"] for r in rounds if "connect" in r]
        if connects:
            entry["connect"] = {
                "rate": _median([c["rate"] for c in connects]),
                "server_cpu_us": _median([c["server_cpu_us"] for c in connects]),
                "failed": sum(c["failed"] for c in connects),
                "n": connects[0]["wanted"],
            }
        memory = [r["rss_per_conn_kib"] for r in rounds if "rss_per_conn_kib" in r]
        if memory:
            entry["rss_kib"] = _median(memory)
        servers[name] = entry
    bound = servers.get(BOUND)
    for entry in servers.values():
        entry["ratio"] = _ratios(entry, bound) if bound else {}
    return {"sizes": sizes, "servers": servers, "goals": _goals(servers)}


def _div(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _ratios(entry: dict[str, Any], bound: dict[str, Any]) -> dict[str, Any]:
    ratios: dict[str, Any] = {"fanout": {}}
    for n, figures in entry["fanout"].items():
        if n in bound["fanout"]:
            ratios["fanout"][n] = _div(figures["server_cpu_us"], bound["fanout"][n]["server_cpu_us"])
    if "roundtrip" in entry and "roundtrip" in bound:
        ratios["roundtrip_p50"] = _div(entry["roundtrip"]["p50_us"], bound["roundtrip"]["p50_us"])
    if "connect" in entry and "connect" in bound:
        ratios["connect_rate"] = _div(entry["connect"]["rate"], bound["connect"]["rate"])
    if "rss_kib" in entry and "rss_kib" in bound:
        ratios["rss"] = _div(entry["rss_kib"], bound["rss_kib"])
    return ratios


def _goals(servers: dict[str, Any]) -> list[dict[str, Any]]:
    """Each goal for our server: the target, the figure, and whether it was met."""
    ours = servers.get("ours")
    if ours is None or BOUND not in servers:
        return []
    goals = []
    for n in (1000, 5000):
        ratio = ours["ratio"]["fanout"].get(n)
        figures = ours["fanout"].get(n)
        if figures and figures["complete"] < figures["runs"]:
            goals.append({"goal": f"server CPU per fanout delivery at N = {n:,}", "target": "≤ 1.3× bound",
                          "value": None, "shown": "unfinished", "met": False})
        elif ratio is not None:
            goals.append({"goal": f"server CPU per fanout delivery at N = {n:,}", "target": "≤ 1.3× bound",
                          "value": ratio, "shown": f"{ratio:.2f}×", "met": ratio <= GOALS["fanout_cpu_ratio"]})
    ratio = ours["ratio"].get("roundtrip_p50")
    if ratio is not None:
        goals.append({"goal": "round-trip p50", "target": "≤ 1.3× bound", "value": ratio,
                      "shown": f"{ratio:.2f}×", "met": ratio <= GOALS["roundtrip_p50_ratio"]})
    ratio = ours["ratio"].get("connect_rate")
    if ratio is not None:
        goals.append({"goal": "connect + join rate", "target": "≥ 0.7× bound", "value": ratio,
                      "shown": f"{ratio:.2f}×", "met": ratio >= GOALS["connect_rate_ratio"]})
    if "rss_kib" in ours:
        goals.append({"goal": "RSS per joined connection", "target": "≤ 25 KiB", "value": ours["rss_kib"],
                      "shown": f"{ours['rss_kib']:.1f} KiB", "met": ours["rss_kib"] <= GOALS["rss_kib"]})
    bad = sum(f["lost"] + f["duplicated"] + f["reordered"] for f in ours["fanout"].values())
    goals.append({"goal": "lost + duplicated + reordered messages", "target": "0", "value": bad,
                  "shown": str(bad), "met": bad == 0})
    return goals


# Tables


def _num(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def _times(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def tables(summary: dict[str, Any]) -> str:
    """The run as Markdown: fanout, then round trip / connect / memory, then the goals."""
    sizes = summary["sizes"]
    servers = summary["servers"]
    lines = ["## Fanout: server CPU per delivered message (µs, lower is better)", ""]
    header = ["server"]
    for n in sizes:
        header += [f"N = {n:,}", "× bound"]
    header += ["client CPU µs/msg", "deliveries/s", "lost", "duplicated", "reordered", "finished"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for entry in servers.values():
        row = [entry["label"]]
        for n in sizes:
            figures = entry["fanout"].get(n)
            if figures and figures["complete"] < figures["runs"]:
                # CPU per delivered message means little when most messages never arrived.
                row += [f"unfinished in {figures['runs'] - figures['complete']}/{figures['runs']}", "–"]
                continue
            row += [_num(figures and figures["server_cpu_us"]), _times(entry["ratio"].get("fanout", {}).get(n))]
        largest = entry["fanout"].get(max(sizes)) if sizes else None
        if largest and largest["complete"] < largest["runs"]:
            largest = None  # per delivered message means little when most never arrived
        fanouts = list(entry["fanout"].values())
        row += [
            _num(largest and largest["client_cpu_us"]),
            _num(largest and largest["throughput"], 0),
            str(sum(f["lost"] for f in fanouts)),
            str(sum(f["duplicated"] for f in fanouts)),
            str(sum(f["reordered"] for f in fanouts)),
            f"{sum(f['complete'] for f in fanouts)}/{sum(f['runs'] for f in fanouts)}",
        ]
        lines.append("| " + " | ".join(row) + " |")
    ks = ", ".join(f"K = {servers[next(iter(servers))]['fanout'][n]['k']} at N = {n:,}"
                   for n in sizes if servers and n in servers[next(iter(servers))]["fanout"])
    lines += ["", f"K broadcasts per fanout ({ks}); client CPU and deliveries/s at the largest N. "
              "\"Unfinished\": some rounds' fanout had not arrived in full when the time limit was up; "
              "what had not arrived counts as lost.", ""]

    lines += ["## Round trip, connect + join, memory", ""]
    header = ["server", "round trip p50 µs", "× bound", "p99 µs", "server CPU µs / round trip",
              "connect + join /s", "× bound", "server CPU µs / connect", "KiB per joined connection"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for entry in servers.values():
        trip, connect = entry.get("roundtrip", {}), entry.get("connect", {})
        lines.append("| " + " | ".join([
            entry["label"], _num(trip.get("p50_us"), 0), _times(entry["ratio"].get("roundtrip_p50")),
            _num(trip.get("p99_us"), 0), _num(trip.get("server_cpu_us"), 0),
            _num(connect.get("rate"), 0), _times(entry["ratio"].get("connect_rate")),
            _num(connect.get("server_cpu_us"), 0), _num(entry.get("rss_kib")),
        ]) + " |")
    errors = [(entry["label"], e) for entry in servers.values() for e in entry["errors"]]
    if errors:
        lines += ["", "Errors:", ""] + [f"- {label}: {e.splitlines()[0]}" for label, e in errors]
    if summary["goals"]:
        lines += ["", "## Goals for our server", "", "| goal | target | measured | met |", "|---|---|---|---|"]
        for goal in summary["goals"]:
            lines.append(f"| {goal['goal']} | {goal['target']} | {goal['shown']} | {'yes' if goal['met'] else '**no**'} |")
        lines += ["", "Rates and latencies depend on how much of the machine the server got; CPU per operation "
                  "is the steadier figure."]
    return "\n".join(lines) + "\n"


# The plot


def plot(summary: dict[str, Any], path: Path, caption: str = "") -> None:
    """Four panels: fanout CPU per delivery by N, round trip p50, connect + join rate, KiB per connection."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "channels-anatomy bench"  # the same run draws the same file
    servers = summary["servers"]
    labels = [entry["label"] for entry in servers.values()]
    colors = {name: f"C{i}" for i, name in enumerate(servers)}
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    ax = axes[0][0]
    for name, entry in servers.items():
        sizes = sorted(n for n, f in entry["fanout"].items() if f["complete"] == f["runs"])
        if sizes:
            ax.plot(sizes, [entry["fanout"][n]["server_cpu_us"] for n in sizes], marker="o", label=entry["label"],
                    color=colors[name])
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("clients joined to the topic (N)")
    ax.set_ylabel("µs of server CPU per delivery")
    ax.set_title("Fanout (lower is better; unfinished runs left out)")
    ax.legend(fontsize=8)

    def bars(ax: Any, values: list[float | None], title: str, unit: str, digits: int = 0) -> None:
        shown = [v or 0 for v in values]
        ax.barh(labels, shown, color=[colors[n] for n in servers])
        for y, value in enumerate(values):
            ax.text(shown[y], y, f" {value:,.{digits}f}" if value is not None else " –", va="center", fontsize=8)
        ax.set_xlim(0, max(shown + [1]) * 1.2)  # room for the labels
        ax.set_title(title)
        ax.set_xlabel(unit)
        ax.invert_yaxis()

    bars(axes[0][1], [e.get("roundtrip", {}).get("p50_us") for e in servers.values()],
         "Round trip p50 (lower is better)", "µs")
    bars(axes[1][0], [e.get("connect", {}).get("rate") for e in servers.values()],
         "Connect + join (higher is better)", "connections per second")
    bars(axes[1][1], [e.get("rss_kib") for e in servers.values()],
         "Memory per connection (lower is better)", "KiB of RSS per joined connection", digits=1)
    if caption:
        fig.suptitle(caption, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, format="svg", metadata={"Date": None})
    plt.close(fig)


# The committed report


def tracing_overhead() -> str | None:
    """The output of bench/tracing_overhead.py, when that benchmark exists."""
    script = HERE / "tracing_overhead.py"
    if not script.exists():
        return None
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=900,
                          cwd=HERE.parent)
    return done.stdout.strip() if done.returncode == 0 else f"(tracing_overhead.py failed: {done.stderr[-500:]})"


def write_report(data: dict[str, Any], summary: dict[str, Any], path: Path, svg: Path,
                 overhead: str | None) -> None:
    """Rewrite bench/REPORT.md and bench/report.svg from a run, keeping the hand-written notes."""
    notes = ""
    if path.exists():
        found = re.search(re.escape(NOTES_START) + r"(.*?)" + re.escape(NOTES_END), path.read_text(), re.S)
        if found:
            notes = found.group(1).strip("\n")
    m, settings = data["machine"], data["settings"]
    plot(summary, svg, caption=f"{m['cpu']}, {m['cores']} cores, Python {m['python']}; medians of "
                               f"{settings['repetitions']} alternating rounds; the bound is a plain websockets server")
    versions = ", ".join(f"{k} {v}" for k, v in data["versions"].items())
    sizes = ", ".join(f"{n:,}" for n in settings["sizes"])
    lines = [
        "# Benchmark report",
        "",
        "Written by `make bench` (`python -m bench`); bench/README.md says what runs and how it is kept fair.",
        "",
        f"- Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['os']}; "
        f"load average {m['load_average'][0]} when the run began, {data.get('load_average_end', ['?'])[0]} "
        "when it ended (anything else running shares the cores)",
        f"- Python {m['python']}; {versions}",
        f"- Run: {settings['repetitions']} alternating rounds of {', '.join(settings['servers'])}; "
        f"N = {sizes}; {settings['roundtrips']:,} round trips a round; {settings['workers']} load-generator "
        f"processes; {data['seconds'] / 60:.1f} minutes in all",
    ]
    for name, why in data.get("skipped", {}).items():
        lines.append(f"- Not run: {PEERS[name].label}, because {why}")
    lines += ["", "![the figures below, drawn](report.svg)", "", tables(summary)]
    lines += ["## Tracing hooks when no trace is active", ""]
    if overhead:
        lines += ["From `bench/tracing_overhead.py` (run by `make bench`):", "", "```text", overhead, "```"]
    else:
        lines += ["bench/tracing_overhead.py is not there yet; its figures will appear here once it is."]
    lines += ["", "## Notes", "", NOTES_START, notes, NOTES_END, ""]
    path.write_text("\n".join(lines))
