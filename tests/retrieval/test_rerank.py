"""The torch cross-encoder with real MS MARCO weights: bfloat16 ranks as float32 does; precision is set."""

from __future__ import annotations

import pytest
import torch

from devrag.retrieval.rerank import CrossEncoderReranker, resolve_precision
from devrag.server.settings import Settings, reranker_for
from tests.support import ETCD_PASSAGES as PASSAGES
from tests.support import ETCD_QUERY as QUERY
from tests.support import RERANKER

needs_weights = pytest.mark.skipif(not RERANKER.exists(), reason=f"reranker weights not found at {RERANKER}")


@pytest.fixture(scope="module")
def float32() -> CrossEncoderReranker:
    return CrossEncoderReranker(str(RERANKER), device="cpu", precision="float32")


@pytest.fixture(scope="module")
def bfloat16() -> CrossEncoderReranker:
    return CrossEncoderReranker(str(RERANKER), device="cpu", precision="bfloat16")


def _dtypes(reranker: CrossEncoderReranker) -> set[torch.dtype]:
    return {p.dtype for p in reranker.model.model.parameters()}


@needs_weights
def test_bfloat16_ranks_passages_as_float32_does(float32, bfloat16):
    assert _dtypes(float32) == {torch.float32} and _dtypes(bfloat16) == {torch.bfloat16}
    exact, fast = float32.score(QUERY, PASSAGES), bfloat16.score(QUERY, PASSAGES)
    order = sorted(range(len(PASSAGES)), key=lambda i: -exact[i])
    assert order[0] == 0
    assert order == sorted(range(len(PASSAGES)), key=lambda i: -fast[i])
    assert max(abs(a - b) for a, b in zip(exact, fast, strict=True)) < 0.3


def test_auto_precision_is_float32_off_the_cpu_and_explicit_choices_stand():
    assert resolve_precision("auto", "cuda") == "float32"
    assert resolve_precision("auto", "cpu") in {"float32", "bfloat16"}
    assert resolve_precision("float32", "cpu") == "float32"
    assert resolve_precision("bfloat16", "cuda") == "bfloat16"


@needs_weights
def test_precision_is_configured_by_environment(monkeypatch):
    monkeypatch.setenv("DEVRAG_RERANK_MODEL", str(RERANKER))
    monkeypatch.setenv("DEVRAG_DEVICE", "cpu")
    monkeypatch.setenv("DEVRAG_RUNTIME", "torch")
    monkeypatch.setenv("DEVRAG_RERANK_PRECISION", "float32")
    reranker = reranker_for(Settings())
    assert isinstance(reranker, CrossEncoderReranker) and reranker.precision == "float32"
    assert _dtypes(reranker) == {torch.float32}
