# Everything a fresh machine needs: `make demo`, then `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEVRAG := $(BIN)/devrag
SHARED ?= $(abspath ../shared)
# The reranker weights live outside the repository; point at them when they are there.
SHARED_RERANKER := $(wildcard $(SHARED)/models/ms-marco-MiniLM-L12-v2-int8dq)
export DEVRAG_RERANK_MODEL ?= $(SHARED_RERANKER)
export DEVRAG_SHARED_DIR ?= $(SHARED)
export HF_HUB_OFFLINE ?= 1
# ONNX exports of the local models, for the default onnx runtime; outside the repository.
export DEVRAG_ONNX_DIR ?= $(HOME)/.cache/devrag/onnx
EMBED_MODEL := sentence-transformers/all-MiniLM-L6-v2
DEMO_INDEX := .devrag/index
DEMO_REPO := .devrag/demo-repo

# torch exports the ONNX models (below); the demo's .venv has no torch, so it borrows this one.
EXPORT_VENV ?= $(HOME)/.cache/devrag/export-venv
TORCH_CPU := torch==2.13.0

.PHONY: install install-base onnx-models demo-models demo test lint bench eval clean package-check

# What the tests need: both runtimes (onnx and torch) in .venv, and the ONNX exports.
install: $(VENV)/.installed onnx-models

# What devrag needs to run: ONNX Runtime through fastembed, no torch (the demo's .venv).
install-base: $(VENV)/.base

$(VENV)/.base: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $@

# torch is pinned and installed first: an unpinned torch pulls a multi-GB CUDA build. The dev extra
# holds the torch runtime too, so that the tests run both runtimes and the ONNX exports can be made.
$(VENV)/.installed: $(VENV)/.base
	$(BIN)/pip install -q $(TORCH_CPU)
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

$(EXPORT_VENV)/.installed: pyproject.toml
	test -d $(EXPORT_VENV) || $(PYTHON) -m venv $(EXPORT_VENV)
	$(EXPORT_VENV)/bin/pip install -q --upgrade pip
	$(EXPORT_VENV)/bin/pip install -q $(TORCH_CPU)
	$(EXPORT_VENV)/bin/pip install -q -e ".[torch]"
	touch $@

# The bundled embedder and the shared reranker as ONNX (about 20 s; seconds when already current),
# made by .venv's torch (onnx-models) or, for the demo, by the exporter venv's (demo-models).
EXPORT_ARGS = --onnx-dir "$(DEVRAG_ONNX_DIR)" --embed-model $(EMBED_MODEL) $(if $(SHARED_RERANKER),--rerank-model $(SHARED_RERANKER))

onnx-models: $(VENV)/.installed
	$(BIN)/python -m devrag.retrieval.onnx_export $(EXPORT_ARGS)

demo-models: $(EXPORT_VENV)/.installed
	$(EXPORT_VENV)/bin/python -m devrag.retrieval.onnx_export $(EXPORT_ARGS)

$(DEMO_REPO): $(shell find corpus-sample -type f)
	rm -rf $(DEMO_REPO) && mkdir -p $(dir $(DEMO_REPO)) && cp -r corpus-sample $(DEMO_REPO)
	cd $(DEMO_REPO) && git init -q -b main && git add -A && \
	  git -c user.name=devrag -c user.email=devrag@localhost commit -qm "Sample operational corpus"

# The demo also records the reranker in the user's config file (that key only, the others kept),
# so `.venv/bin/devrag search ...` finds it outside make too; `devrag config` shows where from.
# A .venv that already holds the dev install makes the exports itself; a fresh one borrows the exporter.
DEMO_MODELS := $(if $(wildcard $(VENV)/.installed),onnx-models,demo-models)

demo: install-base $(DEMO_MODELS) $(DEMO_REPO)
	$(if $(SHARED_RERANKER),$(DEVRAG) config set rerank_model $(SHARED_RERANKER))
	$(DEVRAG) --index-dir $(DEMO_INDEX) ingest $(DEMO_REPO) --name sample
	$(DEVRAG) --index-dir $(DEMO_INDEX) status
	$(DEVRAG) --index-dir $(DEMO_INDEX) search "pods stuck in CrashLoopBackOff after a deploy" -k 3


test: install package-check
	$(BIN)/ruff check .
	$(BIN)/pytest

# The built wheel alone, installed in a fresh venv and run outside the repository: it must hold all
# four packages and the entry point. Its dependencies are .venv's, reached through a .pth line that
# sys.path puts after the wheel's own site-packages (no network, seconds); .venv's editable-install
# hook is itself a .pth file, which such a line never runs, so only the wheel can answer the imports.
package-check: install
	@rm -rf build/lib build/bdist.*
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && set -e && \
	$(BIN)/python -m pip wheel -q --no-deps --no-build-isolation -w "$$tmp/dist" . && \
	$(BIN)/python -m venv --without-pip "$$tmp/venv" && \
	$(BIN)/python -m pip -q --python "$$tmp/venv/bin/python" install --no-deps --no-index "$$tmp"/dist/*.whl && \
	purelib='import sysconfig; print(sysconfig.get_path("purelib"))' && \
	$(BIN)/python -c "$$purelib" > "$$("$$tmp/venv/bin/python" -c "$$purelib")/devrag-deps.pth" && \
	cd "$$tmp" && env -u PYTHONPATH venv/bin/devrag --help > /dev/null && \
	env -u PYTHONPATH venv/bin/python -c 'import sys, devrag.server, devrag.ingest, devrag.retrieval, \
	devrag.eval; assert devrag.server.__file__.startswith(sys.prefix), devrag.server.__file__' && \
	echo "package-check: the wheel installs and runs outside the repository"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install
	$(BIN)/python -m devrag.eval.ingest_bench $(SHARED)/data/runbooks-corpus --onnx-dir "$(DEVRAG_ONNX_DIR)"

clean:
	rm -rf .devrag build dist *.egg-info
