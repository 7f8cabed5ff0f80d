"""Which repository a clone is: its name in the index, told apart by history, not by folder."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from devrag.ingest.git_source import GitSource, SourceError
from devrag.retrieval.index import Index, RepoState


@dataclass(frozen=True)
class Clone:
    """Where a run reads from, and what identifies its history there."""

    path: str
    origin: str | None
    roots: tuple[str, ...]

    @classmethod
    def of(cls, source: GitSource, target: str) -> Clone:
        return cls(str(source.root), source.origin(), source.root_commits(target))

    def stamp(self, state: RepoState) -> RepoState:
        """The state as this clone records it: last ingested from here, with its identity.

        An identity this clone cannot see (no remote, shallow roots) keeps the recorded one,
        so a CI run on a shallow clone does not erase what a full clone learned.
        """
        return replace(
            state, path=self.path, origin=self.origin or state.origin, roots=self.roots or state.roots
        )


def checked_state(index: Index, name: str, source: GitSource, clone: Clone) -> RepoState | None:
    """The recorded state of `name`, once the clone is known to hold the same history.

    Any one sign suffices: the same folder as last time, the last indexed commit present here
    (the planner then diffs from it), the same origin remote, or a shared root commit (a shallow
    or rewritten clone: the planner compares the whole tree with the index instead).

    Raises:
        SourceError: the clone's history is unrelated to what the name indexes.
    """
    state = index.repo_state(name)
    if state is None or _same_history(state, source, clone):
        return state
    raise SourceError(
        f"The name {name!r} already indexes {_where(state.path, state.origin)}, and "
        f"{_where(clone.path, clone.origin)} shares no history with it. Pass --name to index it "
        f"under another name, or run `devrag forget {name}` first to replace it."
    )


def _same_history(state: RepoState, source: GitSource, clone: Clone) -> bool:
    if Path(state.path) == Path(clone.path):
        return True
    if state.origin and state.origin == clone.origin:
        return True
    if set(state.roots) & set(clone.roots):
        return True
    known = [c for c in (state.commit, state.in_progress) if c]
    return any(source.has_commit(c) for c in known)


def _where(path: str, origin: str | None) -> str:
    return f"{path} (origin {origin})" if origin else f"{path} (no origin remote)"
