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

from devrag.retrieval.alert_catalog import AlertCatalog, AlertMatch, Document, StoreDocuments
from devrag.retrieval.alert_input import AlertInput
from devrag.retrieval.document_ranking import (
    RankedDocument,
    Votes,
    by_document,
    document_review,
    reranked_documents,
    routed,
)
from devrag.retrieval.filters import Filters, path_indexed, store_filter, unmatched_values
from devrag.retrieval.fusion import rrf
from devrag.retrieval.index import Index, RepoState, written_since
from devrag.retrieval.lexical_query import bm25_search
from devrag.retrieval.models import Embedder, head
from devrag.retrieval.rerank import Reranker
from devrag.retrieval.schema import META_FIELDS, embed_text_for, id_document
from devrag.retrieval.search_config import SearchConfig
from devrag.retrieval.search_results import (
    Chunk,
    SearchResponse,
    StageScores,
    one_version,
    search_result,
    shown_sections,
    stage_evidence,
    still_shown,
)
from devrag.retrieval.services import ServiceNames
from devrag.retrieval.store import PointFilter, ScoredId, VectorStore

Mode = Literal["dense", "bm25", "hybrid", "hybrid+rerank"]
MODES: tuple[str, ...] = ("dense", "bm25", "hybrid", "hybrid+rerank")
FIRST_STAGES: tuple[str, ...] = ("dense", "bm25")
# Without an OpenTelemetry SDK configured (devrag.server.tracing does so on request) every span is a
# no-op; the query text is never an attribute here (the server adds it when the operator opts in).
_tracer = trace.get_tracer("devrag.retrieval")
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

    def unmatched_values(self, filters: Filters) -> list[str]:
        """Each metadata filter that no indexed document has (`service='x'`), whatever the others:
        an empty answer then says which value, not the query, found nothing."""
        return unmatched_values(filters, self.index.store)

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
        evidence = stage_evidence(dense, bm25, fused, service)
        if mode == "hybrid+rerank":
            rerank = self._rerank(read, fused, payloads, evidence, timings)
            candidates["rerank"] = len(rerank)
            with _stage("lead", timings):
                documents = self._document_fields([dense, bm25, service], payloads)
                lead = self._lead_similarity(read, [dense, bm25], documents)
            votes = Votes(dense, bm25, service, rerank, lead, documents)
            ranked = reranked_documents(fused, votes, config)
        else:
            ranked = by_document(legs.get(mode, fused))
        routes, unknown_urls = self._alert_matches(read, alerts)
        ranked, matched = routed(ranked, routes, self._openings([d for d, _ in routes], flt))
        with _stage("payloads", timings):
            shown = self._read_results(ranked, k, payloads)
        chunks = payloads.chunks
        now = self.known().repos  # read after the payloads: what an ingest began or ended meanwhile
        results = []
        for score, sections in shown:
            repo = chunks[sections[0][0]]["repo"]
            newer = written_since(known.repos.get(repo), now.get(repo))
            one = one_version(sections, chunks, newer)
            match = matched.get(_document(chunks[one[0][2]]))
            result = search_result(one, score, chunks, evidence, match)
            state = known.repos.get(repo) or now.get(repo)
            result.commit = state.cited(result.commit, newer) if state else result.commit
            result.review = document_review(chunks[result.sections[0].id], config, mode == "hybrid+rerank")
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
            values_unmatched=[] if results else self.unmatched_values(filters),
            runbook_urls_unmatched=unknown_urls,
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

    def _alert_matches(
        self, query: str, alerts: Sequence[AlertInput]
    ) -> tuple[list[tuple[Document, AlertMatch]], list[str]]:
        """The documents routing puts first, in order: runbook_url, then catalogue by name; and the
        alerts' runbook_urls that name no indexed document."""
        matches: list[tuple[Document, AlertMatch]] = []
        unknown: list[str] = []
        for url, name in dict.fromkeys((a.runbook_url, a.name or "") for a in alerts if a.runbook_url):
            docs = self.alerts.runbook_documents(url)
            matches += [(doc, AlertMatch(alert=name, source="runbook_url", runbook_url=url)) for doc in docs]
            if not docs and url not in unknown:
                unknown.append(url)
        names = [a.name for a in alerts if a.name]
        if self.config.alert_routing:
            names += self.alerts.names_in(query)
        for name in dict.fromkeys(names):
            matches += self.alerts.documents(name)
        return matches, unknown

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
        """The first k ranked documents with the sections each shows (`shown_sections`), their payloads read.

        A document's chunks deleted since the engine ranked them are left out, and a document
        with none left gives its place to the next; a title-only match whose lead section is
        deleted before the last read shows its title chunk instead (`still_shown`).
        """
        limit = self.config.sections_per_document
        out: list[tuple[float, list[tuple[str, float, str]]]] = []
        for start in range(0, len(ranked), k):
            batch = ranked[start : start + k]
            payloads.read([cid for _, sections in batch for cid, _ in sections], _RESULT_FIELDS)
            for score, sections in batch:
                kept = [(cid, s) for cid, s in sections if cid in payloads.chunks]
                if kept and len(out) < k:
                    out.append((score, shown_sections(kept, payloads.chunks, limit)))
            if len(out) == k:
                break
        payloads.read([cid for _, sections in out for cid, _, _ in sections], _RESULT_FIELDS)
        return [(score, still_shown(sections, payloads.chunks)) for score, sections in out]

    def close(self) -> None:
        self._pool.shutdown(wait=False)


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
