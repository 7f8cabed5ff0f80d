"""`devrag rebuild` on a Qdrant server: a new collection behind the alias, searches answering meanwhile."""

from __future__ import annotations

import shutil

import pytest

from devrag.ingest.pipeline import ingest
from devrag.ingest.rebuild import rebuild
from devrag.retrieval.edge_store import EdgeStore
from devrag.retrieval.errors import DevragError, IndexWriteError
from devrag.retrieval.index import INDEX_META_KEY, Index
from devrag.retrieval.qdrant_store import QdrantStore
from devrag.retrieval.search import HybridIndex
from tests.support import HashEmbedder

RUNBOOKS = {
    "runbooks/disk.md": "# Disk full\n\n## Steps\n\nFree space on the database host.\n",
    "runbooks/crash.md": "# Pods crash\n\n## Steps\n\nRoll back the deploy.\n",
}


class NewModel(HashEmbedder):
    """What a model change looks like to the index: another name (and vectors)."""

    name = "test-hash-embedder-v2"


def collections(store: QdrantStore) -> set[str]:
    return {c.name for c in store.client.get_collections().collections}


def alias_target(store: QdrantStore) -> str:
    return {a.alias_name: a.collection_name for a in store.client.get_aliases().aliases}[store.collection]


@pytest.fixture
def served(git_repo, embedder):
    """A Qdrant index of two repositories and a searcher reading it, as a server would."""
    store = QdrantStore.connect(":memory:", "devrag")
    index = Index(store, embedder.name, embedder.dim)
    repos = {}
    for name in ("ops", "docs"):
        repos[name] = git_repo(name)
        repos[name].commit(RUNBOOKS)
        ingest(index, embedder, repos[name].path, name)
    searcher = HybridIndex(index, embedder, reranker=None)
    yield index, searcher, repos
    searcher.close()
    store.close()


class SearchMeanwhile:
    """Progress that searches the live index at every step of the rebuild, as readers would."""

    def __init__(self, searcher: HybridIndex, store: QdrantStore) -> None:
        self.searcher, self.store = searcher, store
        self.before = alias_target(store)
        self.searches = 0

    def stage(self, name: str, total: int) -> None:
        self.advance(0)

    def advance(self, steps: int) -> None:
        assert alias_target(self.store) == self.before, "readers stay on the old collection"
        assert self.searcher.search("database disk full", k=2, mode="hybrid").results
        self.searches += 1


def test_a_rebuild_fills_a_new_collection_while_searches_answer_then_switches_at_once(served):
    index, searcher, _ = served
    store = index.store
    assert isinstance(store, QdrantStore)
    old = alias_target(store)
    meanwhile = SearchMeanwhile(searcher, store)
    summary = rebuild(Index(store, NewModel.name, NewModel.dim), NewModel, progress=meanwhile)
    assert meanwhile.searches > 4, "searched at every stage of both repositories"
    assert alias_target(store) == summary.built != old and summary.retired == [old, f"{old}_meta"]
    assert store.get_meta(INDEX_META_KEY)["model"] == NewModel.name, "the metadata moved with it"
    assert not store.client.collection_exists(old), "the previous collection is dropped"
    assert {r.repo for r in summary.repos} == {"ops", "docs"}
    assert store.count() == 2 * len(RUNBOOKS) * 2  # two chunks per runbook, two repositories
    # The same reader now answers from the new collection.
    new_reader = HybridIndex(Index(store, NewModel.name, NewModel.dim), NewModel(), reranker=None)
    assert (
        new_reader.search("roll back the deploy", k=1, mode="hybrid").results[0].path == "runbooks/crash.md"
    )


def test_keep_previous_leaves_the_old_collection_to_switch_back_to(served):
    index, _, _ = served
    summary = rebuild(index, HashEmbedder, keep_retired=True)
    assert summary.kept_retired and all(index.store.client.collection_exists(c) for c in summary.retired)


def test_a_failed_rebuild_drops_what_it_built_and_leaves_searches_on_the_old_collection(served):
    index, searcher, _ = served
    store = index.store
    before, held = alias_target(store), collections(store)
    shutil.rmtree(index.repo_state("docs").path)  # one repository is gone from this machine
    with pytest.raises(DevragError):
        rebuild(index, HashEmbedder)
    assert alias_target(store) == before
    assert collections(store) == held, "nothing left behind"
    assert searcher.search("database disk full", k=1, mode="hybrid").results


class CommitDuring:
    """Progress that commits a new runbook to every repository once the first one is rebuilt."""

    def __init__(self, repos) -> None:
        self.repos, self.stages = repos, 0

    def stage(self, name: str, total: int) -> None:
        self.stages += 1
        if self.stages == 3:  # the second repository's first stage: the first one is ingested
            for repo in self.repos.values():
                repo.commit({"runbooks/new.md": "# New\n\n## Steps\n\nWritten during the rebuild.\n"})

    def advance(self, steps: int) -> None:
        pass


def test_a_rebuild_that_no_longer_matches_head_is_not_switched_to(served):
    index, searcher, repos = served
    before = alias_target(index.store)
    with pytest.raises(IndexWriteError, match="does not hold what"):
        rebuild(index, HashEmbedder, progress=CommitDuring(repos))
    assert alias_target(index.store) == before
    assert searcher.search("database disk full", k=1, mode="hybrid").results


def test_the_embedded_index_is_told_how_to_rebuild_instead(tmp_path, embedder):
    index = Index(EdgeStore(tmp_path / "index"), embedder.name, embedder.dim)
    with pytest.raises(DevragError, match="removing its directory"):
        rebuild(index, lambda: embedder)
