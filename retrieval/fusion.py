"""Reciprocal Rank Fusion: merge ranked id lists without comparing their raw scores.

BM25 scores and cosine similarities live on unrelated scales, so fusing by score would let
one retriever drown the other; RRF uses only ranks (Cormack et al., 2009):
``score(id) = sum over lists of 1 / (k + rank)``, rank starting at 1. ``k = 60`` is the
paper's value: it damps the gap between rank 1 and rank 2 so that agreement between lists
outweighs a single list's top pick.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import TypeVar

__all__ = ["rrf"]

T = TypeVar("T", bound=Hashable)


def rrf(
    rankings: Sequence[Sequence[T]], k: int = 60, weights: Sequence[float] | None = None
) -> list[tuple[T, float]]:
    """Fuse ``rankings`` (each best first) into ``(id, score)`` pairs, best first.

    ``weights`` scales each ranking's contributions (default 1 each).

    An id repeated within one list counts once, at its best rank. Equal scores keep the
    order in which the ids first appear (list by list), so output never depends on hashing.
    Sums use ``math.fsum``, which is exact, so the order of the lists cannot change a score.
    """
    if k < 0:
        raise ValueError(f"rrf k must be >= 0, got {k}")
    contributions: dict[T, list[float]] = {}  # insertion order = first appearance
    for ranking, weight in zip(rankings, weights or [1.0] * len(rankings), strict=True):
        seen: set[T] = set()
        for rank, item in enumerate(ranking, start=1):
            if item not in seen:
                seen.add(item)
                contributions.setdefault(item, []).append(weight / (k + rank))
    fused = [(item, math.fsum(parts)) for item, parts in contributions.items()]
    fused.sort(key=lambda pair: -pair[1])  # stable: ties stay in first-appearance order
    return fused
