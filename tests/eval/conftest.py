"""Fixtures for the query-log evaluations: real searches over two small repositories, with HashEmbedder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devrag.ingest.pipeline import ingest
from devrag.retrieval.search import HybridIndex
from tests.retrieval.test_search import RUNBOOKS


@pytest.fixture
def searcher(edge_index, git_repo, embedder) -> Iterator[HybridIndex]:
    """The same runbooks indexed as `ops` and as `infra`, searched without a reranker."""
    for name in ("ops", "infra"):
        repo = git_repo(name)
        repo.commit(RUNBOOKS)
        ingest(edge_index, embedder, repo.path, name)
    s = HybridIndex(edge_index, embedder, reranker=None)
    yield s
    s.close()
