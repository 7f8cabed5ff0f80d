"""The embedded engine builds its vector index only when asked: `optimize` after writes, searches alike;
and `vacuum` drops replaced chunks from an indexed segment's BM25 statistics."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest
import qdrant_edge as qe

from devrag.retrieval import edge_store
from devrag.retrieval.edge_store import EdgeStore
from devrag.retrieval.lexical import Bm25Index
from devrag.retrieval.lexical_field import lexical_text
from devrag.retrieval.lexical_query import bm25_search
from devrag.retrieval.store import PointFilter, StoredPoint
from tests.support import lexical_point

DIM, POINTS = 384, 8_000  # past the engine's 10 MB indexing threshold, at the embedder's width


def indexed_vectors(index_dir: Path) -> int:
    shard = qe.EdgeShard.load(str(index_dir / "shard"))
    try:
        return int(shard.info().indexed_vectors_count)
    finally:
        shard.close()


def test_optimize_builds_the_vector_index_once_and_searches_find_the_same_nearest_points(tmp_path):
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((POINTS, DIM)).astype(np.float32)
    ids = [str(uuid.UUID(int=i + 1)) for i in range(POINTS)]
    store = EdgeStore(tmp_path / "index")
    store.ensure_collection(DIM)
    for start in range(0, POINTS, 1_000):
        batch = range(start, start + 1_000)
        store.upsert([StoredPoint(ids[i], {"repo": f"r{i % 4}"}, vectors[i].tolist()) for i in batch])
    probes = rng.choice(POINTS, 25, replace=False)
    queries = [vectors[i] + 0.05 * rng.standard_normal(DIM).astype(np.float32) for i in probes]

    def nearest(flt: PointFilter | None = None) -> list[str]:
        return [store.search(q.tolist(), 5, flt)[0].id for q in queries]

    scanned, scanned_repo = nearest(), nearest(PointFilter(repo="r1"))
    assert scanned == [ids[i] for i in probes]
    assert store.optimize() is True
    assert store.optimize() is False, "nothing new was written"
    assert nearest() == scanned and nearest(PointFilter(repo="r1")) == scanned_repo
    store.close()
    assert indexed_vectors(tmp_path / "index") == POINTS


def test_optimize_of_an_index_not_yet_written_does_nothing(tmp_path):
    store = EdgeStore(tmp_path / "index")
    assert store.optimize() is False
    store.close()


def write_random(store: EdgeStore, start: int, count: int) -> None:
    rng = np.random.default_rng(start)
    vectors = rng.standard_normal((count, DIM)).astype(np.float32)
    for offset in range(0, count, 1_000):
        batch = range(offset, min(count, offset + 1_000))
        store.upsert([StoredPoint(str(uuid.UUID(int=start + i + 1)), {}, vectors[i].tolist()) for i in batch])


def test_new_writes_are_indexed_in_a_segment_of_their_own_once_the_big_one_passes_the_merge_limit(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(edge_store, "MAX_SEGMENT_KB", 8_000)  # 8,000 vectors are 12 MB
    store = EdgeStore(tmp_path / "index")
    store.ensure_collection(DIM)
    write_random(store, 0, 8_000)
    assert store.optimize() is True
    segments = store.shard.info().segments_count
    write_random(store, 8_000, 7_000)  # 10.7 MB: past the engine's 10 MB indexing threshold
    assert store.optimize() is True
    info = store.shard.info()
    assert info.indexed_vectors_count == 15_000
    assert info.segments_count == segments + 1, "merged into the big segment: its graph was built again"
    store.close()


def test_a_shard_made_without_the_merge_limit_gets_it_when_opened(tmp_path):
    shard_dir = tmp_path / "index" / "shard"
    shard_dir.parent.mkdir()
    vectors = qe.EdgeVectorParams(size=DIM, distance=qe.Distance.Cosine)
    qe.EdgeShard.create(str(shard_dir), qe.EdgeConfig(vectors=vectors)).close()
    EdgeStore(tmp_path / "index").close()
    persisted = json.loads((shard_dir / "edge_config.json").read_text())
    assert persisted["optimizers"]["max_segment_size"] == edge_store.MAX_SEGMENT_KB
    assert persisted["vectors"][""]["size"] == DIM


def test_a_vacuum_gives_an_indexed_segment_the_bm25_of_its_live_chunks_again(tmp_path):
    """The engine counts a replaced chunk in an indexed segment's BM25 statistics until the segment
    is rewritten: `vacuum` rewrites it, and the engine ranks as the reference again."""
    rng = np.random.default_rng(11)
    vocabulary = [f"word{n}" for n in range(400)]
    texts = [list(rng.choice(vocabulary, int(rng.integers(5, 60)))) for _ in range(POINTS)]
    vectors = rng.standard_normal((POINTS, DIM)).astype(np.float32)
    points = [lexical_point(i, vectors[i].tolist(), texts[i]) for i in range(POINTS)]
    store = EdgeStore(tmp_path / "index")
    store.ensure_collection(DIM)
    for start in range(0, POINTS, 1_000):
        store.upsert(points[start : start + 1_000])
    assert store.optimize() is True  # one indexed segment
    reference = Bm25Index([(p.id, lexical_text(p.payload)) for p in points])
    queries = [" ".join(rng.choice(vocabulary, 3)) for _ in range(30)]

    def ratios() -> list[float]:
        expected = {q: dict(reference.search(q, 50)) for q in queries}
        return [h.score / expected[q][h.id] for q in queries for h in bm25_search(store, q, 10)]

    assert ratios() == pytest.approx([1.0] * 300, abs=1e-4)
    store.upsert(points[: POINTS // 10])  # rewritten unchanged, as an ingest rewrites a file's chunks
    assert max(abs(r - 1) for r in ratios()) > 1e-3, "the replaced versions no longer count"
    assert store.vacuum() is True
    assert ratios() == pytest.approx([1.0] * 300, abs=1e-4)
    assert store.vacuum() is False, "nothing replaced since"
    store.close()
