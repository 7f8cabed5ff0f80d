"""The index API: every write is verified by reading it back, and the chunk payloads are the manifest."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from devrag.retrieval.errors import IndexMismatchError, IndexWriteError
from devrag.retrieval.schema import CHUNKER_VERSION, Chunk
from devrag.retrieval.store import PointFilter, StoredPoint, VectorStore

log = logging.getLogger(__name__)

INDEX_META_KEY = "index"
_REPO_PREFIX = "repo:"
_RETRIES = 2
_READ_BATCH = 512
MIXED = "mixed"


@dataclass(frozen=True)
class RepoState:
    """What the index records about one repository; `commit` advances only after verified writes."""

    name: str
    path: str
    commit: str | None
    in_progress: str | None = None

    def to_meta(self) -> dict[str, Any]:
        return {"path": self.path, "commit": self.commit, "in_progress": self.in_progress}


class Index:
    """Chunks and their vectors in a VectorStore, for one embedding model and chunker version."""

    def __init__(self, store: VectorStore, model: str, dim: int) -> None:
        self.store = store
        self.model = model
        self.dim = dim
        self.revision = 0  # bumped on every change, so in-process caches know to refresh
        self.lock = threading.RLock()  # one writer at a time; readers see whole batches

    def check_compatible(self) -> None:
        """Refuse to mix vectors of two models or chunk layouts in one index."""
        recorded = self.store.get_meta(INDEX_META_KEY)
        wanted = {"model": self.model, "dim": self.dim, "chunker": CHUNKER_VERSION}
        if recorded is None:
            return
        if {k: recorded.get(k) for k in wanted} != wanted:
            raise IndexMismatchError(
                f"The index at {self.store.location} was built with model {recorded.get('model')!r} "
                f"(dim {recorded.get('dim')}, chunker {recorded.get('chunker')}); this run uses "
                f"{self.model!r} (dim {self.dim}, chunker {CHUNKER_VERSION}). Rebuild it: remove "
                "the index directory (or drop the Qdrant collection) and run `devrag ingest` again, "
                "or set DEVRAG_EMBED_MODEL back to the recorded model."
            )

    def prepare(self) -> None:
        """Create the collection and record which model and chunker fill it."""
        self.check_compatible()
        self.store.ensure_collection(self.dim)
        if self.store.get_meta(INDEX_META_KEY) is None:
            meta = {"model": self.model, "dim": self.dim, "chunker": CHUNKER_VERSION}
            self.store.put_meta(INDEX_META_KEY, meta)

    # Repository markers -------------------------------------------------------------------------

    def repo_state(self, name: str) -> RepoState | None:
        meta = self.store.get_meta(_REPO_PREFIX + name)
        if meta is None:
            return None
        return RepoState(name, meta["path"], meta.get("commit"), meta.get("in_progress"))

    def set_repo_state(self, state: RepoState) -> None:
        self.store.put_meta(_REPO_PREFIX + state.name, state.to_meta())

    def repos(self) -> list[RepoState]:
        names = [k[len(_REPO_PREFIX) :] for k in self.store.meta_keys() if k.startswith(_REPO_PREFIX)]
        return [s for s in map(self.repo_state, names) if s is not None]

    # Reads ----------------------------------------------------------------------------------------

    def file_manifest(self, repo: str) -> dict[str, str]:
        """path -> blob SHA of every file the index holds chunks of, read from the chunks themselves.

        A file whose chunks disagree (a run stopped between writing and deleting) maps to MIXED.
        """
        manifest: dict[str, str] = {}
        for p in self.store.scroll(PointFilter(repo=repo), fields=["path", "blob_sha"]):
            path, blob = p.payload["path"], p.payload["blob_sha"]
            manifest[path] = blob if manifest.get(path, blob) == blob else MIXED
        return manifest

    def chunks_of(self, repo: str, paths: Sequence[str]) -> dict[str, dict[str, Any]]:
        """id -> payload of every chunk of these paths."""
        out: dict[str, dict[str, Any]] = {}
        for start in range(0, len(paths), _READ_BATCH):
            batch = paths[start : start + _READ_BATCH]
            for p in self.store.scroll(PointFilter(repo=repo, paths=batch)):
                out[p.id] = p.payload
        return out

    def vectors_by_id(self, ids: Sequence[str]) -> dict[str, list[float]]:
        points = self.store.retrieve(list(ids), with_vectors=True)
        return {p.id: p.vector for p in points if p.vector}

    def vectors_by_hash(self, hashes: Sequence[str]) -> dict[str, list[float]]:
        """A stored vector for each content hash the index already holds, from any repo or path."""
        found: dict[str, list[float]] = {}
        for start in range(0, len(hashes), _READ_BATCH):
            flt = PointFilter(content_hashes=hashes[start : start + _READ_BATCH])
            for p in self.store.scroll(flt, fields=["content_hash"], with_vectors=True):
                if p.vector:
                    found.setdefault(p.payload["content_hash"], p.vector)
        return found

    def count(self, repo: str | None = None) -> int:
        return self.store.count(PointFilter(repo=repo) if repo else None)

    # Verified writes ------------------------------------------------------------------------------

    def write(self, chunks: Sequence[Chunk], vectors: Sequence[list[float]]) -> None:
        """Upsert chunks, then read them back and check each is there with its content hash."""
        points = [StoredPoint(c.id, c.model_dump(), list(v)) for c, v in zip(chunks, vectors, strict=True)]
        expected = {c.id: c.content_hash for c in chunks}
        with self.lock:
            pending = points
            for _attempt in range(_RETRIES):
                self.store.upsert(pending)
                bad = self._unverified_writes(expected)
                if not bad:
                    self.revision += 1
                    return
                pending = [p for p in points if p.id in bad]
                log.warning("re-writing %d chunks that did not read back", len(bad))
        paths = sorted({c.path for c in chunks if c.id in bad})
        raise IndexWriteError(
            f"{len(bad)} written chunks did not read back from {self.store.location} "
            f"(files: {', '.join(paths[:10])}). Nothing was marked as indexed; run the ingest again."
        )

    def _unverified_writes(self, expected: dict[str, str]) -> set[str]:
        found = {p.id: p.payload.get("content_hash") for p in self._read(list(expected))}
        return {i for i, h in expected.items() if found.get(i) != h}

    def delete(self, ids: Iterable[str]) -> None:
        """Delete chunks, then check they are gone."""
        wanted = list(ids)
        if not wanted:
            return
        with self.lock:
            remaining = wanted
            for _attempt in range(_RETRIES):
                self.store.delete(remaining)
                remaining = [p.id for p in self._read(wanted)]
                if not remaining:
                    self.revision += 1
                    return
        raise IndexWriteError(
            f"{len(remaining)} deleted chunks are still in {self.store.location}. "
            "Nothing was marked as indexed; run the ingest again."
        )

    def stamp_commit(self, repo: str, commit: str) -> None:
        """Record the indexed commit on every chunk of the repo, and check none was missed."""
        with self.lock:
            for _attempt in range(_RETRIES):
                self.store.set_payload({"commit": commit}, PointFilter(repo=repo, not_commit=commit))
                if self.store.count(PointFilter(repo=repo, not_commit=commit)) == 0:
                    self.revision += 1
                    return
        raise IndexWriteError(f"Could not record commit {commit[:12]} on every chunk of {repo}.")

    def _read(self, ids: Sequence[str]) -> list[StoredPoint]:
        out: list[StoredPoint] = []
        for start in range(0, len(ids), _READ_BATCH):
            out.extend(self.store.retrieve(ids[start : start + _READ_BATCH]))
        return out
