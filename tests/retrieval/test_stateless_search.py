"""A searcher holds no copy of the corpus: it groups hits into documents by their ids and reads the
payloads of its final candidates only, at any index size."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from devrag.ingest.pipeline import ingest
from devrag.retrieval.index import Index
from devrag.retrieval.schema import id_document
from devrag.retrieval.search import Filters, HybridIndex
from devrag.retrieval.search_config import SearchConfig
from devrag.retrieval.store import PointFilter, ScoredId, StoredPoint, VectorStore
from tests.conftest import open_test_store
from tests.retrieval.test_search import OverlapReranker

QUERY = "KubePodCrashLooping: pods restart after the deploy of the payments service"


class Reads:
    """A real store that counts the payloads each call reads (a recorder, not a stand-in)."""

    def __init__(self, store: VectorStore) -> None:
        self._store = store
        self.points = 0
        self.text = 0  # payloads read with their text
        self.scrolls: list[PointFilter | None] = []
        self.documents: set[str] = set()  # every document a first-stage hit belongs to

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def retrieve(
        self, ids: Sequence[str], with_vectors: bool = False, fields: Sequence[str] | None = None
    ) -> list[StoredPoint]:
        found = self._store.retrieve(ids, with_vectors, fields)
        self._count(found, fields)
        return found

    def scroll(
        self,
        flt: PointFilter | None = None,
        fields: Sequence[str] | None = None,
        with_vectors: bool = False,
        limit: int | None = None,
    ) -> Iterator[StoredPoint]:
        self.scrolls.append(flt)
        found = list(self._store.scroll(flt, fields, with_vectors, limit))
        self._count(found, fields)
        return iter(found)

    def search(self, vector: Sequence[float], limit: int, flt: PointFilter | None = None) -> list[ScoredId]:
        return self._hits(self._store.search(vector, limit, flt))

    def lexical_search(self, text: str, limit: int, flt: PointFilter | None = None) -> list[ScoredId]:
        return self._hits(self._store.lexical_search(text, limit, flt))

    def _hits(self, hits: list[ScoredId]) -> list[ScoredId]:
        self.documents |= {id_document(h.id) for h in hits}
        return hits

    def _count(self, points: Sequence[StoredPoint], fields: Sequence[str] | None) -> None:
        """Every payload a call returned, whether read by id or scrolled (a read of vectors alone,
        `fields=[]`, reads none)."""
        if fields is not None and not fields:
            return
        self.points += len(points)
        if fields is None or "text" in fields:
            self.text += len(points)


def corpus(copies: int) -> dict[str, str]:
    """Runbooks titled by alert names in a service folder, `copies` times over, and one more runbook."""
    files = {"runbooks/KubePodCrashLooping.md": "# KubePodCrashLooping\n\n## Meaning\n\nA pod restarts.\n"}
    for c in range(copies):
        for n in range(12):
            files[f"copy-{c}/runbooks/payments/Page{n}Alert{c}.md"] = (
                f"# Page{n}Alert{c}\n\n## Meaning\n\nPods restart after deploy {n}, crash loop in payments."
                "\n\n"
                f"## Steps\n\nkubectl rollout undo deployment/payments-{n}\n"
            )
    return files


def searched(index: Index, git_repo, embedder, copies: int) -> Reads:
    """Payload reads of opening a searcher on `copies` copies and running its first searches."""
    repo = git_repo(f"ops{copies}")
    repo.commit(corpus(copies))
    ingest(index, embedder, repo.path, "ops")
    reads = Reads(index.store)
    searcher = HybridIndex(Index(reads, index.model, index.dim), embedder, OverlapReranker(), SearchConfig())
    try:
        response = searcher.search(QUERY, k=3)
        assert response.results[0].route == "catalogue", "the alert name still routes"
        assert response.services == ["payments"], "the named service still gets its vote"
        filtered = searcher.search(
            "pods restart", k=3, mode="hybrid", filters=Filters(path="copy-0/runbooks/*")
        )
        assert filtered.results and all(r.path.startswith("copy-0/") for r in filtered.results)
    finally:
        searcher.close()
    return reads


@pytest.mark.parametrize("copies", [1, 8])
def test_a_search_reads_the_payloads_of_its_final_candidates_only(index, git_repo, embedder, copies):
    reads = searched(index, git_repo, embedder, copies)
    config = SearchConfig()
    shown = 2 * 3 * config.sections_per_document  # two searches, k = 3
    assert reads.text <= config.rerank_candidates + shown, "text is read for the reranker and results"
    # One chunk of each candidate document (the reranked search's opening and dates), the
    # catalogue's and openings' scrolls, the reranker's input and the results; no hit is read.
    assert reads.points <= len(reads.documents) + config.rerank_candidates + 2 * shown
    assert all(f is not None and (f.first or f.paths or f.folder) for f in reads.scrolls), (
        "every scroll is narrowed to a few documents by an indexed field"
    )


def test_opening_and_searching_reads_about_as_much_at_four_times_the_corpus(tmp_path, git_repo, embedder):
    def reads(copies: int) -> tuple[Reads, int]:
        index = Index(open_test_store("edge", tmp_path / str(copies)), embedder.name, embedder.dim)
        return searched(index, git_repo, embedder, copies), index.count()

    (small, _), (large, chunks) = reads(5), reads(20)
    # Only the overlap of the first stages' candidates varies: nothing grows with the corpus.
    assert large.points <= 1.25 * small.points, (small.points, large.points)
    assert large.points < chunks / 3, "a small fraction of the index"


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_two_copies_of_an_index_written_in_another_order_answer_alike(tmp_path, embedder, mode):
    """Equal scores (one page copied into three folders) come back in one order from every copy."""
    from devrag.retrieval.edge_store import EdgeStore
    from tests.retrieval.test_engine_bm25 import corpus_chunks, written

    page = "# Disk full\n\n## Steps\n\nFree space on the database host, then restart the writer.\n"
    for folder in ("x", "y", "z"):
        (tmp_path / "corpus" / folder).mkdir(parents=True)
        (tmp_path / "corpus" / folder / "disk.md").write_text(page)
    chunks = corpus_chunks(tmp_path / "corpus", embedder)
    answers = []
    for n, order in enumerate((chunks, chunks[::-1])):
        searcher = HybridIndex(written(EdgeStore(tmp_path / f"copy{n}"), order, embedder), embedder, None)
        results = searcher.search("database host disk full", k=3, mode=mode).results
        answers.append([(r.path, r.score) for r in results])
        searcher.close()
    if mode != "hybrid":  # fusion ranks the tie by its first stages' order
        assert len({score for _, score in answers[0]}) == 1, "a three-way tie"
    assert answers[0] == answers[1]
