"""Hybrid search: dense vectors for recall, BM25 for exact terms, RRF to fuse, a cross-encoder to rerank."""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Literal

from opentelemetry import context as otel_context
from opentelemetry import trace
from pydantic import BaseModel, Field

from devrag.retrieval.alert_catalog import AlertCatalog, AlertMatch, Document, StoreDocuments
from devrag.retrieval.alert_input import AlertInput
from devrag.retrieval.commands import Command, section_commands
from devrag.retrieval.filters import Filters, path_indexed, store_filter
from devrag.retrieval.fusion import rrf
from devrag.retrieval.index import Index, RepoState
from devrag.retrieval.lexical_query import bm25_search
from devrag.retrieval.models import Embedder, head
from devrag.retrieval.rerank import Reranker
from devrag.retrieval.review_age import ReviewAge, freshness, review_age
from devrag.retrieval.schema import META_FIELDS, DocMeta, document_key, embed_text_for, id_document
from devrag.retrieval.services import ServiceNames
from devrag.retrieval.store import PointFilter, ScoredId, VectorStore

Chunk = dict[str, Any]

Mode = Literal["dense", "bm25", "hybrid", "hybrid+rerank"]
MODES: tuple[str, ...] = ("dense", "bm25", "hybrid", "hybrid+rerank")
FIRST_STAGES: tuple[str, ...] = ("dense", "bm25")
# How a result was found: the alert's own runbook_url, the alert catalogue, or the ranking.
Route = Literal["runbook_url", "catalogue", "search"]
# Without an OpenTelemetry SDK configured (devrag.server.tracing does so on request) every span is a
# no-op; the query text is never an attribute here (the server adds it when the operator opts in).
_tracer = trace.get_tracer("devrag.retrieval")
_SPREAD_DEPTH = 10  # a first stage's confidence compares its best score with its tenth
# A search groups its candidates into documents by their ids (`id_document`), reading no payload.
# The reranked ranking reads one chunk of each candidate document: where its opening section is
# (the lead vote) and its dates (recency). Whole payloads are read only for the reranker's input
# and the results.
_DOCUMENT_FIELDS = ("opening", "last_commit_date", "last_reviewed")
_RESULT_FIELDS = (
    *META_FIELDS,
    *_DOCUMENT_FIELDS,
    "repo",
    "path",
    "title_only",
    "lead",
    "title",
    "headings",
    "doc_type",
    "text",
    "commit",
    "start_line",
    "end_line",
)
# More services than documents are never named; the facet reads them all.
_MAX_SERVICES = 100_000


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
    # The reranked mode ranks documents by RRF over three votes (see `_rank_documents`). Each vote
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
    # `_routed`); off only to measure what routing adds.
    alert_routing: bool = True
    # A query that names a known service (a `service` value of the indexed documents, called a
    # service: "the kube service", `service="kube"`) gets one more first-stage leg, dense search
    # within that service's documents, and the fused modes count it as a vote of this weight (0
    # turns it off), with the same share in the reranked ranking's five votes (`_rank_documents`).
    # Evidence, not a filter: other documents still win on the other votes. Measured in README
    # "Retrieval quality" (GitLab +0.12 nDCG@10 in hybrid, +0.12 reranked; other sets unchanged).
    service_vote: float = Field(default=1.0, ge=0)
    # At most this many named services get a leg each (a query rarely names more on purpose).
    max_services: int = Field(default=3, ge=1)


class StageScores(BaseModel):
    """Why a result ranks where it does: each stage's rank and score (None: not returned by it)."""

    dense_rank: int | None = None
    dense_score: float | None = None
    bm25_rank: int | None = None
    bm25_score: float | None = None
    rrf_score: float | None = None
    rerank_score: float | None = None
    # Rank and cosine in the leg that searched only the documents of the services the query names.
    service_rank: int | None = None
    service_score: float | None = None


class Section(BaseModel):
    """One matching section of a result's document, as indexed."""

    id: str
    headings: list[str]
    start_line: int
    end_line: int
    text: str
    # The section's own score in the last stage that ranked it: the cross-encoder's logit when the
    # reranker read it, else the stage's (RRF, cosine or BM25) score.
    score: float
    scores: StageScores
    # True when the document matched by its title alone (see `doc_fields.title_only`): this is its first
    # section, shown under the title's score and evidence.
    via_title: bool = False
    # Commands the section quotes, each classed read-only, mutating or destructive (see `commands`).
    commands: list[Command] = Field(default_factory=list)


class SearchResult(BaseModel):
    """One document: `k` counts these, so one long runbook cannot fill every slot."""

    repo: str
    path: str
    title: str
    doc_type: str
    commit: str
    # Compares documents with each other: the final ranking's document score.
    score: float
    sections: list[Section]  # best first
    metadata: DocMeta = Field(default_factory=DocMeta)  # service, team, severity... (see DocMeta)
    review: ReviewAge | None = None  # last commit date, last review, stale (see `review_age`)
    route: Route = "search"
    # Set when the result is first because of an alert: the name, and how the catalogue (or the
    # alert's own runbook_url) ties it to this document.
    alert_match: AlertMatch | None = None


class SearchResponse(BaseModel):
    query: str
    mode: str
    reranked: bool
    results: list[SearchResult]
    timings_ms: dict[str, float]
    # Chunks each stage that ran produced: `dense` and `bm25` (the first stages; in the hybrid modes
    # one with none while the other has some is a degraded leg), `fused`, and `rerank` (those the
    # cross-encoder read).
    candidates: dict[str, int] = Field(default_factory=dict)
    # Set when the query was longer than the embedding model reads: every stage read only its head
    # of this many word pieces.
    read_tokens: int | None = None
    # The known services the query names, whose documents got a vote (see `service_vote`).
    services: list[str] = Field(default_factory=list)
    # Set when the path filter matched no indexed file: nothing was searched, so the empty answer
    # says the glob is wrong, not that the query found nothing.
    path_unmatched: bool = False


class HybridIndex:
    """The one read API over an Index: searches and document reads, answered by the engine.

    The process holds no copy of the corpus: each search groups the engine's hits into documents
    by their ids, and reads payloads only for its final candidates (one chunk of each candidate
    document in the reranked mode, the reranker's input and the results), and alert names,
    services and folders are looked up by payload indexes. So any number of processes, on any
    number of machines, answer from the store as it is now, and opening an index costs the same
    at any size. What is kept is names, never chunks: the services and the
    repositories' states, read again whenever the index's generation (advanced by every verified
    write, from any process) moves.
    """

    def __init__(
        self,
        index: Index,
        embedder: Embedder,
        reranker: Reranker | None,
        config: SearchConfig | None = None,
    ) -> None:
        self.index = index
        self.embedder = embedder
        self.reranker = reranker
        self.config = config or SearchConfig()
        self.alerts = AlertCatalog(StoreDocuments(index.store))
        self._known: _Known | None = None
        self._known_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="devrag-bm25")
        self._query_vectors: OrderedDict[str, list[float]] = OrderedDict()

    def known(self) -> _Known:
        """The services and repositories the index holds, read again when its generation moved."""
        generation = self.index.generation()
        with self._known_lock:
            if self._known is None or self._known.generation != generation:
                names = self.index.store.facet("service", limit=_MAX_SERVICES)
                repos = {state.name: state for state in self.index.repos()}
                self._known = _Known(generation, ServiceNames(names), repos)
            return self._known

    def matches(self, filters: Filters) -> bool:
        """Whether any indexed chunk passes the filters; a search over none has nothing to rank."""
        if not filters.active:
            return True
        flt = store_filter(filters, self.index.store)
        return flt is not None and self.index.store.count(flt) > 0

    def path_indexed(self, pattern: str) -> bool:
        """Whether any indexed file matches the path glob, whatever the other filters: an empty
        answer under a path filter then says whether the glob or the query found nothing."""
        return path_indexed(pattern, self.index.store)

    def document(self, repo: str, path: str) -> list[Chunk]:
        """The indexed chunks of one document, in line order; empty when it is not indexed."""
        fields = [*_RESULT_FIELDS, "section"]
        found = self.index.store.scroll(PointFilter(repo=repo, paths=[path]), fields=fields)
        return sorted((p.payload for p in found), key=lambda c: c["section"])

    def paths(self, repo: str) -> list[str]:
        """Every indexed path of a repository."""
        found = self.index.store.scroll(PointFilter(repo=repo, first=True), fields=["path"])
        return sorted(p.payload["path"] for p in found)

    def probe(self) -> dict[str, int]:
        """Candidates each first stage returns for words the index holds: a health check's question.

        The query is one indexed document's title and path, which both legs read, so a leg that
        returns nothing is broken (an empty BM25 field, a store that lost its vectors), however
        well the process answers otherwise. An empty index probes nothing and returns {}.
        """
        first = next(iter(self.index.store.scroll(PointFilter(first=True), fields=["title", "path"])), None)
        if first is None:
            return {}
        chunk = first.payload
        candidates = self.search(f"{chunk['title']} {chunk['path']}", 1, "hybrid").candidates
        return {stage: candidates[stage] for stage in FIRST_STAGES}

    def search(
        self,
        query: str,
        k: int = 5,
        mode: Mode = "hybrid+rerank",
        filters: Filters | None = None,
        alerts: Sequence[AlertInput] = (),
    ) -> SearchResponse:
        """The k best documents for `query`; with `alerts` (see `alert_input`), their runbooks first.

        An alert's `runbook_url` names its runbook outright; its name is looked up in the alert
        catalogue; a catalogued alert name inside `query` counts as well (`alert_routing`).
        """
        if mode == "hybrid+rerank" and self.reranker is None:
            raise ValueError("Reranking is off (--no-rerank); choose mode 'hybrid', 'dense' or 'bm25'.")
        filters = filters or Filters()
        attributes = {"devrag.mode": mode, "devrag.k": k, **filter_attributes(filters)}
        with _tracer.start_as_current_span("retrieval.search", attributes=attributes) as span:
            response = self._search(query, k, mode, filters, alerts)
            span.set_attributes({f"devrag.candidates.{s}": n for s, n in response.candidates.items()})
            span.set_attribute("devrag.results", len(response.results))
        return response

    def _search(
        self, query: str, k: int, mode: Mode, filters: Filters, alerts: Sequence[AlertInput]
    ) -> SearchResponse:
        timings: dict[str, float] = {}
        started = time.perf_counter()
        config = self.config
        flt = store_filter(filters, self.index.store) if filters.active else PointFilter()
        n = max(config.overfetch * config.candidates_per_document * k, config.min_candidates)
        read, trimmed = self._part_read(query)
        known = self.known()
        payloads = _Payloads(self.index.store)
        dense, bm25 = self._first_stage(read, n, mode, flt, timings)
        services, service = self._service_leg(read, n, mode, flt, known.services, timings)
        with _stage("fusion", timings):
            votes = [[i for i, _ in dense], [i for i, _ in bm25], [i for i, _ in service]]
            fused = rrf(votes, config.rrf_k, [1.0, 1.0, config.service_vote])
        legs = {"dense": dense, "bm25": bm25}
        candidates = {
            leg: len(hits) for leg, hits in legs.items() if mode in (leg, "hybrid", "hybrid+rerank")
        }
        candidates["fused"] = len(fused)
        evidence = _evidence(dense, bm25, fused, service)
        if mode == "hybrid+rerank":
            rerank = self._rerank(read, fused, payloads, evidence, timings)
            candidates["rerank"] = len(rerank)
            with _stage("lead", timings):
                documents = self._document_fields([dense, bm25, service], payloads)
                lead = self._lead_similarity(read, [dense, bm25], documents)
            ranked = _reranked_documents(fused, dense, bm25, service, rerank, lead, documents, config)
        else:
            ranked = _by_document(legs.get(mode, fused))
        routes = self._alert_matches(read, alerts)
        ranked, matched = _routed(ranked, routes, self._openings([d for d, _ in routes], flt))
        with _stage("payloads", timings):
            shown = self._read_results(ranked, k, payloads)
        chunks = payloads.chunks
        results = []
        for score, sections in shown:
            match = matched.get(_document(chunks[sections[0][2]]))
            result = _result(sections, score, chunks, evidence, match)
            state = known.repos.get(result.repo)
            result.commit = state.cited(result.commit) if state else result.commit
            result.review = _review(chunks[result.sections[0].id], config, mode == "hybrid+rerank")
            results.append(result)
        timings["total"] = _ms(started)
        return SearchResponse(
            query=query,
            mode=mode,
            reranked=mode == "hybrid+rerank",
            results=results,
            timings_ms=timings,
            candidates=candidates,
            read_tokens=self.config.pasted_query_tokens if trimmed else None,
            services=services,
            path_unmatched=not results and filters.path is not None and not self.path_indexed(filters.path),
        )

    def _part_read(self, query: str) -> tuple[str, bool]:
        """What every stage reads of the query, and whether it was cut.

        A query longer than the embedding model reads is a pasted alert with its log: the alert's
        name and summary come first, and the log's words would outvote them in BM25 and fill the
        models' windows. Shorter queries are read whole.
        """
        if self.embedder.count_tokens(query) <= self.embedder.max_tokens:
            return query, False
        return head(query, self.config.pasted_query_tokens, self.embedder.count_tokens), True

    def _first_stage(
        self, query: str, n: int, mode: str, flt: PointFilter | None, timings: dict[str, float]
    ) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
        """Dense and BM25 candidates, both ranked by the engine under the same filter (None: nothing
        passes it), as ids and scores: no payload is read.

        BM25 is the engine's text query over each chunk's BM25 field (`lexical_field`); it runs on
        a worker thread while the query is embedded. Why no payloads: the engine reads a hit's whole
        payload (three quarters of it the BM25 field) in every segment it searches, so at 1M chunks
        the hits' payloads took about half of each leg (dense 14.4 ms at the median with them, 5.8
        without; BM25 13.9 and 7.0), more than reading the few a search needs by id afterwards.
        """
        bm25_job = None
        if mode != "dense" and flt is not None:
            here = otel_context.get_current()  # the worker's span belongs under this search's
            bm25_job = self._pool.submit(_bm25_leg, here, self.index.store, query, n, flt)
        dense: list[tuple[str, float]] = []
        if mode != "bm25":
            with _stage("embed", timings):
                vector = self._embed_query(query)
            with _stage("dense", timings) as span:
                dense = [] if flt is None else _ranked(self.index.store.search(vector, n, flt))
                span.set_attribute("devrag.candidates", len(dense))
        bm25: list[tuple[str, float]] = []
        if bm25_job is not None:
            hits, timings["bm25"] = bm25_job.result()
            bm25 = _ranked(hits)
        return dense, bm25

    def _alert_matches(self, query: str, alerts: Sequence[AlertInput]) -> list[tuple[Document, AlertMatch]]:
        """The documents routing puts first, in order: runbook_url, then catalogue by name."""
        matches: list[tuple[Document, AlertMatch]] = []
        for alert in alerts:
            url = alert.runbook_url
            for doc in self.alerts.runbook_documents(url) if url else []:
                matches.append(
                    (doc, AlertMatch(alert=alert.name or "", source="runbook_url", runbook_url=url))
                )
        names = [a.name for a in alerts if a.name]
        if self.config.alert_routing:
            names += self.alerts.names_in(query)
        for name in dict.fromkeys(names):
            matches += self.alerts.documents(name)
        return matches

    def _openings(self, docs: Sequence[Document], flt: PointFilter | None) -> dict[Document, str]:
        """The opening section of each of `docs` that passes the search's filter, by document."""
        paths = sorted({path for _, path in docs})
        if flt is not None and flt.paths is not None:
            paths = sorted(set(paths).intersection(flt.paths))
        if flt is None or not paths:
            return {}
        firsts = replace(flt, paths=paths, first=True)
        found = self.index.store.scroll(firsts, fields=["repo", "path", "opening"])
        wanted = set(docs)
        return {d: p.payload["opening"] for p in found if (d := _document(p.payload)) in wanted}

    def _service_leg(
        self,
        query: str,
        n: int,
        mode: str,
        flt: PointFilter | None,
        services: ServiceNames,
        timings: dict[str, float],
    ) -> tuple[list[str], list[tuple[str, float]]]:
        """The services the query names, and dense candidates from their documents alone.

        The first stages rank a service's pages by their words, and a generated alert's words
        ("saturation", "SLO") fit every service's pages alike; searching within the named
        service's documents brings its pages in even when the whole corpus outscores them.
        """
        if mode not in ("hybrid", "hybrid+rerank") or self.config.service_vote == 0:
            return [], []
        named = services.named_in(query)[: self.config.max_services]
        if not named or flt is None:
            return named, []
        vector = self._embed_query(query)
        with _stage("service", timings) as span:
            hits: dict[str, float] = {}
            for name in named:
                within = replace(flt, metadata=(*flt.metadata, ("service", name)))
                for hit in self.index.store.search(vector, n, within):
                    hits[hit.id] = max(hits.get(hit.id, -math.inf), hit.score)
            ranked = _ranked([ScoredId(i, score) for i, score in hits.items()])[:n]
            span.set_attribute("devrag.candidates", len(ranked))
        return named, ranked

    def _embed_query(self, query: str) -> list[float]:
        cached = self._query_vectors.get(query)
        if cached is None:
            cached = self.embedder.embed([query])[0]
            self._query_vectors[query] = cached
            while len(self._query_vectors) > 1024:
                self._query_vectors.popitem(last=False)
        return cached

    def _rerank(
        self,
        query: str,
        fused: list[tuple[str, float]],
        payloads: _Payloads,
        evidence: dict[str, StageScores],
        timings: dict[str, float],
    ) -> dict[str, float]:
        """Cross-encoder scores of the head of the fused list, by chunk id (a chunk deleted since the
        engine ranked it has no text to read and drops out)."""
        assert self.reranker is not None
        head = fused[: self.config.rerank_candidates]
        payloads.read([i for i, _ in head], _RESULT_FIELDS)
        head = [(i, score) for i, score in head if i in payloads.chunks]
        if not head:
            return {}
        with _stage("rerank", timings) as span:
            span.set_attribute("devrag.candidates", len(head))
            chunks = payloads.chunks
            passages = [
                embed_text_for(chunks[i]["title"], chunks[i]["headings"], chunks[i]["text"]) for i, _ in head
            ]
            scores = self.reranker.score(query, passages)
            for (i, _), s in zip(head, scores, strict=True):
                evidence[i].rerank_score = s
        return dict(zip([i for i, _ in head], scores, strict=True))

    def _document_fields(
        self, legs: Sequence[list[tuple[str, float]]], payloads: _Payloads
    ) -> dict[str, Chunk]:
        """`_DOCUMENT_FIELDS` of each candidate document, by document key, read from its best chunk
        (a document whose chunks were all deleted since has none)."""
        firsts: dict[str, str] = {}
        for hits in legs:
            for cid, _ in hits:
                firsts.setdefault(id_document(cid), cid)
        payloads.read(list(firsts.values()), _DOCUMENT_FIELDS)
        return {doc: payloads.chunks[cid] for doc, cid in firsts.items() if cid in payloads.chunks}

    def _lead_similarity(
        self, query: str, legs: Sequence[list[tuple[str, float]]], documents: Mapping[str, Chunk]
    ) -> dict[str, float]:
        """Each candidate document's cosine between the query and its opening section's stored
        vector, by document key."""
        if self.config.lead_vote == 0:
            return {}
        docs = dict.fromkeys(id_document(cid) for hits in legs for cid, _ in hits)
        leads = {documents[doc]["opening"]: doc for doc in docs if doc in documents}
        vector = self._embed_query(query)
        points = self.index.store.retrieve(list(leads), with_vectors=True, fields=[])
        return {leads[p.id]: _dot(vector, p.vector) for p in points if p.vector is not None}

    def _read_results(
        self, ranked: list[RankedDocument], k: int, payloads: _Payloads
    ) -> list[tuple[float, list[tuple[str, float, str]]]]:
        """The first k ranked documents with the sections each shows (`_shown`), their payloads read.

        A document's chunks deleted since the engine ranked them are left out, and a document
        with none left gives its place to the next; a title-only match whose lead section is
        deleted before the last read shows its title chunk instead (`_still_shown`).
        """
        limit = self.config.sections_per_document
        out: list[tuple[float, list[tuple[str, float, str]]]] = []
        for start in range(0, len(ranked), k):
            batch = ranked[start : start + k]
            payloads.read([cid for _, sections in batch for cid, _ in sections], _RESULT_FIELDS)
            for score, sections in batch:
                kept = [(cid, s) for cid, s in sections if cid in payloads.chunks]
                if kept and len(out) < k:
                    out.append((score, _shown(kept, payloads.chunks, limit)))
            if len(out) == k:
                break
        payloads.read([cid for _, sections in out for cid, _, _ in sections], _RESULT_FIELDS)
        return [(score, _still_shown(sections, payloads.chunks)) for score, sections in out]

    def close(self) -> None:
        self._pool.shutdown(wait=False)


# A ranked document: its score and its matching chunks with their own scores, best first.
RankedDocument = tuple[float, list[tuple[str, float]]]


def _routed(
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


def _by_document(ranked: list[tuple[str, float]]) -> list[RankedDocument]:
    """A chunk ranking as documents in order of their best chunk, each scored by it."""
    return [(sections[0][1], sections) for sections in _members(ranked).values()]


def _members(ranked: list[tuple[str, float]]) -> dict[str, list[tuple[str, float]]]:
    """Each document's chunks of a ranking, in ranking order, by document key; documents in order
    of their best."""
    members: dict[str, list[tuple[str, float]]] = {}
    for cid, score in ranked:
        members.setdefault(id_document(cid), []).append((cid, score))
    return members


def _reranked_documents(
    fused: list[tuple[str, float]],
    dense: list[tuple[str, float]],
    bm25: list[tuple[str, float]],
    service: list[tuple[str, float]],
    rerank: dict[str, float],
    lead: dict[str, float],
    documents: Mapping[str, Chunk],
    config: SearchConfig,
) -> list[RankedDocument]:
    """Documents in `_rank_documents` order, each with the chunks the reranker read, best first.

    A document's sections that the reranker did not read are left out rather than shown unjudged
    beside ones it did (the client can fetch the whole document); a document the reranker did not
    read at all keeps its fused chunks.
    """
    members = _members(fused)
    ranked: list[RankedDocument] = []
    for doc, score in _rank_documents(dense, bm25, service, rerank, lead, documents, config):
        fused_sections = members[doc]  # every ranked document has a fused chunk
        read = sorted(((cid, rerank[cid]) for cid, _ in fused_sections if cid in rerank), key=lambda p: -p[1])
        ranked.append((score, read or fused_sections))
    return ranked


def _rank_documents(
    dense: list[tuple[str, float]],
    bm25: list[tuple[str, float]],
    service: list[tuple[str, float]],
    rerank: dict[str, float],
    lead: dict[str, float],
    documents: Mapping[str, Chunk],
    config: SearchConfig,
) -> list[tuple[str, float]]:
    """Documents by RRF over three votes: dense, BM25 and the cross-encoder, each ranking documents.

    A document's rank in a list is its best chunk's place among distinct documents, so a page
    with many matching sections does not crowd out its neighbours. Alone, the cross-encoder
    ranked the right runbook first less often than either first stage (it confuses sibling
    alerts), so it gets one vote of three, weighted by its own confidence sigmoid(score / T): when
    it scores every candidate as irrelevant, its near-random order gives way to the first stage.
    The first stages' votes are weighted by their confidence too (`_spread_weight`): a rank alone
    would count a leg whose ten best scores are all alike as much as one with a clear winner.
    A lighter fourth vote ranks the documents by their lead section's similarity to the query
    (`lead`): chunk votes see a page's sections one at a time, this one what the page is about.
    When the query names a known service, the documents of that service get a vote, in the order
    of their dense similarity (`service`; see `_service_leg`), with the share of the ranking it has
    in the first stage's fusion: there `service_vote` beside two votes of 1, here beside those two,
    the cross-encoder's and the opening vote, so its weight grows in proportion.
    Measured on the alert and question sets (README, "Retrieval quality").
    """
    k = config.document_rrf_k
    votes = [_documents(dense), _documents(bm25), _documents(service)]
    service_weight = config.service_vote * (3.0 + config.lead_vote) / 2.0
    weights = [_spread_weight(dense, config.vote_spread), _spread_weight(bm25, config.vote_spread)]
    scores = dict(rrf(votes, k, [*weights, service_weight]))
    best: dict[str, float] = {}
    for cid, score in rerank.items():
        doc = id_document(cid)
        best[doc] = max(best.get(doc, -math.inf), score)
    for rank, doc in enumerate(sorted(best, key=lambda doc: -best[doc]), start=1):
        confidence = 1 / (1 + math.exp(-best[doc] / config.rerank_temperature))
        scores[doc] = scores.get(doc, 0.0) + confidence / (k + rank)
    for rank, doc in enumerate(sorted(lead, key=lambda doc: -lead[doc]), start=1):
        scores[doc] = scores.get(doc, 0.0) + config.lead_vote / (k + rank)
    if config.recency_weight:
        for doc in scores.keys() & documents.keys():
            scores[doc] += _review(documents[doc], config, reranked=True).recency or 0.0
    return sorted(scores.items(), key=lambda pair: -pair[1])


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


def _review(chunk: Chunk, config: SearchConfig, reranked: bool) -> ReviewAge:
    """The document's review age, with what recency adds to its score in the reranked ranking."""
    age = review_age(chunk, config.stale_after_days)
    if reranked and config.recency_weight:
        age.recency = config.recency_weight * freshness(age) / (config.document_rrf_k + 1)
    return age


def _documents(ranked: list[tuple[str, float]]) -> list[str]:
    """The distinct documents of a chunk ranking, by key, in order of their best chunk."""
    return list(dict.fromkeys(id_document(cid) for cid, _ in ranked))


def _document(chunk: Chunk) -> tuple[str, str]:
    return chunk["repo"], chunk["path"]


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine of two unit vectors (the embedder normalises every vector it returns)."""
    return sum(x * y for x, y in zip(a, b, strict=True))


def _ranked(hits: Sequence[ScoredId]) -> list[tuple[str, float]]:
    """Hits best first, equal scores in id order.

    An engine returns equal scores in the order its segments hold the points, which differs
    between two copies of one index (a rebuild, another replica): ties broken by id make every
    copy answer alike.
    """
    return sorted(((h.id, h.score) for h in hits), key=lambda pair: (-pair[1], pair[0]))


def _evidence(
    dense: Sequence[tuple[str, float]],
    bm25: Sequence[tuple[str, float]],
    fused: Sequence[tuple[str, float]],
    service: Sequence[tuple[str, float]] = (),
) -> dict[str, StageScores]:
    out: dict[str, StageScores] = {i: StageScores(rrf_score=s) for i, s in fused}
    for rank, (i, s) in enumerate(dense, start=1):
        out[i].dense_rank, out[i].dense_score = rank, s
    for rank, (i, s) in enumerate(bm25, start=1):
        out[i].bm25_rank, out[i].bm25_score = rank, s
    for rank, (i, s) in enumerate(service, start=1):
        out[i].service_rank, out[i].service_score = rank, s
    return out


def _shown(
    sections: list[tuple[str, float]], chunks: Mapping[str, Chunk], limit: int
) -> list[tuple[str, float, str]]:
    """The sections a result shows, best first, as (chunk, score, chunk whose evidence it is).

    Those that say more than the document's title; a document matched by its title alone shows
    its lead section (its first that does), under the title's score (its title is the result's).
    """
    said = [(cid, score, cid) for cid, score in sections if not chunks[cid]["title_only"]]
    if said:
        return said[:limit]
    cid, score = sections[0]
    return [(chunks[cid]["lead"] or cid, score, cid)]


def _still_shown(
    sections: list[tuple[str, float, str]], chunks: Mapping[str, Chunk]
) -> list[tuple[str, float, str]]:
    """The shown sections that could be read; one shown for another (a title's lead section) and
    deleted between the reads falls back to the chunk whose evidence it is, read before."""
    return [(cid, score, by) if cid in chunks else (by, score, by) for cid, score, by in sections]


@dataclass(frozen=True)
class _Known:
    """What a searcher keeps between searches: names and states, never a chunk."""

    generation: str
    services: ServiceNames
    repos: dict[str, RepoState]


class _Payloads:
    """The payloads one search reads from the engine, by chunk id: of the few chunks it needs."""

    def __init__(self, store: VectorStore) -> None:
        self._store = store
        self.chunks: dict[str, Chunk] = {}
        self._fields: dict[str, frozenset[str]] = {}

    def read(self, ids: Sequence[str], fields: Sequence[str]) -> None:
        """Read `fields` of each of `ids` not read with them yet; ids the store lacks stay unknown."""
        wanted = frozenset(fields)
        missing = [i for i in dict.fromkeys(ids) if not wanted <= self._fields.get(i, frozenset())]
        for point in self._store.retrieve(missing, fields=list(wanted)) if missing else []:
            self._add(point.id, point.payload, wanted)

    def _add(self, cid: str, payload: Mapping[str, Any], fields: frozenset[str]) -> None:
        self.chunks.setdefault(cid, {}).update(payload)
        self._fields[cid] = self._fields.get(cid, frozenset()) | fields


def _result(
    sections: list[tuple[str, float, str]],
    score: float,
    chunks: Mapping[str, Chunk],
    evidence: dict[str, StageScores],
    match: AlertMatch | None = None,
) -> SearchResult:
    first = chunks[sections[0][0]]
    route: Route = (
        "search" if match is None else "runbook_url" if match.source == "runbook_url" else "catalogue"
    )
    return SearchResult(
        repo=first["repo"],
        path=first["path"],
        title=first["title"],
        doc_type=first["doc_type"],
        commit=first["commit"],
        score=score,
        sections=[
            _section(cid, s, chunks[cid], evidence.get(by, StageScores()), by != cid)
            for cid, s, by in sections
        ],
        metadata=DocMeta.of(first),
        route=route,
        alert_match=match,
    )


def _section(cid: str, score: float, chunk: Chunk, scores: StageScores, via_title: bool) -> Section:
    return Section(
        id=cid,
        headings=list(chunk["headings"]),
        start_line=chunk["start_line"],
        end_line=chunk["end_line"],
        text=chunk["text"],
        score=score,
        scores=scores,
        via_title=via_title,
        commands=section_commands(chunk["text"]),
    )


def filter_attributes(filters: Filters) -> dict[str, str]:
    """The filters as span attributes an operator selects on (`devrag.repo`), the unset ones left out."""
    return {f"devrag.{name}": str(value) for name, value in filters.model_dump(exclude_none=True).items()}


@contextmanager
def _stage(name: str, timings: dict[str, float]) -> Iterator[trace.Span]:
    """One search stage: its span, and its wall time in `timings` (what the response reports)."""
    started = time.perf_counter()
    with _tracer.start_as_current_span(f"search.{name}") as span:
        yield span
    timings[name] = _ms(started)


def _bm25_leg(
    parent: otel_context.Context, store: VectorStore, query: str, n: int, flt: PointFilter
) -> tuple[list[ScoredId], float]:
    """The BM25 stage on the worker thread, its span under the search that submitted it."""
    token = otel_context.attach(parent)
    try:
        timings: dict[str, float] = {}
        with _stage("bm25", timings) as span:
            hits = bm25_search(store, query, n, flt)
            span.set_attribute("devrag.candidates", len(hits))
        return hits, timings["bm25"]
    finally:
        otel_context.detach(token)


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 3)
