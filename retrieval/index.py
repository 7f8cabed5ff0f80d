"""The index API: every write is verified by reading it back, and the chunk payloads are the manifest."""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from devrag.retrieval.errors import IndexMismatchError, IndexWriteError
from devrag.retrieval.lexical_field import LEXICAL_FIELD, LEXICAL_VERSION, field_text
from devrag.retrieval.paths import path_matches
from devrag.retrieval.schema import CHUNKER_VERSION, ID_VERSION, PAYLOAD_VERSION, Chunk, chunk_id
from devrag.retrieval.skip_records import SkippedRecord, SkipRecords
from devrag.retrieval.store import PointFilter, StoredPoint, VectorStore
from devrag.retrieval.write_lock import WriteLock

log = logging.getLogger(__name__)

INDEX_META_KEY = "index"
GENERATION_META_KEY = "generation"
_REPO_PREFIX = "repo:"
_RETRIES = 2
# BM25 terms versions whose chunks hold this version's terms, only spelled otherwise: the next
# ingest rewrites their field in place instead of the index being rebuilt (as it re-keys an index
# of older chunk ids, `ID_VERSION`).
_RESPELLED_FROM = frozenset({"1"})
_REWRITE_BATCH = 256
_READ_BATCH = 512
# Up to this many content hashes are looked up one point each (see `Index.vectors_by_hash`).
_ONE_BY_ONE = 32
MIXED = "mixed"


@dataclass(frozen=True)
class FileScope:
    """Which files of a repository a name indexes: a folder of it, then include and exclude globs.

    Recorded with the repository's state, so reconcile, `--watch` and webhooks re-ingest the
    same files the command line chose. Paths and globs are relative to the repository root, as
    in every chunk and citation; globs mean what search's path filter means (`path_matches`).
    """

    subtree: str = ""  # a folder relative to the repository root, without slashes at its ends
    include: tuple[str, ...] = ()  # when given, only files that match one of them
    exclude: tuple[str, ...] = ()  # never files that match one of them

    def holds(self, path: str) -> bool:
        return (
            (not self.subtree or path.startswith(self.subtree + "/"))
            and (not self.include or any(path_matches(g, path) for g in self.include))
            and not any(path_matches(g, path) for g in self.exclude)
        )

    @property
    def whole(self) -> bool:
        return self == FileScope()

    def describe(self) -> str:
        """The scope as the command line spells it: `folder docs/, --include *.md`."""
        chosen = [f"folder {self.subtree}/"] if self.subtree else []
        chosen += [f"--include {g}" for g in self.include] + [f"--exclude {g}" for g in self.exclude]
        return ", ".join(chosen)


@dataclass(frozen=True)
class RepoState:
    """What the index records about one repository; `commit` advances only after verified writes.

    A repository is its name, not a folder: `path` is where it was last ingested from, and
    `origin` (normalized remote URL) and `roots` (root commits of its history) let a later run
    from another clone tell the same history from an unrelated one. Both are empty in metadata
    written before they existed, and for clones without a remote or with shallow history.
    """

    name: str
    path: str
    commit: str | None
    in_progress: str | None = None
    origin: str | None = None
    roots: tuple[str, ...] = ()
    scope: FileScope = FileScope()
    # How many files the scope held at `commit` (None: not recorded, as before this field), so a
    # diff ingest reports its unchanged files from the diff instead of listing the whole tree.
    files: int | None = None
    # The size limit the last ingest skipped files by (None: not recorded, as before this field):
    # later runs for this repository (reconcile, webhook, watch) keep the limit it was given.
    max_file_bytes: int | None = None

    def cited(self, commit: str, newer: Collection[str] = ()) -> str:
        """The commit a chunk written at `commit` is cited at: the indexed one, which holds its file
        as it was read (a file that changed since was written again), or, while an ingest is writing,
        the one it reads for the chunks it wrote; so are the commits of `newer` (`written_since`).
        A chunk keeps the commit it was written at, which a later clone (shallow, or after a force
        push) may not hold, so an older one is never cited as such."""
        if commit == self.in_progress or commit in newer:
            return commit
        return self.commit or commit

    def to_meta(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "commit": self.commit,
            "in_progress": self.in_progress,
            "origin": self.origin,
            "roots": list(self.roots),
            "subtree": self.scope.subtree,
            "include": list(self.scope.include),
            "exclude": list(self.scope.exclude),
            "files": self.files,
            "max_file_bytes": self.max_file_bytes,
        }

    @classmethod
    def from_meta(cls, name: str, meta: dict[str, Any]) -> RepoState:
        """The state as recorded; metadata from before scopes existed means the whole repository."""
        scope = FileScope(
            meta.get("subtree") or "", tuple(meta.get("include") or ()), tuple(meta.get("exclude") or ())
        )
        return cls(
            name,
            meta["path"],
            meta.get("commit"),
            meta.get("in_progress"),
            meta.get("origin"),
            tuple(meta.get("roots") or ()),
            scope,
            meta.get("files"),
            meta.get("max_file_bytes"),
        )


class Index:
    """Chunks and their vectors in a VectorStore, for one embedding model and chunker version."""

    def __init__(self, store: VectorStore, model: str, dim: int) -> None:
        self.store = store
        self.model = model
        self.dim = dim
        self.lock = WriteLock(store)  # one writer at a time, in every process on this store
        self._skips = SkipRecords(store, self._put_meta_verified, self._delete_meta_verified)

    def check_compatible(self) -> None:
        """Refuse to mix vectors of two models, chunk layouts or BM25 terms in one index.

        Raises:
            IndexMismatchError: the index was built otherwise; the message says how to rebuild it.
        """
        recorded = self.store.get_meta(INDEX_META_KEY)
        if recorded is not None:
            self._check_recorded(recorded)

    def _check_recorded(self, recorded: dict[str, Any]) -> None:
        wanted = {"model": self.model, "dim": self.dim, "chunker": CHUNKER_VERSION}
        if {k: recorded.get(k) for k in wanted} != wanted:
            raise IndexMismatchError(
                f"The index at {self.store.location} was built with model {recorded.get('model')!r} "
                f"(dim {recorded.get('dim')}, chunker {recorded.get('chunker')}); this run uses "
                f"{self.model!r} (dim {self.dim}, chunker {CHUNKER_VERSION}). Rebuild it: remove "
                "the index directory (or drop the Qdrant collection) and run `devrag ingest` again, "
                "or set DEVRAG_EMBED_MODEL back to the recorded model."
            )
        lexical = recorded.get("lexical")
        if lexical not in {*_RESPELLED_FROM, LEXICAL_VERSION}:
            built = f"BM25 terms of version {lexical}" if lexical else "no BM25 field (built before 0.2)"
            why = f"this devrag ranks BM25 inside the engine over terms of version {LEXICAL_VERSION}"
            raise IndexMismatchError(self._rebuild(built, why))
        if recorded.get("payload") != PAYLOAD_VERSION:
            payload = recorded.get("payload")
            built = f"chunk payloads of version {payload}" if payload else "chunks without document metadata"
            why = (
                "this devrag filters and cites by document metadata (service, team, severity, alerts, "
                "tags from front matter or path), dates each result by its last commit, routes "
                "alerts by the rules of indexed rule files and reads each document's sections, "
                f"alert names and folders from its chunks, payload version {PAYLOAD_VERSION}"
            )
            raise IndexMismatchError(self._rebuild(built, why))
        if _stored_by_older(recorded):
            ingests = self._ingests() or "`devrag ingest PATH`"
            raise IndexMismatchError(
                f"The index at {self.store.location} holds chunks as an older devrag stored them "
                f"(BM25 terms of version {lexical} and chunk ids of version {_ids(recorded)}, where "
                f"this devrag stores versions {LEXICAL_VERSION} and {ID_VERSION}). Run an ingest of any "
                f"of its repositories once ({ingests}): it rewrites every chunk in place and keeps "
                "the vectors."
            )

    def _ingests(self) -> str:
        """The commands that ingest every recorded repository again, as recorded."""
        return "; ".join(
            f"`devrag ingest {r.path} --name {r.name}`"
            + (f" ({r.scope.describe()})" if not r.scope.whole else "")
            for r in self.repos()
        )

    def _rebuild(self, built: str, why: str) -> str:
        """Why an index built otherwise is refused, and the exact commands that rebuild it."""
        ingests = self._ingests()
        return (
            f"The index at {self.store.location} holds {built}; {why}, so the index must be rebuilt. "
            "On a Qdrant server, `devrag rebuild` does it while searches keep answering. Otherwise "
            "remove the index directory, then ingest every repository again: "
            f"{ingests or '`devrag ingest PATH`'}."
        )

    def prepare(self, rewritten: Callable[[int], None] | None = None) -> None:
        """Create the collection and record which model, chunker and BM25 terms fill it; first
        rewrite the chunks of an index that this version only stores otherwise (BM25 spelling, ids;
        `rewritten` hears each batch's size; `respell_pending` says how many before), and split
        skip records an older version kept in one key per repository."""
        self._rewrite_in_place(rewritten or (lambda _: None))
        self.check_compatible()
        self._skips.split_every_unsplit()
        self.store.ensure_collection(self.dim)
        if self.store.get_meta(INDEX_META_KEY) is None:
            meta = {
                "model": self.model,
                "dim": self.dim,
                "chunker": CHUNKER_VERSION,
                "lexical": LEXICAL_VERSION,
                "payload": PAYLOAD_VERSION,
                "ids": ID_VERSION,
            }
            self.store.put_meta(INDEX_META_KEY, meta)

    def respell_pending(self) -> int:
        """How many chunks `prepare` will rewrite in place, as this version stores them (0: none)."""
        return self.store.count() if self._stored_otherwise() else 0

    def _stored_otherwise(self) -> dict[str, Any] | None:
        """The index's recorded build when its chunks are this version's, only stored otherwise
        (BM25 terms spelled otherwise, chunk ids of an older version)."""
        recorded = self.store.get_meta(INDEX_META_KEY)
        if not recorded or recorded.get("lexical") not in {*_RESPELLED_FROM, LEXICAL_VERSION}:
            return None
        return recorded if _stored_by_older(recorded) else None

    def _rewrite_in_place(self, rewritten: Callable[[int], None]) -> None:
        """Rewrite every chunk as this version stores it, vectors kept; then record the versions.

        Why: version 2 of the BM25 field spells version 1's terms three ways (see `lexical_field`),
        version 2 of the ids starts each with its document's key (`chunk_id`), and rebuilding an
        index for either would embed every chunk again (hours at a million chunks). Readers refuse
        the index until the new versions are recorded, so none ranks by chunks half rewritten; an
        upgrade cut off is redone by the next ingest (a chunk already under its new id is written
        again, one still under its old id is moved).
        """
        recorded = self._stored_otherwise()
        if recorded is None:
            return
        upgraded = {**recorded, "lexical": LEXICAL_VERSION, "ids": ID_VERSION}
        self._check_recorded(upgraded)  # an index built otherwise in any other way is refused as before
        with self.lock:
            keys = self._current_ids() if _ids(recorded) != ID_VERSION else self._same_ids()
            ids = list(keys)
            for start in range(0, len(ids), _REWRITE_BATCH):
                points = self.store.retrieve(ids[start : start + _REWRITE_BATCH], with_vectors=True)
                rewritten(self._rewrite(points, keys))
            self._put_meta_verified(INDEX_META_KEY, upgraded)

    def _same_ids(self) -> dict[str, str]:
        """Every stored chunk's id, kept."""
        return {p.id: p.id for p in self.store.scroll(fields=[])}

    def _current_ids(self) -> dict[str, str]:
        """Every stored chunk's id as this version makes it (`chunk_id`), by its stored id."""
        documents: dict[tuple[str, str], dict[int, tuple[str, list[str]]]] = {}
        for p in self.store.scroll(fields=["repo", "path", "section", "content_hash"]):
            place = documents.setdefault((p.payload["repo"], p.payload["path"]), {})
            # Two ids at one place: an upgrade cut off after writing the new one.
            place.setdefault(p.payload["section"], (p.payload["content_hash"], []))[1].append(p.id)
        keys: dict[str, str] = {}
        for (repo, path), places in documents.items():
            seen: Counter[str] = Counter()  # as ingest numbers equal texts of one file, in line order
            for section in sorted(places):
                digest, ids = places[section]
                keys |= dict.fromkeys(ids, chunk_id(repo, path, digest, seen[digest]))
                seen[digest] += 1
        return keys

    def _rewrite(self, points: list[StoredPoint], keys: dict[str, str]) -> int:
        """Write the points again as chunks under their new ids, vectors kept, then delete them
        under the old ones; how many."""
        if points:
            chunks = [Chunk.model_validate(_rekeyed(_chunk_fields(p.payload), keys)) for p in points]
            self.write(chunks, [list(p.vector or ()) for p in points])
            self.delete([p.id for p in points if keys[p.id] != p.id])
        return len(points)

    # Generation ---------------------------------------------------------------------------------

    def generation(self) -> str:
        """A token that every verified write replaces, kept in the store itself.

        Readers in any process, on any machine, compare it with the one their cached state was
        read at: equal means nothing was written since. A fresh random token
        per write (not a counter) means two writers can never leave it unchanged.
        """
        meta = self.store.get_meta(GENERATION_META_KEY)
        return str(meta["value"]) if meta else ""

    def _advance_generation(self) -> None:
        self.store.put_meta(GENERATION_META_KEY, {"value": uuid.uuid4().hex})

    # Repository markers -------------------------------------------------------------------------

    def repo_state(self, name: str) -> RepoState | None:
        meta = self.store.get_meta(_REPO_PREFIX + name)
        return None if meta is None else RepoState.from_meta(name, meta)

    def set_repo_state(self, state: RepoState) -> None:
        """Record the repository's state, verified: a lost marker would redo or hide a whole run.

        Readers cite results at the state's commits (`RepoState.cited`), so it moves the generation.
        """
        self._put_meta_verified(_REPO_PREFIX + state.name, state.to_meta())
        self._advance_generation()

    def forget_repo_state(self, name: str) -> None:
        """Drop the repository's state, verified; its chunks and skip records go first."""
        self._delete_meta_verified(_REPO_PREFIX + name)
        self._advance_generation()

    def repos(self) -> list[RepoState]:
        names = [k[len(_REPO_PREFIX) :] for k in self.store.meta_keys() if k.startswith(_REPO_PREFIX)]
        return [s for s in map(self.repo_state, names) if s is not None]

    # Skipped files --------------------------------------------------------------------------------

    def skipped_files(self, repo: str, near: Iterable[str] | None = None) -> dict[str, SkippedRecord]:
        """path -> record of every file of the repo that the last runs considered and left unchunked
        (with `near`, only those in the shares of those paths; see `SkipRecords.read`)."""
        return self._skips.read(repo, near)

    def set_skipped_files(
        self, repo: str, records: dict[str, SkippedRecord], near: Iterable[str] | None = None
    ) -> None:
        """Replace the repo's skip records (with `near`, those in the shares of those paths), verified."""
        self._skips.replace(repo, records, near)

    def _put_meta_verified(self, key: str, value: dict[str, Any]) -> None:
        with self.lock:
            for _attempt in range(_RETRIES):
                self.store.put_meta(key, value)
                if self.store.get_meta(key) == value:
                    return
                log.warning("re-writing index metadata %r that did not read back", key)
        raise IndexWriteError(
            f"Index metadata {key!r} did not read back from {self.store.location}; run the command again."
        )

    def _delete_meta_verified(self, key: str) -> None:
        with self.lock:
            for _attempt in range(_RETRIES):
                self.store.delete_meta(key)
                if self.store.get_meta(key) is None:
                    return
        raise IndexWriteError(
            f"Index metadata {key!r} is still in {self.store.location} after deleting it; run the "
            "command again."
        )

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

    def chunk_ids(self, repo: str) -> list[str]:
        """IDs of every chunk of the repo, without reading their text."""
        return [p.id for p in self.store.scroll(PointFilter(repo=repo), fields=["path"])]

    def vectors_by_id(self, ids: Sequence[str]) -> dict[str, list[float]]:
        points = self.store.retrieve(list(ids), with_vectors=True, fields=[])
        return {p.id: p.vector for p in points if p.vector}

    def vectors_by_hash(self, hashes: Sequence[str]) -> dict[str, list[float]]:
        """A stored vector for each content hash the index already holds, from any repo or path.

        One point per hash is enough, and a section held by many files comes back whole from a read
        by batch (the scale benchmark's 126 copies: an edit's 5 hashes read 635 points, 170-450 ms
        at 1M chunks, against 5 ms one point each). So a few hashes are read one point each; many
        (a first ingest, whose hashes are mostly new) by batch.
        """
        if len(hashes) <= _ONE_BY_ONE:
            return {
                h: p.vector
                for h in hashes
                for p in self.store.scroll(PointFilter(content_hashes=[h]), [], with_vectors=True, limit=1)
                if p.vector
            }
        found: dict[str, list[float]] = {}
        for start in range(0, len(hashes), _READ_BATCH):
            flt = PointFilter(content_hashes=hashes[start : start + _READ_BATCH])
            for p in self.store.scroll(flt, fields=["content_hash"], with_vectors=True):
                if p.vector:
                    found.setdefault(p.payload["content_hash"], p.vector)
        return found

    def payload_indexes(self) -> set[str] | None:
        """The payload fields the store holds an index on; None when its engine keeps none.

        Every open of a store creates the ones of INDEXED_FIELDS it lacks, so a missing one means
        that could not be done here (e.g. a read-only key on a Qdrant server).
        """
        return self.store.payload_indexes()

    def count(self, repo: str | None = None) -> int:
        return self.store.count(PointFilter(repo=repo) if repo else None)

    def close(self) -> None:
        self.store.close()

    def doc_types(self) -> dict[str, dict[str, int]]:
        """Chunks per document type, per repository, read from the chunks (no models needed)."""
        out: dict[str, dict[str, int]] = {}
        for p in self.store.scroll(fields=["repo", "doc_type"]):
            counts = out.setdefault(p.payload["repo"], {})
            counts[p.payload["doc_type"]] = counts.get(p.payload["doc_type"], 0) + 1
        return out

    # Verified writes ------------------------------------------------------------------------------

    def write(self, chunks: Sequence[Chunk], vectors: Sequence[list[float]]) -> None:
        """Upsert chunks, then read them back and check each is there with its content hash."""
        points = [StoredPoint(c.id, _payload(c), list(v)) for c, v in zip(chunks, vectors, strict=True)]
        expected = {c.id: c.content_hash for c in chunks}
        with self.lock:
            pending = points
            for _attempt in range(_RETRIES):
                self.store.upsert(pending)
                bad = self._unverified_writes(expected)
                if not bad:
                    self._advance_generation()
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

    def optimize(self) -> bool:
        """Index the vectors the last writes added, so that searches stop scanning them.

        Why here and not on every write: building a segment's HNSW graph takes seconds to minutes,
        and an embedded engine runs nothing in the background. Searches wait while it runs.
        """
        with self.lock:
            return self.store.optimize()

    def vacuum(self) -> bool | None:
        """Drop replaced and deleted chunks from the engine's segments, so that its BM25 statistics
        are those of the live chunks again (`VectorStore.vacuum`). Searches wait while it runs."""
        with self.lock:
            return self.store.vacuum()

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
                    self._advance_generation()
                    return
        raise IndexWriteError(
            f"{len(remaining)} deleted chunks are still in {self.store.location}. "
            "Nothing was marked as indexed; run the ingest again."
        )

    def _read(self, ids: Sequence[str]) -> list[StoredPoint]:
        """The points of `ids` that exist, with their content hash: what a read-back checks."""
        out: list[StoredPoint] = []
        for start in range(0, len(ids), _READ_BATCH):
            out.extend(self.store.retrieve(ids[start : start + _READ_BATCH], fields=["content_hash"]))
        return out


def _ids(recorded: dict[str, Any]) -> str:
    """The chunk ids' version an index recorded; indexes before versioned ids hold version 1."""
    return str(recorded.get("ids") or "1")


def _stored_by_older(recorded: dict[str, Any]) -> bool:
    """Whether an index's chunks are spelled or keyed as an older devrag stored them."""
    return recorded.get("lexical") != LEXICAL_VERSION or _ids(recorded) != ID_VERSION


def _rekeyed(fields: dict[str, Any], keys: dict[str, str]) -> dict[str, Any]:
    """A chunk's fields with every chunk id it holds (its own, its document's lead and opening) new."""
    lead = fields.get("lead")
    opening = fields.get("opening")
    return fields | {
        "id": keys[fields["id"]],
        "lead": keys.get(lead, lead) if lead else lead,
        "opening": keys.get(opening, opening),
    }


def _chunk_fields(payload: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k != LEXICAL_FIELD}


def _payload(chunk: Chunk) -> dict[str, Any]:
    """The chunk as stored: its fields, and the BM25 field the engine ranks by."""
    payload = chunk.model_dump()
    payload[LEXICAL_FIELD] = field_text(payload)
    return payload


def written_since(before: RepoState | None, after: RepoState | None) -> set[str]:
    """The commits an ingest may have written chunks at beyond the indexed commit of `before`: one
    in progress then, or begun or finished by the time `after` was read. A search that read its
    chunks between two such reads shows those written there apart from the rest (`one_version`)."""
    found = {c for state in (before, after) if state for c in (state.commit, state.in_progress) if c}
    return found - {before.commit if before else None}
