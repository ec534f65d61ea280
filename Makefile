# cclens: make run (ingest this machine's transcripts and start what there is), make test, make bench.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench venv clean demo deps

NATIVE := $(wildcard src/cclens/sources/transcripts/native/*.c src/cclens/sources/transcripts/native/*.h)

# Reinstalled when the metadata or the C scanner's sources change (an editable install does not
# rebuild the extension by itself). compileall writes the bytecode caches even where
# PYTHONDONTWRITEBYTECODE is set, so a command does not compile cclens from source every time.
$(STAMP): pyproject.toml setup.py $(NATIVE)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/python -m compileall -q src
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
