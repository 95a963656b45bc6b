# Entry points. Each target installs what it needs first (scripts/setup.sh).
SHELL := /bin/bash
PY := .venv/bin/python
# JupyterLab refuses to start as root unless told to.
ALLOW_ROOT := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)

.PHONY: setup test walkthrough serve book bench

setup:
	bash scripts/setup.sh

# Runs tests/ and, when there are any, every notebook under nbval: the walkthrough's
# chapters and the exercises' solutions, with the same sanitizing patterns (the
# exercise notebooks themselves are run by tests/test_exercises.py).
# pytest's own exit status is kept; exit 5 (nothing collected) is a failure.
test:
	bash scripts/setup.sh --book
	@set -uo pipefail; \
	args=(tests); \
	shopt -s nullglob; nbs=(notebooks/*.ipynb exercises/solutions/*.ipynb); \
	if (( $${#nbs[@]} )); then \
	  args+=("$${nbs[@]}" --nbval --nbval-current-env); \
	  if [[ -f notebooks/nbval-sanitize.cfg ]]; then \
	    args+=(--nbval-sanitize-with notebooks/nbval-sanitize.cfg); \
	  fi; \
	fi; \
	echo "$(PY) -m pytest $${args[*]} $(PYTEST_ARGS)"; \
	PATH="$(CURDIR)/.venv/bin:$$PATH" $(PY) -m pytest "$${args[@]}" $(PYTEST_ARGS); rc=$$?; \
	if (( rc == 5 )); then echo "make test: pytest collected no tests; that counts as a failure" >&2; fi; \
	exit $$rc

# JupyterLab on notebooks/, with the address to open printed first. Each notebook
# starts and stops its own servers: there is nothing else to run. .venv/bin comes
# first on PATH (the kernels inherit it), so that a dot installed there is found.
walkthrough:
	bash scripts/setup.sh --notebooks
	@port=$$($(PY) -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'); \
	export JUPYTER_TOKEN=$$($(PY) -c 'import secrets; print(secrets.token_hex(24))'); \
	echo; \
	echo "==> The walkthrough: open this address in your browser (Ctrl-C here stops JupyterLab)"; \
	echo "    http://127.0.0.1:$$port/lab/tree/01_real_time_app.ipynb?token=$$JUPYTER_TOKEN"; \
	echo "    Each notebook starts its own servers: there is nothing else to run."; \
	echo "    The exercises are in the exercises folder, one notebook per chapter."; \
	echo; \
	PATH="$(CURDIR)/.venv/bin:$$PATH" exec .venv/bin/jupyter lab notebooks --ip 127.0.0.1 --port "$$port" \
	  --ServerApp.port_retries=0 --no-browser $(ALLOW_ROOT)

serve:
	bash scripts/setup.sh
	$(PY) -m channels_core serve

# The HTML book in book/_build/html: table of contents from the chapters that
# exist, Jupyter Book with every warning an error, then a check of every internal link.
book:
	@if [[ ! -f book/_config.yml ]]; then \
	  echo "make book: book/_config.yml is missing; there is no book to build yet" >&2; exit 1; \
	fi
	bash scripts/setup.sh --book
	$(PY) book/build.py
	@echo "The book is in book/_build/html/index.html"

bench:
	@if [[ ! -d bench ]]; then \
	  echo "make bench: there is no bench/ directory yet" >&2; exit 1; \
	fi
	bash scripts/setup.sh --bench
	$(PY) -m bench
