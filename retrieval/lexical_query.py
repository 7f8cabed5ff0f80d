"""A query's BM25 ranking from the engine, each query term counted as often as the query repeats it."""

from __future__ import annotations

from dataclasses import dataclass, replace

from devrag.retrieval.lexical_field import query_parts
from devrag.retrieval.store import PointFilter, ScoredId, VectorStore

# How much deeper the next round reads when the hits read cannot yet prove the top `limit`. At 1M
# chunks a text query for 720 hits costs about what one for 45 does (11 ms against 9), but one for
# 11,520 five times as much: 16 times deeper cost more in all than 4 (p95 144 ms against 117).
_DEEPER = 4


@dataclass(frozen=True)
class _Part:
    """One weighted text query's hits at this round's depth."""

    weight: int
    text: str
    hits: list[ScoredId]
    scores: dict[str, float]
    last: float  # the lowest score read; 0 when the engine had no more hits than these

    @classmethod
    def read(cls, store: VectorStore, part: tuple[int, str], depth: int, flt: PointFilter | None) -> _Part:
        weight, text = part
        hits = store.lexical_search(text, depth, flt)
        scores = {hit.id: hit.score for hit in hits}
        return cls(weight, text, hits, scores, hits[-1].score if len(hits) == depth else 0.0)


def bm25_search(store: VectorStore, query: str, limit: int, flt: PointFilter | None = None) -> list[ScoredId]:
    """The best `limit` chunks for `query` by BM25, ranked by the engine.

    Why: an alert text names its subject twice ("the kube service ... kube saturation"), and BM25
    counts that repetition as evidence, where one text query counts each distinct word once. The
    field spells each term three ways, so a query repeating no term more than three times is one
    text query (98% of the golden queries; see `lexical_field`). Otherwise the query is split into
    weighted parts (see `query_parts`): the first holds every term, so every chunk that scores at
    all is among its hits once they are read deep enough. Each round reads every part `depth` deep,
    completes the first part's chunks with the later parts' scores (from their hits, else one text
    query restricted to the missing ids), and stops once no chunk outside the first part's hits can
    beat the `limit`-th total: such a chunk scores at most the first part's last score, and in a
    later part at most that part's last score (or its own, when read) and never more than in the
    first part, which holds that part's terms. Otherwise the next round reads deeper.
    """
    parts = query_parts(query)
    if len(parts) <= 1:
        return store.lexical_search(parts[0][1], limit, flt) if parts else []
    depth = limit
    rescored: list[dict[str, float]] = [{} for _ in parts[1:]]  # per later part, kept across rounds
    while True:
        first = _Part.read(store, parts[0], depth, flt)
        later = [_Part.read(store, part, depth, flt) for part in parts[1:]]
        ranked = sorted(_totals(store, first, later, flt, rescored), key=lambda hit: -hit.score)[:limit]
        if first.last == 0 or ranked[-1].score >= _best_outside(first, later):
            return ranked
        depth *= _DEEPER


def _totals(
    store: VectorStore,
    first: _Part,
    later: list[_Part],
    flt: PointFilter | None,
    rescored: list[dict[str, float]],
) -> list[ScoredId]:
    """The first part's chunks with their whole BM25 score (each later part's, weighted, added).

    A chunk a later part's hits miss is scored by a text query restricted to such chunks' ids,
    once: `rescored` keeps each part's scores (0 for a chunk it does not match) for the rounds after.
    """
    totals = dict(first.scores)
    for part, known in zip(later, rescored, strict=True):
        scores = {cid: score for cid, score in part.scores.items() if cid in totals}
        missing = [cid for cid in totals if cid not in scores and cid not in known]
        if missing and part.last > 0:  # else the part's hits hold every chunk it scores
            within = replace(flt or PointFilter(), ids=missing)
            found = {hit.id: hit.score for hit in store.lexical_search(part.text, len(missing), within)}
            known.update((cid, found.get(cid, 0.0)) for cid in missing)
        for cid in totals:
            score = scores.get(cid, known.get(cid, 0.0))
            totals[cid] += part.weight * score
    return [replace(hit, score=totals[hit.id]) for hit in first.hits]


def _best_outside(first: _Part, later: list[_Part]) -> float:
    """The most a chunk outside the first part's hits can score in all."""
    seen = {cid for part in later for cid in part.scores if cid not in first.scores}
    bounds = [_most(first.last, _read_for(cid, later), later) for cid in seen]
    return max([_most(first.last, {}, later), *bounds])


def _read_for(cid: str, later: list[_Part]) -> dict[int, float]:
    return {i: part.scores[cid] for i, part in enumerate(later) if cid in part.scores}


def _most(ceiling: float, known: dict[int, float], later: list[_Part]) -> float:
    """The most a chunk can score in all when its first-part score is at most `ceiling` and its
    scores in the later parts `known` (by position) are read.

    The later parts' terms are distinct terms of the first part, so their scores add up to at most
    the chunk's first-part score: the unread parts share what `ceiling` leaves, each up to its last
    score, the heaviest first.
    """
    total = ceiling + sum(later[i].weight * score for i, score in known.items())
    budget = ceiling - sum(known.values())
    for part in sorted((p for i, p in enumerate(later) if i not in known), key=lambda p: -p.weight):
        share = max(0.0, min(part.last, budget))
        total += part.weight * share
        budget -= share
    return total
