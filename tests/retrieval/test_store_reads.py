"""What every store reads: hits named by ids that carry their document, scrolls up to a limit."""

from __future__ import annotations

from pathlib import Path

import pytest

from devrag.retrieval.lexical_query import bm25_search
from devrag.retrieval.owned_store import OwnedStore
from devrag.retrieval.schema import document_key, id_document
from devrag.retrieval.search_config import SearchConfig
from devrag.retrieval.store import VectorStore
from tests.conftest import open_test_store
from tests.retrieval.test_engine_bm25 import corpus_chunks, written
from tests.support import SAMPLE, HashEmbedder


@pytest.fixture(params=["edge", "qdrant-local", "owned"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path):
    """The embedded engine, qdrant-client (the server code path), and an engine behind its owner."""
    store: VectorStore = (
        OwnedStore(tmp_path / "index")
        if request.param == "owned"
        else open_test_store(request.param, tmp_path / "index")
    )
    yield store
    store.close()


def test_every_hit_names_its_document_by_its_id_alone(any_store):
    """A search groups hits into documents without reading a payload: on every store, a hit's id
    (as the store returns it) begins with its document's key."""
    embedder = HashEmbedder()
    chunks = corpus_chunks(SAMPLE, embedder)
    written(any_store, chunks, embedder)
    vector = embedder.embed(["pods restart after the deploy"])[0]
    limit = SearchConfig().min_candidates
    dense = any_store.search(vector, limit)
    lexical = bm25_search(any_store, "pods restart after the deploy", limit)
    for hits in (dense, lexical):
        assert len(hits) == limit
        read = {p.id: p.payload for p in any_store.retrieve([h.id for h in hits], fields=["repo", "path"])}
        assert read.keys() == {h.id for h in hits}
        assert all(id_document(i) == document_key(p["repo"], p["path"]) for i, p in read.items())


def test_a_scroll_stops_at_its_limit_and_a_vector_is_found_for_each_hash_either_way(any_store):
    """`scroll(limit=...)` reads no more than asked (a page of that size), on every store; the
    index looks a few content hashes up one point each and many by batch, with the same vectors."""
    embedder = HashEmbedder()
    chunks = corpus_chunks(SAMPLE, embedder)
    index = written(any_store, chunks, embedder)
    everything = [p.id for p in any_store.scroll(fields=[])]
    assert len(everything) == len(chunks) > 3
    assert [p.id for p in any_store.scroll(fields=[], limit=3)] == everything[:3]
    assert [p.id for p in any_store.scroll(fields=[], limit=len(chunks) + 5)] == everything
    hashes = sorted({c.content_hash for c in chunks})
    few, many = index.vectors_by_hash(hashes[:2]), index.vectors_by_hash(hashes)
    assert len(hashes) > 32 and set(few) == set(hashes[:2]) and set(many) == set(hashes)
    assert all(few[h] == pytest.approx(many[h]) for h in few)


def test_every_metadata_key_is_listed_however_many(tmp_path: Path):
    """157 repositories' skip records take more than 10,000 keys (64 shares each): qdrant-client's
    store lists them page by page (the embedded one lists its metadata folder)."""
    store = open_test_store("qdrant-local", tmp_path / "index")
    store.ensure_collection(8)
    keys = [f"skipped.{n % 64:02x}:repo-{n // 64}" for n in range(10_050)]
    for key in keys:
        store.put_meta(key, {"files": []})
    assert store.meta_keys() == sorted(keys)
    store.close()
