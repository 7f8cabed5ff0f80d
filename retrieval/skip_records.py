"""Skip records: the files an ingest considered and left without chunks, kept in the index's metadata.

A repository's records are split in shares by a hash of the path, one metadata key each,
"skipped.<share>:<repo>", so that a run reads and rewrites only the shares its changed files fall
in, however many files the repository skips. Up to 0.7.0 they were one key, "skipped:<repo>": still
read, and split by the next ingest. Neither key starts with "repo:", so a repository's records are
never taken for a repository.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from devrag.retrieval.store import VectorStore

_UNSPLIT_PREFIX = "skipped:"
_SHARE_PREFIX = "skipped."
_SHARES = 64


@dataclass(frozen=True)
class SkippedRecord:
    """A file ingest considered and left without chunks, at the blob it judged.

    Without it, a file that yields no chunks (front matter only, binary, too large...) looks
    exactly like a file ingest never saw, so a full compare re-reads it on every run and reconcile
    reports it missing forever. `read` says whether the verdict needed the content (binary, no
    text) or only the tree entry (symlink, size), so a changed size limit can revisit the latter.
    """

    blob_sha: str
    reason: str
    read: bool


class SkipRecords:
    """Every repository's skip records in one store's metadata; `put` and `delete` are the index's
    verified metadata writes (each read back, under its write lock)."""

    def __init__(
        self,
        store: VectorStore,
        put: Callable[[str, dict[str, Any]], None],
        delete: Callable[[str], None],
    ) -> None:
        self._store = store
        self._put = put
        self._delete = delete

    def read(self, repo: str, near: Iterable[str] | None = None) -> dict[str, SkippedRecord]:
        """path -> record of every file of the repo that the last runs considered and left unchunked.

        With `near`, only the records that share a key with those paths: an incremental run reads
        (and rewrites) only the shares its changed files fall in.
        """
        keys = self._keys_near(repo, near)
        rows = [row for key in sorted(keys) for row in (self._store.get_meta(key) or {}).get("files", [])]
        unsplit = (self._store.get_meta(_UNSPLIT_PREFIX + repo) or {}).get("files", [])
        rows += [row for row in unsplit if _share_key(repo, row["path"]) in keys or near is None]
        return {
            row["path"]: SkippedRecord(row["blob_sha"], row["reason"], bool(row.get("read"))) for row in rows
        }

    def replace(
        self, repo: str, records: dict[str, SkippedRecord], near: Iterable[str] | None = None
    ) -> None:
        """Replace the repo's records (with `near`, those in the shares of those paths).

        Each share is one key, written whole or not at all; an emptied share's key is removed.
        """
        rows = [
            {"path": path, "blob_sha": r.blob_sha, "reason": r.reason, "read": r.read}
            for path, r in sorted(records.items())
        ]
        self.split_unsplit(repo)
        self._write_shares(repo, self._keys_near(repo, near), rows)

    def split_every_unsplit(self) -> None:
        """Split the single key an older version kept for each repository into shares."""
        for key in self._store.meta_keys():
            if key.startswith(_UNSPLIT_PREFIX):
                self.split_unsplit(key[len(_UNSPLIT_PREFIX) :])

    def split_unsplit(self, repo: str) -> None:
        """Move an older version's single key of the repo's records into shares."""
        unsplit = self._store.get_meta(_UNSPLIT_PREFIX + repo)
        if unsplit is not None:
            self._write_shares(repo, set(), unsplit.get("files", []))
            self._delete(_UNSPLIT_PREFIX + repo)

    def _write_shares(self, repo: str, keys: set[str], rows: list[dict[str, Any]]) -> None:
        """Write each share that holds rows, and empty those of `keys` that hold none."""
        shares: dict[str, list[dict[str, Any]]] = {key: [] for key in keys}
        for row in rows:
            shares.setdefault(_share_key(repo, row["path"]), []).append(row)
        for key, held in sorted(shares.items()):
            if held:
                self._put(key, {"files": held})
            elif self._store.get_meta(key) is not None:
                self._delete(key)

    def _keys_near(self, repo: str, near: Iterable[str] | None) -> set[str]:
        """The keys of the shares holding the records of `near`'s paths; None: every stored share."""
        return self._share_keys(repo) if near is None else {_share_key(repo, path) for path in near}

    def _share_keys(self, repo: str) -> set[str]:
        """The keys of the repo's shares that are stored."""
        after = len(_SHARE_PREFIX) + 2  # the share's two hex digits
        return {k for k in self._store.meta_keys() if k.startswith(_SHARE_PREFIX) and k[after:] == f":{repo}"}


def _share_key(repo: str, path: str) -> str:
    """The key of the share of `repo`'s skip records that holds `path`'s."""
    share = zlib.crc32(path.encode()) % _SHARES  # names are UTF-8 (`git_source.file_name`)
    return f"{_SHARE_PREFIX}{share:02x}:{repo}"
