"""Decide which files an ingest must touch: from a Git diff when it can, from the index when it must."""

from __future__ import annotations

from dataclasses import dataclass, field

from devrag.ingest.documents import skip_reason
from devrag.ingest.git_source import Change, GitSource, SourceError, TreeEntry
from devrag.retrieval.index import MIXED, FileScope, Index, RepoState
from devrag.retrieval.skip_records import SkippedRecord


@dataclass
class Plan:
    """Paths to (re)chunk from the target tree, paths whose chunks go, and how to report them."""

    target: str
    tree: dict[str, TreeEntry]  # at least every path to upsert; the whole scope in a full plan
    files: int  # files the scope holds at the target
    mode: str  # "noop", "diff" or "full"
    upsert: dict[str, str] = field(default_factory=dict)  # path -> "added", "modified", "renamed"
    remove: list[str] = field(default_factory=list)
    deleted: int = 0
    since: str | None = None  # a diff plan's starting commit: what changed was changed after it

    @property
    def unchanged(self) -> int:
        return self.files - len(self.upsert)

    def untouched(self, path: str) -> bool:
        """The file is at the target as the index last saw it: neither rewritten nor removed."""
        return path not in self.upsert and path not in self.remove


def make_plan(
    source: GitSource,
    index: Index,
    state: RepoState | None,
    target: str,
    max_bytes: int,
    full: bool = False,
    scope: FileScope | None = None,
) -> Plan:
    """The cheapest correct plan for bringing the repo's chunks (those `scope` holds) to the target.

    A diff from the last indexed commit is exact only if that commit still exists, the last run
    finished and chose the same files; otherwise (force push, shallow clone, killed run, another
    scope) compare the tree with the index, which also drops the files a narrower scope leaves out.

    Raises:
        SourceError: a new scope holds no file at the target: a typo would empty the index.
    """
    scope = scope or FileScope()
    finished = state is not None and not state.in_progress and not full and state.scope == scope
    if finished and state and state.commit == target:
        return Plan(target, {}, _count(source, target, scope) if state.files is None else state.files, "noop")
    if finished and state and state.commit and source.has_commit(state.commit):
        return _diff_plan(source, state.commit, state.files, target, scope)
    tree = scoped_tree(source, target, scope)
    if not tree and not scope.whole and (state is None or state.scope != scope):
        raise SourceError(_empty_scope(target, scope))
    held = indexed_files(index, state.name, tree, max_bytes) if state else {}
    return full_plan(held, target, tree)


def scoped_tree(source: GitSource, commit: str, scope: FileScope) -> dict[str, TreeEntry]:
    """The entries of the commit's tree that the scope holds, by path."""
    return {path: entry for path, entry in source.tree(commit).items() if scope.holds(path)}


def _count(source: GitSource, commit: str, scope: FileScope) -> int:
    """How many files of the commit's tree the scope holds, from their names alone."""
    return sum(1 for path in source.paths(commit) if scope.holds(path))


def _empty_scope(target: str, scope: FileScope) -> str:
    return (
        f"No committed file at {target[:12]} is in {scope.describe()}. Globs match paths from the "
        "repository root (`*` crosses folders, `dir/` is a whole folder); check them, and commit "
        "new files before ingesting them."
    )


def indexed_files(index: Index, repo: str, tree: dict[str, TreeEntry], max_bytes: int) -> dict[str, str]:
    """path -> blob SHA of every file the index accounts for: by its chunks, or by a skip record.

    A record counts only while its verdict would still hold, so a raised size limit gets a skipped
    file re-read; a path with both chunks and a record disagrees with itself and maps to MIXED, to
    be re-read too.
    """
    held = index.file_manifest(repo)
    for path, record in index.skipped_files(repo).items():
        entry = tree.get(path)
        if entry is not None and not _verdict_holds(record, entry, max_bytes):
            continue
        held[path] = MIXED if path in held else record.blob_sha
    return held


def _verdict_holds(record: SkippedRecord, entry: TreeEntry, max_bytes: int) -> bool:
    if entry.blob_sha != record.blob_sha:
        return True  # another version: the record stands for what the index holds, which is stale
    before_reading = skip_reason(entry, max_bytes)
    return before_reading is None if record.read else before_reading == record.reason


def _diff_plan(source: GitSource, old: str, held: int | None, target: str, scope: FileScope) -> Plan:
    """The changes between two commits, as the scope sees them: a move across its edge adds or deletes.

    Only the changed paths' tree entries are read, and the count of files the scope `held` at `old`
    (None: not recorded) moves by the changes, so the plan costs the same in a repository of a
    hundred files or a hundred thousand.
    """
    changes = source.changes(old, target)
    kept = [c.path for c in changes if c.status != "D" and scope.holds(c.path)]
    files = _count(source, target, scope) if held is None else held + _moved(changes, scope)
    plan = Plan(target, source.entries(target, kept), files, "diff", since=old)
    for change in changes:
        gone = change.path if change.status == "D" else change.old_path
        left = gone is not None and scope.holds(gone)
        if gone is not None and left:
            plan.remove.append(gone)
        if change.status != "D" and change.path in plan.tree:
            plan.upsert[change.path] = _status(change.status, left)
        elif left:
            plan.deleted += 1
    return plan


def _moved(changes: list[Change], scope: FileScope) -> int:
    """How many more files the scope holds after the changes than before them."""
    after = sum(1 for c in changes if c.status != "D" and scope.holds(c.path))
    before = sum(1 for c in changes if c.status != "A" and scope.holds(c.old_path or c.path))
    return after - before


def _status(status: str, renamed_from_scope: bool) -> str:
    if status == "R":
        return "renamed" if renamed_from_scope else "added"
    return "added" if status == "A" else "modified"


def full_plan(indexed: dict[str, str], target: str, tree: dict[str, TreeEntry]) -> Plan:
    """Compare path -> blob SHA in the tree with what the index's own chunks say."""
    plan = Plan(target, tree, len(tree), "full")
    gone = {p: sha for p, sha in indexed.items() if p not in tree}
    gone_blobs = set(gone.values())
    for path, entry in tree.items():
        held = indexed.get(path)
        if held == entry.blob_sha:
            continue
        if held is not None:
            plan.upsert[path] = "modified"
        elif entry.blob_sha in gone_blobs:
            plan.upsert[path] = "renamed"
        else:
            plan.upsert[path] = "added"
    plan.remove = sorted(gone)
    renamed = sum(1 for status in plan.upsert.values() if status == "renamed")
    plan.deleted = max(len(gone) - renamed, 0)
    return plan
