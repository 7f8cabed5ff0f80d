"""Fixtures for the MCP tests: the real models, loaded once per session, and an ingested ops repo."""

from __future__ import annotations

from pathlib import Path

import pytest

from devrag.retrieval.models import SentenceTransformerEmbedder
from devrag.retrieval.rerank import CrossEncoderReranker
from devrag.server.state import Models
from tests.server.mcp_support import RERANKER, Ingested, make_ops


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def models() -> Models:
    """The bundled embedding model and the shared reranker (when its weights are there)."""
    embedder = SentenceTransformerEmbedder(device="cpu")
    reranker = CrossEncoderReranker(str(RERANKER), device="cpu") if RERANKER.exists() else None
    return Models.loaded(embedder, reranker)


@pytest.fixture(scope="session")
def real_embedder(models: Models) -> SentenceTransformerEmbedder:
    e, _ = models.wait()
    assert isinstance(e, SentenceTransformerEmbedder)
    return e


@pytest.fixture(scope="session")
def ops(tmp_path_factory: pytest.TempPathFactory, real_embedder: SentenceTransformerEmbedder) -> Ingested:
    """An ops repository ingested once per session; tests must not change it."""
    return make_ops(Path(tmp_path_factory.mktemp("ops")), real_embedder)
