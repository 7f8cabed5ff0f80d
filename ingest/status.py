"""What the index holds per repository, and whether each repository has moved on since."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from devrag.ingest.git_source import GitSource, SourceError
from devrag.retrieval.index import INDEX_META_KEY, Index, RepoState
from devrag.retrieval.store import INDEXED_FIELDS


class RepoStatus(BaseModel):
    name: str
    path: str  # where the repository was last ingested from
    origin: str | None  # its normalized origin remote, when that clone had one
    indexed_commit: str | None
    head: str | None
    behind: bool | None  # None when the repository cannot be read from here
    in_progress: str | None
    chunks: int
    files: int
    # Which files the name indexes (see FileScope); empty: the whole repository.
    subtree: str = ""
    include: list[str] = []
    exclude: list[str] = []


class IndexStatus(BaseModel):
    store: str
    embed_model: str | None
    chunker: str | None
    repos: list[RepoStatus]
    # The payload indexes searches rely on (INDEXED_FIELDS), present and missing: without a keyword
    # one, filters on that field scan every chunk; without the `lexical` text index, BM25 cannot
    # rank. None: the engine keeps no keyword indexes (qdrant-client's local mode).
    payload_indexes: list[str] | None = None
    missing_payload_indexes: list[str] = []
    # Chunks an older devrag stored otherwise (BM25 spelling, ids): searches refuse the index until
    # the next ingest rewrites them (`Index.respell_pending`).
    respell_pending: int = 0


def head_of(path: str) -> str | None:
    """The repository's HEAD commit, or None when it is not reachable from this machine."""
    return head_and_behind(path, None)[0]


def head_and_behind(path: str, indexed: str | None) -> tuple[str | None, bool | None]:
    """The repository's HEAD, and whether it holds commits the index does not (None: unreachable).

    Not behind at the indexed commit, nor when HEAD is in its history: an ingest of `--rev` ahead
    of the checkout (a branch) leaves the index ahead of HEAD, not behind it. A HEAD that
    diverged (after a force push) holds commits the index does not: behind.
    """
    try:
        source = GitSource(Path(path))
        head = source.resolve(None)
    except SourceError:
        return None, None
    try:
        return head, head != indexed and not (indexed and source.is_ancestor(head, indexed))
    finally:
        source.repo.close()


class RepoLag(BaseModel):
    """How far a repository's HEAD is ahead of its indexed commit; None where it cannot be told."""

    repo: str
    head: str | None
    commits: int | None  # commits on HEAD the index does not hold
    seconds: float | None  # HEAD's commit time minus the indexed commit's, never below 0


def repo_lag(state: RepoState) -> RepoLag:
    """The lag of one repository, read from its clone; unknown when the clone or a commit is gone.

    A repository not yet indexed whole (its first ingest still running) lags by every commit on HEAD.
    """
    unknown = RepoLag(repo=state.name, head=None, commits=None, seconds=None)
    try:
        source = GitSource(Path(state.path))
    except SourceError:
        return unknown
    try:
        head = source.resolve(None)
        if state.commit is not None and not source.has_commit(state.commit):
            return unknown.model_copy(update={"head": head})
        seconds = None
        if state.commit is not None:
            seconds = float(max(0, source.commit_time(head) - source.commit_time(state.commit)))
        return RepoLag(
            repo=state.name, head=head, commits=source.commits_between(state.commit, head), seconds=seconds
        )
    except SourceError:
        return unknown
    finally:
        source.repo.close()


def repo_status(index: Index, state: RepoState) -> RepoStatus:
    head, behind = head_and_behind(state.path, state.commit)
    return RepoStatus(
        name=state.name,
        path=state.path,
        origin=state.origin,
        indexed_commit=state.commit,
        head=head,
        behind=behind,
        in_progress=state.in_progress,
        chunks=index.count(state.name),
        files=len(index.file_manifest(state.name)),
        subtree=state.scope.subtree,
        include=list(state.scope.include),
        exclude=list(state.scope.exclude),
    )


def index_status(index: Index) -> IndexStatus:
    meta = index.store.get_meta(INDEX_META_KEY) or {}
    present = index.payload_indexes()
    return IndexStatus(
        store=index.store.location,
        embed_model=meta.get("model"),
        chunker=meta.get("chunker"),
        repos=[repo_status(index, s) for s in index.repos()],
        payload_indexes=None if present is None else [f for f in INDEXED_FIELDS if f in present],
        missing_payload_indexes=[] if present is None else [f for f in INDEXED_FIELDS if f not in present],
        respell_pending=index.respell_pending(),
    )
