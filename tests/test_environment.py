"""environment.yml must agree with pyproject.toml.

The conda environment is the second way into the project (besides
scripts/setup.sh), so it must install a Python that the package accepts and
the same extras that the walkthrough and the tests need.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def pyproject() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


@pytest.fixture(scope="module")
def env() -> dict:
    with open(ROOT / "environment.yml", encoding="utf-8") as f:
        return yaml.safe_load(f)


def conda_deps(env: dict) -> dict[str, str]:
    """Map each conda dependency name to its version spec ('' when none)."""
    deps = {}
    for dep in env["dependencies"]:
        if isinstance(dep, str):
            name, _, spec = re.match(r"^([A-Za-z0-9_.\-]+)\s*(=*)\s*(.*)$", dep).groups()
            deps[name] = spec.strip()
    return deps


def pip_lines(env: dict) -> list[str]:
    for dep in env["dependencies"]:
        if isinstance(dep, dict) and "pip" in dep:
            return list(dep["pip"])
    return []


def editable_self_install(env: dict) -> Requirement:
    """The pip line that installs this project ('-e .[extras]')."""
    lines = [ln for ln in pip_lines(env) if re.match(r"^(-e|--editable)\s+\.", ln)]
    assert len(lines) == 1, f"expected one '-e .[...]' line in the pip section, got {lines}"
    target = re.sub(r"^(-e|--editable)\s+", "", lines[0]).strip()
    # Turn '.[a,b]' into a requirement string that packaging can parse.
    return Requirement("self" + target[1:])


def test_environment_metadata(env):
    assert env["name"] == "channels-anatomy"
    assert "conda-forge" in env["channels"]
    deps = conda_deps(env)
    for needed in ("python", "pip", "graphviz", "nodejs"):
        assert needed in deps, f"environment.yml does not install {needed}"


def test_python_version_satisfies_requires_python(env, pyproject):
    spec = conda_deps(env)["python"]
    assert re.fullmatch(r"\d+\.\d+(\.\d+)?", spec), f"pin python to a version, got {spec!r}"
    requires = SpecifierSet(pyproject["project"]["requires-python"])
    # conda's 'python=3.11' means any 3.11.x; Version("3.11") is 3.11.0, the
    # first of the series, so it must be accepted.
    assert Version(spec) in requires, f"python={spec} does not satisfy requires-python {requires}"


def test_nodejs_matches_package_json(env):
    import json

    engines = json.loads((ROOT / "package.json").read_text())["engines"]["node"]
    node_major = int(conda_deps(env)["nodejs"].split(".")[0])
    minimum = int(re.match(r"^>=\s*(\d+)", engines).group(1))
    assert node_major >= minimum, f"nodejs={node_major} is older than package.json engines {engines}"


def test_pip_installs_project_with_test_and_notebooks_extras(env):
    req = editable_self_install(env)
    assert {"test", "notebooks"} <= req.extras, f"pip section installs extras {sorted(req.extras)}"


def test_every_referenced_extra_exists(env, pyproject):
    defined = set(pyproject["project"]["optional-dependencies"])
    req = editable_self_install(env)
    unknown = req.extras - defined
    assert not unknown, f"environment.yml uses extras not defined in pyproject.toml: {sorted(unknown)}"
