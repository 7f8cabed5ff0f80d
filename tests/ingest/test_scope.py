"""Ingesting part of a repository: a folder in it, include and exclude globs, kept by later runs."""

from __future__ import annotations

import pytest

from devrag.ingest.git_source import GitSource, SourceError
from devrag.ingest.pipeline import ingest, reingest
from devrag.ingest.reconcile import reconcile
from devrag.retrieval.index import FileScope
from tests.support import RUNBOOK

FILES: dict[str, str | bytes | None] = {
    "runbooks/disk.md": RUNBOOK.format(host="db1"),
    "runbooks/deep/kafka.md": "# Kafka\n\n## Fix\n\nCheck broker disks.\n",
    "runbooks/notes.txt": "scratch notes about brokers\n",
    "guides/deploy.md": "# Deploy\n\n## Steps\n\nRun deployctl.\n",
}


@pytest.fixture
def mono(git_repo):
    repo = git_repo("mono")
    repo.commit(FILES)
    return repo


def test_a_folder_in_a_repository_is_indexed_under_its_name_with_paths_from_the_root(
    edge_index, embedder, mono
):
    summary = ingest(edge_index, embedder, mono.path / "runbooks")
    assert summary.repo == "runbooks"
    assert set(edge_index.file_manifest("runbooks")) == {
        "runbooks/disk.md",
        "runbooks/deep/kafka.md",
        "runbooks/notes.txt",
    }
    state = edge_index.repo_state("runbooks")
    assert (state.path, state.scope) == (str(mono.path), FileScope("runbooks"))


def test_include_and_exclude_globs_select_files(edge_index, embedder, mono):
    scope = FileScope(include=("*.md",), exclude=("runbooks/deep/",))
    ingest(edge_index, embedder, mono.path, scope=scope)
    assert set(edge_index.file_manifest("mono")) == {"runbooks/disk.md", "guides/deploy.md"}
    assert edge_index.repo_state("mono").scope == scope


def test_later_runs_and_reconcile_keep_the_recorded_scope(edge_index, embedder, mono):
    ingest(edge_index, embedder, mono.path / "runbooks", scope=FileScope(exclude=("*.txt",)))
    mono.move("runbooks/disk.md", "guides/disk.md")  # out of the folder: its chunks go
    mono.move("guides/deploy.md", "runbooks/deploy.md")  # into it: indexed
    mono.commit({"guides/new.md": "# New\n\ntext\n", "runbooks/new.txt": "excluded\n"})
    drift = reconcile(edge_index, lambda: embedder, check_only=True)[0]
    assert (drift.missing, drift.orphaned) == (["runbooks/deploy.md"], ["runbooks/disk.md"])
    summary = reingest(edge_index, embedder, edge_index.repo_state("runbooks"))
    assert summary.mode == "diff" and (summary.files["added"], summary.files["deleted"]) == (1, 1)
    assert summary.files["unchanged"] == 1, "the scope's files are counted, the others' are not"
    assert set(edge_index.file_manifest("runbooks")) == {"runbooks/deep/kafka.md", "runbooks/deploy.md"}
    assert not reconcile(edge_index, lambda: embedder, check_only=True)[0].drifted


def test_a_diff_ingest_counts_the_scopes_files_from_the_diff_without_listing_the_tree(
    edge_index, embedder, mono, monkeypatch
):
    scope = FileScope(exclude=("*.txt",))
    assert ingest(edge_index, embedder, mono.path / "runbooks", scope=scope).files["added"] == 2
    listed: list[str] = []
    listing = GitSource.paths

    def paths(source: GitSource, commit: str) -> list[str]:
        listed.append(commit)
        return listing(source, commit)

    monkeypatch.setattr(GitSource, "paths", paths)
    mono.move("runbooks/disk.md", "guides/disk.md")  # out of the scope
    mono.move("guides/deploy.md", "runbooks/deploy.md")  # into it
    mono.commit({"runbooks/a.md": "# A\n\ntext\n", "runbooks/b.txt": "excluded\n", "guides/c.md": "# C\n"})
    mono.commit({"runbooks/deep/kafka.md": None, "runbooks/deep/zk.md": "# ZK\n\ntext\n"})
    held = 3  # runbooks/deploy.md, runbooks/a.md, runbooks/deep/zk.md
    state = edge_index.repo_state("runbooks")
    diff = reingest(edge_index, embedder, state)
    assert diff.mode == "diff" and diff.files["unchanged"] + diff.files["added"] == held
    noop = reingest(edge_index, embedder, edge_index.repo_state("runbooks"))
    assert noop.mode == "noop" and noop.files["unchanged"] == held
    assert not listed, "neither run listed the whole tree"
    full = ingest(edge_index, embedder, mono.path / "runbooks", scope=scope, full=True)
    assert full.mode == "full" and full.files["unchanged"] == held, "the count a full compare makes"


def test_another_scope_for_the_same_name_replaces_the_files_it_holds(edge_index, embedder, mono):
    ingest(edge_index, embedder, mono.path / "runbooks")
    summary = ingest(edge_index, embedder, mono.path, "runbooks", scope=FileScope(include=("guides/",)))
    assert summary.mode == "full"
    assert set(edge_index.file_manifest("runbooks")) == {"guides/deploy.md"}


def test_a_scope_that_holds_no_committed_file_is_refused_before_anything_is_deleted(
    edge_index, embedder, mono
):
    ingest(edge_index, embedder, mono.path, "ops")
    with pytest.raises(SourceError, match="No committed file at .* is in --include runbook/"):
        ingest(edge_index, embedder, mono.path, "ops", scope=FileScope(include=("runbook/",)))
    assert len(edge_index.file_manifest("ops")) == 4
