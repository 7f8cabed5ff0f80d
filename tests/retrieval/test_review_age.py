"""Each result's review age: last commit date, last review, stale past a set age; recency as a vote."""

from __future__ import annotations

import datetime as dt

import pytest

from devrag.ingest.pipeline import ingest
from devrag.retrieval.document_ranking import Votes, rank_documents
from devrag.retrieval.review_age import ReviewAge, freshness, review_age
from devrag.retrieval.search import HybridIndex
from devrag.retrieval.search_config import SearchConfig
from tests.retrieval.test_search import OverlapReranker
from tests.support import chunk_of, document_of

TODAY = dt.datetime.now(dt.UTC).date()
REVIEWED = (TODAY - dt.timedelta(days=20)).isoformat()
OLD = "2020-03-02T12:00:00+00:00"


def runbook(title: str, reviewed: str | None = None) -> str:
    front = f"---\nlast_reviewed: {reviewed}\n---\n" if reviewed else ""
    return f"{front}# {title}\n\n## Fix\n\nRestart the {title.lower()} workers and check the queue depth.\n"


@pytest.fixture
def dated_repo(git_repo, monkeypatch):
    """Two runbooks committed in 2020 (one reviewed 20 days ago), a third committed today."""
    repo = git_repo("ops")
    monkeypatch.setenv("GIT_COMMITTER_DATE", OLD)
    repo.commit(
        {"runbooks/ledger.md": runbook("Ledger"), "runbooks/billing.md": runbook("Billing", REVIEWED)}
    )
    monkeypatch.delenv("GIT_COMMITTER_DATE")
    repo.commit({"runbooks/search.md": runbook("Search")})
    return repo


def reviews(
    index, embedder, config: SearchConfig | None = None, mode: str = "hybrid"
) -> dict[str, ReviewAge]:
    reranker = OverlapReranker() if mode == "hybrid+rerank" else None
    searcher = HybridIndex(index, embedder, reranker, config)
    response = searcher.search("restart workers queue depth", k=5, mode=mode)  # type: ignore[arg-type]
    searcher.close()
    assert all(r.review is not None for r in response.results)
    return {r.path: r.review for r in response.results if r.review is not None}


def test_a_result_is_stale_by_its_review_date_when_it_has_one_else_by_its_last_commit(
    index, embedder, dated_repo
):
    ingest(index, embedder, dated_repo.path, "ops")
    by_path = reviews(index, embedder)
    ledger, billing, search = (
        by_path["runbooks/ledger.md"],
        by_path["runbooks/billing.md"],
        by_path["runbooks/search.md"],
    )
    assert (ledger.last_commit_date, ledger.last_reviewed, ledger.basis) == (
        "2020-03-02",
        None,
        "last_commit",
    )
    assert ledger.stale and ledger.age_days == (TODAY - dt.date(2020, 3, 2)).days
    assert (billing.last_commit_date, billing.basis, billing.age_days) == ("2020-03-02", "last_reviewed", 20)
    assert not billing.stale, "reviewed 20 days ago: a 2020 commit does not make it stale"
    assert search.last_commit_date == TODAY.isoformat() and not search.stale
    assert all(r.recency is None and r.stale_after_days == 180 for r in by_path.values())
    strict = reviews(index, embedder, SearchConfig(stale_after_days=10))
    assert strict["runbooks/billing.md"].stale and not strict["runbooks/search.md"].stale


def test_a_commit_moves_only_the_last_commit_date_of_the_files_it_touches(index, embedder, dated_repo):
    ingest(index, embedder, dated_repo.path, "ops")
    dated_repo.commit({"runbooks/ledger.md": runbook("Ledger") + "\nPage the ledger team.\n"})
    ingest(index, embedder, dated_repo.path, "ops")
    by_path = reviews(index, embedder)
    assert by_path["runbooks/ledger.md"].last_commit_date == TODAY.isoformat()
    assert not by_path["runbooks/ledger.md"].stale
    assert by_path["runbooks/billing.md"].last_commit_date == "2020-03-02"


def test_recency_is_off_by_default_and_when_on_adds_its_vote_in_the_reranked_ranking(
    index, embedder, dated_repo
):
    ingest(index, embedder, dated_repo.path, "ops")
    plain = reviews(index, embedder, mode="hybrid+rerank")
    assert all(r.recency is None for r in plain.values())
    weighted = reviews(index, embedder, SearchConfig(recency_weight=1.0), mode="hybrid+rerank")
    for review in weighted.values():
        assert review.recency == pytest.approx(freshness(review) / (SearchConfig().document_rrf_k + 1))
    assert weighted["runbooks/search.md"].recency == pytest.approx(1 / 3)
    assert weighted["runbooks/ledger.md"].recency < 0.01, "six years old: next to nothing"
    assert all(
        r.recency is None for r in reviews(index, embedder, SearchConfig(recency_weight=1.0)).values()
    ), "only the reranked document ranking takes the vote"


@pytest.mark.parametrize("fresher", ["a.md", "b.md"])
def test_the_recency_vote_decides_between_documents_the_other_votes_tie_on(fresher):
    dates = {"a.md": "2020-01-01", "b.md": "2020-01-01"} | {fresher: TODAY.isoformat()}
    documents = {document_of(path): {"last_commit_date": date} for path, date in dates.items()}
    a, b = chunk_of("a.md"), chunk_of("b.md")
    dense, bm25 = [(a, 0.9), (b, 0.8)], [(b, 7.0), (a, 6.0)]  # one first place each
    tied = rank_documents(Votes(dense, bm25, documents=documents), SearchConfig())
    assert tied[0][1] == tied[1][1], "without recency the two documents tie"
    ranked = rank_documents(Votes(dense, bm25, documents=documents), SearchConfig(recency_weight=0.5))
    assert ranked[0][0] == document_of(fresher)
    assert ranked[0][1] - tied[0][1] == pytest.approx(0.5 / 3)


def test_freshness_halves_every_stale_age_and_is_zero_when_the_age_is_unknown():
    today = dt.date(2026, 6, 1)
    age = review_age({"last_commit_date": "2026-06-01"}, 100, today)
    assert freshness(age) == 1.0
    assert freshness(review_age({"last_reviewed": "2026-02-21"}, 100, today)) == pytest.approx(0.5)
    unknown = review_age({}, 100, today)
    assert (unknown.basis, unknown.age_days, unknown.stale, freshness(unknown)) == (None, None, False, 0.0)
