from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devrag.eval.metrics import is_miss, mrr_at, ndcg_at, recall_at, summarize


def test_recall_counts_relevant_paths_in_the_top_k() -> None:
    ranked = ["a", "x", "b", "y", "c"]
    assert recall_at(ranked, {"a", "b", "c", "d"}, 1) == 0.25
    assert recall_at(ranked, {"a", "b", "c", "d"}, 3) == 0.5
    assert recall_at(ranked, {"a", "b", "c", "d"}, 5) == 0.75


def test_recall_ranks_duplicate_chunks_of_a_path_only_once() -> None:
    # Distinct paths: a, x, b -> b is at rank 3, inside k=3 only because duplicates are skipped.
    ranked = ["a", "a", "x", "a", "b"]
    assert recall_at(ranked, {"b"}, 3) == 1.0
    assert recall_at(ranked, {"b"}, 2) == 0.0


def test_recall_does_not_count_a_duplicated_relevant_path_twice() -> None:
    assert recall_at(["a", "a", "a"], {"a", "b"}, 3) == 0.5


def test_recall_is_zero_when_nothing_relevant_is_found() -> None:
    assert recall_at(["x", "y"], {"a"}, 10) == 0.0
    assert recall_at([], {"a"}, 10) == 0.0


def test_metrics_are_zero_for_an_empty_relevant_set() -> None:
    assert recall_at(["a"], set(), 5) == 0.0
    assert mrr_at(["a"], set()) == 0.0
    assert ndcg_at(["a"], set()) == 0.0
    assert is_miss(["a"], set())


def test_metrics_reject_a_non_positive_k() -> None:
    with pytest.raises(ValueError, match="k must be >= 1"):
        recall_at(["a"], {"a"}, 0)
    with pytest.raises(ValueError, match="k must be >= 1"):
        mrr_at(["a"], {"a"}, 0)


def test_mrr_is_the_reciprocal_rank_of_the_first_relevant_path() -> None:
    assert mrr_at(["a", "b"], {"a"}) == 1.0
    assert mrr_at(["x", "y", "b", "a"], {"a", "b"}) == pytest.approx(1 / 3)


def test_mrr_ranks_after_skipping_duplicate_paths() -> None:
    assert mrr_at(["x", "x", "x", "b"], {"b"}) == 0.5


def test_mrr_is_zero_when_the_first_relevant_path_is_beyond_k() -> None:
    assert mrr_at(["x", "y", "a"], {"a"}, k=2) == 0.0
    assert mrr_at(["x", "y", "a"], {"a"}, k=3) == pytest.approx(1 / 3)


def test_ndcg_is_one_for_a_perfect_ranking() -> None:
    assert ndcg_at(["a", "b", "x"], {"a", "b"}) == pytest.approx(1.0)


def test_ndcg_discounts_relevant_paths_by_log2_of_rank() -> None:
    # Relevant at ranks 2 and 4 of distinct paths; ideal puts both at ranks 1 and 2.
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    ideal = 1 / math.log2(2) + 1 / math.log2(3)
    assert ndcg_at(["x", "a", "y", "b"], {"a", "b"}) == pytest.approx(dcg / ideal)


def test_ndcg_ideal_is_limited_to_k_when_there_are_more_relevant_paths() -> None:
    # k=2 with 3 relevant paths: the ideal only has 2 slots, so a and b at the top is perfect.
    assert ndcg_at(["a", "b", "c"], {"a", "b", "c"}, k=2) == pytest.approx(1.0)
    expected = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert ndcg_at(["x", "a", "b"], {"a", "b", "c"}, k=2) == pytest.approx(expected)


def test_ndcg_credits_a_duplicated_path_once_at_its_first_rank() -> None:
    # Distinct: x, a, b -> a at rank 2, b at rank 3; the second "a" chunk earns nothing.
    dcg = 1 / math.log2(3) + 1 / math.log2(4)
    ideal = 1 + 1 / math.log2(3)
    assert ndcg_at(["x", "a", "a", "b"], {"a", "b"}) == pytest.approx(dcg / ideal)


def test_ndcg_is_zero_when_nothing_relevant_is_in_the_top_k() -> None:
    assert ndcg_at(["x", "y", "a"], {"a"}, k=2) == 0.0


def test_is_miss_reports_queries_without_a_relevant_path_in_the_top_k() -> None:
    assert is_miss(["x", "y", "a"], {"a"}, k=2)
    assert not is_miss(["x", "y", "a"], {"a"}, k=3)
    assert not is_miss(["x", "x", "x", "a"], {"a"}, k=2)


def test_summarize_averages_each_metric_over_queries() -> None:
    per_query = [
        (["a", "x"], {"a"}),  # hit at rank 1
        (["x", "y", "b"], {"b", "c"}),  # one of two found, at rank 3
    ]
    summary = summarize(per_query)
    assert list(summary) == ["recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10"]
    assert summary["recall@1"] == pytest.approx(0.5)
    assert summary["recall@5"] == pytest.approx((1 + 0.5) / 2)
    assert summary["recall@10"] == pytest.approx(0.75)
    assert summary["mrr@10"] == pytest.approx((1 + 1 / 3) / 2)
    second_ndcg = (1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert summary["ndcg@10"] == pytest.approx((1 + second_ndcg) / 2)


def test_summarize_of_no_queries_is_all_zero() -> None:
    assert summarize([]) == {
        "recall@1": 0.0,
        "recall@5": 0.0,
        "recall@10": 0.0,
        "mrr@10": 0.0,
        "ndcg@10": 0.0,
    }


paths = st.sampled_from(["a", "b", "c", "d", "e", "f", "g", "h"])


@given(
    ranked=st.lists(paths, max_size=20),
    relevant=st.sets(paths, max_size=6),
    k=st.integers(min_value=1, max_value=12),
)
def test_every_metric_stays_between_zero_and_one(ranked: list[str], relevant: set[str], k: int) -> None:
    for value in (recall_at(ranked, relevant, k), mrr_at(ranked, relevant, k)):
        assert 0.0 <= value <= 1.0
    assert 0.0 <= ndcg_at(ranked, relevant, k) <= 1.0 + 1e-12
    assert all(0.0 <= v <= 1.0 + 1e-12 for v in summarize([(ranked, relevant)]).values())


@given(
    ranked=st.lists(paths, max_size=20),
    relevant=st.sets(paths, max_size=6),
    k=st.integers(min_value=1, max_value=12),
)
def test_recall_never_decreases_as_k_grows(ranked: list[str], relevant: set[str], k: int) -> None:
    assert recall_at(ranked, relevant, k) <= recall_at(ranked, relevant, k + 1)
