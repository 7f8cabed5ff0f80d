"""The latency benchmark runs end to end on a tiny index; no timing is asserted, only shape and method."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import pytest
from click.testing import CliRunner

from devrag.eval.latency_bench import STAGES, load_queries, run_bench
from devrag.eval.latency_report import render
from devrag.ingest.pipeline import ingest
from devrag.retrieval.rerank import CrossEncoderReranker
from devrag.retrieval.search import Filters
from devrag.server import cli as cli_module
from devrag.server.cli import main
from tests.support import RUNBOOK, HashEmbedder

FILES = {
    "runbooks/disk.md": RUNBOOK.format(host="db1"),
    "runbooks/crashloop.md": "# KubePodCrashLooping\n\n## Symptoms\n\nPods in `CrashLoopBackOff` restart "
    "again and again.\n\n## Fix\n\nCheck `kubectl logs --previous` for the last crash.\n",
    "guides/rollback.md": "# Rolling back\n\n## Rollback\n\nRun `helm rollback checkout-api 41` to return "
    "to the last good release.\n\n## Configure\n\nSet replicas in values.yaml.\n",
    "runbooks/etcd.md": "# EtcdHighFsyncDurations\n\n## Symptoms\n\nThe metric "
    "`etcd_disk_wal_fsync_duration_seconds` is high and `kube-apiserver` is slow.\n",
}
QUERIES = ["disk full on a database host", "pods in CrashLoopBackOff", "helm rollback", "etcd fsync slow"]


class _WordOverlapModel:
    """Stands in for a CrossEncoder: scores a pair by shared words, and counts its calls."""

    def __init__(self) -> None:
        self.pairs = 0

    def predict(self, pairs: Sequence[tuple[str, str]], **_: Any) -> list[float]:
        self.pairs += len(pairs)
        return [float(len(set(q.lower().split()) & set(p.lower().split()))) for q, p in pairs]


class FakeReranker(CrossEncoderReranker):
    """The real scoring and caching code of CrossEncoderReranker over a fake model."""

    def __init__(self) -> None:  # no super().__init__: nothing to load
        self.name = "fake-reranker"
        self.batch_size = 8
        self.model = _WordOverlapModel()
        self._cache = OrderedDict()
        self._cache_size = 4096


@pytest.fixture
def tiny_index(edge_index, git_repo, embedder):
    repo = git_repo("ops")
    repo.commit(FILES)
    ingest(edge_index, embedder, repo.path, "ops")
    return edge_index


def test_bench_reports_every_stage_of_every_mode_and_raw_rerank(tiny_index, embedder):
    reranker = FakeReranker()
    report = run_bench(tiny_index, embedder, reranker, QUERIES, candidates=[2, 4], repeats=2, k=3)
    assert report.chunks == tiny_index.count() > 0
    assert report.queries == len(QUERIES) and report.repeats == 2
    assert set(report.modes) == {"dense", "bm25", "hybrid", "hybrid+rerank"}
    assert set(report.modes["hybrid+rerank"]) == set(STAGES)
    assert set(report.modes["hybrid"]) == set(STAGES) - {"rerank"}
    assert "embed" not in report.modes["bm25"] and "bm25" not in report.modes["dense"]
    assert report.stages == report.modes["hybrid+rerank"] and report.default_mode == "hybrid+rerank"
    assert report.raw_rerank is not None and set(report.rerank_over_raw) == {"p50", "p95", "median_per_query"}
    assert set(report.rerank_by_candidates) == set(report.raw_rerank_by_candidates) == {"2", "4"}
    assert report.pairs_by_candidates["2"] <= 2 and report.pairs_by_candidates["4"] <= 4
    assert report.rerank_pairs_mean and report.rerank_pairs_mean > 0
    assert "predict" not in vars(reranker), "the pair recorder is removed afterwards"
    render(report)  # the human tables build from any report


def test_every_timed_query_is_fresh(tiny_index):
    """The query-vector and rerank caches are cleared, so every search embeds and reranks again."""
    embedder, reranker = HashEmbedder(), FakeReranker()
    run_bench(tiny_index, embedder, reranker, QUERIES, ["dense", "hybrid+rerank"], [], 3, 3, warmup=["warm"])
    searches = (1 + len(QUERIES) * 3) * 2  # warm-up plus timed, in both modes
    assert embedder.embedded == searches
    # the model saw each reranked search's pairs, plus the same pairs again for the raw timing
    assert reranker.model.pairs > 0 and reranker.model.pairs % 2 == 0


def test_without_a_reranker_only_first_stage_modes_run(tiny_index, embedder):
    report = run_bench(tiny_index, embedder, None, QUERIES, ["hybrid"], [], repeats=1)
    assert report.raw_rerank is None and report.rerank_by_candidates == {}
    assert report.default_mode == "hybrid" and "total" in report.stages
    with pytest.raises(ValueError, match="reranker"):
        run_bench(tiny_index, embedder, None, QUERIES, ["hybrid+rerank"], [], repeats=1)


def test_golden_queries_are_read_distinct_and_limited(tmp_path):
    golden = tmp_path / "golden.jsonl"
    rows = [("a", "disk full"), ("b", "disk full"), ("c", "etcd slow"), ("d", "helm rollback")]
    golden.write_text(
        "".join(json.dumps({"id": i, "query": q, "relevant": ["x.md"]}) + "\n" for i, q in rows)
    )
    assert load_queries(golden) == ["disk full", "etcd slow", "helm rollback"]
    assert load_queries(golden, 2) == ["disk full", "etcd slow"]
    assert len(load_queries(None)) >= 25


@pytest.fixture
def cli(tmp_path, monkeypatch, git_repo):
    monkeypatch.setenv("DEVRAG_INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.setattr(cli_module, "embedder_for", lambda settings: HashEmbedder())
    monkeypatch.setattr(cli_module, "reranker_for", lambda settings: FakeReranker())
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(main, list(args), catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result.output

    repo = git_repo("ops")
    repo.commit(FILES)
    return run, repo


def test_cli_json_has_the_summary_shape(cli, tmp_path):
    run, repo = cli
    golden = tmp_path / "golden.jsonl"
    lines = [json.dumps({"id": q, "query": q, "relevant": ["x.md"]}) for q in QUERIES]
    golden.write_text("\n".join(lines) + "\n")
    run("ingest", str(repo.path))
    args = ("--queries", str(golden), "--repeats", "1", "--candidates", "2,3", "--json")
    out = json.loads(run("bench", *args))
    assert {"chunks", "stages", "raw_rerank", "modes", "rerank_by_candidates"} <= set(out)
    assert out["chunks"] > 0 and out["queries"] == len(QUERIES)
    assert set(out["stages"]) == set(STAGES)
    assert all(set(v) == {"p50_ms", "p95_ms"} for v in out["stages"].values())
    assert set(out["raw_rerank"]) == {"p50_ms", "p95_ms"}
    assert set(out["modes"]) == {"dense", "bm25", "hybrid", "hybrid+rerank"}
    assert set(out["rerank_by_candidates"]) == {"2", "3"}
    assert all(set(v) == {"p50_ms", "p95_ms"} for v in out["rerank_by_candidates"].values())


def test_cli_human_output_and_errors(cli):
    run, repo = cli
    assert "empty" in run("bench", "--repeats", "1", code=1)
    run("ingest", str(repo.path))
    out = run("bench", "--repeats", "1", "--max-queries", "3", "--modes", "hybrid", "--candidates", "")
    assert "hybrid" in out and "targets" in out and "p50 / p95" in out
    assert "filters doc_type=runbook" in run(
        "bench", "--repeats", "1", "--modes", "bm25", "--candidates", "", "--type", "runbook"
    )
    assert "unknown modes" in run("bench", "--modes", "vanilla", code=2)


def test_cli_times_a_fresh_scaled_index_of_a_corpus_folder(cli, tmp_path):
    run, _ = cli
    corpus = tmp_path / "corpus"
    for path, text in FILES.items():
        (corpus / path).parent.mkdir(parents=True, exist_ok=True)
        (corpus / path).write_text(text)
    before = sorted(corpus.rglob("*"))
    args = ("--repeats", "1", "--modes", "bm25", "--candidates", "", "--max-queries", "2", "--json")
    out = json.loads(
        run("bench", "--corpus", str(corpus), "--scale", "2", "--workdir", str(tmp_path / "w"), *args)
    )
    assert out["environment"]["ingest"]["copies"] == 2
    assert out["environment"]["ingest"]["files"] == 2 * len(FILES)
    assert out["chunks"] == out["environment"]["ingest"]["chunks"]["written"] > 0
    assert sorted(corpus.rglob("*")) == before, "the corpus folder is left as it was"
    assert "need --corpus" in run("bench", "--scale", "3", code=2)


def test_filters_apply_to_every_timed_search(tiny_index, embedder):
    report = run_bench(
        tiny_index,
        embedder,
        None,
        QUERIES,
        ["bm25", "hybrid"],
        [],
        repeats=1,
        filters=Filters(path="runbooks/*"),
    )
    assert report.filters == {"path": "runbooks/*"} and set(report.modes) == {"bm25", "hybrid"}
    assert run_bench(tiny_index, embedder, None, QUERIES, ["bm25"], [], repeats=1).filters == {}
