from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rank_bm25 import BM25Okapi

from devrag.retrieval.lexical import Bm25Index, LexicalIndex
from devrag.retrieval.tokenize import tokenize

RUNBOOKS = [
    ("crash", "Pod stuck in CrashLoopBackOff after a deploy: read the container logs."),
    ("apiserver", "kube-apiserver returns HTTP 503 while etcd elects a leader."),
    ("fsync", "Alert etcd_disk_wal_fsync_duration_seconds is high: the etcd disk is slow."),
    ("reset", "Clients see ERR_CONN_RESET from the ingress load balancer."),
    ("reset-prose", "Reset the connection pool after errors from the database."),
    ("taint", "Node unreachable: the taint node.kubernetes.io/unreachable was applied."),
    ("tls", "Rotate the TLS certificates of the ingress controller before they expire."),
]


def lucene_okapi(corpus: list[list[str]]) -> BM25Okapi:
    """rank_bm25's BM25Okapi, k1=1.2, b=0.75, with the IDF the index documents using."""
    model = BM25Okapi(corpus, k1=1.2, b=0.75)
    n = model.corpus_size
    df = {word: sum(word in doc for doc in model.doc_freqs) for word in model.idf}
    model.idf = {word: math.log(1 + (n - f + 0.5) / (f + 0.5)) for word, f in df.items()}
    return model


def assert_scores_match_rank_bm25(docs: list[tuple[str, str]], query: str) -> None:
    corpus = [tokenize(text) for _, text in docs]
    if not any(corpus):  # rank_bm25 itself divides by zero on a corpus without terms
        assert Bm25Index(docs).search(query, limit=len(docs)) == []
        return
    expected = lucene_okapi(corpus).get_scores(tokenize(query))
    got = dict(Bm25Index(docs).search(query, limit=len(docs)))
    for (chunk_id, _), score in zip(docs, expected, strict=True):
        if score > 0:
            assert got.pop(chunk_id) == pytest.approx(score, rel=1e-12), chunk_id
    assert got == {}  # nothing that rank_bm25 scores 0 comes back


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("CrashLoopBackOff", "crash"),
        ("crashloop", "crash"),
        ("backoff", "crash"),
        ("kube-apiserver", "apiserver"),
        ("apiserver", "apiserver"),
        ("503", "apiserver"),
        ("ERR_CONN_RESET", "reset"),
        ("conn reset", "reset"),
        ("fsync", "fsync"),
        ("etcd_disk_wal_fsync_duration_seconds", "fsync"),
        ("node.kubernetes.io/unreachable", "taint"),
        ("certificate expiry", "tls"),
    ],
)
def test_identifiers_find_their_runbook_first(query: str, expected: str) -> None:
    results = Bm25Index(RUNBOOKS).search(query, limit=3)
    assert results[0][0] == expected


def test_a_repeated_query_term_counts_as_often_as_it_occurs() -> None:
    index = Bm25Index(RUNBOOKS)
    once = dict(index.search("etcd disk", limit=10))
    etcd = dict(index.search("etcd", limit=10))
    twice = dict(index.search("etcd etcd disk", limit=10))
    assert twice.keys() == once.keys()
    assert twice == pytest.approx({doc: once[doc] + etcd.get(doc, 0.0) for doc in once})
    assert any(doc in etcd for doc in once)  # the repeat adds to some document's score


@pytest.mark.parametrize(
    "query", ["CrashLoopBackOff", "etcd slow disk", "ingress reset", "503 503", "nothing here"]
)
def test_scores_equal_rank_bm25_get_scores(query: str) -> None:
    assert_scores_match_rank_bm25(RUNBOOKS, query)


words = st.sampled_from(["pod", "node", "etcd", "disk", "kube-apiserver", "503", "Backoff"])


@given(
    st.lists(st.lists(words, max_size=12).map(" ".join), min_size=1, max_size=8),
    st.lists(words, min_size=1, max_size=4).map(" ".join),
)
def test_scores_equal_rank_bm25_on_any_small_corpus(texts: list[str], query: str) -> None:
    assert_scores_match_rank_bm25([(f"d{i}", t) for i, t in enumerate(texts)], query)


def test_a_term_in_most_documents_still_scores_matches_above_zero() -> None:
    # BM25Okapi's own IDF is <= 0 here; ours must keep every match positive.
    docs = [("a", "disk full"), ("b", "disk slow"), ("c", "disk gone"), ("d", "cpu hot")]
    results = Bm25Index(docs).search("disk", limit=10)
    assert [chunk_id for chunk_id, _ in results] == ["a", "b", "c"]
    assert all(score > 0 for _, score in results)


def test_rarer_terms_outweigh_common_ones() -> None:
    docs = [("a", "pod restart"), ("b", "pod oom"), ("c", "pod evicted"), ("d", "node oom")]
    assert Bm25Index(docs).search("pod oom", limit=1)[0][0] == "b"


def test_allowed_restricts_results_to_those_ids() -> None:
    index = Bm25Index(RUNBOOKS)
    results = index.search("etcd ingress", limit=10, allowed={"tls", "fsync", "missing"})
    assert {chunk_id for chunk_id, _ in results} == {"tls", "fsync"}
    assert index.search("etcd", limit=10, allowed=[]) == []


@pytest.mark.parametrize("wrap", [set, frozenset, list, tuple])
def test_allowed_gives_the_same_results_in_any_collection_type(wrap: type) -> None:
    index = Bm25Index(RUNBOOKS)
    extra = {f"gone-{i}" for i in range(50)}  # larger than the hits: walks the hits instead
    for allowed in [{"tls", "fsync"}, {"tls", "fsync"} | extra, {"crash"}]:
        expected = [r for r in index.search("etcd ingress", limit=10) if r[0] in allowed]
        assert index.search("etcd ingress", limit=10, allowed=wrap(allowed)) == expected


def test_limit_caps_results_and_ties_keep_document_order() -> None:
    docs = [(f"d{i}", "same text here") for i in range(5)] + [("x", "other words")]
    index = Bm25Index(docs)
    assert [chunk_id for chunk_id, _ in index.search("text", limit=3)] == ["d0", "d1", "d2"]
    assert index.search("text", limit=0) == []


def test_results_are_sorted_best_first() -> None:
    scores = [score for _, score in Bm25Index(RUNBOOKS).search("etcd disk ingress", limit=10)]
    assert len(scores) >= 3
    assert scores == sorted(scores, reverse=True)


def test_empty_index_returns_no_results() -> None:
    index = Bm25Index()
    assert len(index) == 0
    assert index.search("CrashLoopBackOff", limit=5) == []
    index.rebuild([])
    assert index.search("pod", limit=5) == []


def test_documents_without_tokens_index_without_error() -> None:
    index = Bm25Index([("a", ""), ("b", "!!!"), ("c", "the")])
    assert len(index) == 3
    assert index.search("pod", limit=5) == []


def test_rebuild_replaces_the_previous_corpus() -> None:
    index = Bm25Index(RUNBOOKS)
    index.rebuild([("new", "fresh pod"), ("other", "stale node"), ("third", "disk")])
    assert len(index) == 3
    assert index.search("CrashLoopBackOff", limit=5) == []
    assert index.search("pod", limit=5)[0][0] == "new"


def test_duplicate_chunk_ids_are_rejected() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        Bm25Index([("a", "pod"), ("a", "node"), ("b", "disk")])


def test_bm25_index_satisfies_the_lexical_index_protocol() -> None:
    assert isinstance(Bm25Index(), LexicalIndex)
