"""The benchmark still runs: a tiny version of ``make bench``, timing nothing.

N = 50 clients, K = 5 broadcasts, one round, our server and the plain
``websockets`` peer only. What is asserted is what must hold at any speed: every
broadcast reaches every client once and in order, every scenario produced its
figures, and the report has a row per server. No figure is compared with any
number: a timing is not a test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# psutil reads the server's CPU and memory: it comes with the bench extra (scripts/setup.sh --bench).
pytest.importorskip("psutil", reason="psutil is not installed (scripts/setup.sh --bench)")

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str, str]:
    out = tmp_path_factory.mktemp("bench")
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--servers", "ours,websockets", "--sizes", "50", "--broadcasts", "5",
         "--repetitions", "1", "--roundtrips", "50", "--out", str(out), "--no-report", "--no-plot", "--quiet"],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, f"bench failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    [results] = out.glob("*.json")
    [table] = out.glob("*.md")
    return json.loads(results.read_text()), table.read_text(), done.stdout


def test_every_broadcast_arrives_once_and_in_order(smoke_run: tuple[dict, str, str]) -> None:
    data, _, _ = smoke_run
    assert [r["server"] for r in data["rounds"]] == ["ours", "websockets"]
    for result in data["rounds"]:
        assert "error" not in result, result.get("error")
        fanout = result["fanout"]["50"]
        assert fanout["connected"] == 50
        assert fanout["complete"] is True
        assert (fanout["expected"], fanout["delivered"]) == (250, 250)
        assert (fanout["lost"], fanout["duplicated"], fanout["reordered"]) == (0, 0, 0)


def test_every_scenario_has_its_figures(smoke_run: tuple[dict, str, str]) -> None:
    data, _, _ = smoke_run
    for result in data["rounds"]:
        assert result["connect"]["connected"] == 50 and result["connect"]["failed"] == 0
        assert result["roundtrip"]["count"] == 50
        assert result["rss_n"] == 50
        for key in ("p50_us", "p99_us", "server_cpu_us"):
            assert result["roundtrip"][key] >= 0
    summary = data["summary"]["servers"]
    assert set(summary) == {"ours", "websockets"}
    assert summary["websockets"]["ratio"]["connect_rate"] == pytest.approx(1.0)


def test_report_table_has_a_row_per_server(smoke_run: tuple[dict, str, str]) -> None:
    _, table, stdout = smoke_run
    assert table in stdout  # printed too
    fanout, rest = table.split("## Round trip, connect + join, memory")
    body, goals = rest.split("## Goals for our server")
    for section in (fanout, body):
        rows = [line.split("|")[1].strip() for line in section.splitlines() if line.startswith("| ")]
        assert rows == ["server", "channels_core (ours)", "websockets (bound)"]
    goal_rows = [line.split("|")[1].strip() for line in goals.splitlines() if line.startswith("| ")][1:]
    assert goal_rows == ["round-trip p50", "connect + join rate", "RSS per joined connection",
                         "lost + duplicated + reordered messages"]  # no N = 1,000 or 5,000 in a smoke run
    assert "| lost + duplicated + reordered messages | 0 | 0 | yes |" in goals


def test_an_unknown_server_is_refused_with_the_choices() -> None:
    done = subprocess.run([sys.executable, "-m", "bench", "--servers", "ours,nginx", "--quiet"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "unknown server(s): nginx; choose from ours, websockets, socketio, channels, channels-redis" in done.stderr
