"""Read committed content from a Git repository: trees, blobs and history, never the working tree."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import git
from git.exc import BadName, GitCommandError, InvalidGitRepositoryError, NoSuchPathError

from devrag.retrieval.errors import DevragError

_SCP_LIKE = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>(?!/).+)$")
MODE_SYMLINK = "120000"
MODE_SUBMODULE = "160000"
_PATHS_PER_CALL = 500  # paths named on one git command line
# What a byte of a file name that is not UTF-8 reads as (`file_name`); such a file is never indexed.
UNDECODABLE = "\ufffd"


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

    def is_ancestor(self, older: str, newer: str) -> bool:
        """Whether `older` is in `newer`'s history (False when either is not here)."""
        try:
            self.repo.git.merge_base("--is-ancestor", older, newer)
        except GitCommandError:
            return False
        return True

    def commits_between(self, older: str | None, newer: str) -> int:
        """Commits in `newer`'s history that are not in `older`'s (all of them when `older` is None)."""
        return int(self.repo.git.rev_list("--count", newer if older is None else f"{older}..{newer}"))

    def commit_time(self, sha: str) -> int:
        """The commit's committer time, in seconds since the epoch."""
        return int(self.repo.commit(sha).committed_date)

    def commit_times(self, shas: Iterable[str]) -> dict[str, int]:
        """The committer time of each commit, in seconds since the epoch, a few hundred per call."""
        wanted = sorted(set(shas))
        times: dict[str, int] = {}
        for start in range(0, len(wanted), 500):
            out = self.repo.git.show("--no-patch", "--format=%H %ct", *wanted[start : start + 500])
            for line in out.splitlines():
                sha, seconds = line.split()
                times[sha] = int(seconds)
        return times

    def tree(self, commit: str) -> dict[str, TreeEntry]:
        """Every entry of the commit's tree, by path."""
        return _entries(self.repo.git.ls_tree("-r", "-l", "-z", "--full-tree", commit))

    def entries(self, commit: str, paths: Sequence[str]) -> dict[str, TreeEntry]:
        """The entries of the named paths that exist in the commit's tree, by path.

        Cheaper than `tree` when few paths are wanted: sizes (`-l`) cost a read of each blob's
        header, which over a whole tree of 100,000 files is most of a second.
        """
        found: dict[str, TreeEntry] = {}
        if any(UNDECODABLE in path for path in paths):  # Git cannot be asked for such a name
            found = {path: entry for path, entry in self.tree(commit).items() if UNDECODABLE in path}
        for start in range(0, len(paths), _PATHS_PER_CALL):
            batch = paths[start : start + _PATHS_PER_CALL]
            literal = (f":(literal){p}" for p in batch)
            found |= _entries(self.repo.git.ls_tree("-r", "-l", "-z", "--full-tree", commit, "--", *literal))
        wanted = set(paths)
        return {path: entry for path, entry in found.items() if path in wanted}

    def paths(self, commit: str) -> list[str]:
        """Every path of the commit's tree: names only, which Git lists without opening a blob."""
        listing = self.repo.git.ls_tree("-r", "-z", "--name-only", "--full-tree", commit)
        return [file_name(path) for path in listing.split("\0") if path]

    def changes(self, old: str, new: str) -> list[Change]:
        """Paths that differ between two commits, with renames detected."""
        out = self.repo.git.diff("--name-status", "-z", "-M", "--no-ext-diff", old, new)
        fields = [file_name(f) for f in out.split("\0") if f]
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

    def origin(self) -> str | None:
        """The normalized URL of the `origin` remote, or None when the clone has none."""
        try:
            url = self.repo.git.config("--get", "remote.origin.url")
        except GitCommandError:
            return None
        return normalize_remote(url, base=self.root) if url.strip() else None

    def root_commits(self, commit: str) -> tuple[str, ...]:
        """The root commits of `commit`'s history; empty in a shallow clone, whose roots are cut."""
        if self.repo.git.rev_parse("--is-shallow-repository").strip() == "true":
            return ()
        return tuple(sorted(self.repo.git.rev_list("--max-parents=0", commit).split()))

    def read_blob(self, sha: str) -> bytes:
        _sha, _kind, _size, data = self.repo.git.get_object_data(sha)
        return bytes(data)

    def last_commits(self, commit: str, paths: Iterable[str], since: str | None = None) -> dict[str, str]:
        """The last commit at or before `commit` that touched each path.

        `since` (the commit an incremental ingest starts from) bounds the walk: a path changed
        after it was last touched in `since..commit`, so an ingest on each merge walks the commits
        it brings in, not the whole history; a path not found there is looked up in the rest.
        """
        wanted = set(paths)
        found = self._walk(f"{since}..{commit}", wanted) if since and wanted else {}
        rest = wanted - found.keys()
        return found | self._walk(commit, rest) if rest else found

    def _walk(self, revisions: str, wanted: set[str]) -> dict[str, str]:
        """The newest commit of `revisions` that touched each wanted path, in one history walk.

        Paths are literal pathspecs, so names such as `:x.md` or `*.md` mean only that file, and
        the output is read NUL-separated, so a name may hold any character but NUL, newlines too.
        """
        args = ["--format=%x01%H", "--name-only", "--no-renames", "-z", revisions]
        if len(wanted) <= 200:
            args += ["--", *(f":(literal){p}" for p in sorted(wanted))]
        found: dict[str, str] = {}
        for sha, name in _logged_names(self.repo.git.log(*args)):
            if name in wanted and name not in found:
                found[name] = sha
                if len(found) == len(wanted):
                    break
        return found


def _logged_names(out: str) -> Iterator[tuple[str, str]]:
    r"""(commit, path) pairs of `git log --format=%x01%H --name-only -z`, newest first.

    Each commit is `\x01SHA\0`, then, when it lists names, `\n` and the names, each ending in
    `\0`: only the first name after a header carries that newline, and only it loses one.
    """
    current = ""
    after_header = False
    for token in out.split("\0"):
        if token.startswith("\x01"):
            current, after_header = token[1:], True
            continue
        if after_header:
            token = token.removeprefix("\n")
            after_header = False
        if token:
            yield current, file_name(token)


def locate(path: Path) -> tuple[Path, str]:
    """The repository holding the folder `path`, and the folder's place in it ("" at the top).

    Lets `devrag ingest` take a folder inside a repository (a monorepo's `docs/runbooks`), and
    tells apart the three ways a path can fail, each with its own next step.

    Raises:
        SourceError: `path` does not exist, is not a folder, or is in no Git repository.
    """
    if not path.exists():
        raise SourceError(f"{path} does not exist.")
    if not path.is_dir():
        raise SourceError(f"{path} is a file; pass the folder of the repository (or a folder in it).")
    try:
        repo = git.Repo(path, search_parent_directories=True)
    except InvalidGitRepositoryError as exc:
        raise SourceError(
            f"{path} is not in a Git repository. devrag indexes committed files; to index this "
            f"folder, make it a repository first: cd {path} && git init && git add -A && git commit -m "
            "'Import', then run `devrag ingest` again."
        ) from exc
    try:
        if repo.bare:
            return path, ""
        root = Path(repo.working_tree_dir or path)
    finally:
        repo.close()
    inside = path.resolve().relative_to(root.resolve())
    return root, "" if inside == Path() else inside.as_posix()


def normalize_remote(url: str, base: Path | None = None) -> str:
    """One spelling per repository, so two clones of it, or a clone and a push event, compare equal.

    `https://user:token@Host/Org/Repo.git/`, `ssh://git@host:22/org/repo` and `git@host:org/repo`
    all become `host/org/repo` (forges treat owner and name case-insensitively, so it is
    lowercased). Local paths and `file://` URLs become `file:` plus the resolved path, relative
    ones resolved against `base` (the clone, as git does for its remotes).
    """
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme == "file":
        return _local(unquote(parts.path), base)
    if parts.scheme and parts.netloc:
        return _remote(parts.hostname or "", parts.path)
    scp = _SCP_LIKE.match(url)
    if scp and not Path(url).is_absolute():
        return _remote(scp["host"], scp["path"])
    return _local(url, base)


def _remote(host: str, path: str) -> str:
    path = path.strip("/").removesuffix(".git").rstrip("/")
    return f"{host}/{path}".lower()


def _local(path: str, base: Path | None) -> str:
    resolved = ((base or Path.cwd()) / path).resolve()
    return f"file:{resolved.as_posix().removesuffix('/.git')}"


def _entries(listing: str) -> dict[str, TreeEntry]:
    """`git ls-tree -l -z` output, by path."""
    entries: dict[str, TreeEntry] = {}
    for record in filter(None, listing.split("\0")):
        meta, path = record.split("\t", 1)
        mode, _kind, sha, size = meta.split()
        path = file_name(path)
        entries[path] = TreeEntry(path, mode, sha, int(size) if size != "-" else -1)
    return entries


def file_name(listed: str) -> str:
    """A path as Git lists it, with each byte that is not UTF-8 read as `UNDECODABLE`.

    Git stores names as bytes, and GitPython hands the bytes that are not UTF-8 on as lone
    surrogates, which no id, payload or JSON output can carry; one such name would stop every
    ingest of its repository. Read this way it is a plain string, skipped with its reason.
    """
    try:
        listed.encode("utf-8")
    except UnicodeEncodeError:
        return listed.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return listed
