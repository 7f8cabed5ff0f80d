"""Information-retrieval metrics over ranked result paths.

Retrieval returns chunks, but the golden sets judge whole pages, so every metric here works
on *paths*: a result is relevant when its path is in the query's relevant set.

Duplicates: when several chunks of the same path appear in a ranking, only the first
occurrence counts; later duplicates are dropped *before* ranks are computed, so the rank of a
path is its position among distinct paths and a page can never be credited twice. The cut-off
``k`` therefore means "the top k distinct paths".

An empty relevant set scores 0.0 on every metric (nothing can be found), rather than raising,
so one odd query cannot abort a whole evaluation run.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence

__all__ = [
    "SUMMARY_KEYS",
    "distinct_top",
    "is_miss",
    "mrr_at",
    "ndcg_at",
    "recall_at",
    "summarize",
]

SUMMARY_KEYS = ("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10")


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")


def distinct_top(ranked: Iterable[str], k: int) -> list[str]:
    """The first ``k`` distinct paths of ``ranked``, in order (later duplicates skipped)."""
    _check_k(k)
    seen: set[str] = set()
    top: list[str] = []
    for path in ranked:
        if path in seen:
            continue
        seen.add(path)
        top.append(path)
        if len(top) == k:
            break
    return top


def recall_at(ranked: Sequence[str], relevant: Collection[str], k: int) -> float:
    """Fraction of the relevant paths that appear among the top ``k`` distinct paths."""
    wanted = set(relevant)
    if not wanted:
        _check_k(k)
        return 0.0
    found = sum(1 for path in distinct_top(ranked, k) if path in wanted)
    return found / len(wanted)


def mrr_at(ranked: Sequence[str], relevant: Collection[str], k: int = 10) -> float:
    """Reciprocal rank of the first relevant path within the top ``k``, else 0.0."""
    wanted = set(relevant)
    for rank, path in enumerate(distinct_top(ranked, k), start=1):
        if path in wanted:
            return 1.0 / rank
    return 0.0


def _discount(rank: int) -> float:
    return 1.0 / math.log2(rank + 1)


def ndcg_at(ranked: Sequence[str], relevant: Collection[str], k: int = 10) -> float:
    """Binary-gain nDCG@k; the ideal ranking puts min(k, |relevant|) relevant paths first."""
    wanted = set(relevant)
    top = distinct_top(ranked, k)
    if not wanted:
        return 0.0
    dcg = sum(_discount(rank) for rank, path in enumerate(top, start=1) if path in wanted)
    ideal = sum(_discount(rank) for rank in range(1, min(k, len(wanted)) + 1))
    return dcg / ideal


def is_miss(ranked: Sequence[str], relevant: Collection[str], k: int = 10) -> bool:
    """True when no relevant path is in the top ``k``: the queries worth inspecting by hand."""
    wanted = set(relevant)
    return not any(path in wanted for path in distinct_top(ranked, k))


def summarize(per_query: Sequence[tuple[Sequence[str], Collection[str]]]) -> dict[str, float]:
    """Mean of each headline metric over ``(ranked, relevant)`` pairs; all 0.0 for no queries."""
    totals = dict.fromkeys(SUMMARY_KEYS, 0.0)
    for ranked, relevant in per_query:
        totals["recall@1"] += recall_at(ranked, relevant, 1)
        totals["recall@5"] += recall_at(ranked, relevant, 5)
        totals["recall@10"] += recall_at(ranked, relevant, 10)
        totals["mrr@10"] += mrr_at(ranked, relevant, 10)
        totals["ndcg@10"] += ndcg_at(ranked, relevant, 10)
    count = len(per_query)
    if count == 0:
        return totals
    return {key: value / count for key, value in totals.items()}
