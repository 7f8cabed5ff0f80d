"""A Qdrant server or cluster through qdrant-client: for teams that outgrow one machine."""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ApiException

from devrag.retrieval.lexical_field import K1, LEXICAL_FIELD, B
from devrag.retrieval.store import (
    INDEXED_FIELDS,
    SECTION_FIELD,
    PointFilter,
    ScoredId,
    StoredPoint,
    hnsw_ef,
    scored_hits,
    scroll_pages,
)

log = logging.getLogger(__name__)

_META_VECTOR = [1.0]
_META_PAGE = 1_000  # metadata keys per scroll page
# BM25 over devrag's own terms (see lexical_field), with the default word tokenizer: it keeps each
# of the field's words whole, and it is the only one qdrant-client's local mode ranks with. Text
# queries with BM25 scoring need Qdrant 1.20 or later.
_TEXT_INDEX = models.TextIndexParams(type=models.TextIndexType.TEXT, scoring=True)
# The indexes that are not keyword ones. `repo` is every deployment's tenant key.
_SCHEMAS: dict[str, Any] = {
    LEXICAL_FIELD: _TEXT_INDEX,
    SECTION_FIELD: models.PayloadSchemaType.INTEGER,
    "repo": models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True),
}


def _client_filter(flt: PointFilter | None) -> models.Filter | None:
    if flt is None:
        return None
    must: list[Any] = []
    for key, value in flt.conditions():
        match: Any = models.MatchAny(any=value) if isinstance(value, list) else models.MatchValue(value=value)
        must.append(models.FieldCondition(key=key, match=match))
    if flt.ids is not None:
        must.append(models.HasIdCondition(has_id=list(flt.ids)))
    return models.Filter(must=must) if must else None


class QdrantStore:
    """A VectorStore on a Qdrant collection; metadata lives in a small companion collection.

    Both names are aliases, each of a collection of its own (`devrag` -> `devrag-20261201T101500-1a2b`,
    `devrag_meta` -> `devrag-20261201T101500-1a2b_meta`): a rebuild fills a new pair beside the one
    searches read (`staged`), then moves both aliases in one atomic change (`promote`), so readers
    on any machine go from the whole old index to the whole new one between two calls.
    """

    def __init__(
        self, client: QdrantClient, collection: str, location: str, local: bool = False, aliased: bool = True
    ) -> None:
        self.client = client
        self.collection = collection
        self.meta_collection = f"{collection}_meta"
        self.location = location
        self.local = local  # qdrant-client's local mode: payload indexes do not exist there
        self.aliased = aliased  # False for a staged pair: its names are its collections'

    @classmethod
    def connect(cls, url: str, collection: str, api_key: str | None = None) -> QdrantStore:
        """A store on a server (`http://...`) or, for tests, qdrant-client's local mode (`:memory:`).

        On a server, payload indexes the collection lacks are created now, on every open: a
        run killed between creating the collection and its indexes would otherwise leave
        filters scanning every point until the next ingest.
        """
        if url == ":memory:":
            return cls(QdrantClient(location=":memory:"), collection, url, local=True)
        store = cls(QdrantClient(url=url, api_key=api_key), collection, url)
        try:
            if store._exists():
                store._index_payload()
        except ApiException as exc:  # down, or a read-only key: reads still work, `status` shows it
            log.warning("could not check the payload indexes of %s at %s: %s", collection, url, exc)
        return store

    def _exists(self) -> bool:
        return bool(self.client.collection_exists(self.collection))

    def ensure_collection(self, dim: int) -> None:
        if not self._exists() and self.aliased:
            first = self.staged()
            first.ensure_collection(dim)
            self.promote(first)
        elif not self._exists():
            self.client.create_collection(
                self.collection,
                vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE),
            )
        # Every time, not only at creation: a run killed in between would leave them missing.
        self._index_payload()
        if not self.client.collection_exists(self.meta_collection):
            self.client.create_collection(
                self.meta_collection,
                vectors_config=models.VectorParams(size=1, distance=models.Distance.DOT),
            )

    def _index_payload(self) -> None:
        present = self.payload_indexes()
        # Local mode keeps no keyword indexes, but it needs the text index to answer text queries.
        missing = [LEXICAL_FIELD] if present is None else [n for n in INDEXED_FIELDS if n not in present]
        for name in missing:
            schema: Any = _SCHEMAS.get(name, models.PayloadSchemaType.KEYWORD)
            self.client.create_payload_index(self.collection, name, field_schema=schema)

    def payload_indexes(self) -> set[str] | None:
        if self.local:
            return None
        if not self._exists():
            return set()
        return set(self.client.get_collection(self.collection).payload_schema or {})

    def upsert(self, points: Sequence[StoredPoint]) -> None:
        if points:
            structs = [models.PointStruct(id=p.id, vector=p.vector or [], payload=p.payload) for p in points]
            self.client.upsert(self.collection, points=structs, wait=True)

    def delete(self, ids: Sequence[str]) -> None:
        if ids:
            selector = models.PointIdsList(points=list(ids))
            self.client.delete(self.collection, points_selector=selector, wait=True)

    def retrieve(
        self, ids: Sequence[str], with_vectors: bool = False, fields: Sequence[str] | None = None
    ) -> list[StoredPoint]:
        if not ids or not self._exists():
            return []
        with_payload: Any = list(fields) if fields is not None else True
        records = self.client.retrieve(
            self.collection, ids=list(ids), with_payload=with_payload, with_vectors=with_vectors
        )
        return [_stored(r.id, r.payload, r.vector if with_vectors else None) for r in records]

    def scroll(
        self,
        flt: PointFilter | None = None,
        fields: Sequence[str] | None = None,
        with_vectors: bool = False,
        limit: int | None = None,
    ) -> Iterator[StoredPoint]:
        if not self._exists():
            return
        yield from scroll_pages(self._scroll_page, flt, fields, with_vectors, limit)

    def _scroll_page(
        self,
        flt: PointFilter | None,
        fields: Sequence[str] | None,
        with_vectors: bool,
        offset: Any,
        size: int,
    ) -> tuple[list[StoredPoint], Any]:
        records, next_offset = self.client.scroll(
            self.collection,
            scroll_filter=_client_filter(flt),
            limit=size,
            offset=offset,
            with_payload=list(fields) if fields is not None else True,
            with_vectors=with_vectors,
        )
        return [_stored(r.id, r.payload, r.vector if with_vectors else None) for r in records], next_offset

    def search(self, vector: Sequence[float], limit: int, flt: PointFilter | None = None) -> list[ScoredId]:
        if not self._exists():
            return []
        response = self.client.query_points(
            self.collection,
            query=list(vector),
            limit=limit,
            query_filter=_client_filter(flt),
            search_params=None if self.local else models.SearchParams(hnsw_ef=hnsw_ef(limit)),  # local scans
            with_payload=False,
        )
        return scored_hits(response.points)

    def lexical_search(self, text: str, limit: int, flt: PointFilter | None = None) -> list[ScoredId]:
        if not text or not self._exists():
            return []
        query = models.TextQuery(
            text=models.TextQueryInput(
                query=text, scoring=models.Bm25Scoring(bm25=models.Bm25Params(k=K1, b=B))
            )
        )
        response = self.client.query_points(
            self.collection,
            query=query,
            using=LEXICAL_FIELD,
            limit=limit,
            query_filter=_client_filter(flt),
            with_payload=False,
        )
        return scored_hits(response.points)

    def count(self, flt: PointFilter | None = None) -> int:
        if not self._exists():
            return 0
        return int(self.client.count(self.collection, count_filter=_client_filter(flt), exact=True).count)

    def facet(self, field: str, flt: PointFilter | None = None, limit: int = 1000) -> dict[str, int]:
        if not self._exists():
            return {}
        response = self.client.facet(
            self.collection, key=field, facet_filter=_client_filter(flt), limit=limit, exact=True
        )
        return {str(hit.value): int(hit.count) for hit in response.hits}

    def optimize(self) -> bool:
        return False  # the server's own optimizers index new segments in the background

    def vacuum(self) -> bool | None:
        return None  # the server's vacuum optimizer runs by the collection's deleted_threshold

    # Rebuilds ---------------------------------------------------------------------------------------

    def staged(self) -> QdrantStore:
        """A store on a new, empty pair of collections that `promote` can put behind this store's names."""
        stamp = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{secrets.token_hex(2)}"
        name = f"{self.collection}-{stamp}"
        return QdrantStore(self.client, name, self.location, self.local, aliased=False)

    def promote(self, staged: QdrantStore) -> list[str]:
        """Point this store's names at `staged`'s collections, both in one alias change.

        Returns the collections the names pointed at before, which no reader reaches any more (the
        caller drops them, or keeps them to switch back). A name that is a collection itself (made
        before devrag used aliases) is dropped just before the change, as its name is needed.
        """
        current = {a.alias_name: a.collection_name for a in self.client.get_aliases().aliases}
        changes: list[Any] = []
        retired = []
        pairs = ((self.collection, staged.collection), (self.meta_collection, staged.meta_collection))
        for name, target in pairs:
            if name in current:
                changes.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=name)))
                retired.append(current[name])
            elif self.client.collection_exists(name):
                self.client.delete_collection(name)
            create = models.CreateAlias(collection_name=target, alias_name=name)
            changes.append(models.CreateAliasOperation(create_alias=create))
        self.client.update_collection_aliases(change_aliases_operations=changes)
        return retired

    def drop(self, collections: Sequence[str] | None = None) -> None:
        """Delete `collections` (default: this staged pair's own), each only if it is not aliased."""
        aliased = {a.collection_name for a in self.client.get_aliases().aliases}
        for name in collections or [self.collection, self.meta_collection]:
            if name not in aliased:
                self.client.delete_collection(name)

    def _meta_id(self, key: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"devrag-meta:{key}"))

    def get_meta(self, key: str) -> dict[str, Any] | None:
        if not self.client.collection_exists(self.meta_collection):
            return None
        records = self.client.retrieve(self.meta_collection, ids=[self._meta_id(key)], with_payload=True)
        return dict(records[0].payload["value"]) if records and records[0].payload else None

    def put_meta(self, key: str, value: dict[str, Any]) -> None:
        point = models.PointStruct(
            id=self._meta_id(key), vector=_META_VECTOR, payload={"key": key, "value": value}
        )
        self.client.upsert(self.meta_collection, points=[point], wait=True)

    def delete_meta(self, key: str) -> None:
        if self.client.collection_exists(self.meta_collection):
            selector = models.PointIdsList(points=[self._meta_id(key)])
            self.client.delete(self.meta_collection, points_selector=selector, wait=True)

    def meta_keys(self) -> list[str]:
        if not self.client.collection_exists(self.meta_collection):
            return []
        keys: list[str] = []
        offset = None
        while True:  # every page: a repository's skip records alone take up to 64 keys
            records, offset = self.client.scroll(
                self.meta_collection, limit=_META_PAGE, offset=offset, with_payload=["key"]
            )
            keys += [str(r.payload["key"]) for r in records if r.payload]
            if offset is None:
                return sorted(keys)

    def writer(self) -> AbstractContextManager[None]:
        """No lease across machines: run one ingest per repository at a time (e.g. a CI concurrency group)."""
        return nullcontext()

    def close(self) -> None:
        self.client.close()


def _stored(point_id: Any, payload: Any, vector: Any) -> StoredPoint:
    vec = list(vector) if isinstance(vector, list) else None
    return StoredPoint(str(point_id), dict(payload or {}), vec)
