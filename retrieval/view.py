"""A snapshot of what the index holds: chunk payloads, as of one generation.

Searches and document reads answer from one such view, so none of them sees half a write; the
holder (`HybridIndex`) builds a new one whenever the index's generation moves, whichever process
(or machine) wrote.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from pydantic import BaseModel

from devrag.retrieval.alert_catalog import AlertCatalog
from devrag.retrieval.index import Index
from devrag.retrieval.paths import path_matches
from devrag.retrieval.schema import META_FIELDS, keyword
from devrag.retrieval.services import ServiceNames

Chunk = dict[str, Any]
_VIEW_FIELDS = (
    *META_FIELDS,
    "repo",
    "path",
    "title",
    "headings",
    "doc_type",
    "text",
    "commit",
    "last_commit_date",
    "start_line",
    "end_line",
    "content_hash",
    "alert_rules",
)


class Filters(BaseModel):
    repo: str | None = None
    path: str | None = None  # a glob over the path within the repository (see `path_matches`)
    doc_type: str | None = None
    # Document metadata (see DocMeta): `tag` and `alert` match any one of a document's tags or alerts.
    service: str | None = None
    team: str | None = None
    severity: str | None = None
    environment: str | None = None
    tag: str | None = None
    alert: str | None = None

    @property
    def active(self) -> bool:
        return any((self.repo, self.path, self.doc_type)) or bool(self.metadata())

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """(payload field, value) of each metadata filter, spelled as ingest stores values.

        Alert names keep their case (Prometheus compares them so); other values are keywords.
        """
        wanted = {
            "service": self.service,
            "team": self.team,
            "severity": self.severity,
            "environment": self.environment,
            "tags": self.tag,
            "alerts": self.alert,
        }
        return tuple(
            (name, value.strip() if name == "alerts" else keyword(value))
            for name, value in wanted.items()
            if value is not None
        )


@dataclass(frozen=True)
class Scope:
    """What a search may return under its filters: chunk ids, and their paths for the store-side filter."""

    ids: set[str]
    paths: list[str]


class View:
    """Chunk payloads as the store held them at `generation` (BM25 runs in the engine)."""

    def __init__(self, index: Index) -> None:
        # Read before the scroll: a write during it leaves the view labelled with the older
        # generation, so the next reader builds again rather than trust a mixed view.
        self.generation = index.generation()
        self.chunks: dict[str, Chunk] = {
            p.id: p.payload for p in index.store.scroll(fields=list(_VIEW_FIELDS))
        }
        # Filters match files, so they are tested once per file rather than once per chunk.
        self.files: dict[tuple[str, str, str], list[str]] = {}
        for cid, c in self.chunks.items():
            self.files.setdefault((c["repo"], c["path"], c["doc_type"]), []).append(cid)
        # Documents by (repo, path), in line order: read per result and per get_document call.
        lines = {cid: (c["start_line"], c["end_line"]) for cid, c in self.chunks.items()}
        self._documents = {
            (repo, path): sorted(ids, key=lines.__getitem__) for (repo, path, _t), ids in self.files.items()
        }

    @cached_property
    def alerts(self) -> AlertCatalog:
        """The alert catalogue of what this view holds, built on first use."""
        return AlertCatalog(self.chunks, self._documents)

    @cached_property
    def services(self) -> ServiceNames:
        """The services this view's documents carry, to find them named in queries."""
        return ServiceNames(self.chunks, self._documents)

    def scope(self, filters: Filters) -> Scope | None:
        """The chunks and paths the filters allow; None when nothing is filtered."""
        if not filters.active:
            return None
        metadata = filters.metadata()
        files = [
            (path, ids)
            for (repo, path, doc_type), ids in self.files.items()
            if (filters.repo is None or repo == filters.repo)
            and (filters.doc_type is None or doc_type == filters.doc_type)
            and (filters.path is None or path_matches(filters.path, path))
            and all(_has(self.chunks[ids[0]].get(name), value) for name, value in metadata)
        ]
        return Scope(ids={cid for _, ids in files for cid in ids}, paths=sorted({path for path, _ in files}))

    def document(self, repo: str, path: str) -> list[Chunk]:
        """The chunks of one document, in line order (empty when the view has no such document)."""
        return [self.chunks[i] for i in self._in_order(repo, path)]

    def lead(self, repo: str, path: str) -> str | None:
        """The id of the document's first chunk that says more than its title (see `title_only`)."""
        return next((i for i in self._in_order(repo, path) if not title_only(self.chunks[i])), None)

    def opening(self, repo: str, path: str) -> str | None:
        """The id of the section that says what the document is about: its lead, else its first."""
        order = self._in_order(repo, path)
        return self.lead(repo, path) or (order[0] if order else None)

    def _in_order(self, repo: str, path: str) -> list[str]:
        return self._documents.get((repo, path), [])

    def paths(self, repo: str) -> list[str]:
        return sorted({p for r, p, _t in self.files if r == repo})


def _has(stored: Any, value: str) -> bool:
    """Whether a payload value matches as the engine's keyword match does: equal, or any element equal."""
    return value in stored if isinstance(stored, list) else stored == value


# An ATX or setext H1 alone: all a runbook holds before its first H2 when it opens with its title.
_TITLE_ONLY = re.compile(r"\A(?:#[ \t]+[^\n]*|[^\n]+\n=+)\Z")


def title_only(chunk: Chunk) -> bool:
    """Whether the chunk's whole text is its document's H1.

    Such chunks stay indexed, because their short vector and title words match alert names well:
    leaving them out cost the reranked mode 0.880 -> 0.866 Recall@1 on alerts-to-runbooks (dense
    alone 0.823 -> 0.791). But shown as a passage, a title tells the reader nothing the result's
    title does not, so results show other sections instead.
    """
    return bool(_TITLE_ONLY.match(chunk["text"].strip()))
