"""The embedded index's metadata: one JSON file per key in `<index_dir>/meta/`.

Why a file per key: the metadata grows with the corpus (the records of skipped files are most of
it: 246 of 312 kB at 1M chunks), and a single file was read and written whole for every key an
ingest touched, so one edited section cost more the larger the index. Now a key's write and its
read-back cost what that key holds. Indexes made before keep a single `meta.json`, split into
per-key files on first open.
"""

from __future__ import annotations

import json
import os
import shutil
from hashlib import sha256
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

_SUFFIX = ".json"
# File names stay far within what file systems take (255 bytes): a key whose quoted name is longer
# (a long or non-ASCII repository name) gets a file named by its hash, with the key in a `.key` file.
_NAME_MAX = 200
_HASHED = "%%"  # a prefix `quote` never writes: it spells "%" as "%25"
_KEY_SUFFIX = ".key"


class MetaFiles:
    """Per-key JSON files, each written atomically; this process is their only writer (the owner)."""

    def __init__(self, index_dir: Path) -> None:
        self.folder = index_dir / "meta"
        self._legacy = index_dir / "meta.json"
        # key -> its file's text as last read (None: no file). Parsed again for each caller, which
        # may change what it gets: cheaper than a deep copy (246 kB: 0.8 against 2.6 ms).
        self._read: dict[str, str | None] = {}
        if self._legacy.exists():
            self._split_legacy()

    def get(self, key: str) -> dict[str, Any] | None:
        if key not in self._read:
            path = self._path(key)
            self._read[key] = path.read_text(encoding="utf-8") if path.exists() else None
        text = self._read[key]
        return None if text is None else dict(json.loads(text))

    def put(self, key: str, value: dict[str, Any]) -> None:
        if self.get(key) == value:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        _write(self.folder, key, value)
        self._read.pop(key, None)  # a write's read-back (`Index`) reads the file itself

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        path.with_suffix(_KEY_SUFFIX).unlink(missing_ok=True)
        self._read.pop(key, None)

    def keys(self) -> list[str]:
        if not self.folder.is_dir():
            return []
        return sorted(_key(path) for path in self.folder.glob(f"*{_SUFFIX}"))

    def _path(self, key: str) -> Path:
        return self.folder / _file_name(key)

    def _split_legacy(self) -> None:
        """Move the keys of a single `meta.json` into their own files.

        The files are written to a staging folder that replaces `meta/` in one rename, and only
        then is `meta.json` removed: a crash at any point leaves either the old file or the whole
        folder (and the old file, ignored and removed by the next open).
        """
        if not self.folder.exists():
            staging = self.folder.with_name("meta.staging")
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            for key, value in json.loads(self._legacy.read_text(encoding="utf-8")).items():
                _write(staging, key, value)
            os.replace(staging, self.folder)
        self._legacy.unlink()


def _file_name(key: str) -> str:
    quoted = quote(key, safe="")
    if len(quoted) > _NAME_MAX:
        quoted = _HASHED + sha256(key.encode("utf-8")).hexdigest()
    return quoted + _SUFFIX


def _key(path: Path) -> str:
    """The key a value file holds: its name unquoted, or its `.key` file's text for a hashed name."""
    stem = path.name[: -len(_SUFFIX)]
    if stem.startswith(_HASHED):
        return path.with_suffix(_KEY_SUFFIX).read_text(encoding="utf-8")
    return unquote(stem)


def _write(folder: Path, key: str, value: dict[str, Any]) -> None:
    """The key's value in its file, replaced in one rename; a hashed name's key file first."""
    path = folder / _file_name(key)
    if path.name.startswith(_HASHED):
        path.with_suffix(_KEY_SUFFIX).write_text(key, encoding="utf-8")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)
