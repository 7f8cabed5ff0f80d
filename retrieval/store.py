"""The vector store seam: one small interface, an embedded engine and a Qdrant server behind it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from devrag.retrieval.lexical_field import LEXICAL_FIELD
from devrag.retrieval.schema import FILTER_FIELDS

# Payload fields with a keyword index: every filter the index applies uses one of these.
KEYWORD_FIELDS: tuple[str, ...] = (
    "repo",
    "path",
    "doc_type",
    "content_hash",
    "commit",
    *FILTER_FIELDS,
    "path_dirs",
    "path_key",
    "alert_names",
)
# The integer field with an index: a chunk's place in its document (0 lists documents once each).
SECTION_FIELD = "section"
# Every payload index a store keeps: the keyword ones, the section and the BM25 text index.
INDEXED_FIELDS: tuple[str, ...] = (*KEYWORD_FIELDS, SECTION_FIELD, LEXICAL_FIELD)


def hnsw_ef(limit: int) -> int:
    """How wide a graph search looks for `limit` nearest vectors.

    Why: fusion reads the whole candidate list, not only its head. With the engine's default
    width a search found 96.7% of the exact top 90 on SciFact's 13,650 chunks (dense nDCG@10 -0.004
    against a scan); at 512, 99.96%, for 0.8 ms a query instead of 0.3.
    """
    return max(512, 4 * limit)


@dataclass(frozen=True)
class StoredPoint:
    """A point as the store holds it: ID, payload and, when asked for, its vector."""

    id: str
    payload: dict[str, Any]
    vector: list[float] | None = None


@dataclass(frozen=True)
class ScoredId:
    """A hit: an id and its score, no payload (a search reads the few it needs by id, `retrieve`).

    Why: the engine reads a hit's whole payload in every segment it searches, so at 1M chunks
    payloads read with 90 hits took about half of a dense or BM25 query.
    """

    id: str
    score: float


# Points a scroll reads per engine call.
SCROLL_PAGE = 1024


def scored_hits(points: Iterable[Any]) -> list[ScoredId]:
    """An engine's scored points as hits."""
    return [ScoredId(str(p.id), p.score) for p in points]


@dataclass(frozen=True)
class PointFilter:
    """Conditions on payload fields, each optional, all of them applied together."""

    repo: str | None = None
    paths: Sequence[str] | None = None
    doc_type: str | None = None
    content_hashes: Sequence[str] | None = None
    # (field, value) pairs of document metadata (FILTER_FIELDS); on a list field, any element matches.
    metadata: tuple[tuple[str, str], ...] = ()
    # Point ids, not a payload field: each backend applies it as its own has-id condition.
    ids: Sequence[str] | None = None
    # Under this folder (any depth; see `doc_fields.folders`).
    folder: str | None = None
    # Only each document's first chunk: one point per document.
    first: bool = False
    # Documents that bring any of these names to the alert catalogue, or whose path ends so.
    alert_names: Sequence[str] | None = None
    path_key: str | None = None

    def conditions(self) -> list[tuple[str, str | int | list[str]]]:
        """(field, value or values) pairs, all of which must hold, in the order backends apply them."""
        wanted: list[tuple[str, str | int | list[str] | None]] = [
            ("repo", self.repo),
            ("path", list(self.paths) if self.paths is not None else None),
            ("path_dirs", self.folder),
            (SECTION_FIELD, 0 if self.first else None),
            ("alert_names", list(self.alert_names) if self.alert_names is not None else None),
            ("path_key", self.path_key),
            ("doc_type", self.doc_type),
            ("content_hash", list(self.content_hashes) if self.content_hashes is not None else None),
            *self.metadata,
        ]
        return [(name, value) for name, value in wanted if value is not None]


class VectorStore(Protocol):
    """What ingestion and search need from a vector database, and no more."""

    location: str

    def ensure_collection(self, dim: int) -> None:
        """Create the collection and its payload indexes if they do not exist yet."""

    def payload_indexes(self) -> set[str] | None:
        """The payload fields indexed now (see INDEXED_FIELDS); none before the collection exists.

        None when the engine keeps no payload indexes at all: qdrant-client's local mode, where
        every filter scans.
        """

    def upsert(self, points: Sequence[StoredPoint]) -> None: ...

    def delete(self, ids: Sequence[str]) -> None: ...

    def retrieve(
        self, ids: Sequence[str], with_vectors: bool = False, fields: Sequence[str] | None = None
    ) -> list[StoredPoint]:
        """The points of `ids` that exist; `fields` limits the payload read (None reads all of it)."""

    def scroll(
        self,
        flt: PointFilter | None = None,
        fields: Sequence[str] | None = None,
        with_vectors: bool = False,
        limit: int | None = None,
    ) -> Iterator[StoredPoint]:
        """Every matching point (the first `limit`); `fields` limits the payload read (None: all)."""

    def search(self, vector: Sequence[float], limit: int, flt: PointFilter | None = None) -> list[ScoredId]:
        """The nearest points."""

    def lexical_search(self, text: str, limit: int, flt: PointFilter | None = None) -> list[ScoredId]:
        """BM25 (k1 1.2, b 0.75) over the LEXICAL_FIELD text index, `text` in its spelling.

        The engine's statistics (document count, frequencies, average length) cover every point,
        whatever `flt` keeps, as `Bm25Index` over the whole corpus does.
        """

    def count(self, flt: PointFilter | None = None) -> int: ...

    def facet(self, field: str, flt: PointFilter | None = None, limit: int = 1000) -> dict[str, int]:
        """Up to `limit` values of a keyword field among matching points, each with its point count."""

    def optimize(self) -> bool:
        """Build the vector and payload indexes of what was written since the last call.

        True when a segment was rebuilt. An embedded shard indexes nothing by itself (every vector
        query scans until this runs); a Qdrant server runs its optimizers on its own.
        """

    def vacuum(self) -> bool | None:
        """Rewrite the segments that hold replaced or deleted points, without them.

        True when a segment was rewritten; None where the engine decides that itself (a Qdrant
        server vacuums by its collection's optimizer settings). Why: an indexed segment keeps such
        points in its BM25 statistics until it is rewritten, which an engine does on its own only
        once a large share of the segment is deleted.
        """

    def get_meta(self, key: str) -> dict[str, Any] | None: ...

    def put_meta(self, key: str, value: dict[str, Any]) -> None: ...

    def delete_meta(self, key: str) -> None: ...

    def meta_keys(self) -> list[str]: ...

    def writer(self) -> AbstractContextManager[None]:
        """Hold the store's one-writer lease, shared by every process that reaches this store."""

    def close(self) -> None: ...


@runtime_checkable
class RebuildableStore(VectorStore, Protocol):
    """A store whose readers follow a name (a Qdrant server's alias) that can move to a new copy."""

    collection: str

    def staged(self) -> RebuildableStore:
        """A new, empty store beside this one, for a rebuild to fill while readers keep this one."""

    def promote(self, staged: Any) -> list[str]:
        """Move every reader to `staged` at once; returns what they read before, now unread."""

    def drop(self, collections: Sequence[str] | None = None) -> None:
        """Delete unread copies: `collections`, or a staged store's own when None."""


# (filter, fields, with_vectors, offset, size) -> (points, the next page's offset or None)
ScrollPage = Callable[
    [PointFilter | None, Sequence[str] | None, bool, Any, int], tuple[list[StoredPoint], Any]
]


def scroll_pages(
    page: ScrollPage,
    flt: PointFilter | None,
    fields: Sequence[str] | None,
    with_vectors: bool,
    limit: int | None = None,
) -> Iterator[StoredPoint]:
    """Every point (the first `limit`), one `page(flt, fields, with_vectors, offset, size)` call at a
    time until offset is None."""
    offset: Any = None
    left = limit
    while left is None or left > 0:
        size = SCROLL_PAGE if left is None else min(left, SCROLL_PAGE)
        points, offset = page(flt, fields, with_vectors, offset, size)
        yield from points
        if left is not None:
            left -= len(points)
        if offset is None:
            return
