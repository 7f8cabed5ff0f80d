"""The embedded store: Qdrant's own engine in process (qdrant-edge-py), one shard per index directory."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from devrag.retrieval.errors import IndexBusyError
from devrag.retrieval.lexical_field import K1, LEXICAL_FIELD, B
from devrag.retrieval.meta_files import MetaFiles
from devrag.retrieval.store import (
    KEYWORD_FIELDS,
    SCROLL_PAGE,
    SECTION_FIELD,
    PointFilter,
    ScoredId,
    StoredPoint,
    hnsw_ef,
    scored_hits,
    scroll_pages,
)

# A text query checks its filter for the chunks that hold its words. At 1M chunks it took 17 ms for
# a few hundred chunks named by id, against 52-55 ms under a folder condition of 62 or 584 chunks
# (a folder of 7,942: 19 ms under the condition, 44 ms by id); so a filter that at most this many
# chunks pass reaches text queries as their ids, read once and kept until the next write.
NAMED_MAX = 2_000
_NAMED_FILTERS = 64
# Points a call of `EdgeStore.warm` reads: about 40 ms on 2 cores, so a search waits little behind it.
WARM_SLICE_POINTS = 10_000
# The largest segment the optimizer makes by merging. Past it, new writes are indexed in segments of
# their own instead of being merged into the big one, whose whole graph would be built again: 7,000
# new chunks merged into a 56k-chunk segment took 72 s (2 cores; at 1M, half an hour), and 8 s
# without. 64 MB of vectors is about 43,000 chunks of all-MiniLM-L6-v2, under a minute to index.
MAX_SEGMENT_KB = 64_000
# The smallest segment a vacuum rewrites (the engine's floor for the setting). An appendable
# segment's text index drops a deleted chunk at once; only larger, indexed segments keep them.
_VACUUM_MIN_POINTS = 100
_BUSY_HINT = (
    "Another process holds the embedded index at {path} directly. devrag processes share an index "
    "through its owner process (`devrag.retrieval.owner`); stop the process that opened the shard "
    "itself, then retry."
)


def _edge_filter(flt: PointFilter | None) -> qe.Filter | None:
    if flt is None:
        return None
    must: list[Any] = []
    for key, value in flt.conditions():
        match = qe.MatchAny(value) if isinstance(value, list) else qe.MatchValue(value)
        must.append(qe.FieldCondition(key, match=match))
    if flt.ids is not None:
        must.append(qe.HasIdCondition(set(flt.ids)))
    return qe.Filter(must=must) if must else None


def _config(dim: int, vacuum: bool = False) -> qe.EdgeConfig:
    """The shard's settings; with `vacuum`, its optimizer also rewrites any segment of at least
    `_VACUUM_MIN_POINTS` that holds a deleted point (the engine's own threshold is a fifth of it)."""
    vacuuming = {"deleted_threshold": 0.0, "vacuum_min_vector_number": _VACUUM_MIN_POINTS} if vacuum else {}
    return qe.EdgeConfig(
        vectors=qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine),
        optimizers=qe.EdgeOptimizersConfig(max_segment_size=MAX_SEGMENT_KB, **vacuuming),
    )


def _dimension(persisted: Path) -> int:
    """The vector size the engine recorded for the shard (its unnamed dense vector)."""
    return int(json.loads(persisted.read_text(encoding="utf-8"))["vectors"][""]["size"])


class EdgeStore:
    """A VectorStore on a qdrant-edge shard; metadata lives in JSON files beside it (`MetaFiles`)."""

    def __init__(self, index_dir: Path) -> None:
        self.index_dir = Path(index_dir)
        self.location = str(self.index_dir)
        self._shard_dir = self.index_dir / "shard"
        self._shard: qe.EdgeShard | None = None
        self._named: dict[tuple[Any, ...], list[Any] | None] = {}  # filter -> its ids (None: many)
        self._meta = MetaFiles(self.index_dir)
        self._dim = 0  # the vectors' size, known once the shard exists
        persisted = self._shard_dir / "edge_config.json"
        if persisted.exists():
            self._dim = _dimension(persisted)
            self._shard = self._load()  # a shard made before MAX_SEGMENT_KB gets it too
            _index_payload(self._shard)

    def _load(self, vacuum: bool = False) -> qe.EdgeShard:
        """The persisted shard, opened with this devrag's settings (`_config`)."""
        return self._open(lambda: qe.EdgeShard.load(str(self._shard_dir), _config(self._dim, vacuum)))

    def _open(self, opener: Any) -> qe.EdgeShard:
        try:
            return opener()
        except Exception as exc:  # the engine reports a held WAL lock only as text
            if "WouldBlock" in str(exc):
                raise IndexBusyError(_BUSY_HINT.format(path=self.index_dir)) from exc
            raise

    @property
    def shard(self) -> qe.EdgeShard:
        if self._shard is None:
            raise LookupError("the index holds no collection yet")
        return self._shard

    def ensure_collection(self, dim: int) -> None:
        if self._shard is not None:
            return
        self.index_dir.mkdir(parents=True, exist_ok=True)
        self._shard = self._open(lambda: qe.EdgeShard.create(str(self._shard_dir), _config(dim)))
        self._dim = dim
        _index_payload(self._shard)

    def payload_indexes(self) -> set[str] | None:
        return set() if self._shard is None else set(self._shard.info().payload_schema)

    def upsert(self, points: Sequence[StoredPoint]) -> None:
        if points:
            edge_points = [qe.Point(p.id, list(p.vector or []), p.payload) for p in points]
            self._named.clear()
            self.shard.update(qe.UpdateOperation.upsert_points(edge_points))
            self.shard.flush()

    def delete(self, ids: Sequence[str]) -> None:
        if ids:
            self._named.clear()
            self.shard.update(qe.UpdateOperation.delete_points(list(ids)))
            self.shard.flush()

    def retrieve(
        self, ids: Sequence[str], with_vectors: bool = False, fields: Sequence[str] | None = None
    ) -> list[StoredPoint]:
        if self._shard is None or not ids:
            return []
        records = self._shard.retrieve(list(ids), list(fields) if fields is not None else True, with_vectors)
        return [_stored(r.id, r.payload, r.vector if with_vectors else None) for r in records]

    def scroll(
        self,
        flt: PointFilter | None = None,
        fields: Sequence[str] | None = None,
        with_vectors: bool = False,
        limit: int | None = None,
    ) -> Iterator[StoredPoint]:
        return scroll_pages(self.scroll_page, flt, fields, with_vectors, limit)

    def scroll_page(
        self,
        flt: PointFilter | None,
        fields: Sequence[str] | None,
        with_vectors: bool,
        offset: Any,
        size: int = SCROLL_PAGE,
    ) -> tuple[list[StoredPoint], Any]:
        """One page of a scroll and where the next starts (None: done); the unit a remote reader asks for."""
        if self._shard is None:
            return [], None
        request = qe.ScrollRequest(
            offset=offset,
            limit=size,
            filter=_edge_filter(flt),
            with_payload=list(fields) if fields is not None else True,
            with_vector=with_vectors,
        )
        records, next_offset = self._shard.scroll(request)
        return [_stored(r.id, r.payload, r.vector if with_vectors else None) for r in records], next_offset

    def search(self, vector: Sequence[float], limit: int, flt: PointFilter | None = None) -> list[ScoredId]:
        if self._shard is None:
            return []
        request = qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest(list(vector)),
            filter=_edge_filter(flt),
            params=qe.SearchParams(hnsw_ef=hnsw_ef(limit)),
            with_payload=False,
        )
        return scored_hits(self._shard.query(request))

    def lexical_search(self, text: str, limit: int, flt: PointFilter | None = None) -> list[ScoredId]:
        if self._shard is None or not text:
            return []
        request = qe.QueryRequest(
            limit=limit,
            query=qe.TextQuery(LEXICAL_FIELD, text, qe.Bm25Params(k=K1, b=B)),
            filter=self._text_filter(flt),
            with_payload=False,
        )
        return scored_hits(self._shard.query(request))

    def warm_slices(self) -> int:
        """How many calls of `warm` read every stored vector once."""
        return -(-self.count() // WARM_SLICE_POINTS)

    def warm(self, part: int, parts: int) -> None:
        """Read the vectors of one of `parts` slices of the points, by an exact scan of that slice.

        Why: the engine reads a loaded shard's vectors as searches first touch them. At 1M chunks
        the first 25 graph searches after a load took 54 ms at the median, and 6 ms once a scan had
        read every vector (4.7 s); the owner scans slice by slice, so searches can run between.
        """
        if self._shard is None:
            return
        request = qe.QueryRequest(
            limit=1,
            query=qe.Query.Nearest([1.0] + [0.0] * (self._dim - 1)),
            filter=qe.Filter(must=[qe.SliceCondition(parts, part)]),
            params=qe.SearchParams(exact=True),
            with_payload=False,
        )
        self._shard.query(request)

    def _text_filter(self, flt: PointFilter | None) -> qe.Filter | None:
        """The filter of a text query: the ids of the chunks that pass `flt` when they are few."""
        if flt is None or flt.ids is not None or not flt.conditions() or self._shard is None:
            return _edge_filter(flt)
        key = tuple((name, tuple(v) if isinstance(v, list) else v) for name, v in flt.conditions())
        if key in self._named:
            named = self._named[key]
        else:
            request = qe.ScrollRequest(limit=NAMED_MAX + 1, filter=_edge_filter(flt), with_payload=False)
            records, _ = self._shard.scroll(request)
            named = [r.id for r in records] if len(records) <= NAMED_MAX else None
            while len(self._named) >= _NAMED_FILTERS:
                self._named.pop(next(iter(self._named)))
            self._named[key] = named
        return _edge_filter(flt) if named is None else qe.Filter(must=[qe.HasIdCondition(set(named))])

    def count(self, flt: PointFilter | None = None) -> int:
        if self._shard is None:
            return 0
        return int(self._shard.count(qe.CountRequest(exact=True, filter=_edge_filter(flt))))

    def facet(self, field: str, flt: PointFilter | None = None, limit: int = 1000) -> dict[str, int]:
        if self._shard is None:
            return {}
        request = qe.FacetRequest(field, limit=limit, exact=True, filter=_edge_filter(flt))
        return {str(hit.value): int(hit.count) for hit in self._shard.facet(request).hits}

    def optimize(self) -> bool:
        if self._shard is None:
            return False
        return bool(self._shard.optimize())

    def vacuum(self) -> bool:
        """Rewrite every segment that holds replaced or deleted chunks, without them.

        Why: a segment's text index keeps a deleted chunk in its BM25 statistics until the segment
        is rewritten, so the engine's BM25 drifts from devrag's as an index ages
        (`devrag.eval.bm25_drift` measures it). The shard is loaded again with `_config(vacuum=True)`
        for one optimizer pass, then with its usual settings.
        """
        if self._shard is None:
            return False
        self._shard.close()
        self._shard = self._load(vacuum=True)
        try:
            return bool(self._shard.optimize())
        finally:
            self._shard.close()
            self._shard = self._load()

    def get_meta(self, key: str) -> dict[str, Any] | None:
        return self._meta.get(key)

    def put_meta(self, key: str, value: dict[str, Any]) -> None:
        self._meta.put(key, value)

    def delete_meta(self, key: str) -> None:
        self._meta.delete(key)

    def meta_keys(self) -> list[str]:
        return self._meta.keys()

    def writer(self) -> AbstractContextManager[None]:
        """Only this process opens the shard: its Index lock is the whole lease."""
        return nullcontext()

    def close(self) -> None:
        if self._shard is not None:
            self._shard.flush()
            self._shard.close()
            self._shard = None


def _index_payload(shard: qe.EdgeShard) -> None:
    """Create every payload index the shard lacks, on each open.

    A run killed between creating the shard and its indexes would otherwise leave every filter
    a full scan for good, with nothing to notice it.
    """
    present = set(shard.info().payload_schema)
    for name in KEYWORD_FIELDS:
        if name not in present:
            shard.update(qe.UpdateOperation.create_field_index(name, qe.PayloadSchemaType.Keyword))
    if SECTION_FIELD not in present:
        shard.update(qe.UpdateOperation.create_field_index(SECTION_FIELD, qe.PayloadSchemaType.Integer))
    if LEXICAL_FIELD not in present:
        # The field holds devrag's terms already (see lexical_field): split on spaces, nothing more.
        params = qe.TextIndexParams(tokenizer=qe.TokenizerType.Whitespace, lowercase=False, scoring=True)
        shard.update(qe.UpdateOperation.create_field_index(LEXICAL_FIELD, params))


def _stored(point_id: Any, payload: Any, vector: Any) -> StoredPoint:
    return StoredPoint(str(point_id), dict(payload or {}), list(vector) if vector is not None else None)
