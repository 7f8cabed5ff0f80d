"""The document ranking of a search: votes of the first stages, the cross-encoder and the lead section,
fused by RRF over documents, and the alert's documents put first."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from devrag.retrieval.alert_catalog import AlertMatch, Document
from devrag.retrieval.fusion import rrf
from devrag.retrieval.review_age import ReviewAge, freshness, review_age
from devrag.retrieval.schema import document_key, id_document
from devrag.retrieval.search_config import SearchConfig
from devrag.retrieval.search_results import Chunk

_SPREAD_DEPTH = 10  # a first stage's confidence compares its best score with its tenth


# A ranked document: its score and its matching chunks with their own scores, best first.
RankedDocument = tuple[float, list[tuple[str, float]]]


def routed(
    ranked: list[RankedDocument], matches: list[tuple[Document, AlertMatch]], openings: dict[Document, str]
) -> tuple[list[RankedDocument], dict[Document, AlertMatch]]:
    """The ranking with the alert's documents first, each with why; the rest keep their order.

    A routed document keeps its own score and sections when the ranking found it; one it did not
    find shows its opening section, scored 0 (its evidence is the match, not a stage). Filters
    still apply: a routed document outside them has no opening in `openings` and is left out.
    """
    found = {id_document(sections[0][0]): (score, sections) for score, sections in ranked}
    first: list[RankedDocument] = []
    matched: dict[Document, AlertMatch] = {}
    for doc, match in matches:
        opening = openings.get(doc)
        if doc in matched or opening is None:
            continue
        matched[doc] = match
        first.append(found.get(document_key(*doc)) or (0.0, [(opening, 0.0)]))
    keys = {document_key(*doc) for doc in matched}
    rest = [item for item in ranked if id_document(item[1][0][0]) not in keys]
    return first + rest, matched


def by_document(ranked: list[tuple[str, float]]) -> list[RankedDocument]:
    """A chunk ranking as documents in order of their best chunk, each scored by it."""
    return [(sections[0][1], sections) for sections in _members(ranked).values()]


def _members(ranked: list[tuple[str, float]]) -> dict[str, list[tuple[str, float]]]:
    """Each document's chunks of a ranking, in ranking order, by document key; documents in order
    of their best."""
    members: dict[str, list[tuple[str, float]]] = {}
    for cid, score in ranked:
        members.setdefault(id_document(cid), []).append((cid, score))
    return members


@dataclass(frozen=True)
class Votes:
    """What the reranked ranking counts: the first stages' chunk hits (dense, BM25 and the named
    services' leg, best first), the cross-encoder's logit by chunk id, the lead section's cosine by
    document key, and the documents' dates by document key (for recency)."""

    dense: list[tuple[str, float]] = field(default_factory=list)
    bm25: list[tuple[str, float]] = field(default_factory=list)
    service: list[tuple[str, float]] = field(default_factory=list)
    rerank: dict[str, float] = field(default_factory=dict)
    lead: dict[str, float] = field(default_factory=dict)
    documents: Mapping[str, Chunk] = field(default_factory=dict)


def reranked_documents(
    fused: list[tuple[str, float]], votes: Votes, config: SearchConfig
) -> list[RankedDocument]:
    """Documents in `rank_documents` order, each with the chunks the reranker read, best first.

    A document's sections that the reranker did not read are left out rather than shown unjudged
    beside ones it did (the client can fetch the whole document); a document the reranker did not
    read at all keeps its fused chunks.
    """
    members = _members(fused)
    ranked: list[RankedDocument] = []
    for doc, score in rank_documents(votes, config):
        fused_sections = members[doc]  # every ranked document has a fused chunk
        read = [(cid, votes.rerank[cid]) for cid, _ in fused_sections if cid in votes.rerank]
        read.sort(key=lambda p: -p[1])
        ranked.append((score, read or fused_sections))
    return ranked


def rank_documents(votes: Votes, config: SearchConfig) -> list[tuple[str, float]]:
    """Documents by RRF over three votes: dense, BM25 and the cross-encoder, each ranking documents.

    A document's rank in a list is its best chunk's place among distinct documents, so a page
    with many matching sections does not crowd out its neighbours. Alone, the cross-encoder
    ranked the right runbook first less often than either first stage (it confuses sibling
    alerts), so it gets one vote of three, weighted by its own confidence (`_rerank_vote`).
    The first stages' votes are weighted by their confidence too (`_spread_weight`): a rank alone
    would count a leg whose ten best scores are all alike as much as one with a clear winner.
    A lighter fourth vote ranks the documents by their lead section's similarity to the query
    (`lead`): chunk votes see a page's sections one at a time, this one what the page is about.
    When the query names a known service, the documents of that service get a vote, in the order
    of their dense similarity (`service`; see `HybridIndex._service_leg`), with the share of the
    ranking it has in the first stage's fusion: there `service_vote` beside two votes of 1, here
    beside those two, the cross-encoder's and the opening vote, so its weight grows in proportion.
    Measured on the alert and question sets (README, "Retrieval quality").
    """
    k = config.document_rrf_k
    ranked = [_documents(votes.dense), _documents(votes.bm25), _documents(votes.service)]
    service_weight = config.service_vote * (3.0 + config.lead_vote) / 2.0
    weights = [_spread_weight(hits, config.vote_spread) for hits in (votes.dense, votes.bm25)]
    scores = dict(rrf(ranked, k, [*weights, service_weight]))
    for doc, vote in _rerank_vote(votes.rerank, k, config.rerank_temperature).items():
        scores[doc] = scores.get(doc, 0.0) + vote
    for rank, doc in enumerate(sorted(votes.lead, key=lambda doc: -votes.lead[doc]), start=1):
        scores[doc] = scores.get(doc, 0.0) + config.lead_vote / (k + rank)
    if config.recency_weight:
        for doc in scores.keys() & votes.documents.keys():
            scores[doc] += document_review(votes.documents[doc], config, reranked=True).recency or 0.0
    return sorted(scores.items(), key=lambda pair: -pair[1])


def _rerank_vote(rerank: dict[str, float], k: int, temperature: float) -> dict[str, float]:
    """The cross-encoder's vote for each document it read: its RRF share at the rank of the
    document's best chunk, times its confidence sigmoid(logit / T), so that when it scores every
    candidate as irrelevant, its near-random order gives way to the other votes."""
    best: dict[str, float] = {}
    for cid, score in rerank.items():
        doc = id_document(cid)
        best[doc] = max(best.get(doc, -math.inf), score)
    ranked = sorted(best, key=lambda doc: -best[doc])
    confidence = {doc: 1 / (1 + math.exp(-best[doc] / temperature)) for doc in ranked}
    return {doc: confidence[doc] / (k + rank) for rank, doc in enumerate(ranked, start=1)}


def _spread_weight(hits: list[tuple[str, float]], spread: float) -> float:
    """A first stage's confidence in its own order: how far its best score stands above its tenth
    (0 where it has fewer), relative to the best, over `spread`, at most 1.

    Why: RRF reads ranks, not scores, so when the dense model finds ten sections about equally close
    to a question (none is clearly about it), its order among them would count as much as a clear
    first place. A leg with no positive best score has no confidence at all.
    """
    if spread == 0:
        return 1.0
    if not hits or hits[0][1] <= 0:
        return 0.0
    tenth = hits[_SPREAD_DEPTH - 1][1] if len(hits) >= _SPREAD_DEPTH else 0.0
    return min(1.0, max(0.0, (hits[0][1] - tenth) / hits[0][1]) / spread)


def document_review(chunk: Chunk, config: SearchConfig, reranked: bool) -> ReviewAge:
    """The document's review age, with what recency adds to its score in the reranked ranking."""
    age = review_age(chunk, config.stale_after_days)
    if reranked and config.recency_weight:
        age.recency = config.recency_weight * freshness(age) / (config.document_rrf_k + 1)
    return age


def _documents(ranked: list[tuple[str, float]]) -> list[str]:
    """The distinct documents of a chunk ranking, by key, in order of their best chunk."""
    return list(dict.fromkeys(id_document(cid) for cid, _ in ranked))
