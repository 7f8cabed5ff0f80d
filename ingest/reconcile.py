"""`devrag reconcile`: compare each repository's HEAD with what the index's chunks hold, and repair."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import BaseModel

from devrag.ingest.documents import decode, skip_reason
from devrag.ingest.git_source import GitSource, SourceError, TreeEntry
from devrag.ingest.pipeline import IngestOptions, IngestSummary, recorded, reingest
from devrag.ingest.plan import full_plan, indexed_files, scoped_tree
from devrag.retrieval.index import Index, RepoState
from devrag.retrieval.models import Embedder


class Drift(BaseModel):
    repo: str
    head: str | None
    missing: list[str]  # in the tree and indexable, but without chunks
    stale: list[str]  # chunks from another version of the file
    orphaned: list[str]  # chunks of a file the tree no longer has
    error: str | None = None
    repaired: IngestSummary | None = None

    @property
    def drifted(self) -> bool:
        return bool(self.missing or self.stale or self.orphaned or self.error)


class Vacuum(BaseModel):
    # A segment held replaced or deleted chunks and was rewritten without them; None: the engine
    # (a Qdrant server) vacuums by its own settings.
    rewritten: bool | None
    seconds: float


def find_drift(index: Index, state: RepoState, options: IngestOptions) -> Drift:
    options = recorded(options, state)
    try:
        source = GitSource(Path(state.path))
        head = source.resolve(None)
    except SourceError as exc:
        return Drift(repo=state.name, head=None, missing=[], stale=[], orphaned=[], error=str(exc))
    tree = scoped_tree(source, head, state.scope)
    plan = full_plan(indexed_files(index, state.name, tree, options.max_file_bytes), head, tree)
    missing = [
        path
        for path, status in plan.upsert.items()
        if status != "modified" and _indexable(source, plan.tree[path], options)
    ]
    stale = [path for path, status in plan.upsert.items() if status == "modified"]
    return Drift(repo=state.name, head=head, missing=missing, stale=stale, orphaned=plan.remove)


def _indexable(source: GitSource, entry: TreeEntry, options: IngestOptions) -> bool:
    if skip_reason(entry, options.max_file_bytes) is not None:
        return False
    try:
        return bool(decode(source.read_blob(entry.blob_sha)).strip())
    except ValueError:
        return False


def reconcile(
    index: Index,
    embedder: Callable[[], Embedder],
    check_only: bool,
    options: IngestOptions | None = None,
    states: Sequence[RepoState] | None = None,
) -> list[Drift]:
    """Drift per repository (`states`, default every one); unless `check_only`, repair each drifted
    one with a full compare."""
    options = options or IngestOptions()
    drifts = []
    for state in index.repos() if states is None else states:
        drift = find_drift(index, state, options)
        if drift.drifted and not check_only and drift.error is None:
            drift.repaired = reingest(index, embedder(), state, options=options, full=True)
        drifts.append(drift)
    return drifts


def vacuum(index: Index) -> Vacuum:
    """Rewrite the engine's segments that hold replaced or deleted chunks (`Index.vacuum`).

    Why it is a choice and not part of every reconcile: until then, the engine's BM25 counts those
    chunks too, and drifts from devrag's BM25 as an index ages, but only by a little (README,
    "Retrieval"); rewriting a segment costs as much as building its vector index, and searches
    wait while it runs.
    """
    started = time.perf_counter()
    rewritten = index.vacuum()
    return Vacuum(rewritten=rewritten, seconds=round(time.perf_counter() - started, 1))
