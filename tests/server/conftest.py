"""Fixtures for the MCP tests: the real models, loaded once per session, and an ingested ops repo."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from devrag.retrieval.models import Embedder
from devrag.retrieval.onnx_models import OnnxEmbedder, OnnxReranker
from devrag.server.cli import main
from devrag.server.state import Models
from tests.server.mcp_support import RERANKER, Ingested, make_ops
from tests.support import ONNX_DIR


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """`devrag ARGS` in process, with its own config file and index; `code` is the expected exit code."""
    monkeypatch.setenv("DEVRAG_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("DEVRAG_INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("DEVRAG_RERANK_MODEL", str(RERANKER))
    monkeypatch.setenv("DEVRAG_ONNX_DIR", str(ONNX_DIR))
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(main, list(args), catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result.output

    return run


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def models() -> Models:
    """all-MiniLM-L6-v2 and the shared reranker (when its weights are there) on the default runtime."""
    embedder = OnnxEmbedder(onnx_dir=ONNX_DIR)
    reranker = OnnxReranker(str(RERANKER), onnx_dir=ONNX_DIR) if RERANKER.exists() else None
    return Models.loaded(embedder, reranker)


@pytest.fixture(scope="session")
def real_embedder(models: Models) -> Embedder:
    e, _ = models.wait()
    assert isinstance(e, OnnxEmbedder)
    return e


@pytest.fixture(scope="session")
def ops(tmp_path_factory: pytest.TempPathFactory, real_embedder: Embedder) -> Ingested:
    """An ops repository ingested once per session; tests must not change it."""
    return make_ops(Path(tmp_path_factory.mktemp("ops")), real_embedder)
