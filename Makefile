# Entry points. Each target installs what it needs first (scripts/setup.sh).
SHELL := /bin/bash
PY := .venv/bin/python
# JupyterLab refuses to start as root unless told to.
ALLOW_ROOT := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)

.PHONY: setup test walkthrough serve book bench

setup:
	bash scripts/setup.sh

# Runs tests/ and, when there are any, every notebook under nbval.
# pytest's own exit status is kept; exit 5 (nothing collected) is a failure.
test:
	bash scripts/setup.sh
	@set -uo pipefail; \
	args=(tests); \
	shopt -s nullglob; nbs=(notebooks/*.ipynb); \
	if (( $${#nbs[@]} )); then \
	  args+=("$${nbs[@]}" --nbval --nbval-current-env); \
	  if [[ -f notebooks/nbval-sanitize.cfg ]]; then \
	    args+=(--nbval-sanitize-with notebooks/nbval-sanitize.cfg); \
	  fi; \
	fi; \
	echo "$(PY) -m pytest $${args[*]} $(PYTEST_ARGS)"; \
	$(PY) -m pytest "$${args[@]}" $(PYTEST_ARGS); rc=$$?; \
	if (( rc == 5 )); then echo "make test: pytest collected no tests; that counts as a failure" >&2; fi; \
	exit $$rc

walkthrough:
	bash scripts/setup.sh --notebooks
	.venv/bin/jupyter lab notebooks --ip 127.0.0.1 --no-browser $(ALLOW_ROOT)

serve:
	bash scripts/setup.sh
	$(PY) -m channels_core serve

book:
	@if [[ ! -f book/_config.yml ]]; then \
	  echo "make book: book/_config.yml is missing; there is no book to build yet" >&2; exit 1; \
	fi
	bash scripts/setup.sh --book
	.venv/bin/jupyter-book build book -W -n --keep-going
	@echo "The book is in book/_build/html/index.html"

bench:
	@if [[ ! -d bench ]]; then \
	  echo "make bench: there is no bench/ directory yet" >&2; exit 1; \
	fi
	bash scripts/setup.sh --bench
	$(PY) -m bench
