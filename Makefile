# cclens: make run (ingest this machine's transcripts and start what there is), make test, make bench.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench venv clean demo deps

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/cclens run

demo: $(STAMP)
	$(BIN)/cclens demo

# Non-Python tools the tests drive for real (ccusage, the Claude Code CLI, Chromium); idempotent.
deps:
	bash .ci/install-deps

test: $(STAMP) deps
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info
