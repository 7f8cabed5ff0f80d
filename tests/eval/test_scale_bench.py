"""The scale benchmark end to end at a tiny size, with the fake embedder, so it cannot rot."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner

from devrag.eval.scale_bench import ScaleOptions, _variants, run_scale_bench
from devrag.eval.scale_index import BENCH, SIDE, Layout, build, load_seed
from devrag.eval.scale_probe import ModelSpec
from devrag.ingest.pipeline import ingest
from devrag.server.cli import main
from tests.support import HashEmbedder

SAMPLE = Path(__file__).resolve().parents[2] / "corpus-sample"
QUERIES = [
    "node not ready kubelet",
    "postgres too many connections",
    "etcd fsync durations high",
    "tls certificate expiry",
    "consumer lag ledger worker",
    "pod crashlooping restart",
    "redis memory pressure eviction",
    "checkout api error rate",
    "expired gateway certificate",
    "double posting ledger",
    "disk latency etcd",
    "checkout outage",
]


class WordReranker:
    """Scores a passage by the query words it holds: enough to run the reranked mode."""

    name = "test-word-reranker"

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        words = set(query.lower().split())
        return [float(len(words & set(p.lower().split()))) for p in passages]


def fake_models() -> tuple[HashEmbedder, WordReranker]:
    return HashEmbedder(), WordReranker()


@pytest.fixture
def options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ScaleOptions:
    # The probe processes import this module's fake_models, from the repository root.
    monkeypatch.setenv("PYTHONPATH", str(SAMPLE.parent))
    corpora = []
    for name in ("runbooks", "postmortems"):
        corpora.append(tmp_path / "corpora" / name)
        shutil.copytree(SAMPLE / name, corpora[-1])
    golden = tmp_path / "golden.jsonl"
    rows = [{"id": f"q{i}", "query": q, "relevant": ["runbooks/x.md"]} for i, q in enumerate(QUERIES)]
    golden.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return ScaleOptions(
        sizes=[150, 450],
        workdir=tmp_path / "scale",
        corpora=corpora,
        golden=[golden],
        queries=3,
        edits=1,
        # The reranked first answer is the same probe in another mode: one mode keeps this fast.
        first_modes=["hybrid"],
        models=ModelSpec(factory=f"tests.eval.test_scale_bench:{fake_models.__name__}"),
    )


def test_scale_bench_measures_every_size_and_the_copied_index_is_what_ingest_would_write(
    options: ScaleOptions,
) -> None:
    report = run_scale_bench(options)

    assert [r.size for r in report.rows] == [150, 450]
    small, large = report.rows
    assert not small.errors and not large.errors
    assert small.index and large.index and large.index.copies > small.index.copies
    assert large.index.chunks == large.index.bench_chunks + large.index.side_chunks
    for row in report.rows:
        assert set(row.probes) == {"engine cold", "hybrid"}
        assert not row.probes["engine cold"].latency
        hybrid = row.probes["hybrid"]
        assert 0 < hybrid.first_answer_s <= hybrid.whole_process_s
        assert hybrid.rss_first_mib > 0 and hybrid.rss_after_queries_mib
        assert {k: v.queries for k, v in hybrid.latency.items()} == {"unfiltered": 3, "path": 3, "repo": 3}
        stages = hybrid.latency["unfiltered"]
        assert {"embed", "dense", "bm25"} <= set(stages.stages_p95_ms) == set(stages.stages_p50_ms)
        assert all(stages.stages_p95_ms[name] >= stages.stages_p50_ms[name] for name in stages.stages_p95_ms)
        assert row.engine_open_s and row.engine_rss_open_mib
        assert row.engine_warm_s is not None  # the timed probes ran once the owner had read the vectors
        assert row.ingest and row.ingest.embedded == 1 and len(row.ingest.samples_s) == 2
    assert small.ingest and small.ingest.fraction_of_smallest == 1.0

    # The built indexes are reused, and a full re-ingest of one rewrites nothing: the copied
    # points are exactly what ingest writes for the replicated repository.
    embedder = HashEmbedder()
    layout = Layout(options.workdir)
    seed = load_seed(options.corpora, layout, embedder)
    assert build(450, seed, layout, embedder).build_seconds is None
    index = layout.open(Path(large.index.index_dir), embedder)
    try:
        full = ingest(index, embedder, Path(large.index.repo_dir), BENCH, full=True)
        side = ingest(index, embedder, seed.repo / large.index.side_folder, SIDE, full=True)
    finally:
        index.close()
    assert full.chunks["written"] == 0 and full.chunks["deleted"] == 0 and embedder.embedded == 0
    assert side.chunks["written"] == 0 and side.chunks["deleted"] == 0


def test_bench_scale_on_qdrant_without_a_server_says_it_is_not_measured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEVRAG_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.delenv("DEVRAG_QDRANT_URL", raising=False)
    args = ["bench", "--scale", "--backend", "qdrant", "--workdir", str(tmp_path), "--json"]
    result = CliRunner().invoke(main, args, catch_exceptions=False)

    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["backend"] == "qdrant" and report["rows"] == []
    assert "not measured" in report["backend_note"]


def test_every_filter_is_timed_on_the_same_queries_spelled_apart() -> None:
    filters = {"unfiltered": {}, "path": {"path": "copy-001/po/"}, "repo": {"repo": "side"}}
    variants = _variants(filters, ["disk full on db1", "KubePodCrashLooping"])
    assert {name: fields for name, (fields, _) in variants.items()} == filters
    spelled = [queries for _, queries in variants.values()]
    assert all([q.rstrip() for q in each] == ["disk full on db1", "KubePodCrashLooping"] for each in spelled)
    assert len({q for each in spelled for q in each}) == 6, "no variant reuses another's cached vector"
