"""`devrag forget NAME`: remove everything the index holds of one repository, verified."""

from __future__ import annotations

from pydantic import BaseModel

from devrag.retrieval.errors import DevragError
from devrag.retrieval.index import Index


class UnknownRepositoryError(DevragError):
    """No repository of that name is indexed."""


class ForgetSummary(BaseModel):
    """What `forget` removed; `--json` prints exactly this."""

    repo: str
    path: str
    chunks: int
    files: int  # files that had chunks
    skipped_files: int  # files held only as skip records


def forget(index: Index, name: str) -> ForgetSummary:
    """Remove the repository's chunks, then its skip records, then its state, each verified.

    The state goes last so that a run stopped halfway still lists the repository and a second
    `forget` finishes the job.

    Raises:
        UnknownRepositoryError: no repository is indexed under `name`; the message lists those that are.
    """
    with index.lock:
        state = index.repo_state(name)
        if state is None:
            raise UnknownRepositoryError(_unknown(index, name))
        files = len(index.file_manifest(name))
        ids = index.chunk_ids(name)
        skipped = len(index.skipped_files(name))
        index.delete(ids)
        index.set_skipped_files(name, {})
        index.forget_repo_state(name)
    return ForgetSummary(repo=name, path=state.path, chunks=len(ids), files=files, skipped_files=skipped)


def _unknown(index: Index, name: str) -> str:
    names = sorted(s.name for s in index.repos())
    indexed = f"Indexed repositories: {', '.join(names)}." if names else "No repositories are indexed."
    return f"No repository named {name!r} in the index. {indexed}"
