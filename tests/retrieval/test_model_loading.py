"""A model that cannot be loaded is reported at once, in one line, with the setting that fixes it."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import fastembed  # noqa: F401  (imported before any clock starts: the tests time a load, not an import)
import pytest
import sentence_transformers  # noqa: F401
from huggingface_hub import constants

from devrag.retrieval.errors import ModelLoadError
from devrag.retrieval.models import SentenceTransformerEmbedder
from devrag.retrieval.onnx_models import OnnxEmbedder, OnnxReranker
from devrag.retrieval.rerank import CrossEncoderReranker

pytestmark = pytest.mark.model


@pytest.fixture
def hub_down(monkeypatch, tmp_path) -> Path:
    """Online mode (HF_HUB_OFFLINE unset) with a hub that refuses connections: a laptop on a plane.

    Returns an empty folder, for ONNX exports and fastembed's cache alike.
    """
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("FASTEMBED_CACHE_PATH", str(tmp_path / "fastembed"))
    return tmp_path


@pytest.mark.parametrize(
    ("load", "setting"),
    [
        (lambda _: CrossEncoderReranker("devrag-tests/no-such-reranker", "cpu"), "DEVRAG_RERANK_MODEL"),
        (lambda _: SentenceTransformerEmbedder("devrag-tests/no-such-embedder", "cpu"), "DEVRAG_EMBED_MODEL"),
        # fastembed's own ONNX copies, with an empty ONNX folder and an empty fastembed cache
        (lambda empty: OnnxReranker(onnx_dir=empty), "DEVRAG_RERANK_MODEL"),
        (lambda empty: OnnxEmbedder("BAAI/bge-small-en-v1.5", onnx_dir=empty), "DEVRAG_EMBED_MODEL"),
    ],
)
def test_a_hub_model_missing_from_the_cache_fails_fast_when_the_hub_is_down(hub_down, caplog, load, setting):
    caplog.set_level(logging.WARNING)
    started = time.monotonic()
    with pytest.raises(ModelLoadError) as error:
        load(hub_down)
    message = str(error.value)
    assert time.monotonic() - started < 15, "huggingface_hub's retries take about a minute"
    assert "not in the local Hugging Face cache and the hub cannot be reached" in message
    assert setting in message and "in the config file" in message and "\n" not in message
    assert not [r for r in caplog.records if "Retrying" in r.getMessage()]


def test_a_missing_folder_is_named_without_asking_the_hub(hub_down, monkeypatch):
    monkeypatch.setattr("devrag.retrieval.models._hub_unreachable", lambda: pytest.fail("asked the hub"))
    with pytest.raises(ModelLoadError, match="Could not load the reranker '/nonexistent/reranker'"):
        CrossEncoderReranker("/nonexistent/reranker", device="cpu")
