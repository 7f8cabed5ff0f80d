"""Indexes of a corpus replicated to a chunk count, built by copying its stored points, cached.

The corpus is ingested once (the `seed` index, the only place anything is embedded). An index of
N copies is a Git repository holding `copy-001/` ... `copy-N/` (so an incremental ingest works on
it as on any repository) and an index whose points are the seed's, rewritten per copy: a new path
and the id ingest would give it, the same vector and payload otherwise, written through
`Index.write`, so the generation, the BM25 field and the read-back verification are ingest's own.
A full re-ingest of such an index rewrites nothing (tests check it). Beside it the index holds a
small second repository, `side` (one folder of the seed), so a `--repo` filter can be selective.

Copying points beats ingesting the copies, which reuses vectors but reads and chunks every file
again: one copy of the shared runbooks (7,942 chunks, 847 files) took 19.9 s to ingest with every
vector reused and 5.3 s to copy, on 2 cores (so 1M chunks: about 42 min against 11).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from itertools import groupby
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from devrag.eval.harness import git_snapshot
from devrag.ingest.git_source import GitSource
from devrag.ingest.identity import Clone
from devrag.ingest.pipeline import ingest
from devrag.retrieval.factory import open_store
from devrag.retrieval.index import FileScope, Index, RepoState
from devrag.retrieval.models import Embedder
from devrag.retrieval.review_age import commit_date
from devrag.retrieval.schema import Chunk, chunk_id, with_document_fields
from devrag.retrieval.skip_records import SkippedRecord

log = logging.getLogger(__name__)

SEED, BENCH, SIDE = "seed", "bench", "side"
_WRITE_BATCH = 2048


class ScaleIndex(BaseModel):
    """One replicated index: how big, where, and how long it took to build (None: reused)."""

    size: int
    copies: int
    chunks: int
    bench_chunks: int
    side_chunks: int
    side_folder: str
    index_dir: str
    repo_dir: str
    build_seconds: float | None
    vector_index_seconds: float | None = None  # building the HNSW graph; None when it was built before
    disk_bytes: int


@dataclass(frozen=True)
class Seed:
    """The ingested corpus: every chunk's payload and vector, and where its repository lives."""

    repo: Path
    chunks: list[dict[str, Any]]
    vectors: dict[str, list[float]]
    occurrences: dict[str, int]
    skipped: dict[str, SkippedRecord]
    side_folder: str

    def per_copy(self) -> int:
        return len(self.chunks)

    def side(self) -> list[dict[str, Any]]:
        return [c for c in self.chunks if c["path"].startswith(self.side_folder + "/")]


@dataclass(frozen=True)
class Layout:
    """Where the cached repositories and indexes live under the benchmark's workdir."""

    workdir: Path
    backend_url: str | None = None

    @property
    def seed_repo(self) -> Path:
        return self.workdir / "seed-repo"

    def repo(self, copies: int) -> Path:
        return self.workdir / f"repo-x{copies}"

    def index_dir(self, copies: int) -> Path:
        return self.workdir / f"index-x{copies}"

    def open(self, index_dir: Path, embedder: Embedder) -> Index:
        """The index in `index_dir` (embedded), or its collection on the Qdrant server."""
        collection = f"devrag_scale_{index_dir.name.replace('-', '_')}"
        return Index(open_store(index_dir, self.backend_url, collection), embedder.name, embedder.dim)


def load_seed(corpora: Sequence[Path], layout: Layout, embedder: Embedder) -> Seed:
    """Ingest the corpora once, as one repository of one folder each (a no-op when cached)."""
    repo = layout.seed_repo
    if not (repo / ".git").exists():
        staging = layout.workdir / "seed-staging"
        shutil.rmtree(staging, ignore_errors=True)
        for corpus in corpora:
            shutil.copytree(corpus, staging / corpus.name, ignore=shutil.ignore_patterns(".git"))
        git_snapshot(staging, repo)
        shutil.rmtree(staging)
    index = layout.open(layout.workdir / "seed-index", embedder)
    try:
        ingest(index, embedder, repo, SEED)
        chunks = list(index.chunks_of(SEED, sorted(index.file_manifest(SEED))).items())
        vectors = index.vectors_by_id([cid for cid, _ in chunks])
        skipped = index.skipped_files(SEED)
    finally:
        index.close()
    payloads = [{**payload, "id": cid} for cid, payload in sorted(chunks, key=lambda c: _place(c[1]))]
    # The smallest corpus is the side repository, so filtering to it keeps few chunks.
    side = min((c.name for c in corpora), key=lambda n: sum(p["path"].startswith(n + "/") for p in payloads))
    return Seed(repo, payloads, vectors, _occurrences(payloads), skipped, side)


def _place(payload: dict[str, Any]) -> tuple[str, int]:
    return payload["path"], payload["section"]


def _occurrences(chunks: list[dict[str, Any]]) -> dict[str, int]:
    """Each seed chunk's occurrence number among equal texts of its file, as its id encodes it."""
    out = {}
    for c in chunks:
        n = 0
        while chunk_id(SEED, c["path"], c["content_hash"], n) != c["id"]:
            n += 1
            if n > 10_000:
                raise ValueError(f"seed chunk {c['id']} of {c['path']} has an id ingest does not give")
        out[c["id"]] = n
    return out


def copies_for(size: int, seed: Seed) -> int:
    return max(1, round(size / seed.per_copy()))


def build(size: int, seed: Seed, layout: Layout, embedder: Embedder) -> ScaleIndex:
    """The index of about `size` chunks, built unless the workdir holds it complete already."""
    copies = copies_for(size, seed)
    repo, index_dir = layout.repo(copies), layout.index_dir(copies)
    started = time.perf_counter()
    index = layout.open(index_dir, embedder)
    try:
        index.prepare()  # an index an older devrag cached gets this version's BM25 field here
        # The side repository's state is written last: with it, the index is complete.
        built = index.repo_state(SIDE) is not None
        if not built:
            _replicated_repo(seed, repo, copies)
            _fill(index, seed, repo, copies)
        seconds = None if built else round(time.perf_counter() - started, 1)
        indexing = time.perf_counter()
        rebuilt = index.optimize()  # as ingest does after its writes; a cached index gets its graph here
        indexed = round(time.perf_counter() - indexing, 1) if rebuilt else None
        side_chunks = index.count(SIDE)
        return ScaleIndex(
            size=size,
            copies=copies,
            chunks=index.count(),
            bench_chunks=index.count(BENCH),
            side_chunks=side_chunks,
            side_folder=seed.side_folder,
            index_dir=str(index_dir),
            repo_dir=str(repo),
            build_seconds=seconds,
            vector_index_seconds=indexed,
            disk_bytes=_disk_bytes(index_dir),
        )
    finally:
        index.close()


def _replicated_repo(seed: Seed, repo: Path, copies: int) -> None:
    """A one-commit repository of `copies` copies of the seed's tree (reused when complete)."""
    if (repo / ".git").exists():
        return
    staging = repo.with_name(repo.name + "-staging")
    shutil.rmtree(staging, ignore_errors=True)
    for n in range(1, copies + 1):
        shutil.copytree(seed.repo, staging / copy_folder(n), ignore=shutil.ignore_patterns(".git"))
    git_snapshot(staging, repo)
    shutil.rmtree(staging)


def copy_folder(n: int) -> str:
    return f"copy-{n:03d}"


def _fill(index: Index, seed: Seed, repo: Path, copies: int) -> None:
    """Write every copy's points and the side repository's, then record both as ingested."""
    source = GitSource(repo)
    head = source.resolve(None)
    date = commit_date(source.commit_times([head])[head])
    for n in range(1, copies + 1):
        prefix = copy_folder(n) + "/"
        chunks = [_moved(c, seed, BENCH, prefix, head, head, date) for c in seed.chunks]
        _write(index, chunks, seed)
        log.info("wrote copy %d of %d", n, copies)
    _record(index, BENCH, repo, head, FileScope())
    seed_head = GitSource(seed.repo).resolve(None)
    side = [
        _moved(c, seed, SIDE, "", seed_head, c["last_commit"], c["last_commit_date"]) for c in seed.side()
    ]
    _write(index, side, seed)
    _record(index, SIDE, seed.repo, seed_head, FileScope(subtree=seed.side_folder))
    index.set_skipped_files(
        BENCH, {copy_folder(n) + "/" + p: r for n in range(1, copies + 1) for p, r in seed.skipped.items()}
    )
    side_skips = {p: r for p, r in seed.skipped.items() if p.startswith(seed.side_folder + "/")}
    index.set_skipped_files(SIDE, side_skips)


def _moved(
    chunk: dict[str, Any], seed: Seed, repo: str, prefix: str, commit: str, last: str, date: str | None
) -> tuple[Chunk, list[float]]:
    path = prefix + chunk["path"]
    fields = {k: chunk[k] for k in Chunk.model_fields if k in chunk}
    fields |= {
        "id": chunk_id(repo, path, chunk["content_hash"], seed.occurrences[chunk["id"]]),
        "repo": repo,
        "path": path,
        "commit": commit,
        "last_commit": last,
        "last_commit_date": date,
    }
    return Chunk.model_validate(fields), seed.vectors[chunk["id"]]


def _write(index: Index, moved: list[tuple[Chunk, list[float]]], seed: Seed) -> None:
    for batch in _batches(_with_document_fields(moved), _WRITE_BATCH):
        index.write([c for c, _ in batch], [v for _, v in batch])


def _with_document_fields(moved: list[tuple[Chunk, list[float]]]) -> list[tuple[Chunk, list[float]]]:
    """Each moved document's chunks with the fields ingest gives its new path and ids (in line order,
    as the seed lists them)."""
    out: list[tuple[Chunk, list[float]]] = []
    for _path, group in groupby(moved, key=lambda pair: pair[0].path):
        pairs = list(group)
        chunks = with_document_fields([c for c, _ in pairs])
        out += zip(chunks, [v for _, v in pairs], strict=True)
    return out


def _batches(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _record(index: Index, name: str, repo: Path, commit: str, scope: FileScope) -> None:
    """The repository's state as ingest would leave it: indexed at `commit`, from this clone."""
    source = GitSource(repo)
    state = Clone.of(source, commit).stamp(RepoState(name, "", commit, scope=scope))
    index.set_repo_state(replace(state, in_progress=None))


def _disk_bytes(folder: Path) -> int:
    if not folder.exists():
        return 0
    out = subprocess.run(["du", "-sb", str(folder)], capture_output=True, text=True, check=False).stdout
    return int(out.split()[0]) if out else 0
