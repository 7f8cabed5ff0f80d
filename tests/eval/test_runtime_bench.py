"""The runtime comparison runs end to end; no timing is asserted, only that each runtime is measured."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from devrag.eval.runtime_bench import (
    EMBED_TURNS,
    WARM_TEXTS,
    compare_runtimes,
    embedding_seconds,
    runtime_table,
)
from devrag.ingest.pipeline import ingest
from devrag.server.cli import main
from tests.eval.test_latency_bench import FILES, QUERIES, FakeReranker
from tests.support import EMBED_MODEL, ONNX_DIR, RERANKER, onnx_export_missing


def test_each_runtime_gets_its_embedding_throughput_and_rerank_stage(edge_index, git_repo, embedder):
    repo = git_repo("ops")
    repo.commit(FILES)
    ingest(edge_index, embedder, repo.path, "ops")
    texts = list(FILES.values()) * 3
    report = compare_runtimes(
        edge_index, {"a": (embedder, FakeReranker()), "b": (embedder, FakeReranker())}, texts, QUERIES, 1, 3
    )
    assert [r.runtime for r in report.rows] == ["a", "b"] and report.queries == len(QUERIES)
    for row in report.rows:
        assert row.embed_chunks == len(texts) and row.embed_chunks_per_second > 0
        assert row.raw_rerank is not None and row.rerank_pairs_mean and row.rerank_pairs_mean > 0
    runtime_table(report, "tiny")  # the table builds from any report


class _Logged:
    """An embedder that notes who embedded how many texts, in call order."""

    def __init__(self, name: str, log: list[tuple[str, int]]) -> None:
        self.name, self.log = name, log

    def embed(self, texts: list[str]) -> list[list[float]]:
        self.log.append((self.name, len(texts)))
        return [[0.0] for _ in texts]


def test_the_runtimes_embed_in_turns_each_turn_led_by_the_next_runtime():
    log: list[tuple[str, int]] = []
    texts = [f"text {i}" for i in range(100)]
    seconds = embedding_seconds({"a": _Logged("a", log), "b": _Logged("b", log)}, texts)  # type: ignore[dict-item]
    warm, turns = log[:2], log[2:]
    assert warm == [("a", WARM_TEXTS), ("b", WARM_TEXTS)] and set(seconds) == {"a", "b"}
    assert len(turns) == 2 * EMBED_TURNS
    assert [who for who, _ in turns[:4]] == ["a", "b", "b", "a"]
    for runtime in "ab":
        assert sum(n for who, n in turns if who == runtime) == len(texts)


@pytest.mark.model
def test_bench_compares_the_onnx_and_torch_runtimes_on_one_corpus(tmp_path, monkeypatch):
    if reason := onnx_export_missing(EMBED_MODEL) or onnx_export_missing(str(RERANKER)):
        pytest.skip(reason)
    corpus = tmp_path / "corpus"
    for rel, text in FILES.items():
        (corpus / rel).parent.mkdir(parents=True, exist_ok=True)
        (corpus / rel).write_text(text)
    monkeypatch.setenv("DEVRAG_ONNX_DIR", str(ONNX_DIR))
    monkeypatch.setenv("DEVRAG_RERANK_MODEL", str(RERANKER))
    args = ["bench", "--corpus", str(corpus), "--runtimes", "onnx,onnx:int8,torch", "--repeats", "1"]
    result = CliRunner().invoke(main, [*args, "--max-queries", "2", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert [r["runtime"] for r in report["rows"]] == ["onnx", "onnx:int8", "torch"]
    assert all(r["embed_chunks"] > 0 and r["raw_rerank"] for r in report["rows"])
    bad = CliRunner().invoke(main, ["bench", "--runtimes", "onnx,jax", "--corpus", str(corpus)])
    assert bad.exit_code == 2 and "unknown runtime 'jax'" in bad.output
    bad = CliRunner().invoke(main, ["bench", "--runtimes", "onnx:bfloat16", "--corpus", str(corpus)])
    assert bad.exit_code == 2 and "the onnx runtime runs float32, int8" in bad.output
