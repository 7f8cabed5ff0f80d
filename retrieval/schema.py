"""The chunk schema every index holds: what a chunk knows about where it came from."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

from devrag.retrieval.doc_fields import DocFields, document_fields

DocType = Literal["runbook", "postmortem", "guide", "code", "other"]
DOC_TYPES: tuple[str, ...] = ("runbook", "postmortem", "guide", "code", "other")

# Bump when chunk boundaries or chunk text change: an index built by another version is refused.
# 3: secrets replaced by `[REDACTED:<kind>]` before chunking, so an older index may hold them.
# 4: URL passwords holding `!` or `*` replaced too.
CHUNKER_VERSION = "4"
# Bump when the payload fields that filters and results read change (see DocMeta): an index
# without them would drop every document from a filtered search, so it is refused until rebuilt.
# 2: `last_commit_date`, which each result's review age reads, and `alert_rules`, the rules of a
#    rule file, which the alert catalogue reads.
# 3: the document's shape on every chunk (DocFields), which searches read instead of a copy of
#    every payload.
PAYLOAD_VERSION = "3"

# Bump when chunk ids are made otherwise: an ingest re-keys an index of older ids in place.
# 2: the document's key first (`document_key`), so a search groups hits without their payloads.
ID_VERSION = "2"
_ID_NAMESPACE = uuid.UUID("5b0f7c52-3c1e-4d0a-9a43-2f4f4d1b6e11")


def content_hash(text: str) -> str:
    """Hash of the exact text that is embedded; equal hashes share one vector."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def document_key(repo: str, path: str) -> str:
    """A document's key: 16 hex digits of a hash of its repository and path, the head of its chunks' ids."""
    return uuid.uuid5(_ID_NAMESPACE, f"{repo}\0{path}").hex[:16]


def chunk_id(repo: str, path: str, chunk_hash: str, occurrence: int) -> str:
    """A point ID that stays the same while the chunk's text and place stay the same.

    Its first half is the document's key (`document_key`), so a search tells which document a hit
    belongs to from the id the engine returns, without reading the hit's payload (at a million
    chunks, payloads read with the hits took half of each first-stage query).
    """
    chunk = uuid.uuid5(_ID_NAMESPACE, f"{repo}\0{path}\0{chunk_hash}\0{occurrence}").hex[16:]
    return str(uuid.UUID(hex=document_key(repo, path) + chunk))


def id_document(cid: str) -> str:
    """The key of the document a chunk id (`chunk_id`) belongs to."""
    return cid[:8] + cid[9:13] + cid[14:18]


class ChunkDraft(BaseModel):
    """A chunk as a chunker produces it, before it knows its repository or commit."""

    text: str
    headings: list[str] = Field(default_factory=list)
    start_line: int
    end_line: int
    symbol: str | None = None


ServiceSource = Literal["front_matter", "path"]


class DocMeta(BaseModel):
    """A document's operational facts, copied onto every chunk of it so the engine can filter on them.

    Keyword values (service, team, severity, environment, tags) are stored trimmed and lowercased
    (`keyword`), so `Payments` in front matter and `payments` in a filter meet; alert names keep
    their case, as Prometheus compares them. Front matter fields devrag has no name for are kept
    under `meta` (scalars as strings, lists of scalars as lists of strings) and shown, not indexed.
    """

    service: str | None = None
    # Where `service` came from: the document's front matter, or a path convention (`runbooks/<svc>/`).
    service_source: ServiceSource | None = None
    team: str | None = None  # `team`, or `owner` when there is no team
    severity: str | None = None
    alerts: list[str] = Field(default_factory=list)
    environment: str | None = None
    last_reviewed: str | None = None  # an ISO date, YYYY-MM-DD
    tags: list[str] = Field(default_factory=list)
    meta: dict[str, str | list[str]] = Field(default_factory=dict)

    @classmethod
    def of(cls, payload: Mapping[str, Any]) -> DocMeta:
        """The metadata a chunk payload carries (absent fields left at their defaults)."""
        return cls.model_validate({k: payload[k] for k in cls.model_fields if payload.get(k) is not None})


# The DocMeta fields a search filters on, each with a keyword index (list fields match any element).
FILTER_FIELDS: tuple[str, ...] = ("service", "team", "severity", "environment", "tags", "alerts")
META_FIELDS: tuple[str, ...] = tuple(DocMeta.model_fields)


def keyword(value: str) -> str:
    """A keyword value as stored and as filtered on: trimmed, inner whitespace collapsed, lowercased."""
    return " ".join(value.split()).lower()


class AlertRule(BaseModel):
    """One alerting rule of a Prometheus or Alertmanager rule file: its name and the runbook it names.

    `runbook_url` is the rule's `runbook_url` (or `runbook`) annotation as written: a URL, or a path
    in the rule file's own repository; None when the rule names no runbook.
    """

    alert: str
    runbook_url: str | None = None


class Chunk(DocMeta, DocFields):
    """One indexed chunk: the payload stored beside its vector, its document's DocMeta and
    DocFields included."""

    id: str
    repo: str
    path: str
    title: str
    headings: list[str]
    doc_type: DocType
    text: str
    content_hash: str
    start_line: int
    end_line: int
    commit: str
    last_commit: str
    # YYYY-MM-DD (UTC) of `last_commit`, stored so a result's review age needs no repository.
    last_commit_date: str | None = None
    blob_sha: str
    symbol: str | None = None
    # Set on the chunks of a Prometheus/Alertmanager rule file: its alerting rules, which the
    # alert catalogue maps to the runbooks their `runbook_url` names (see `alert_catalog`).
    alert_rules: list[AlertRule] = Field(default_factory=list)

    @property
    def embed_text(self) -> str:
        return embed_text_for(self.title, self.headings, self.text)


def with_document_fields(chunks: Sequence[Chunk]) -> list[Chunk]:
    """One document's chunks, in line order, each carrying the DocFields of the whole document."""
    if not chunks:
        return []
    first = chunks[0]
    view = [c.model_dump(include={"id", "text", "title", "headings", "doc_type"}) for c in chunks]
    shape = document_fields(first.path, view, first.alerts, [r.alert for r in first.alert_rules])
    return [c.model_copy(update=f.model_dump()) for c, f in zip(chunks, shape, strict=True)]


def embed_text_for(title: str, headings: list[str], text: str) -> str:
    """The text a model reads: the title > H1 > H2 breadcrumb, then the chunk."""
    parts: list[str] = []
    for part in [title, *headings]:
        if part and (not parts or parts[-1] != part):
            parts.append(part)
    crumb = " > ".join(parts)
    return f"{crumb}\n\n{text}" if crumb else text
