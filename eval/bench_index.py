"""A fresh index of a corpus folder for the benchmarks, optionally replicated to reach a size."""

from __future__ import annotations

import shutil
from pathlib import Path

from pydantic import BaseModel

from devrag.eval.harness import git_snapshot
from devrag.ingest.pipeline import ingest
from devrag.retrieval.factory import open_store
from devrag.retrieval.index import Index
from devrag.retrieval.models import Embedder


class BuiltIndex(BaseModel):
    files: int
    copies: int
    chunks: dict[str, int]
    ingest_seconds: float


def replicate(corpus: Path, dest: Path, copies: int) -> Path:
    """`corpus` as it is (copies <= 1), or `copies` copies of it under `copy-01/`, `copy-02/`, ..."""
    if copies <= 1:
        return corpus
    if dest.exists():
        shutil.rmtree(dest)
    for n in range(1, copies + 1):
        shutil.copytree(corpus, dest / f"copy-{n:02d}", ignore=shutil.ignore_patterns(".git"))
    return dest


def build_index(corpus: Path, workdir: Path, embedder: Embedder, copies: int) -> tuple[Index, BuiltIndex]:
    """Snapshot (replicated) `corpus` to Git under `workdir` and ingest it with the real embedder.

    A second run on the same `workdir` and `copies` reuses the index (a no-op re-ingest).
    """
    repo = workdir / f"repo-x{copies}"
    if not (repo / ".git").exists():
        source = replicate(corpus, workdir / f"staging-x{copies}", copies)
        git_snapshot(source, repo)
        if source != corpus:
            shutil.rmtree(source)
    files = sum(1 for p in repo.rglob("*") if p.is_file() and ".git" not in p.parts)
    index = Index(open_store(workdir / f"index-x{copies}"), embedder.name, embedder.dim)
    summary = ingest(index, embedder, repo, "bench")
    return index, BuiltIndex(
        files=files, copies=copies, chunks=summary.chunks, ingest_seconds=summary.seconds
    )
