#!/usr/bin/env bash
# Install whatever is missing to run the tests, the walkthrough or the book.
# Safe to run again and again: each step is skipped when it is already done.
#
#   scripts/setup.sh              Debian packages, .venv with '.[test]', npm ci
#   scripts/setup.sh --notebooks  ... plus JupyterLab
#   scripts/setup.sh --book       ... plus Jupyter Book
#   scripts/setup.sh --bench      ... plus the benchmark dependencies
#
# With --notebooks or --book, redis-server and chromium (only the tests use them)
# are installed if possible but not required. Graphviz's dot is always required:
# when it cannot be installed, the script says what to do instead and stops.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
STAMP="$VENV/.channels-anatomy-stamp"

extras=(test)
reading=0  # the walkthrough or the book: no test tools needed
for arg in "$@"; do
    case "$arg" in
        --notebooks) extras+=(notebooks); reading=1 ;;
        --book) extras+=(book); reading=1 ;;
        --bench) extras+=(bench) ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "setup.sh: unknown option: $arg" >&2; exit 2 ;;
    esac
done

say() { printf '==> %s\n' "$*"; }

pick_python() {
    local py
    for py in python3.11 python3 python; do
        if command -v "$py" >/dev/null 2>&1 &&
            "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            command -v "$py"
            return 0
        fi
    done
    return 1
}

# Print why the packages cannot be installed, what to run instead, and stop.
cannot_install() {
    local why=$1
    shift
    local packages=" $* "
    {
        echo "setup.sh: cannot install the system packages $*: $why."
        echo "Install them as root, then run the same command again:"
        echo "    sudo apt-get update && sudo apt-get install -y $*"
        if [[ $packages == *" graphviz "* || $packages == *" nodejs "* ]]; then
            echo
            echo "Or, without root:"
            echo "  - a conda environment, which brings Graphviz and Node.js (see environment.yml):"
            echo "        conda env create -f environment.yml && conda activate channels-anatomy"
            echo "    then run the same command again in that shell;"
        fi
        if [[ $packages == *" graphviz "* ]]; then
            local venv_first=""
            if [[ ! -x "$VENV/bin/python" ]]; then
                venv_first="$(pick_python || echo python3) -m venv .venv && "
            fi
            echo "  - for Graphviz's dot alone (it draws the walkthrough's diagrams): graphviz-pure from"
            echo "    PyPI, a self-contained port of dot, installed into .venv as .venv/bin/dot:"
            echo "        ${venv_first}.venv/bin/python -m pip install graphviz-pure && ln -sf graphviz-pure .venv/bin/dot"
            echo "    then run the same command again (make puts .venv/bin on PATH)."
        fi
    } >&2
    exit 1
}

# Graphviz's dot on PATH, or in .venv/bin where the pip way above puts it.
have_dot() { command -v dot >/dev/null 2>&1 || [[ -x "$VENV/bin/dot" ]]; }

# --- 1. Debian packages ------------------------------------------------------
missing=()   # needed for what was asked
optional=()  # only the tests need these: not required for the walkthrough or the book
have_dot || missing+=(graphviz)
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    missing+=(nodejs npm)
fi
for tool in redis-server chromium; do
    command -v "$tool" >/dev/null 2>&1 && continue
    if ((reading)); then optional+=("$tool"); else missing+=("$tool"); fi
done

apt_install() { apt-get install -y -qq --no-install-recommends "$@"; }

if ((${#missing[@]} + ${#optional[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        ((${#missing[@]})) && cannot_install "this is not root" "${missing[@]}"
        say "not installing ${optional[*]} (this is not root): only the tests use them"
    else
        export DEBIAN_FRONTEND=noninteractive
        # A failed update (offline, say) is not the end: the lists already there may do.
        apt-get update -qq || say "apt-get update failed; trying with the package lists already there"
        if ((${#missing[@]})); then
            say "apt-get install ${missing[*]}"
            apt_install "${missing[@]}" || cannot_install "apt-get failed (its message is above)" "${missing[@]}"
        fi
        if ((${#optional[@]})); then
            say "apt-get install ${optional[*]}"
            apt_install "${optional[@]}" || say "could not install ${optional[*]}: only the tests use them"
        fi
    fi
fi

# --- 2. Python virtual environment -------------------------------------------
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    if ! PY=$(pick_python); then
        echo "setup.sh: Python 3.11 or newer is needed to create .venv (none found on PATH)" >&2
        exit 1
    fi
    say "creating .venv with $PY"
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
    rm -f "$STAMP"
fi

# --- 3. Python packages ------------------------------------------------------
# The stamp holds the hash of pyproject.toml and the extras installed with it.
# pip runs again only when pyproject.toml changed or a new extra is requested
# (or when the editable install no longer finds the package).
hash=$(sha256sum pyproject.toml | cut -d' ' -f1)
old_hash=""
old_extras=""
if [[ -f "$STAMP" ]]; then
    old_hash=$(sed -n 1p "$STAMP")
    old_extras=$(sed -n 2p "$STAMP")
fi

# Keep what was installed before (e.g. notebooks) and add what is asked now.
# shellcheck disable=SC2206
all_extras=(${old_extras//,/ } "${extras[@]}")
want=$(printf '%s\n' "${all_extras[@]}" | sed '/^$/d' | sort -u | paste -sd, -)

need_pip=0
[[ "$hash" != "$old_hash" ]] && need_pip=1
[[ "$want" != "$old_extras" ]] && need_pip=1
if [[ $need_pip -eq 0 && -f channels_core/__init__.py ]]; then
    # An editable install made before channels_core/ existed cannot import it.
    (cd / && "$VENV/bin/python" -c 'import channels_core' >/dev/null 2>&1) || need_pip=1
fi

if [[ $need_pip -eq 1 ]]; then
    say "pip install -e '.[$want]' (quiet; this can take a few minutes the first time)"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[$want]"
    printf '%s\n%s\n' "$hash" "$want" >"$STAMP"
fi

# --- 4. npm packages ---------------------------------------------------------
NPM_STAMP=node_modules/.channels-anatomy-stamp
if [[ ! -d node_modules || ! -f "$NPM_STAMP" || package-lock.json -nt "$NPM_STAMP" ]]; then
    say "npm ci"
    npm ci --no-audit --no-fund --loglevel=error
    touch "$NPM_STAMP"
fi

say "setup done"
