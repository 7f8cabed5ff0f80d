"""A committed file whose name is not valid UTF-8 is skipped with its reason; the rest is indexed."""

from __future__ import annotations

import os

from devrag.ingest.git_source import GitSource
from devrag.ingest.pipeline import ingest
from devrag.ingest.reconcile import reconcile
from devrag.retrieval.store import PointFilter

LATIN1 = b"caf\xe9.md"  # "café.md" as Latin-1: not UTF-8
SHOWN = "caf\ufffd.md"


def add_latin1_file(repo, text: str) -> None:
    with open(os.path.join(os.fsencode(repo.path), LATIN1), "w", encoding="utf-8") as f:
        f.write(text)


def indexed_paths(index) -> set[str]:
    return {p.payload["path"] for p in index.store.scroll(PointFilter(repo="ops"), fields=["path"])}


def test_a_file_name_that_is_not_utf8_is_skipped_and_everything_else_indexed(index, git_repo, embedder):
    repo = git_repo()
    add_latin1_file(repo, "# Cafe\n\n## Steps\nrestart the espresso machine\n")
    repo.commit({"a.md": "# A\n\n## Steps\nrestart the pods\n"})
    summary = ingest(index, embedder, repo.path, "ops")
    assert indexed_paths(index) == {"a.md"}
    assert [(s.path, s.reason) for s in summary.skipped] == [(SHOWN, "file name is not valid UTF-8")]
    assert not any(d.drifted for d in reconcile(index, lambda: embedder, check_only=True))

    # Incremental runs read it from the diff the same way, and still index what changed beside it.
    add_latin1_file(repo, "# Cafe\n\n## Steps\ndescale it first\n")
    repo.commit({"b.md": "# B\n\n## Steps\ndrain the node\n"})
    summary = ingest(index, embedder, repo.path, "ops")
    assert summary.mode == "diff"
    assert indexed_paths(index) == {"a.md", "b.md"}
    assert [(s.path, s.reason) for s in summary.skipped] == [(SHOWN, "file name is not valid UTF-8")]
    assert not any(d.drifted for d in reconcile(index, lambda: embedder, check_only=True))


def test_git_listings_name_such_a_file_with_replacement_characters(git_repo):
    repo = git_repo()
    add_latin1_file(repo, "x\n")
    repo.commit({"a.md": "a\n"})
    source = GitSource(repo.path)
    assert sorted(source.tree(repo.head())) == ["a.md", SHOWN]
    assert sorted(source.paths(repo.head())) == ["a.md", SHOWN]
    assert set(source.entries(repo.head(), [SHOWN, "a.md"])) == {SHOWN, "a.md"}
