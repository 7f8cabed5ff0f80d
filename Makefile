# Everything a fresh machine needs: `make demo`, then `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEVRAG := $(BIN)/devrag
SHARED ?= $(abspath ../shared)
# The reranker weights live outside the repository; point at them when they are there.
export DEVRAG_RERANK_MODEL ?= $(if $(wildcard $(SHARED)/models/ms-marco-MiniLM-L12-v2-int8dq),$(SHARED)/models/ms-marco-MiniLM-L12-v2-int8dq,)
export DEVRAG_SHARED_DIR ?= $(SHARED)
export HF_HUB_OFFLINE ?= 1
DEMO_INDEX := .devrag/index
DEMO_REPO := .devrag/demo-repo

.PHONY: install demo test lint bench eval clean

install: $(VENV)/.installed

# torch is pinned and installed first: an unpinned torch pulls a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

$(DEMO_REPO): $(shell find corpus-sample -type f)
	rm -rf $(DEMO_REPO) && mkdir -p $(dir $(DEMO_REPO)) && cp -r corpus-sample $(DEMO_REPO)
	cd $(DEMO_REPO) && git init -q -b main && git add -A && \
	  git -c user.name=devrag -c user.email=devrag@localhost commit -qm "Sample operational corpus"

demo: install $(DEMO_REPO)
	$(DEVRAG) --index-dir $(DEMO_INDEX) ingest $(DEMO_REPO) --name sample
	$(DEVRAG) --index-dir $(DEMO_INDEX) status
	$(DEVRAG) --index-dir $(DEMO_INDEX) search "pods stuck in CrashLoopBackOff after a deploy" -k 3


test: install
	$(BIN)/ruff check .
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install
	$(BIN)/python -m devrag.eval.ingest_bench $(SHARED)/data/runbooks-corpus

clean:
	rm -rf .devrag build dist *.egg-info
