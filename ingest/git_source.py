"""Read committed content from a Git repository: trees, blobs and history, never the working tree."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import git
from git.exc import BadName, GitCommandError, InvalidGitRepositoryError, NoSuchPathError

from devrag.retrieval.errors import DevragError

MODE_SYMLINK = "120000"
MODE_SUBMODULE = "160000"


class SourceError(DevragError):
    """The repository or revision cannot be read."""


@dataclass(frozen=True)
class TreeEntry:
    path: str
    mode: str
    blob_sha: str
    size: int  # -1 for entries without a blob (submodules)


@dataclass(frozen=True)
class Change:
    """One path touched between two commits; `old_path` is set for renames."""

    status: str  # A, M, D, R
    path: str
    old_path: str | None = None


class GitSource:
    """One repository, opened once; blob reads share one `git cat-file --batch` process."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.repo = git.Repo(self.path, search_parent_directories=False)
        except (InvalidGitRepositoryError, NoSuchPathError) as exc:
            raise SourceError(f"{self.path} is not a Git repository (no .git found there).") from exc
        if self.repo.bare:
            self.root = self.path
        else:
            self.root = Path(self.repo.working_tree_dir or self.path)

    def resolve(self, rev: str | None) -> str:
        """The commit SHA that `rev` (default HEAD) names."""
        if not self.repo.head.is_valid() and rev is None:
            raise SourceError(f"{self.path} has no commits yet: commit something, then ingest it.")
        try:
            return str(self.repo.commit(rev or "HEAD").hexsha)
        except (BadName, ValueError, GitCommandError) as exc:
            raise SourceError(f"Unknown revision {rev!r} in {self.path}.") from exc

    def has_commit(self, sha: str) -> bool:
        """Whether `sha` is still a commit here (history rewrites and shallow clones lose them)."""
        try:
            self.repo.git.cat_file("-e", f"{sha}^{{commit}}")
        except GitCommandError:
            return False
        return True

    def tree(self, commit: str) -> dict[str, TreeEntry]:
        """Every entry of the commit's tree, by path."""
        out = self.repo.git.ls_tree("-r", "-l", "-z", "--full-tree", commit)
        entries: dict[str, TreeEntry] = {}
        for record in filter(None, out.split("\0")):
            meta, path = record.split("\t", 1)
            mode, _kind, sha, size = meta.split()
            entries[path] = TreeEntry(path, mode, sha, int(size) if size != "-" else -1)
        return entries

    def changes(self, old: str, new: str) -> list[Change]:
        """Paths that differ between two commits, with renames detected."""
        out = self.repo.git.diff("--name-status", "-z", "-M", "--no-ext-diff", old, new)
        fields = [f for f in out.split("\0") if f]
        changes: list[Change] = []
        i = 0
        while i < len(fields):
            status = fields[i][0]
            if status in "RC":
                changes.append(Change("R" if status == "R" else "A", fields[i + 2], fields[i + 1]))
                i += 3
            else:
                changes.append(Change(status if status in "ADM" else "M", fields[i + 1]))
                i += 2
        return changes

    def read_blob(self, sha: str) -> bytes:
        _sha, _kind, _size, data = self.repo.git.get_object_data(sha)
        return bytes(data)

    def last_commits(self, commit: str, paths: Iterable[str]) -> dict[str, str]:
        """The last commit at or before `commit` that touched each path, in one history walk."""
        wanted = set(paths)
        if not wanted:
            return {}
        args = ["--format=%x01%H", "--name-only", "--no-renames", "-z", commit]
        if len(wanted) <= 200:
            args += ["--", *sorted(wanted)]
        found: dict[str, str] = {}
        current = ""
        for token in self.repo.git.log(*args).replace("\n", "\0").split("\0"):
            if token.startswith("\x01"):
                current = token[1:]
            elif token in wanted and token not in found:
                found[token] = current
                if len(found) == len(wanted):
                    break
        return found
