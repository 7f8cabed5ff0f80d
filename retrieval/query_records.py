"""The query log's records: one per search answer, one per feedback on it.

The schema lives in `retrieval`, beside the index whose commits and scores it records, because the
server writes it and `devrag.eval` reads it, and `eval` may not import `server`.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, TypeAdapter

from devrag.retrieval.search import Filters
from devrag.retrieval.search_results import SearchResponse, StageScores


class LoggedSection(BaseModel):
    """A section a result showed, with why it ranked (no text: the commit and lines recover it)."""

    headings: list[str]
    start_line: int
    end_line: int
    score: float
    scores: StageScores


class LoggedDocument(BaseModel):
    """One ranked document of an answer."""

    rank: int
    repo: str
    path: str
    commit: str
    score: float
    shown: bool = Field(description="False when the answer left it out to fit its token budget.")
    sections: list[LoggedSection]

    @property
    def name(self) -> str:
        return f"{self.repo}:{self.path}"


class SearchRecord(BaseModel):
    type: Literal["search"] = "search"
    query_id: str
    time: datetime
    query: str
    mode: str = Field(description="The mode that answered (a busy server may answer without rerank).")
    k: int
    filters: Filters
    documents: list[LoggedDocument]


class DocumentRef(BaseModel):
    repo: str
    path: str


class FeedbackRecord(BaseModel):
    type: Literal["feedback"] = "feedback"
    query_id: str
    time: datetime
    helpful: bool
    document: DocumentRef | None = None
    note: str | None = None


LogRecord = Annotated[SearchRecord | FeedbackRecord, Field(discriminator="type")]
RECORD: TypeAdapter[SearchRecord | FeedbackRecord] = TypeAdapter(LogRecord)


def new_query_id() -> str:
    """A random, opaque id: it names one answer and says nothing about the query.

    64 random bits as 16 hex digits: every answer's text carries it, and a uuid4's 32 digits cost
    the reader 27 word pieces against about 16; two answers sharing an id among a million logged
    is a chance of about 3 in 100 million (and feedback then goes to the newer).
    """
    return secrets.token_hex(8)


def search_record(
    query_id: str,
    query: str,
    k: int,
    mode: str,
    filters: Filters,
    response: SearchResponse | None,
    shown: Collection[tuple[str, str]] | None = None,
) -> SearchRecord:
    """The record of one answer; `shown` names the (repo, path) shown when a budget cut some."""
    results = response.results if response is not None else []
    documents = [
        LoggedDocument(
            rank=rank,
            repo=r.repo,
            path=r.path,
            commit=r.commit,
            score=r.score,
            shown=shown is None or (r.repo, r.path) in shown,
            sections=[LoggedSection.model_validate(s, from_attributes=True) for s in r.sections],
        )
        for rank, r in enumerate(results, start=1)
    ]
    return SearchRecord(
        query_id=query_id,
        time=datetime.now(UTC),
        query=query,
        mode=response.mode if response is not None else mode,
        k=k,
        filters=filters,
        documents=documents,
    )
