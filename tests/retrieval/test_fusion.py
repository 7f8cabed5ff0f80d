from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devrag.retrieval.fusion import rrf


def test_score_is_the_sum_of_reciprocal_ranks_starting_at_one() -> None:
    fused = dict(rrf([["a", "b"], ["b", "c"]], k=60))
    assert fused["a"] == pytest.approx(1 / 61)
    assert fused["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert fused["c"] == pytest.approx(1 / 62)


def test_agreement_between_lists_beats_one_list_top_pick() -> None:
    assert [item for item, _ in rrf([["a", "b"], ["c", "b"]])][0] == "b"


def test_each_id_appears_once_and_best_first() -> None:
    fused = rrf([["a", "b", "c"], ["c", "a"], ["a"]])
    assert [item for item, _ in fused] == ["a", "c", "b"]


def test_an_id_repeated_within_one_list_counts_only_at_its_best_rank() -> None:
    assert dict(rrf([["a", "b", "a"]], k=0)) == {"a": 1.0, "b": 0.5}


def test_ties_keep_first_appearance_order() -> None:
    assert [item for item, _ in rrf([["x", "y"], ["y", "x"]])] == ["x", "y"]
    assert [item for item, _ in rrf([["q"], ["p"], ["r"]])] == ["q", "p", "r"]


def test_no_rankings_fuse_to_nothing() -> None:
    assert rrf([]) == []
    assert rrf([[], []]) == []


def test_negative_k_is_rejected() -> None:
    with pytest.raises(ValueError):
        rrf([["a"]], k=-1)


ids = st.sampled_from(list("abcdefgh"))
rankings = st.lists(st.lists(ids, max_size=8, unique=True), min_size=1, max_size=5)


@given(rankings, st.sampled_from(["z"]), st.integers(min_value=0, max_value=100))
def test_an_id_first_in_every_list_is_first_overall(lists: list[list[str]], top: str, k: int) -> None:
    fused = rrf([[top, *ranking] for ranking in lists], k=k)
    assert fused[0][0] == top
    assert fused[0][1] > max((score for _, score in fused[1:]), default=0.0)


@given(rankings, st.randoms())
def test_the_order_of_the_lists_does_not_change_any_score(lists: list[list[str]], rng: object) -> None:
    shuffled = list(lists)
    rng.shuffle(shuffled)  # type: ignore[attr-defined]
    assert dict(rrf(lists)) == dict(rrf(shuffled))
