"""What a search tells an operator: candidates per stage, a probe of each leg, and its spans."""

from __future__ import annotations

import pytest

from devrag.ingest.pipeline import ingest
from devrag.retrieval.search import Filters, HybridIndex
from tests.retrieval.test_search import RUNBOOKS
from tests.support import blank_keyword_field


@pytest.fixture
def searcher(edge_index, git_repo, embedder):
    repo = git_repo("ops")
    repo.commit(RUNBOOKS)
    ingest(edge_index, embedder, repo.path, "ops")
    s = HybridIndex(edge_index, embedder, reranker=None)
    yield s
    s.close()


def test_each_stage_reports_its_candidates(searcher):
    response = searcher.search("pods in CrashLoopBackOff", k=3, mode="hybrid")
    counts = response.candidates
    indexed = searcher.index.count()
    assert counts["dense"] == indexed, "fewer chunks than min_candidates: dense returns every one"
    assert 1 <= counts["bm25"] < indexed, "only chunks with a query word"
    assert counts["fused"] == indexed and "rerank" not in counts


def test_a_single_leg_mode_reports_only_the_leg_that_ran(searcher):
    assert set(searcher.search("pods in CrashLoopBackOff", k=3, mode="dense").candidates) == {
        "dense",
        "fused",
    }
    assert set(searcher.search("pods in CrashLoopBackOff", k=3, mode="bm25").candidates) == {"bm25", "fused"}


def test_a_query_of_unindexed_words_leaves_the_keyword_leg_empty(searcher):
    counts = searcher.search("zzyzx qwvx", k=3, mode="hybrid").candidates
    assert counts["bm25"] == 0 and counts["dense"] > 0


def test_the_probe_asks_both_legs_with_indexed_words(searcher):
    probe = searcher.probe()
    assert set(probe) == {"dense", "bm25"} and min(probe.values()) > 0
    blank_keyword_field(searcher.index.store, "ops")
    assert searcher.probe()["bm25"] == 0


def test_an_empty_index_probes_nothing(edge_index, embedder):
    edge_index.prepare()
    assert HybridIndex(edge_index, embedder, None).probe() == {}


def test_a_search_is_one_trace_with_a_span_per_stage_and_no_query_text(searcher, spans):
    searcher.search("pods in CrashLoopBackOff", k=3, mode="hybrid", filters=Filters(repo="ops"))
    finished = {s.name: s for s in spans.get_finished_spans()}
    assert set(finished) == {
        "retrieval.search",
        "search.embed",
        "search.dense",
        "search.bm25",
        "search.payloads",
        "search.fusion",
    }
    root = finished["retrieval.search"]
    assert {s.context.trace_id for s in finished.values()} == {root.context.trace_id}
    assert finished["search.bm25"].parent.span_id == root.context.span_id, "the worker's span is a child"
    attributes = dict(root.attributes or {})
    assert attributes["devrag.mode"] == "hybrid" and attributes["devrag.k"] == 3
    assert attributes["devrag.repo"] == "ops" and attributes["devrag.candidates.dense"] > 0
    every_value = [str(v) for s in finished.values() for v in (s.attributes or {}).values()]
    assert not any("CrashLoopBackOff" in v for v in every_value)


def test_an_ingest_is_one_trace_with_a_span_per_phase(edge_index, git_repo, embedder, spans):
    repo = git_repo("ops")
    repo.commit(RUNBOOKS)
    ingest(edge_index, embedder, repo.path, "ops")
    finished = {s.name: s for s in spans.get_finished_spans()}
    assert {"ingest", "ingest.plan", "ingest.read", "ingest.compare", "ingest.write"} <= set(finished)
    assert "ingest.delete" in finished
    root = dict(finished["ingest"].attributes or {})
    assert root["devrag.repo"] == "ops" and root["devrag.chunks.written"] > 0
    assert dict(finished["ingest.read"].attributes or {})["devrag.files"] == len(RUNBOOKS)
