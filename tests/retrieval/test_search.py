"""Hybrid search over a real index: consistency with ingestion, filters, evidence and modes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from devrag.ingest.pipeline import ingest
from devrag.retrieval.document_ranking import Votes, rank_documents
from devrag.retrieval.index import Index
from devrag.retrieval.search import Filters, HybridIndex
from devrag.retrieval.search_config import SearchConfig
from devrag.retrieval.store import StoredPoint, VectorStore
from tests.support import chunk_of, document_of

RUNBOOKS = {
    "runbooks/crashloop.md": "# KubePodCrashLooping\n\n## Symptoms\n\nPods in `CrashLoopBackOff` restart "
    "again and again.\n\n## Fix\n\nCheck `kubectl logs --previous` for the last crash.\n",
    "runbooks/etcd.md": "# EtcdHighFsyncDurations\n\n## Symptoms\n\nThe metric "
    "`etcd_disk_wal_fsync_duration_seconds` is high and `kube-apiserver` is slow.\n",
    "runbooks/gateway.md": "# Gateway errors\n\n## Symptoms\n\nClients see `HTTP 503` and `ERR_CONN_RESET` "
    "from the payments gateway.\n",
    "postmortems/2026-01-01-outage.md": "# Checkout outage\n\n## Summary\n\nA bad deploy caused a "
    "crash loop in checkout-api for 40 minutes.\n",
    "guides/deploy.md": "# Deploying\n\n## Rollback\n\nRun `helm rollback checkout-api` to the last "
    "good revision.\n",
}


# One candidate chunk per search: the title chunk alone, when BM25 ranks it first.
ONE_CHUNK = SearchConfig(overfetch=1, candidates_per_document=1, min_candidates=1)


@pytest.fixture
def runbooks(index, git_repo, embedder):
    """The index with RUNBOOKS ingested."""
    repo = git_repo("ops")
    repo.commit(RUNBOOKS)
    ingest(index, embedder, repo.path, "ops")
    return index


@pytest.fixture
def searcher(runbooks, embedder):
    s = HybridIndex(runbooks, embedder, reranker=None)
    yield s
    s.close()


@pytest.mark.parametrize(
    ("query", "path"),
    [
        ("CrashLoopBackOff", "runbooks/crashloop.md"),
        ("crashloop", "runbooks/crashloop.md"),
        ("etcd_disk_wal_fsync_duration_seconds", "runbooks/etcd.md"),
        ("fsync", "runbooks/etcd.md"),
        ("apiserver", "runbooks/etcd.md"),
        ("503", "runbooks/gateway.md"),
        ("ERR_CONN_RESET", "runbooks/gateway.md"),
    ],
)
def test_bm25_finds_operational_identifiers_whole_and_by_parts(searcher, query, path):
    results = searcher.search(query, k=1, mode="bm25").results
    assert results and results[0].path == path


def test_every_result_carries_its_citation_and_per_stage_evidence(searcher):
    response = searcher.search("pods in CrashLoopBackOff", k=3, mode="hybrid")
    top = response.results[0]
    assert (top.repo, top.path, top.title, len(top.commit)) == (
        "ops",
        "runbooks/crashloop.md",
        "KubePodCrashLooping",
        40,
    )
    best = top.sections[0]
    assert best.headings == ["KubePodCrashLooping", "Symptoms"]
    assert best.start_line == 3 and best.end_line == 5
    assert best.scores.bm25_rank == 1 and best.scores.dense_rank is not None
    assert best.scores.rrf_score == best.score == top.score, "a document scores as its best section"
    assert not response.reranked and {"embed", "dense", "bm25", "fusion", "total"} <= set(response.timings_ms)


def test_k_counts_documents_and_each_shows_its_best_sections(index, git_repo, embedder):
    sections = "".join(f"\n\n## Step {n}\n\nRestart the `ledger` service, attempt {n}." for n in range(8))
    repo = git_repo("ops")
    repo.commit(RUNBOOKS | {"runbooks/ledger.md": f"# Ledger restarts{sections}\n"})
    ingest(index, embedder, repo.path, "ops")
    searcher = HybridIndex(index, embedder, reranker=None)
    for mode in ("dense", "bm25", "hybrid"):
        results = searcher.search("restart the ledger service", k=2, mode=mode).results
        paths = [r.path for r in results]
        assert len(paths) == 2 and len(set(paths)) == 2, f"{mode}: one document per slot"
        ledger = next(r for r in results if r.path == "runbooks/ledger.md")
        assert len(ledger.sections) == searcher.config.sections_per_document
        scores = [s.score for s in ledger.sections]
        assert scores == sorted(scores, reverse=True) and ledger.score >= scores[0], "title may score best"
        assert len({s.id for s in ledger.sections}) == len(ledger.sections)
    searcher.close()


def test_a_title_alone_is_never_shown_as_a_section(runbooks, embedder):
    index = runbooks
    searcher = HybridIndex(index, embedder, reranker=None, config=ONE_CHUNK)
    response = searcher.search("KubePodCrashLooping", k=1, mode="bm25")
    searcher.close()
    (top,) = response.results
    assert top.path == "runbooks/crashloop.md"
    (shown,) = top.sections
    assert shown.via_title, "the title chunk alone matched (shortest, so first in BM25)"
    assert shown.headings == ["KubePodCrashLooping", "Symptoms"] and "CrashLoopBackOff" in shown.text
    assert shown.scores.bm25_rank == 1 and shown.score == top.score
    wide = HybridIndex(index, embedder, reranker=None)
    for mode in ("dense", "bm25", "hybrid"):
        for r in wide.search("KubePodCrashLooping crash loop", k=5, mode=mode).results:
            assert all(s.text.strip() != f"# {r.title}" for s in r.sections), "no title-only passage"
    wide.close()


def test_a_heading_with_nothing_under_it_is_never_shown_as_a_passage(index, git_repo, embedder):
    repo = git_repo("ops")
    repo.commit(
        {
            "runbooks/disk.md": "# DiskFull\n\n## Meaning\n\nThe data disk is full.\n\n## Mitigation\n",
            "runbooks/etcd.md": "# EtcdSlow\n\n## Diagnosis\n\n### Disk\n\nCheck fsync latency.\n",
        }
    )
    ingest(index, embedder, repo.path, "ops")
    searcher = HybridIndex(index, embedder, reranker=None)
    for query, path in (("Mitigation", "runbooks/disk.md"), ("Diagnosis", "runbooks/etcd.md")):
        for mode in ("dense", "bm25", "hybrid"):
            shown = {r.path: r for r in searcher.search(query, k=5, mode=mode).results}[path]
            assert all(
                any(not line.startswith("#") for line in s.text.split("\n") if line.strip())
                for s in shown.sections
            ), (query, mode, [s.text for s in shown.sections])
    searcher.close()


class DeletedOnRead:
    """A real store where an ingest deletes `ids` the moment a search first asks for them."""

    def __init__(self, store: VectorStore, ids: set[str]) -> None:
        self._store, self._ids = store, ids

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def retrieve(
        self, ids: Sequence[str], with_vectors: bool = False, fields: Sequence[str] | None = None
    ) -> list[StoredPoint]:
        if gone := self._ids & set(ids):
            self._store.delete(sorted(gone))
            self._ids -= gone
        return self._store.retrieve(ids, with_vectors, fields)


def test_a_title_match_whose_lead_section_is_deleted_meanwhile_shows_its_title(runbooks, embedder):
    index = runbooks
    lead = HybridIndex(index, embedder, reranker=None, config=ONE_CHUNK)
    (shown,) = lead.search("KubePodCrashLooping", k=1, mode="bm25").results[0].sections
    lead.close()
    assert shown.via_title, "the lead section is read last, for the title's match"
    racing = Index(DeletedOnRead(index.store, {shown.id}), index.model, index.dim)
    searcher = HybridIndex(racing, embedder, reranker=None, config=ONE_CHUNK)
    (top,) = searcher.search("KubePodCrashLooping", k=1, mode="bm25").results
    searcher.close()
    assert top.path == "runbooks/crashloop.md"
    (title,) = top.sections
    assert title.id != shown.id and not title.via_title and title.text.strip() == "# KubePodCrashLooping"


class IngestDuringSearch:
    """A real store where an ingest of `repo` starts the moment a search first asks the engine,
    and stops after writing the new version of a file, before deleting the chunks it replaces:
    what a search sees in the middle of an ingest."""

    def __init__(self, store: VectorStore, repo: Any, embedder: Any) -> None:
        self._store, self._repo, self._embedder = store, repo, embedder
        self.started = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def lexical_search(self, *args: Any, **kwargs: Any) -> Any:
        if not self.started:
            self.started = True
            writer = Index(StopsBeforeDeleting(self._store), self._embedder.name, self._embedder.dim)
            with pytest.raises(RuntimeError, match="stopped"):
                ingest(writer, self._embedder, self._repo.path, "ops")
        return self._store.lexical_search(*args, **kwargs)


class StopsBeforeDeleting:
    def __init__(self, store: VectorStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def delete(self, ids: Sequence[str]) -> None:
        raise RuntimeError("stopped before deleting the replaced chunks")


def test_a_search_during_an_ingest_shows_one_version_of_a_document_cited_where_its_text_is(
    runbooks, git_repo, embedder
):
    repo = git_repo("ops")
    indexed = repo.head()
    repo.commit({"runbooks/crashloop.md": RUNBOOKS["runbooks/crashloop.md"].replace("again and", "over and")})
    racing = IngestDuringSearch(runbooks.store, repo, embedder)
    searcher = HybridIndex(Index(racing, runbooks.model, runbooks.dim), embedder, reranker=None)
    searcher.known()  # the repository's state as it was before the ingest began
    (top, *_) = searcher.search("CrashLoopBackOff restart again over", k=3, mode="bm25").results
    assert racing.started and top.path == "runbooks/crashloop.md"
    lines = [(s.start_line, s.end_line) for s in top.sections]
    assert len(lines) == len(set(lines)), "one version of each section"
    assert top.commit == indexed and all("over and" not in s.text for s in top.sections)
    ingest(runbooks, embedder, repo.path, "ops")  # the ingest runs again, to its end
    (top, *_) = searcher.search("CrashLoopBackOff restart again over", k=3, mode="bm25").results
    assert top.commit == repo.head() and any("over and" in s.text for s in top.sections)
    searcher.close()


def test_filters_apply_to_both_retrievers(searcher):
    for mode in ("dense", "bm25", "hybrid"):
        by_type = searcher.search(
            "crash loop checkout", k=10, mode=mode, filters=Filters(doc_type="postmortem")
        )
        assert {r.path for r in by_type.results} == {"postmortems/2026-01-01-outage.md"}
        by_path = searcher.search("crash loop checkout", k=10, mode=mode, filters=Filters(path="runbooks/*"))
        assert by_path.results and all(r.path.startswith("runbooks/") for r in by_path.results)
        nothing = searcher.search("crash loop", k=10, mode=mode, filters=Filters(repo="other"))
        assert nothing.results == [] and not nothing.path_unmatched
        assert by_path.path_unmatched is False
        unmatched = searcher.search("crash loop", k=10, mode=mode, filters=Filters(path="playbooks/*"))
        assert unmatched.results == [] and unmatched.path_unmatched
        typo = searcher.search("crash loop", k=10, mode=mode, filters=Filters(team="sre", tag="k8s"))
        assert typo.results == [] and typo.values_unmatched == ["team='sre'", "tag='k8s'"]
        assert by_type.values_unmatched == [] and nothing.values_unmatched == []


def test_a_search_after_ingest_sees_new_chunks_and_never_tombstoned_ones(searcher, git_repo, embedder):
    assert searcher.search("ERR_CONN_RESET", k=5, mode="bm25").results
    repo = git_repo("ops")
    repo.commit(
        {"runbooks/gateway.md": None, "runbooks/dns.md": "# DNS\n\n## Fix\n\nFlush `NXDOMAIN` caches.\n"}
    )
    ingest(searcher.index, embedder, repo.path, "ops")
    for mode in ("dense", "bm25", "hybrid"):
        paths = {r.path for r in searcher.search("ERR_CONN_RESET NXDOMAIN", k=10, mode=mode).results}
        assert "runbooks/gateway.md" not in paths
        assert "runbooks/dns.md" in paths


def test_reranking_without_a_reranker_is_refused_not_silently_skipped(searcher):
    with pytest.raises(ValueError, match="Reranking is off"):
        searcher.search("anything", mode="hybrid+rerank")


class OverlapReranker:
    """A stand-in cross-encoder: shared words between query and passage."""

    name = "overlap"

    def score(self, query: str, passages):
        words = set(query.lower().split())
        return [float(len(words & set(p.lower().split()))) for p in passages]


def test_reranking_ranks_documents_then_their_chunks_and_keeps_the_evidence(index, git_repo, embedder):
    repo = git_repo("ops")
    repo.commit(RUNBOOKS)
    ingest(index, embedder, repo.path, "ops")
    searcher = HybridIndex(index, embedder, OverlapReranker())
    response = searcher.search("helm rollback checkout-api revision", k=6)
    searcher.close()
    assert response.reranked and response.results[0].path == "guides/deploy.md"
    paths = [r.path for r in response.results]
    assert len(paths) == len(set(paths)), "one result per document"
    assert [r.score for r in response.results] == sorted((r.score for r in response.results), reverse=True)
    read = [s for r in response.results for s in r.sections if s.scores.rerank_score is not None]
    assert read and all(s.score == s.scores.rerank_score for s in read), (
        "a read section shows its rerank score"
    )
    for r in response.results:
        scores = [s.score for s in r.sections]
        assert scores == sorted(scores, reverse=True), "a document's sections come best first"


class PathReranker:
    """A stand-in cross-encoder that scores passages by which document they come from."""

    name = "by-path"

    def __init__(self, favourite: str, favourite_score: float, other_score: float) -> None:
        self.favourite, self.favourite_score, self.other_score = favourite, favourite_score, other_score

    def score(self, query: str, passages):
        return [self.favourite_score if self.favourite in p else self.other_score for p in passages]


def _hybrid_documents(searcher: HybridIndex, query: str) -> list[str]:
    return [r.path for r in searcher.search(query, k=10, mode="hybrid").results]


@pytest.mark.parametrize(
    ("favourite_score", "other_score", "winner"),
    [(8.0, -8.0, "second"), (-9.0, -10.0, "first")],
    ids=["a-confident-reranker-decides", "an-unconfident-one-defers-to-the-first-stage"],
)
def test_the_rerankers_vote_counts_as_much_as_it_is_confident(
    searcher, index, embedder, favourite_score, other_score, winner
):
    query = "crash loop restarts in checkout-api"
    first, second = _hybrid_documents(searcher, query)[:2]
    titles = {
        "runbooks/crashloop.md": "KubePodCrashLooping",
        "postmortems/2026-01-01-outage.md": "Checkout outage",
    }
    assert {first, second} == set(titles), "the fixture's two crash-loop pages lead the first stage"
    reranking = HybridIndex(index, embedder, PathReranker(titles[second], favourite_score, other_score))
    top = reranking.search(query, k=3).results[0].path
    reranking.close()
    assert top == {"first": first, "second": second}[winner]


def test_reranked_search_with_filters_that_match_nothing_returns_no_results(index, git_repo, embedder):
    repo = git_repo("ops")
    repo.commit(RUNBOOKS)
    ingest(index, embedder, repo.path, "ops")
    searcher = HybridIndex(index, embedder, OverlapReranker())
    response = searcher.search("helm rollback", k=3, filters=Filters(path="nowhere/*"))
    searcher.close()
    assert response.results == [] and response.reranked


@pytest.mark.parametrize("about", ["a.md", "b.md"])
def test_the_lead_vote_decides_between_documents_the_chunk_votes_tie_on(about):
    a1, a2, b1, b2 = chunk_of("a.md", 0), chunk_of("a.md", 1), chunk_of("b.md", 0), chunk_of("b.md", 1)
    dense, bm25 = [(a1, 0.9), (b1, 0.8)], [(b2, 7.0), (a2, 6.0)]  # one first place each
    lead = {document_of("a.md"): 0.2, document_of("b.md"): 0.2} | {document_of(about): 0.7}
    ranked = rank_documents(Votes(dense, bm25, lead=lead), SearchConfig())
    other = "b.md" if about == "a.md" else "a.md"
    assert [doc for doc, _ in ranked] == [document_of(about), document_of(other)]
    untied = rank_documents(Votes(dense, bm25, lead=lead), SearchConfig(lead_vote=0))
    assert untied[0][1] == untied[1][1], "without it the two documents tie"


@pytest.mark.parametrize(("lead_vote", "weight"), [(0.5, 1.75), (0.0, 1.5)])
def test_the_service_vote_keeps_its_first_stage_share_among_the_reranked_votes(lead_vote, weight):
    """In the first stage it is one of three equal votes; among the reranked ranking's two first
    stages, cross-encoder and opening vote it weighs (3 + lead_vote) / 2 times as much."""
    config = SearchConfig(lead_vote=lead_vote)
    [(doc, score)] = rank_documents(Votes(service=[(chunk_of("svc.md"), 0.9)]), config)
    assert doc == document_of("svc.md") and score == pytest.approx(weight / (config.document_rrf_k + 1))


def _split_votes(dense_top: float, dense_tenth: float) -> tuple[list, list]:
    """Dense puts a.md first and b.md second, BM25 the other way round; each has ten hits."""
    others = [chunk_of(f"x{i}.md") for i in range(8)]
    step = (dense_top - dense_tenth) / 9
    dense = [
        (cid, dense_top - i * step) for i, cid in enumerate([chunk_of("a.md"), chunk_of("b.md"), *others])
    ]
    bm25 = [(cid, 9.0 - i) for i, cid in enumerate([chunk_of("b.md", 1), chunk_of("a.md", 1), *others])]
    return dense, bm25


@pytest.mark.parametrize(
    ("dense_top", "dense_tenth", "spread", "expected"),
    [(0.9, 0.3, 0.15, "tie"), (0.62, 0.60, 0.15, "b.md"), (0.62, 0.60, 0.0, "tie")],
    ids=["a-confident-dense-leg-counts-fully", "a-flat-one-gives-way", "weighting-off"],
)
def test_each_first_stage_vote_counts_as_much_as_it_is_confident(dense_top, dense_tenth, spread, expected):
    """Ten dense scores that barely fall (0.62 to 0.60) say little about their order: BM25's first
    place then outweighs dense's, where equally confident legs tie."""
    dense, bm25 = _split_votes(dense_top, dense_tenth)
    ranked = rank_documents(Votes(dense, bm25), SearchConfig(vote_spread=spread))
    (first, a), (second, b) = ranked[:2]
    if expected == "tie":
        assert a == pytest.approx(b) and {first, second} == {document_of("a.md"), document_of("b.md")}
    else:
        assert first == document_of(expected) and a > b
