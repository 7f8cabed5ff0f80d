"""The cross-encoder with real MS MARCO weights: on CPU it runs as dynamic int8 and ranks as float32 does."""

from __future__ import annotations

import pytest
import torch

from devrag.retrieval.rerank import CrossEncoderReranker
from devrag.server.settings import Settings, reranker_for
from tests.support import RERANKER

pytestmark = pytest.mark.skipif(not RERANKER.exists(), reason=f"reranker weights not found at {RERANKER}")

QUERY = "etcd cluster members report slow WAL fsync, leader elections keep happening"
PASSAGES = [
    "etcd high fsync durations > Meaning: etcd_disk_wal_fsync_duration_seconds p99 is above 500ms; "
    "the disk under the etcd data directory is too slow, and members miss heartbeats.",
    "Redis memory pressure > Mitigation: raise maxmemory or evict keys; check the eviction policy.",
    "Rotating TLS certificates > Steps: issue the new certificate, roll the ingress pods, verify the chain.",
    "etcd > Defragmentation: run etcdctl defrag on one member at a time to reclaim space.",
    "Checkout API high error rate > Check the upstream dependencies and recent deploys.",
]


@pytest.fixture(scope="module")
def float32() -> CrossEncoderReranker:
    return CrossEncoderReranker(str(RERANKER), device="cpu", quantize=False)


@pytest.fixture(scope="module")
def int8() -> CrossEncoderReranker:
    return CrossEncoderReranker(str(RERANKER), device="cpu")


def _plain_linear_layers(reranker: CrossEncoderReranker) -> int:
    return sum(type(m) is torch.nn.Linear for m in reranker.model.modules())


def test_on_cpu_the_linear_layers_run_as_int8(int8, float32):
    assert int8.quantized and not float32.quantized
    assert _plain_linear_layers(float32) > 0
    assert _plain_linear_layers(int8) == 0


def test_int8_ranks_passages_as_float32_does(int8, float32):
    exact, fast = float32.score(QUERY, PASSAGES), int8.score(QUERY, PASSAGES)
    order = sorted(range(len(PASSAGES)), key=lambda i: -exact[i])
    assert order == sorted(range(len(PASSAGES)), key=lambda i: -fast[i])
    assert order[0] == 0
    assert max(abs(a - b) for a, b in zip(exact, fast, strict=True)) < 1.0


def test_quantization_is_configurable(monkeypatch):
    monkeypatch.setenv("DEVRAG_RERANK_MODEL", str(RERANKER))
    monkeypatch.setenv("DEVRAG_DEVICE", "cpu")
    monkeypatch.setenv("DEVRAG_RERANK_QUANTIZE", "false")
    reranker = reranker_for(Settings())
    assert isinstance(reranker, CrossEncoderReranker) and not reranker.quantized
