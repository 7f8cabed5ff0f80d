"""How a search ranks: candidate counts, fusion constants and votes, each default as measured."""

from __future__ import annotations

from pydantic import BaseModel, Field


class SearchConfig(BaseModel):
    """Candidate counts and fusion constants; the defaults are what the evaluation measured best."""

    # k counts documents, and one document may match in several sections: each first stage
    # returns overfetch * candidates_per_document * k chunks (at least min_candidates).
    overfetch: int = Field(default=3, ge=1)
    candidates_per_document: int = Field(default=3, ge=1)
    min_candidates: int = Field(default=30, ge=1)
    # A result shows at most this many of its document's matching sections, best first; the rest
    # of the document is one get_document call away.
    sections_per_document: int = Field(default=3, ge=1)
    rrf_k: int = Field(default=60, ge=0)
    # The cross-encoder reads the head of the fused list; its cost grows with each pair (about 25 ms
    # on 2 cores). Replayed on every alert and question set, 10 ranked as well as 20 (mean nDCG@10
    # 0.845 against 0.844 over eight sets; no alert set lower by more than 0.005), at half the cost.
    rerank_candidates: int = Field(default=10, ge=1)
    # The reranked mode ranks documents by RRF over three votes (see `rank_documents`). Each vote
    # names few documents and its first choice should count: with k = 2 first place is worth 1/3,
    # third place 1/5 (k = 60 would make them nearly equal).
    document_rrf_k: int = Field(default=2, ge=0)
    rerank_temperature: float = Field(default=4.0, gt=0)
    # There, each first stage's vote is weighted by its own confidence: the relative drop from its
    # best score to its tenth, over this spread, at most 1 (0 turns the weighting off). Replayed on
    # every alert and question set (README, "Retrieval quality"): spreads 0.15 to 0.25 all raised
    # the mean nDCG@10, and 0.15 is the one that lowered no set.
    vote_spread: float = Field(default=0.15, ge=0)
    # A fourth, lighter vote: documents by how close their opening section (title and first real
    # section: what the page is about) is to the query. Measured on every alert and question set
    # (README, "Retrieval quality"); any weight from 0.25 to 0.75 helped, 0.5 is the middle.
    lead_vote: float = Field(default=0.5, ge=0)
    # A query longer than the embedding model reads is a paste (an alert and its log); every stage
    # reads its head of this many word pieces. Measured with a 1,100-token log after each
    # alerts-to-runbooks query (`devrag.eval.pasted_queries`, README): R@1 0.815 at 64, 0.574 at
    # 128, 0.324 at 254, 0.204 reading all of it (plain queries: 0.852).
    pasted_query_tokens: int = Field(default=64, ge=8)
    # A result is stale when its review age (`review_age`: since `last_reviewed`, else since the last
    # commit) passes this many days.
    stale_after_days: int = Field(default=180, gt=0)
    # Recency as one more, optional vote in the reranked document ranking: a document adds
    # recency_weight * freshness / (document_rrf_k + 1), freshness halving every stale_after_days
    # (1 today, 0.5 at the stale age), so at weight 1 a page reviewed today gains at most what a
    # first place in one vote is worth. Off by default: nothing measured says fresher pages answer
    # better, and an old runbook for a stable system is still the right one.
    recency_weight: float = Field(default=0.0, ge=0)
    # A query that holds a catalogued alert name exactly puts that alert's runbook first (see
    # `routed`); off only to measure what routing adds.
    alert_routing: bool = True
    # A query that names a known service (a `service` value of the indexed documents, called a
    # service: "the kube service", `service="kube"`) gets one more first-stage leg, dense search
    # within that service's documents, and the fused modes count it as a vote of this weight (0
    # turns it off), with the same share in the reranked ranking's five votes (`rank_documents`).
    # Evidence, not a filter: other documents still win on the other votes. Measured in README
    # "Retrieval quality" (GitLab +0.12 nDCG@10 in hybrid, +0.12 reranked; other sets unchanged).
    service_vote: float = Field(default=1.0, ge=0)
    # At most this many named services get a leg each (a query rarely names more on purpose).
    max_services: int = Field(default=3, ge=1)
