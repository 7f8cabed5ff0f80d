"""The tools' logic as plain functions over an App; the MCP layer only adapts them."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from devrag.ingest.status import head_and_behind, index_status
from devrag.retrieval.alert_catalog import catalog_counts
from devrag.retrieval.alert_input import AlertInput, parse_alerts, query_of
from devrag.retrieval.facets import metadata_values
from devrag.retrieval.index import Index
from devrag.retrieval.query_records import new_query_id, search_record
from devrag.retrieval.schema import DocMeta
from devrag.retrieval.search import Filters, Mode
from devrag.retrieval.search_input import InputError, check_query_length, check_repo, check_search
from devrag.retrieval.search_results import SearchResponse, SearchResult, Section
from devrag.server import documents
from devrag.server.admission import SKIPPED_RERANK_NOTE
from devrag.server.budget import TokenCounter, fit_lines, fit_passages
from devrag.server.formatting import feedback_text, page_text, search_text, sources_text
from devrag.server.outputs import (
    CommandOut,
    DocumentMeta,
    DocumentPage,
    FeedbackOutput,
    Freshness,
    Passage,
    Result,
    Review,
    SearchOutput,
    Source,
    SourcesOutput,
)
from devrag.server.query_log import log_search, require
from devrag.server.state import App

OutputT = TypeVar("OutputT", bound=BaseModel)


@dataclass(frozen=True)
class Answer(Generic[OutputT]):
    """A tool's structured output and the text rendering of it that a model reads."""

    output: OutputT
    text: str


def search_tool(
    app: App,
    query: str,
    k: int = 5,
    repo: str | None = None,
    path: str | None = None,
    doc_type: str | None = None,
    max_tokens: int = 2000,
    metadata: dict[str, str | None] | None = None,
    alerts: list[AlertInput] | None = None,
) -> Answer[SearchOutput]:
    """Hybrid search with citations and per-repository freshness, fitted into `max_tokens`.

    `metadata` holds the document metadata filters by argument name (`METADATA_FILTERS`).
    `alerts` (from `search_alert_tool`) put their runbooks first. The answer carries a fresh
    query_id; with the query log on, the answer is logged under it.
    """
    query_id = new_query_id()
    raw = {"query": query, "k": k, "repo": repo, "path": path, "doc_type": doc_type, "max_tokens": max_tokens}
    args = check_search({**raw, **(metadata or {})})
    _check_indexed(app, args.repo)
    searcher = app.searcher()
    tokens = check_query_length(args.query, searcher.embedder.count_tokens)
    mode: Mode = "hybrid+rerank" if searcher.reranker is not None else "hybrid"
    filters = Filters(repo=args.repo, path=args.path, doc_type=args.doc_type, **args.metadata)
    response = app.search(args.query, args.k, mode, filters, alerts or ())
    results = [_result(rank, r) for rank, r in enumerate(response.results if response else [], start=1)]
    fresh = _freshness(searcher.index, results)
    notes = _search_notes(app, response, filters) + _trim_note(tokens, response)
    if response is not None and response.mode != mode:
        notes.append(SKIPPED_RERANK_NOTE)
    order = _reading_order(results)

    def shown_results(shown: list[Passage]) -> list[Result]:
        return _regroup(results, order[: len(shown)], shown)

    def render(shown: list[Passage]) -> str:
        kept = shown_results(shown)
        cited = [fresh[r] for r in dict.fromkeys(x.repo for x in kept)]
        return search_text(kept, len(results) - len(kept), cited, notes, max_tokens, query_id)

    passages = [results[d].passages[i] for d, i in order]
    fitted = fit_passages(passages, render, searcher.embedder.count_tokens, max_tokens)
    kept = shown_results(fitted.passages)
    shown = {(r.repo, r.path) for r in kept}
    log_search(app.query_log, search_record(query_id, args.query, args.k, mode, filters, response, shown))
    output = SearchOutput(
        query_id=query_id,
        query=query,
        mode=response.mode if response else mode,
        results=kept,
        left_out=len(results) - len(kept),
        freshness=[fresh[r] for r in dict.fromkeys(x.repo for x in kept)],
        notes=notes,
        tokens=fitted.tokens,
        max_tokens=max_tokens,
    )
    return Answer(output, fitted.text)


def search_alert_tool(
    app: App, alert: str, k: int = 5, repo: str | None = None, max_tokens: int = 2000
) -> Answer[SearchOutput]:
    """The runbooks for an alert as the agent has it (Alertmanager or Prometheus JSON, or text).

    Its `runbook_url` and the alert catalogue name documents first; then search ranks the rest
    by the alert's name, summary and description. Each result says which route found it.

    Raises:
        InputError: the text holds no alert name, runbook_url, summary or description.
    """
    alerts = parse_alerts(alert)
    return search_tool(app, query_of(alerts), k, repo, None, None, max_tokens, None, alerts)


def _reading_order(results: list[Result]) -> list[tuple[int, int]]:
    """(result, passage) pairs in the order a small budget keeps them: every document's best
    passage in rank order, then every second-best, and so on, so more documents are shown
    before more of one."""
    depth = max((len(r.passages) for r in results), default=0)
    return [(d, i) for i in range(depth) for d, r in enumerate(results) if i < len(r.passages)]


def _regroup(results: list[Result], order: list[tuple[int, int]], shown: list[Passage]) -> list[Result]:
    """The results as shown: each with the passages of it that `shown` kept, in their order."""
    kept: dict[int, list[Passage]] = {}
    for (d, _), passage in zip(order, shown, strict=True):
        kept.setdefault(d, []).append(passage)
    return [
        results[d].model_copy(
            update={"passages": passages, "passages_left_out": len(results[d].passages) - len(passages)}
        )
        for d, passages in sorted(kept.items())
    ]


def _trim_note(tokens: int, response: SearchResponse | None) -> list[str]:
    if response is None or response.read_tokens is None:
        return []
    return [
        f"The query is {tokens} tokens, longer than the search models read, so it was read as a pasted "
        f"alert: every stage read its first {response.read_tokens} word pieces. Put the alert name or "
        "error first, or search again with the log line that matters."
    ]


def _check_indexed(app: App, repo: str | None) -> None:
    s = app.settings
    location = (s.qdrant_url or str(s.index_dir)) if app.local else "this server's index"
    check_repo(repo, [state.name for state in app.index().repos()], location)


def _result(rank: int, r: SearchResult) -> Result:
    return Result(
        rank=rank,
        repo=r.repo,
        path=r.path,
        title=r.title,
        doc_type=r.doc_type,
        commit=r.commit,
        score=round(r.score, 4),
        passages=[_passage(s, r.title) for s in r.sections],
        passages_left_out=0,
        metadata=_metadata(r.metadata),
        review=Review.model_validate(r.review.model_dump()) if r.review else None,
        route=r.route,
        alert_match=r.alert_match,
    )


def _metadata(m: DocMeta) -> DocumentMeta:
    return DocumentMeta(
        service=m.service,
        service_inferred=m.service_source == "path",
        team=m.team,
        severity=m.severity,
        environment=m.environment,
        alerts=m.alerts,
        tags=m.tags,
        last_reviewed=m.last_reviewed,
        other=m.meta,
    )


def _passage(s: Section, title: str) -> Passage:
    """The section with its heading path below the title (the result names the title once)."""
    crumb: list[str] = []
    for heading in s.headings:
        if heading != title and (not crumb or crumb[-1] != heading):
            crumb.append(heading)
    return Passage(
        headings=crumb,
        start_line=s.start_line,
        end_line=s.end_line,
        score=round(s.score, 4),
        text=s.text,
        truncated=False,
        tokens_cut=0,
        via_title=s.via_title,
        commands=[CommandOut(text=c.text, kind=c.kind) for c in s.commands],
    )


def _freshness(index: Index, results: list[Result]) -> dict[str, Freshness]:
    out: dict[str, Freshness] = {}
    for r in results:
        if r.repo in out:
            continue
        state = index.repo_state(r.repo)
        head, behind = head_and_behind(state.path, r.commit) if state else (None, None)
        out[r.repo] = Freshness(repo=r.repo, indexed_commit=r.commit, head=head, behind=behind)
    return out


def _search_notes(app: App, response: SearchResponse | None, filters: Filters) -> list[str]:
    """What the answer's text adds below its results. No response: no chunk passed the filters."""
    notes = []
    if app.models.rerank_error:
        notes.append("Results are not reranked: the reranker failed to load (see list_sources).")
    path = filters.path
    if response.path_unmatched if response else path is not None and not app.searcher().path_indexed(path):
        notes.append(f"No indexed path matches path={path!r}: check it against paths in earlier results.")
    notes += [
        f"runbook_url {url} names no indexed document: the runbook may live outside the indexed repositories."
        for url in (response.runbook_urls_unmatched if response else [])
    ]
    unmatched = response.values_unmatched if response else app.searcher().unmatched_values(filters)
    notes += [
        f"No indexed document has {value}: values match exactly, as list_sources lists them."
        for value in unmatched
    ]
    return notes


def feedback_tool(
    app: App, query_id: str, helpful: bool, document: str | None = None, note: str | None = None
) -> Answer[FeedbackOutput]:
    """Record whether an earlier answer (or one document in it) helped, in the query log.

    Raises:
        QueryLogError: the query log is off (feedback needs it), or could not be written.
        InputError: no logged answer has this query_id, or `document` was not in it.
    """
    record = require(app.query_log).record_feedback(query_id, helpful, document, note)
    ref = record.document
    output = FeedbackOutput(
        query_id=query_id,
        helpful=helpful,
        document=f"{ref.repo}:{ref.path}" if ref is not None else None,
        note=record.note,
    )
    return Answer(output, feedback_text(output))


def get_document_tool(
    app: App,
    repo: str,
    path: str,
    section: str | None = None,
    max_tokens: int = 4000,
    offset: int = 0,
) -> Answer[DocumentPage]:
    """A page of the document as indexed (or of one section), fitted into `max_tokens`."""
    _check_indexed(app, repo)
    searcher = app.searcher()
    chunks = searcher.document(repo, path)
    if not chunks:
        raise InputError(_unknown_document(searcher.paths(repo), repo, path))
    doc = documents.load(searcher.index, repo, path, chunks)
    first, last, label = _section(doc, path, chunks, section)
    body = doc.lines[first - 1 : last]
    if offset >= max(len(body), 1):
        raise InputError(f"offset={offset} is past the end: there are {len(body)} lines to read.")
    template = DocumentPage(
        repo=repo,
        path=path,
        title=doc.title,
        doc_type=doc.doc_type,
        commit=doc.commit,
        source=doc.source,
        section=label,
        start_line=first + offset,
        end_line=first + offset,
        total_lines=len(body),
        text="",
        offset=offset,
        next_offset=None,
        tokens=0,
        max_tokens=max_tokens,
    )
    return _page(template, body, searcher.embedder.count_tokens)


def _section(
    doc: documents.Document, path: str, chunks: list[dict[str, Any]], section: str | None
) -> tuple[int, int, str | None]:
    if section is None:
        return 1, len(doc.lines), None
    try:
        return documents.section_range(documents.outline(path, doc.lines, chunks), section)
    except ValueError as exc:
        raise InputError(str(exc)) from exc


def _page(template: DocumentPage, body: list[str], count: TokenCounter) -> Answer[DocumentPage]:
    """The page of `body` from `template.offset` on that fits; says where the next one starts."""
    offset = template.offset
    page = fit_lines(body[offset:], lambda ls, cut: page_text(template, ls, cut), count, template.max_tokens)
    shown = [page.cut_line] if page.cut_line is not None else body[offset : offset + page.count]
    read = offset + page.count
    output = template.model_copy(
        update={
            "end_line": template.start_line + page.count - 1,
            "text": "\n".join(shown),
            "next_offset": read if read < len(body) else None,
            "tokens": page.tokens,
        }
    )
    return Answer(output, page.text)


def _unknown_document(paths: list[str], repo: str, path: str) -> str:
    close = difflib.get_close_matches(path, paths, n=5, cutoff=0.4)
    hint = f" Close matches: {', '.join(close)}." if close else ""
    return (
        f"{repo} has no indexed document at {path!r}.{hint} Use a path from search results; "
        "paths are relative to the repository root."
    )


def list_sources_tool(app: App) -> Answer[SourcesOutput]:
    """Every indexed repository: commit, HEAD, freshness, sizes, document types; and the models."""
    index = app.index()
    status = index_status(index)
    types = index.doc_types()
    values = metadata_values(index)
    catalogue = catalog_counts(index)
    repos = [
        Source(
            name=r.name,
            path=r.path if app.local else None,
            indexed_commit=r.indexed_commit,
            head=r.head,
            behind=r.behind,
            updating=r.in_progress is not None,
            files=r.files,
            chunks=r.chunks,
            doc_types=dict(types.get(r.name, {})),
            metadata=values.get(r.name, {}),
            alert_catalogue=catalogue.get(r.name, {}),
        )
        for r in status.repos
    ]
    output = SourcesOutput(
        store=status.store if app.local else None,
        embed_model=_model_name(status.embed_model or app.settings.embed_model, app.local),
        rerank_model=_model_name(app.settings.rerank_model, app.local),
        models=app.models.status,
        watching=app.watching,
        repos=repos,
    )
    return Answer(output, sources_text(output))


def _model_name(model: str, local: bool) -> str:
    """A model as configured; over HTTP, one loaded from a folder of the server's is named by the
    folder's own name, as `path` and `store` are left out (a hub name says no more than a name)."""
    folder = model.startswith(("/", ".", "~")) or Path(model).expanduser().is_dir()
    return model if local or not folder else Path(model).name
