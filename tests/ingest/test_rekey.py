"""An index of older chunk ids is re-keyed in place by the next ingest: vectors and payloads kept,
every id led by its document's key, exactly the ids a fresh ingest gives."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from devrag.ingest import pipeline
from devrag.ingest.pipeline import ingest
from devrag.retrieval.edge_store import EdgeStore
from devrag.retrieval.errors import IndexMismatchError
from devrag.retrieval.index import INDEX_META_KEY, Index
from devrag.retrieval.schema import ID_VERSION, document_key, id_document
from devrag.retrieval.search import HybridIndex
from devrag.retrieval.store import StoredPoint
from tests.support import RUNBOOK

_V1_NAMESPACE = uuid.UUID("5b0f7c52-3c1e-4d0a-9a43-2f4f4d1b6e11")
# A document whose two sections are the same text: their ids differ only by occurrence.
TWICE = "# Twice\n\n## Check\n\nRun `df -h` on the host.\n\n## Check\n\nRun `df -h` on the host.\n"


def version_1_id(repo: str, path: str, chunk_hash: str, occurrence: int) -> str:
    """A chunk id as devrag made it before ids began with their document's key."""
    return str(uuid.uuid5(_V1_NAMESPACE, f"{repo}\0{path}\0{chunk_hash}\0{occurrence}"))


def _points(index: Index) -> dict[tuple[str, int], StoredPoint]:
    return {(p.payload["path"], p.payload["section"]): p for p in index.store.scroll(with_vectors=True)}


@pytest.fixture
def old_index(index, git_repo, embedder, monkeypatch):
    """An index ingested with version 1 ids, recorded as such (no `ids` in its build record)."""
    repo = git_repo("ops")
    repo.commit({"r0.md": RUNBOOK.format(host="h0"), "r1.md": RUNBOOK.format(host="h1"), "twice.md": TWICE})
    with monkeypatch.context() as version_1:
        version_1.setattr(pipeline, "chunk_id", version_1_id)
        ingest(index, embedder, repo.path, "ops")
    meta = index.store.get_meta(INDEX_META_KEY) or {}
    index.store.put_meta(INDEX_META_KEY, {k: v for k, v in meta.items() if k != "ids"})
    return index, repo


def _fresh_ids(tmp_path: Path, repo, embedder) -> set[str]:
    store = EdgeStore(tmp_path / "fresh")
    try:
        ingest(Index(store, embedder.name, embedder.dim), embedder, repo.path, "ops")
        return {p.id for p in store.scroll(fields=[])}
    finally:
        store.close()


def test_the_next_ingest_rekeys_every_chunk_in_place(old_index, embedder, tmp_path):
    index, repo = old_index
    before = _points(index)
    with pytest.raises(IndexMismatchError, match="rewrites every chunk in place"):
        index.check_compatible()  # what every reader checks when it opens the index
    assert index.respell_pending() == len(before)
    summary = ingest(index, embedder, repo.path, "ops")
    assert summary.mode == "noop" and summary.chunks["respelled"] == len(before)
    after = _points(index)
    assert after.keys() == before.keys()
    assert {p.id for p in after.values()} == _fresh_ids(tmp_path, repo, embedder)
    for place, new in after.items():
        old = before[place]
        assert id_document(new.id) == document_key("ops", new.payload["path"]) and new.id != old.id
        assert new.vector == pytest.approx(old.vector, abs=1e-6)  # the engine may normalize it again
        assert new.payload["text"] == old.payload["text"]
        assert new.payload["opening"] in {p.id for p in after.values()}
    assert (index.store.get_meta(INDEX_META_KEY) or {})["ids"] == ID_VERSION
    assert index.respell_pending() == 0
    found = HybridIndex(index, embedder, None).search("disk full h1", 1, "hybrid")
    assert [r.path for r in found.results] == ["r1.md"]


def test_a_rekeying_cut_off_between_writing_and_deleting_is_finished_by_the_next_ingest(
    old_index, embedder, tmp_path, monkeypatch
):
    index, repo = old_index
    chunks = index.count()

    def cut_off(self, ids):
        raise KeyboardInterrupt

    with monkeypatch.context() as killed:
        killed.setattr(Index, "delete", cut_off)
        with pytest.raises(KeyboardInterrupt):
            ingest(index, embedder, repo.path, "ops")
    assert index.count() > chunks, "the first batch stands under both ids"
    ingest(index, embedder, repo.path, "ops")
    assert index.count() == chunks
    assert {p.id for p in index.store.scroll(fields=[])} == _fresh_ids(tmp_path, repo, embedder)
