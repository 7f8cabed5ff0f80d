"""Rebuild an index on a Qdrant server without downtime: fill a new collection, check it, switch.

A new embedding model or chunker makes the index unreadable to the new code until every chunk is
rewritten. On a server that several machines read, removing the collection and ingesting again
leaves every reader without answers for as long as that takes; instead devrag ingests every
recorded repository into a new collection beside the one searches read, checks the new one holds
exactly what each repository's HEAD holds (the nightly reconcile's check), and only then moves
the name searches use onto it in one atomic alias change. A failure anywhere before the switch
drops the new collection and leaves the old one answering, as if nothing had happened.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pydantic import BaseModel

from devrag.ingest.pipeline import IngestOptions, IngestSummary, StageProgress, reingest
from devrag.ingest.reconcile import find_drift
from devrag.retrieval.errors import DevragError, IndexWriteError
from devrag.retrieval.index import Index, RepoState
from devrag.retrieval.models import Embedder
from devrag.retrieval.store import RebuildableStore


class RebuildSummary(BaseModel):
    collection: str  # the name searches read, now pointing at `built`
    built: str
    retired: list[str]  # the collections the name pointed at before
    kept_retired: bool
    repos: list[IngestSummary]
    seconds: float


def rebuild(
    index: Index,
    load_embedder: Callable[[], Embedder],
    options: IngestOptions | None = None,
    keep_retired: bool = False,
    progress: StageProgress | None = None,
) -> RebuildSummary:
    """Ingest every repository `index` records into a new collection, check it, then switch to it.

    The model (`load_embedder`, which takes seconds) is loaded once the store is known to switch.

    Raises:
        DevragError: the store cannot switch (the embedded engine), or the index records nothing.
        IndexWriteError: the new collection does not hold what the repositories hold; it is dropped.
    """
    started = time.perf_counter()
    store = index.store
    if not isinstance(store, RebuildableStore):
        raise DevragError(
            f"`devrag rebuild` switches a Qdrant server's collection alias; the embedded index at "
            f"{store.location} is rebuilt by removing its directory and running `devrag ingest` again."
        )
    repos = index.repos()
    if not repos:
        raise DevragError(f"The index at {store.location} records no repository: nothing to rebuild.")
    options = options or IngestOptions()
    embedder = load_embedder()
    staged = store.staged()
    built = Index(staged, embedder.name, embedder.dim)
    try:
        summaries = [reingest(built, embedder, state, options=options, progress=progress) for state in repos]
        checks = [find_drift(built, _state(built, state.name), options) for state in repos]
        drifted = [d for d in checks if d.drifted]
        if drifted:
            names = ", ".join(d.repo for d in drifted)
            raise IndexWriteError(
                f"The rebuilt collection does not hold what {names} holds at HEAD (a file changed during "
                "the rebuild?); it was dropped and searches still read the previous one. Run it again."
            )
    except BaseException:
        staged.drop()
        raise
    retired = store.promote(staged)
    if not keep_retired:
        store.drop(retired)
    return RebuildSummary(
        collection=store.collection,
        built=staged.collection,
        retired=retired,
        kept_retired=keep_retired,
        repos=summaries,
        seconds=round(time.perf_counter() - started, 2),
    )


def _state(index: Index, name: str) -> RepoState:
    """The state the ingest just run recorded."""
    state = index.repo_state(name)
    assert state is not None, "an ingest records its repository"
    return state
