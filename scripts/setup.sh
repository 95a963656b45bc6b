#!/usr/bin/env bash
# Install whatever is missing to run the tests, the walkthrough or the book.
# Safe to run again and again: each step is skipped when it is already done.
#
#   scripts/setup.sh              Debian packages, .venv with '.[test]', npm ci
#   scripts/setup.sh --notebooks  ... plus JupyterLab
#   scripts/setup.sh --book       ... plus Jupyter Book
#   scripts/setup.sh --bench      ... plus the benchmark dependencies
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
STAMP="$VENV/.channels-anatomy-stamp"

extras=(test)
for arg in "$@"; do
    case "$arg" in
        --notebooks) extras+=(notebooks) ;;
        --book) extras+=(book) ;;
        --bench) extras+=(bench) ;;
        -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "setup.sh: unknown option: $arg" >&2; exit 2 ;;
    esac
done

say() { printf '==> %s\n' "$*"; }

# --- 1. Debian packages ------------------------------------------------------
missing=()
command -v dot >/dev/null 2>&1 || missing+=(graphviz)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    missing+=(nodejs npm)
fi

if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "setup.sh: missing system packages: ${missing[*]}" >&2
        echo "Install them as root, then run this script again:" >&2
        echo "    sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
    say "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# --- 2. Python virtual environment -------------------------------------------
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
