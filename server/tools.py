"""The tools' logic as plain functions over an App; the MCP layer only adapts them."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from devrag.ingest.status import head_of, index_status
from devrag.retrieval.index import Index
from devrag.retrieval.search import Filters, Mode, SearchResponse, SearchResult
from devrag.retrieval.search_input import InputError, check_query_length, check_repo, check_search
from devrag.server import documents
from devrag.server.budget import TokenCounter, fit_hits, fit_lines
from devrag.server.formatting import page_text, search_text, sources_text
from devrag.server.outputs import DocumentPage, Freshness, Hit, SearchOutput, Source, SourcesOutput
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
) -> Answer[SearchOutput]:
    """Hybrid search with citations and per-repository freshness, fitted into `max_tokens`."""
    raw = {"query": query, "k": k, "repo": repo, "path": path, "doc_type": doc_type, "max_tokens": max_tokens}
    args = check_search(raw)
    _check_indexed(app, args.repo)
    searcher = app.searcher()
    tokens = check_query_length(args.query, searcher.embedder.count_tokens)
    mode: Mode = "hybrid+rerank" if searcher.reranker is not None else "hybrid"
    filters = Filters(repo=args.repo, path=args.path, doc_type=args.doc_type)
    response = app.search(args.query, args.k, mode, filters) if searcher.matches(filters) else None
    hits = [_hit(rank, r) for rank, r in enumerate(response.results if response else [], start=1)]
    fresh = _freshness(searcher.index, hits)
    notes = _search_notes(app, hits, path) + _trim_note(tokens, response)

    def render(shown: list[Hit], left_out: int) -> str:
        cited = [fresh[r] for r in dict.fromkeys(h.repo for h in shown)]
        return search_text(shown, left_out, cited, notes, max_tokens)

    fitted = fit_hits(hits, render, searcher.embedder.count_tokens, max_tokens)
    output = SearchOutput(
        query=query,
        mode=mode,
        results=fitted.hits,
        left_out=fitted.left_out,
        freshness=[fresh[r] for r in dict.fromkeys(h.repo for h in fitted.hits)],
        notes=notes,
        tokens=fitted.tokens,
        max_tokens=max_tokens,
    )
    return Answer(output, fitted.text)


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
    check_repo(repo, [state.name for state in app.index().repos()], s.qdrant_url or str(s.index_dir))


def _hit(rank: int, r: SearchResult) -> Hit:
    crumb = [r.title] if r.title != r.path else []
    for heading in r.headings:
        if not crumb or crumb[-1] != heading:
            crumb.append(heading)
    return Hit(
        rank=rank,
        repo=r.repo,
        path=r.path,
        headings=crumb,
        doc_type=r.doc_type,
        commit=r.commit,
        start_line=r.start_line,
        end_line=r.end_line,
        score=round(r.score, 4),
        text=r.text,
        truncated=False,
        tokens_cut=0,
    )


def _freshness(index: Index, hits: list[Hit]) -> dict[str, Freshness]:
    out: dict[str, Freshness] = {}
    for hit in hits:
        if hit.repo in out:
            continue
        state = index.repo_state(hit.repo)
        head = head_of(state.path) if state else None
        behind = None if head is None else head != hit.commit
        out[hit.repo] = Freshness(repo=hit.repo, indexed_commit=hit.commit, head=head, behind=behind)
    return out


def _search_notes(app: App, hits: list[Hit], path: str | None) -> list[str]:
    notes = []
    if app.models.rerank_error:
        notes.append("Results are not reranked: the reranker failed to load (see list_sources).")
    if not hits and path is not None:
        notes.append(f"No indexed path matches path={path!r}: check it against paths in earlier results.")
    return notes


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
    repos = [
        Source(
            name=r.name,
            path=r.path,
            indexed_commit=r.indexed_commit,
            head=r.head,
            behind=r.behind,
            updating=r.in_progress is not None,
            files=r.files,
            chunks=r.chunks,
            doc_types=dict(types.get(r.name, {})),
        )
        for r in status.repos
    ]
    output = SourcesOutput(
        store=status.store,
        embed_model=status.embed_model or app.settings.embed_model,
        rerank_model=app.settings.rerank_model,
        models=app.models.status,
        watching=app.watching,
        repos=repos,
    )
    return Answer(output, sources_text(output))
