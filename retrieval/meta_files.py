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
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

_SUFFIX = ".json"


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
        path = self._path(key)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(_dump(value), encoding="utf-8")
        os.replace(tmp, path)
        self._read.pop(key, None)  # a write's read-back (`Index`) reads the file itself

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)
        self._read.pop(key, None)

    def keys(self) -> list[str]:
        if not self.folder.is_dir():
            return []
        return sorted(unquote(p.name[: -len(_SUFFIX)]) for p in self.folder.glob(f"*{_SUFFIX}"))

    def _path(self, key: str) -> Path:
        return self.folder / f"{quote(key, safe='')}{_SUFFIX}"

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
                (staging / self._path(key).name).write_text(_dump(value), encoding="utf-8")
            os.replace(staging, self.folder)
        self._legacy.unlink()


def _dump(value: dict[str, Any]) -> str:
    return json.dumps(value, indent=2, sort_keys=True)
