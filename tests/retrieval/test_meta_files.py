"""The embedded index keeps each metadata key in its own file, and splits an older single file."""

from __future__ import annotations

import json
from pathlib import Path

from devrag.retrieval.edge_store import EdgeStore
from devrag.retrieval.meta_files import MetaFiles

LEGACY = {
    "generation": {"token": "a1"},
    "repo:ops runbooks/team:a": {"commit": "c1", "files": 3},
    "skipped:ops": {"files": {f"big-{n}.bin": "too large" for n in range(50)}},
    # Quoted, 1,087 characters: past any file system's name limit, so its file is named by its hash.
    "repo:" + "运维手册" * 30: {"commit": "c2", "files": 1},
}
LONG = "repo:" + "运维手册" * 30


def test_an_index_with_a_single_metadata_file_opens_with_every_key_in_its_own_file(tmp_path: Path) -> None:
    (tmp_path / "meta.json").write_text(json.dumps(LEGACY), encoding="utf-8")
    store = EdgeStore(tmp_path)
    assert store.meta_keys() == sorted(LEGACY)
    assert {key: store.get_meta(key) for key in LEGACY} == LEGACY
    assert not (tmp_path / "meta.json").exists()
    assert len(list((tmp_path / "meta").glob("*.json"))) == len(LEGACY)
    assert max(len(p.name.encode()) for p in (tmp_path / "meta").iterdir()) < 255
    store.close()
    again = EdgeStore(tmp_path)  # opened again: nothing left to split, the same keys
    assert {key: again.get_meta(key) for key in again.meta_keys()} == LEGACY
    again.close()


def test_a_split_cut_off_after_its_folder_was_in_place_keeps_the_folder(tmp_path: Path) -> None:
    """The folder replaces the staging one in one rename; the old file is removed after it, so a
    crash between the two leaves both, and the folder (possibly newer) is what counts."""
    meta = MetaFiles(tmp_path)
    meta.put("generation", {"token": "new"})
    (tmp_path / "meta.json").write_text(json.dumps(LEGACY), encoding="utf-8")
    reopened = MetaFiles(tmp_path)
    assert reopened.keys() == ["generation"]
    assert reopened.get("generation") == {"token": "new"}
    assert not (tmp_path / "meta.json").exists()


def test_writing_a_key_rewrites_that_key_alone_and_reads_back_what_is_on_disk(tmp_path: Path) -> None:
    meta = MetaFiles(tmp_path)
    for key, value in LEGACY.items():
        meta.put(key, value)
    files = {p.name: p.stat().st_ino for p in meta.folder.iterdir()}  # a write is a new file
    assert meta.get("generation") == {"token": "a1"}
    meta.put("generation", {"token": "b2"})
    meta.put("skipped:ops", LEGACY["skipped:ops"])  # unchanged: not written
    changed = {p.name for p in meta.folder.iterdir() if p.stat().st_ino != files.get(p.name)}
    assert changed == {"generation.json"}
    assert meta.get("generation") == {"token": "b2"}  # read back from its file, and kept
    (meta.folder / "generation.json").write_text('{"token": "on disk"}', encoding="utf-8")
    assert meta.get("generation") == {"token": "b2"}, "a key is kept as this process last read it"
    meta.put("generation", {"token": "c3"})
    (meta.folder / "generation.json").write_text('{"token": "as written"}', encoding="utf-8")
    assert meta.get("generation") == {"token": "as written"}, "after a write the next read is the file's"
    meta.delete("repo:ops runbooks/team:a")
    meta.delete(LONG)
    assert meta.keys() == ["generation", "skipped:ops"]
    assert meta.get("repo:ops runbooks/team:a") is None and meta.get(LONG) is None
    assert sorted(p.suffix for p in meta.folder.iterdir()) == [".json", ".json"], "the long key's files went"
