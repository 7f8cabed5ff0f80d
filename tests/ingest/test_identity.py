"""A repository is its name and its history, not the folder it was ingested from."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from devrag.ingest.forget import UnknownRepositoryError, forget
from devrag.ingest.git_source import SourceError, normalize_remote
from devrag.ingest.pipeline import ingest
from devrag.ingest.status import repo_status
from devrag.retrieval.index import RepoState
from tests.support import RUNBOOK, GitRepo, assert_matches_oracle

FRONT_MATTER_ONLY = "---\ntitle: section\n---\n"


def _clone(src: Path | str, dest: Path, *args: str) -> GitRepo:
    subprocess.run(["git", "clone", "-q", *args, str(src), str(dest)], check=True, capture_output=True)
    return GitRepo(dest)


def _ops(git_repo) -> GitRepo:
    repo = git_repo("ops")
    repo.commit(
        {"a.md": RUNBOOK.format(host="a"), "b.md": RUNBOOK.format(host="b"), "_index.md": FRONT_MATTER_ONLY}
    )
    return repo


@pytest.mark.parametrize(
    "url",
    [
        "git@github.com:acme/runbooks.git",
        "https://github.com/acme/runbooks",
        "https://ci:s3cret@github.com/acme/runbooks.git/",
        "ssh://git@GitHub.com:22/acme/runbooks",
    ],
)
def test_remote_urls_of_one_repository_normalize_alike(url):
    assert normalize_remote(url) == "github.com/acme/runbooks"


def test_local_paths_and_file_urls_of_one_remote_normalize_alike(tmp_path):
    (tmp_path / "clone").mkdir()
    spellings = {
        normalize_remote(tmp_path.as_uri() + "/remote.git"),
        normalize_remote(str(tmp_path / "remote.git")),
        normalize_remote("../remote.git", base=tmp_path / "clone"),
    }
    assert spellings == {f"file:{(tmp_path / 'remote.git').resolve().as_posix()}"}
    assert normalize_remote("git@github.com:acme/ops") != normalize_remote("git@gitlab.com:acme/ops")


def test_a_second_clone_continues_incrementally_and_embeds_nothing_unchanged(
    index, git_repo, embedder, tmp_path
):
    first = _ops(git_repo)
    ingest(index, embedder, first.path, "ops")
    second = _clone(first.path, tmp_path / "elsewhere" / "ops-clone")
    embedder.embedded = 0
    summary = ingest(index, embedder, second.path, "ops")
    assert summary.mode == "noop" and embedder.embedded == 0
    state = index.repo_state("ops")
    assert state.path == str(second.path) and state.origin == f"file:{first.path.resolve()}"
    second.commit({"a.md": RUNBOOK.format(host="a").replace("500M", "200M")})
    summary = ingest(index, embedder, second.path, "ops")
    assert summary.mode == "diff" and summary.files["modified"] == 1 and embedder.embedded == 1
    assert_matches_oracle(index, second, "ops", embedder)


def test_a_moved_clone_continues_where_it_left_off(index, git_repo, embedder, tmp_path):
    repo = _ops(git_repo)
    ingest(index, embedder, repo.path, "ops")
    moved = GitRepo(Path(shutil.move(repo.path, tmp_path / "moved")))
    moved.commit({"c.md": "# C\n\n## Notes\n\nNew page.\n"})
    embedder.embedded = 0
    summary = ingest(index, embedder, moved.path, "ops")
    assert summary.mode == "diff" and summary.files["added"] == 1 and summary.files["unchanged"] == 3
    assert embedder.embedded == summary.chunks["written"] == 2, "only the new page's chunks"
    assert index.repo_state("ops").path == str(moved.path)
    assert_matches_oracle(index, moved, "ops", embedder)


def test_a_shallow_clone_of_the_same_origin_is_compared_with_the_index(index, git_repo, embedder, tmp_path):
    upstream = _ops(git_repo)
    full = _clone(upstream.path, tmp_path / "full")
    ingest(index, embedder, full.path, "ops")
    upstream.commit({"a.md": RUNBOOK.format(host="a").replace("500M", "200M")})
    shallow = _clone(f"file://{upstream.path}", tmp_path / "shallow", "--depth", "1")
    embedder.embedded = 0
    summary = ingest(index, embedder, shallow.path, "ops")
    assert summary.mode == "full" and summary.files["modified"] == 1 and embedder.embedded == 1
    assert index.repo_state("ops").roots, "a shallow clone keeps the roots a full clone recorded"
    assert_matches_oracle(index, shallow, "ops", embedder)


def test_an_unrelated_repository_under_the_same_name_is_refused_and_nothing_is_lost(
    index, git_repo, embedder
):
    repo = _ops(git_repo)
    ingest(index, embedder, repo.path, "ops")
    before = (index.count("ops"), index.skipped_files("ops"), index.repo_state("ops"))
    other = git_repo("other")
    other.commit({"x.md": RUNBOOK.format(host="x")})
    with pytest.raises(SourceError) as refused:
        ingest(index, embedder, other.path, "ops")
    message = str(refused.value)
    assert str(repo.path) in message and str(other.path) in message and "devrag forget ops" in message
    assert (index.count("ops"), index.skipped_files("ops"), index.repo_state("ops")) == before


def test_forget_removes_everything_of_one_repository_and_leaves_the_others(index, git_repo, embedder):
    repo = _ops(git_repo)
    kept = git_repo("kept")
    kept.commit({"k.md": RUNBOOK.format(host="k"), "_index.md": FRONT_MATTER_ONLY})
    ingest(index, embedder, repo.path, "ops")
    ingest(index, embedder, kept.path, "kept")
    kept_before = (index.count("kept"), index.skipped_files("kept"), index.repo_state("kept"))
    summary = forget(index, "ops")
    assert (summary.files, summary.skipped_files, summary.chunks > 0) == (2, 1, True)
    assert index.count("ops") == 0 and index.skipped_files("ops") == {} and index.repo_state("ops") is None
    assert (index.count("kept"), index.skipped_files("kept"), index.repo_state("kept")) == kept_before
    other = git_repo("other")
    other.commit({"x.md": RUNBOOK.format(host="x")})
    assert ingest(index, embedder, other.path, "ops").mode == "full", "the name is free again"


def test_forgetting_an_unknown_name_lists_the_indexed_repositories(index, git_repo, embedder):
    ingest(index, embedder, _ops(git_repo).path, "ops")
    with pytest.raises(UnknownRepositoryError, match="No repository named 'nope'.*Indexed repositories: ops"):
        forget(index, "nope")


def test_repository_state_written_before_origin_and_roots_existed_still_loads(index):
    index.prepare()
    index.store.put_meta("repo:old", {"path": "/srv/old", "commit": "a" * 40, "in_progress": None})
    assert index.repo_state("old") == RepoState("old", "/srv/old", "a" * 40)
    assert [s.name for s in index.repos()] == ["old"]


def test_status_shows_where_the_repository_was_last_ingested_from(index, git_repo, embedder, tmp_path):
    first = _ops(git_repo)
    ingest(index, embedder, first.path, "ops")
    second = _clone(first.path, tmp_path / "ci-checkout")
    ingest(index, embedder, second.path, "ops")
    status = repo_status(index, index.repo_state("ops"))
    assert (status.path, status.origin, status.behind) == (
        str(second.path),
        f"file:{first.path.resolve()}",
        False,
    )
