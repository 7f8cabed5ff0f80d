"""Shared fixtures: real Git repositories under tmp_path, real Qdrant engines, a small fake embedder."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from devrag.ingest.pipeline import ingest
from devrag.retrieval.edge_store import EdgeStore
from devrag.retrieval.index import Index
from devrag.retrieval.qdrant_store import QdrantStore
from devrag.retrieval.search import HybridIndex
from devrag.retrieval.store import VectorStore
from tests.support import GitRepo, HashEmbedder

# Index owner processes that tests start leave soon after their last client.
os.environ.setdefault("DEVRAG_OWNER_IDLE_SECONDS", "5")
# No test, nor any process a test starts, reads or writes the user's ~/.config/devrag/config.toml.
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="devrag-test-config-")
atexit.register(shutil.rmtree, os.environ["XDG_CONFIG_HOME"], ignore_errors=True)
os.environ.pop("DEVRAG_CONFIG", None)


@pytest.fixture
def git_repo(tmp_path: Path) -> Callable[[str], GitRepo]:
    def make(name: str = "ops") -> GitRepo:
        return GitRepo(tmp_path / "repos" / name)

    return make


@pytest.fixture
def new_repo() -> Callable[[Path], GitRepo]:
    """A factory, for tests that need a fresh repository per hypothesis example."""
    return GitRepo


@pytest.fixture
def new_edge_index(embedder: HashEmbedder) -> Callable[[Path], Index]:
    return lambda path: Index(EdgeStore(path), embedder.name, embedder.dim)


@pytest.fixture
def embedder() -> HashEmbedder:
    return HashEmbedder()


def open_test_store(kind: str, path: Path) -> VectorStore:
    if kind == "edge":
        return EdgeStore(path)
    return QdrantStore.connect(":memory:", "devrag_test")


@pytest.fixture(params=["edge", "qdrant-local"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    """Each store implementation: the embedded engine, and qdrant-client (the server code path)."""
    s = open_test_store(request.param, tmp_path / "index")
    yield s
    s.close()


@pytest.fixture
def edge_store(tmp_path: Path) -> Iterator[EdgeStore]:
    s = EdgeStore(tmp_path / "index")
    yield s
    s.close()


@pytest.fixture
def index(store: VectorStore, embedder: HashEmbedder) -> Index:
    return Index(store, embedder.name, embedder.dim)


@pytest.fixture
def edge_index(edge_store: EdgeStore, embedder: HashEmbedder) -> Index:
    return Index(edge_store, embedder.name, embedder.dim)


_SPANS = InMemorySpanExporter()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Every span finished during the test, from the OpenTelemetry SDK's in-memory exporter.

    The global tracer provider can be set once per process, so the first use sets it for all.
    """
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_SPANS))
        trace.set_tracer_provider(provider)
    _SPANS.clear()
    yield _SPANS
    _SPANS.clear()


@pytest.fixture
def two_repo_searcher(
    edge_index: Index, git_repo: Callable[[str], GitRepo], embedder: HashEmbedder
) -> Iterator[HybridIndex]:
    """The same runbooks indexed as `ops` and as `infra`, searched without a reranker."""
    from tests.retrieval.test_search import RUNBOOKS

    for name in ("ops", "infra"):
        repo = git_repo(name)
        repo.commit(RUNBOOKS)
        ingest(edge_index, embedder, repo.path, name)
    s = HybridIndex(edge_index, embedder, reranker=None)
    yield s
    s.close()
