"""What the MCP tools return: pydantic models, published to clients as each tool's output schema."""

from __future__ import annotations

from pydantic import BaseModel, Field

from devrag.retrieval.alert_catalog import AlertMatch
from devrag.retrieval.search_results import Route, SearchResponse


class CommandOut(BaseModel):
    """A command the passage quotes, and what running it does."""

    text: str = Field(description="The command as written in the document (a shell prompt removed).")
    kind: str = Field(
        description="'read-only', 'mutating' (also any command not recognised) or 'destructive' "
        "(deletes data or resources, or takes something down): confirm destructive ones before running."
    )


class DocumentMeta(BaseModel):
    """What the document says about itself in front matter (the service also from its path)."""

    service: str | None = Field(description="The service it is about, as filtered on by search's `service`.")
    service_inferred: bool = Field(
        description="True when the service comes from the path (`runbooks/<service>/...`), not front matter."
    )
    team: str | None = Field(description="Owning team (front matter `team` or `owner`).")
    severity: str | None
    environment: str | None
    alerts: list[str] = Field(description="Alert names the document answers.")
    tags: list[str]
    last_reviewed: str | None = Field(description="When the document was last reviewed (YYYY-MM-DD).")
    other: dict[str, str | list[str]] = Field(description="Further front matter fields, as written.")


class Review(BaseModel):
    """How old the document's knowledge is, as of this search (UTC dates)."""

    last_commit_date: str | None = Field(description="Date of the last commit that touched the file.")
    last_reviewed: str | None = Field(description="Front matter `last_reviewed`, when the document has one.")
    age_days: int | None = Field(
        description="Days since last_reviewed when present, else since last_commit_date (see `basis`)."
    )
    basis: str | None = Field(description="'last_reviewed' or 'last_commit': what age_days counts from.")
    stale: bool = Field(
        description="True when age_days is past stale_after_days: check the steps before relying on them."
    )
    stale_after_days: int
    recency: float | None = Field(
        default=None, description="What recency added to the document's score; null when recency is off."
    )


class Passage(BaseModel):
    """One matching section of a result's document, and exactly where it is."""

    headings: list[str] = Field(description="Heading path of the section below the document's title.")
    start_line: int = Field(
        description="First line of the passage in the file at the result's commit (1-based)."
    )
    end_line: int = Field(
        description="Last line of the passage in the file at the result's commit (inclusive)."
    )
    score: float = Field(
        description="This section's own score (the cross-encoder's when reranked); compares the "
        "sections of one document, best first."
    )
    text: str = Field(description="The passage, possibly cut to fit max_tokens (see `truncated`).")
    truncated: bool = Field(description="True when `text` was cut to fit; get_document has the rest.")
    tokens_cut: int = Field(description="Tokens of the passage left out by the cut (0 when whole).")
    via_title: bool = Field(
        description="True when the document matched by its title alone: this is its first section."
    )
    commands: list[CommandOut] = Field(
        default_factory=list, description="Commands in the whole section (also when `text` is cut)."
    )


class Result(BaseModel):
    """One document found, with its best matching sections."""

    rank: int = Field(description="1 is the best match; `k` counts these documents.")
    repo: str = Field(description="Indexed repository name (see list_sources).")
    path: str = Field(description="File path inside the repository.")
    title: str
    doc_type: str = Field(description="runbook, postmortem, guide, code or other.")
    commit: str = Field(description="Commit the document was indexed at; the lines refer to this commit.")
    score: float = Field(description="The document's score in the final ranking (higher is better).")
    passages: list[Passage] = Field(description="Its best matching sections, best first.")
    passages_left_out: int = Field(description="Further matching sections left out to fit max_tokens.")
    metadata: DocumentMeta | None = Field(default=None, description="The document's front matter facts.")
    review: Review | None = Field(default=None, description="Last commit, last review and staleness.")
    route: Route = Field(
        default="search",
        description="How it was found: 'runbook_url' (the alert's own runbook link), 'catalogue' (an alert "
        "name the index maps to this document) or 'search' (ranked by its text).",
    )
    alert_match: AlertMatch | None = Field(
        default=None,
        description="For 'runbook_url' and 'catalogue': the alert name and where the mapping comes from "
        "(front_matter, title, rule: the rule file that names this runbook, runbook_url).",
    )


class Freshness(BaseModel):
    """How current the index is for one repository cited in an answer."""

    repo: str
    indexed_commit: str = Field(description="Commit the cited passages of this repository come from.")
    head: str | None = Field(description="The repository's HEAD now; null when it is not reachable.")
    behind: bool | None = Field(description="True when HEAD has moved on since indexing; null if unknown.")


class SearchOutput(BaseModel):
    query_id: str = Field(
        description="Opaque id of this answer: pass it to `feedback` to say whether the answer helped."
    )
    query: str
    mode: str = Field(description="Retrieval pipeline used, e.g. hybrid+rerank.")
    results: list[Result]
    left_out: int = Field(description="Documents found but left out entirely to fit max_tokens.")
    freshness: list[Freshness] = Field(description="One entry per repository cited in `results`.")
    notes: list[str] = Field(description="Anything the caller should know about this answer.")
    tokens: int = Field(description="Tokens in the text rendering of this answer.")
    max_tokens: int


class DocumentPage(BaseModel):
    """One page of an indexed document, or of one of its sections."""

    repo: str
    path: str
    title: str
    doc_type: str
    commit: str = Field(description="Commit this text comes from: the one the document was indexed at.")
    source: str = Field(
        description="'repository': read from Git at `commit`; 'chunks': reassembled from the index "
        "because the repository is not reachable from the server."
    )
    section: str | None = Field(description="Heading path of the section returned; null: whole document.")
    start_line: int = Field(description="First file line on this page (1-based).")
    end_line: int = Field(description="Last file line on this page (inclusive).")
    total_lines: int = Field(description="Lines in the whole document or section.")
    text: str
    offset: int = Field(description="Lines of the document or section before this page.")
    next_offset: int | None = Field(description="Pass as `offset` to read on; null on the last page.")
    tokens: int = Field(description="Tokens in the text rendering of this page.")
    max_tokens: int


class Source(BaseModel):
    """One indexed repository."""

    name: str
    path: str | None = Field(
        description="Where the repository was when it was indexed; null for clients of a server over HTTP."
    )
    indexed_commit: str | None
    head: str | None = Field(description="Current HEAD; null when the repository is not reachable.")
    behind: bool | None = Field(description="True when HEAD has moved on since indexing; null if unknown.")
    updating: bool = Field(description="True while an ingest of this repository is under way.")
    files: int
    chunks: int
    doc_types: dict[str, int] = Field(description="Chunks per document type.")
    metadata: dict[str, dict[str, int]] = Field(
        default_factory=dict,
        description="Per filter of search (service, team, severity, environment, tags, alerts): each "
        "value present and how many documents carry it.",
    )
    alert_catalogue: dict[str, int] = Field(
        default_factory=dict,
        description="Alert names that route to this repository's documents (search_alert, or the name in "
        "a search query), by where each mapping comes from: front_matter, title, rule (a rule file).",
    )


class SourcesOutput(BaseModel):
    store: str | None = Field(
        description="Index location: a folder, or a Qdrant server URL; null for clients over HTTP."
    )
    embed_model: str
    rerank_model: str
    models: str = Field(description="'ready', 'loading', or why the models failed to load.")
    watching: bool = Field(description="True when the server re-indexes repositories on new commits.")
    repos: list[Source]


class FeedbackOutput(BaseModel):
    """Feedback recorded in the server's query log."""

    query_id: str
    helpful: bool
    document: str | None = Field(description="The result judged, as repo:path; null: the answer as a whole.")
    note: str | None


class SearchAnswer(SearchResponse):
    """`devrag search --json`: the read API's response, under the id the query log knows it by."""

    query_id: str
