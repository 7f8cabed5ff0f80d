"""A query's BM25 ranking from the engine, each query term counted as often as the query repeats it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from devrag.retrieval.lexical_field import query_layers
from devrag.retrieval.store import PointFilter, ScoredId, VectorStore

# How much deeper each layer is read when its first hits cannot yet prove the top `limit`.
_DEEPER = 4


def bm25_search(
    store: VectorStore, query: str, limit: int, flt: PointFilter | None = None, fields: Sequence[str] = ()
) -> list[ScoredId]:
    """The best `limit` chunks for `query` by BM25, ranked by the engine; with `fields` where one query did.

    Why: an alert text names its subject twice ("the kube service ... kube saturation"), and BM25
    counts that repetition as evidence, where one text query counts each term once. Most queries
    repeat no term: one text query. Otherwise each repetition level (see `query_layers`) proposes
    its best chunks, every level scores all of them (restricted to their ids), and the threshold
    algorithm decides when to stop: no chunk outside the proposals can score more than the sum of
    each level's last proposed score, so once the `limit`-th exact total reaches that sum, the
    ranking is BM25's exactly; otherwise the levels are read deeper. Their hits come without payloads
    (the caller reads those of the chunks it keeps).
    """
    layers = query_layers(query)
    if len(layers) <= 1:
        return store.lexical_search(layers[0], limit, flt, fields) if layers else []
    depth = limit
    while True:
        proposals = [store.lexical_search(layer, depth, flt) for layer in layers]
        bound = sum(hits[-1].score for hits in proposals if len(hits) == depth)
        ranked = _exact_totals(store, layers, [h.id for hits in proposals for h in hits], flt)[:limit]
        if bound == 0 or (len(ranked) == limit and ranked[-1].score >= bound):
            return ranked
        depth *= _DEEPER


def _exact_totals(
    store: VectorStore, layers: list[str], ids: list[str], flt: PointFilter | None
) -> list[ScoredId]:
    """Every chunk of `ids` with its BM25 sum over the layers, best first."""
    pool = list(dict.fromkeys(ids))
    if not pool:
        return []
    within = replace(flt or PointFilter(), ids=pool)
    totals = dict.fromkeys(pool, 0.0)
    for layer in layers:
        for hit in store.lexical_search(layer, len(pool), within):
            totals[hit.id] += hit.score
    return [ScoredId(cid, score) for cid, score in sorted(totals.items(), key=lambda pair: -pair[1])]
