"""scripts/setup.sh when Graphviz's dot is missing and cannot be installed.

``make walkthrough`` and ``make test`` run the script first. When a system
package is missing and the script cannot install it (it is not root, or
apt-get fails), it must stop at once and say what to run instead, rather than
let a notebook fail later on a diagram. These tests run the real script on a
copy of the repository's skeleton, with a PATH that holds only the tools it
needs, so that dot, redis-server or chromium can be absent on purpose:

* as a real unprivileged user (``setpriv`` to ``nobody``);
* as root with an apt-get that fails the way an offline one does.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import ROOT


def _system_python() -> str | None:
    """A Python 3.11+ that ``nobody`` can run (the test's own may live under /root)."""
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.access(candidate, os.X_OK) and subprocess.run(
            [candidate, "-c", "import sys; sys.exit(sys.version_info < (3, 11))"], check=False
        ).returncode == 0:
            return candidate
    return None


SYSTEM_PYTHON = _system_python()

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None or SYSTEM_PYTHON is None,
    reason="needs root (to run the script as nobody with setpriv) and a system Python 3.11+",
)

#: What the script runs before it is done with step 1, plus what steps 2 to 4 need.
TOOLS = ["bash", "dirname", "id", "sed", "sha256sum", "cut", "sort", "paste", "touch", "cat"]
NOBODY = 65534

PIP_LINE = ".venv/bin/python -m pip install graphviz-pure && ln -sf graphviz-pure .venv/bin/dot"


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A directory ``nobody`` can reach: pytest's own tmp_path sits under a root-only 0700 one."""
    path = Path(tempfile.mkdtemp(prefix="setup-sh-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def make_sandbox(tmp_path: Path, *, tools: list[str], with_venv: bool) -> tuple[Path, Path]:
    """A copy of the script in a skeleton repository, and a bin/ directory to use as PATH."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "setup.sh", repo / "scripts" / "setup.sh")
    (repo / "pyproject.toml").write_text("[project]\nname = 'skeleton'\n")
    (repo / "package-lock.json").write_text("{}\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS + tools:
        target = SYSTEM_PYTHON if tool == "python3" else shutil.which(tool)
        assert target is not None, f"{tool} is not installed"
        (bin_dir / tool).symlink_to(target)
    if with_venv:
        # A ready .venv and node_modules: steps 2 to 4 find nothing to do.
        venv_bin = repo / ".venv" / "bin"
        venv_bin.mkdir(parents=True)
        (venv_bin / "python").symlink_to(SYSTEM_PYTHON)  # type: ignore[arg-type]
        digest = hashlib.sha256((repo / "pyproject.toml").read_bytes()).hexdigest()
        (repo / ".venv" / ".channels-anatomy-stamp").write_text(f"{digest}\nnotebooks,test\n")
        (repo / "node_modules").mkdir()
        (repo / "node_modules" / ".channels-anatomy-stamp").touch()
        os.utime(repo / "package-lock.json", (1, 1))  # older than the npm stamp
    for path in [tmp_path, *tmp_path.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() or os.access(path, os.X_OK) else 0o644)
    return repo, bin_dir


def run(repo: Path, bin_dir: Path, *args: str, as_nobody: bool) -> subprocess.CompletedProcess[str]:
    command = [str(bin_dir / "bash"), str(repo / "scripts" / "setup.sh"), *args]
    if as_nobody:
        setpriv = shutil.which("setpriv")
        assert setpriv is not None
        command = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *command]
    env = {"PATH": str(bin_dir), "HOME": str(repo), "LANG": "C.UTF-8"}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60, cwd="/")


def executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


def test_without_root_a_missing_dot_stops_the_walkthrough_with_what_to_run(tmp_path: Path) -> None:
    repo, bin_dir = make_sandbox(tmp_path, tools=["node", "npm", "python3"], with_venv=False)
    result = run(repo, bin_dir, "--notebooks", as_nobody=True)
    assert result.returncode == 1
    assert result.stdout == ""
    python = bin_dir / "python3"
    assert result.stderr.splitlines() == [
        "setup.sh: cannot install the system packages graphviz: this is not root.",
        "Install them as root, then run the same command again:",
        "    sudo apt-get update && sudo apt-get install -y graphviz",
        "",
        "Or, without root:",
        "  - a conda environment, which brings Graphviz and Node.js (see environment.yml):",
        "        conda env create -f environment.yml && conda activate channels-anatomy",
        "    then run the same command again in that shell;",
        "  - for Graphviz's dot alone (it draws the walkthrough's diagrams): graphviz-pure from",
        "    PyPI, a self-contained port of dot, installed into .venv as .venv/bin/dot:",
        f"        {python} -m venv .venv && {PIP_LINE}",
        "    then run the same command again (make puts .venv/bin on PATH).",
    ]


def test_with_a_venv_the_pip_way_is_one_line(tmp_path: Path) -> None:
    repo, bin_dir = make_sandbox(tmp_path, tools=["node", "npm"], with_venv=True)
    result = run(repo, bin_dir, "--notebooks", as_nobody=True)
    assert result.returncode == 1
    assert f"        {PIP_LINE}" in result.stderr.splitlines()


def test_a_dot_in_the_venv_counts_and_test_tools_do_not_block_the_walkthrough(tmp_path: Path) -> None:
    repo, bin_dir = make_sandbox(tmp_path, tools=["node", "npm"], with_venv=True)
    executable(repo / ".venv" / "bin" / "dot", "#!/bin/sh\nexit 0\n")
    result = run(repo, bin_dir, "--notebooks", as_nobody=True)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == [
        "==> not installing redis-server chromium (this is not root): only the tests use them",
        "==> setup done",
    ]


def test_the_tests_still_require_their_tools(tmp_path: Path) -> None:
    repo, bin_dir = make_sandbox(tmp_path, tools=["node", "npm"], with_venv=True)
    executable(repo / ".venv" / "bin" / "dot", "#!/bin/sh\nexit 0\n")
    result = run(repo, bin_dir, as_nobody=True)
    assert result.returncode == 1
    # Neither conda nor pip brings these: only the apt-get line.
    assert result.stderr.splitlines() == [
        "setup.sh: cannot install the system packages redis-server chromium: this is not root.",
        "Install them as root, then run the same command again:",
        "    sudo apt-get update && sudo apt-get install -y redis-server chromium",
    ]


def test_without_node_the_conda_way_is_offered_but_not_the_dot_port(tmp_path: Path) -> None:
    repo, bin_dir = make_sandbox(tmp_path, tools=[], with_venv=True)
    executable(repo / ".venv" / "bin" / "dot", "#!/bin/sh\nexit 0\n")
    result = run(repo, bin_dir, "--notebooks", as_nobody=True)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0] == "setup.sh: cannot install the system packages nodejs npm: this is not root."
    assert "        conda env create -f environment.yml && conda activate channels-anatomy" in lines
    assert not any("graphviz-pure" in line for line in lines)


def test_as_root_an_apt_get_that_fails_stops_with_what_to_run(tmp_path: Path) -> None:
    repo, bin_dir = make_sandbox(tmp_path, tools=["node", "npm"], with_venv=True)
    # apt-get as it behaves offline: update cannot fetch, install cannot find the package.
    executable(bin_dir / "apt-get", (
        "#!/bin/bash\n"
        'case "$1" in\n'
        '  update) echo "E: Failed to fetch the package lists (offline)" >&2; exit 100 ;;\n'
        '  *) echo "E: Unable to locate package graphviz" >&2; exit 100 ;;\n'
        "esac\n"
    ))
    result = run(repo, bin_dir, "--notebooks", as_nobody=False)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "==> apt-get update failed; trying with the package lists already there",
        "==> apt-get install graphviz",
    ]
    lines = result.stderr.splitlines()
    assert lines[:4] == [
        "E: Failed to fetch the package lists (offline)",
        "E: Unable to locate package graphviz",
        "setup.sh: cannot install the system packages graphviz: apt-get failed (its message is above).",
        "Install them as root, then run the same command again:",
    ]
    assert f"        {PIP_LINE}" in lines
