"""Bad input gets a clear message naming the file or argument, and nothing already indexed is lost."""

from __future__ import annotations

import pytest

from devrag.ingest.git_source import SourceError
from devrag.ingest.pipeline import IngestOptions, ingest
from devrag.retrieval.edge_store import EdgeStore
from devrag.retrieval.errors import IndexBusyError, IndexMismatchError
from devrag.retrieval.index import Index
from devrag.retrieval.store import PointFilter

GOOD = "# Runbook\n\n## Steps\n\nRestart the `checkout-api` pods.\n"


@pytest.fixture
def indexed(edge_index, git_repo, embedder):
    """An index that already holds one repository, to check nothing of it is lost."""
    repo = git_repo("kept")
    repo.commit({"kept.md": GOOD})
    ingest(edge_index, embedder, repo.path)
    return edge_index


def _kept(index: Index) -> int:
    return index.count("kept")


def test_a_folder_outside_any_repository_says_how_to_make_it_one(indexed, tmp_path, embedder):
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(SourceError, match=f"{plain} is not in a Git repository") as raised:
        ingest(indexed, embedder, plain)
    assert f"cd {plain} && git init && git add -A && git commit" in str(raised.value)
    assert _kept(indexed) == 2


def test_a_missing_path_says_it_does_not_exist(indexed, tmp_path, embedder):
    with pytest.raises(SourceError, match=f"^{tmp_path / 'nowhere'} does not exist.$"):
        ingest(indexed, embedder, tmp_path / "nowhere")


def test_a_repository_without_commits_says_so(indexed, git_repo, embedder):
    repo = git_repo("empty")
    with pytest.raises(SourceError, match="has no commits yet"):
        ingest(indexed, embedder, repo.path)
    assert _kept(indexed) == 2 and indexed.repo_state("empty") is None


def test_an_unknown_revision_is_named(indexed, git_repo, embedder):
    repo = git_repo("ops")
    repo.commit({"a.md": GOOD})
    with pytest.raises(SourceError, match="Unknown revision 'no-such-branch'"):
        ingest(indexed, embedder, repo.path, rev="no-such-branch")
    assert _kept(indexed) == 2


def test_unreadable_files_are_skipped_with_their_reason(indexed, git_repo, embedder):
    repo = git_repo("ops")
    repo.commit(
        {
            "good.md": GOOD,
            "binary.md": b"\x89PNG\r\n\x1a\n\x00\x00\x00",
            "latin1.md": "# Caf\xe9\n".encode("latin-1"),
            "empty.md": "",
            "big.md": "# Big\n\n" + "word " * 400,
            "image.png": b"\x89PNG",
        }
    )
    (repo.path / "link.md").symlink_to("good.md")
    repo.commit({})
    summary = ingest(indexed, embedder, repo.path, options=IngestOptions(max_file_bytes=1000))
    reasons = {s.path: s.reason for s in summary.skipped}
    assert reasons["binary.md"] == "binary content"
    assert reasons["latin1.md"].startswith("invalid UTF-8 at byte 5")
    assert reasons["empty.md"] == "empty file"
    assert reasons["big.md"].startswith("larger than the 1000-byte limit")
    assert reasons["image.png"] == "unsupported file type"
    assert reasons["link.md"] == "symlink"
    assert summary.files["added"] == 1
    assert {p.payload["path"] for p in indexed.store.scroll(PointFilter(repo="ops"))} == {"good.md"}
    assert _kept(indexed) == 2


def test_a_submodule_is_skipped(indexed, git_repo, embedder):
    inner = git_repo("inner")
    inner.commit({"x.md": GOOD})
    repo = git_repo("outer")
    repo.commit({"a.md": GOOD})
    repo.git("-c", "protocol.file.allow=always", "submodule", "add", "-q", str(inner.path), "vendor/inner")
    repo.commit({})
    summary = ingest(indexed, embedder, repo.path)
    assert {"path": "vendor/inner", "reason": "submodule"} in [s.model_dump() for s in summary.skipped]


def test_a_file_that_turns_binary_loses_its_old_chunks(edge_index, git_repo, embedder):
    repo = git_repo("ops")
    repo.commit({"a.md": GOOD, "b.md": GOOD})
    ingest(edge_index, embedder, repo.path)
    repo.commit({"a.md": b"\x00\x01binary"})
    ingest(edge_index, embedder, repo.path)
    assert {p.payload["path"] for p in edge_index.store.scroll()} == {"b.md"}


def test_crlf_unclosed_fences_and_non_ascii_headings_are_indexed(edge_index, git_repo, embedder):
    repo = git_repo("ops")
    repo.commit(
        {
            "crlf.md": "# Title\r\n\r\n## Étape à suivre\r\n\r\nRedémarrer le service.\r\n",
            "fence.md": "# Fence\n\n## Steps\n\n```sh\n# not a heading\nkubectl get pods\n",
            "jp.md": "# 障害対応\n\n## 手順\n\nポッドを再起動する。\n",
        }
    )
    ingest(edge_index, embedder, repo.path)
    chunks = {(p.payload["path"], tuple(p.payload["headings"])) for p in edge_index.store.scroll()}
    assert ("crlf.md", ("Title", "Étape à suivre")) in chunks
    assert ("fence.md", ("Fence", "Steps")) in chunks
    assert ("jp.md", ("障害対応", "手順")) in chunks
    texts = [p.payload["text"] for p in edge_index.store.scroll()]
    assert all("\r" not in t for t in texts)
    assert any("kubectl get pods" in t for t in texts)


def test_an_index_built_with_another_model_is_refused_with_how_to_rebuild(indexed, git_repo, embedder):
    other = Index(indexed.store, "another-model", embedder.dim)
    repo = git_repo("ops")
    repo.commit({"a.md": GOOD})
    with pytest.raises(IndexMismatchError, match="remove the index directory"):
        ingest(other, embedder, repo.path)
    assert _kept(indexed) == 2


def test_a_second_opener_of_the_engine_itself_gets_a_busy_error(indexed, tmp_path):
    with pytest.raises(IndexBusyError, match="owner process"):
        EdgeStore(tmp_path / "index")


def test_a_name_already_used_by_another_repository_is_refused(indexed, git_repo, embedder):
    repo = git_repo("other")
    repo.commit({"a.md": GOOD})
    with pytest.raises(SourceError, match="already indexes"):
        ingest(indexed, embedder, repo.path, name="kept")
    assert _kept(indexed) == 2
