"""What a search returns: documents, the sections each shows, and every stage's evidence for them."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

from devrag.retrieval.alert_catalog import AlertMatch
from devrag.retrieval.commands import Command, section_commands
from devrag.retrieval.review_age import ReviewAge
from devrag.retrieval.schema import DocMeta

Chunk = dict[str, Any]
# How a result was found: the alert's own runbook_url, the alert catalogue, or the ranking.
Route = Literal["runbook_url", "catalogue", "search"]


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
    # Set when the answer is empty and no indexed file matches the path filter: the glob is wrong,
    # not the query.
    path_unmatched: bool = False
    # Set when the answer is empty: each metadata filter no indexed document has (`service='x'`).
    values_unmatched: list[str] = Field(default_factory=list)
    # Each alert's runbook_url that names no indexed document (the runbook may live elsewhere).
    runbook_urls_unmatched: list[str] = Field(default_factory=list)


def stage_evidence(
    dense: Sequence[tuple[str, float]],
    bm25: Sequence[tuple[str, float]],
    fused: Sequence[tuple[str, float]],
    service: Sequence[tuple[str, float]] = (),
) -> dict[str, StageScores]:
    """Each fused chunk's rank and score in every stage that returned it: why it ranks where it
    does, shown with the result (the reranker adds its own score later)."""
    out: dict[str, StageScores] = {i: StageScores(rrf_score=s) for i, s in fused}
    for rank, (i, s) in enumerate(dense, start=1):
        out[i].dense_rank, out[i].dense_score = rank, s
    for rank, (i, s) in enumerate(bm25, start=1):
        out[i].bm25_rank, out[i].bm25_score = rank, s
    for rank, (i, s) in enumerate(service, start=1):
        out[i].service_rank, out[i].service_score = rank, s
    return out


def shown_sections(
    sections: list[tuple[str, float]], chunks: Mapping[str, Chunk], limit: int
) -> list[tuple[str, float, str]]:
    """The sections a result shows, best first, as (chunk, score, chunk whose evidence it is).

    Those that say more than a heading: a document matched only by its title, or by a heading
    with nothing under it (a section left empty, or one whose text is all in subsections), shows
    its lead section (its first that says something), under that match's score.
    """
    said = [(cid, score, cid) for cid, score in sections if _says_something(chunks[cid])]
    if said:
        return said[:limit]
    cid, score = sections[0]
    return [(chunks[cid]["lead"] or cid, score, cid)]


def _says_something(chunk: Chunk) -> bool:
    """Whether a chunk holds more than its headings (a code chunk always does: `#` starts comments)."""
    if chunk["title_only"]:
        return False
    if chunk["doc_type"] == "code":
        return True
    return any(line.strip() and not line.lstrip().startswith("#") for line in chunk["text"].split("\n"))


def still_shown(
    sections: list[tuple[str, float, str]], chunks: Mapping[str, Chunk]
) -> list[tuple[str, float, str]]:
    """The shown sections that could be read; one shown for another (a title's lead section) and
    deleted between the reads falls back to the chunk whose evidence it is, read before."""
    return [(cid, score, by) if cid in chunks else (by, score, by) for cid, score, by in sections]


def one_version(
    sections: list[tuple[str, float, str]], chunks: Mapping[str, Chunk], newer: Collection[str]
) -> list[tuple[str, float, str]]:
    """The shown sections of one version of their document.

    An ingest writes a file's new chunks before it deletes those they replace, so a search in
    between may read both, even two versions of one section. Sections written at a commit newer
    than the indexed one the search began from (`newer`, see `written_since`) are shown only when
    the document has no others: the others all hold its text at that indexed commit.
    """
    older = [s for s in sections if chunks[s[0]]["commit"] not in newer]
    if older:
        return older
    first = chunks[sections[0][0]]["commit"]
    return [s for s in sections if chunks[s[0]]["commit"] == first]


def search_result(
    sections: list[tuple[str, float, str]],
    score: float,
    chunks: Mapping[str, Chunk],
    evidence: dict[str, StageScores],
    match: AlertMatch | None = None,
) -> SearchResult:
    """One document's result: cited by its first shown section's chunk (repo, path, commit), each
    section with the evidence of the chunk it stands for; `match` when an alert put it first."""
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
