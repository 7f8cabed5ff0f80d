"""Index lag per repository: commits and seconds between HEAD and the indexed commit."""

from __future__ import annotations

from dataclasses import replace

from devrag.ingest.pipeline import ingest
from devrag.ingest.status import repo_lag

FILES = {
    "runbooks/disk.md": "# Disk full\n\n## Fix\n\nRotate the logs.\n",
    "runbooks/dns.md": "# DNS errors\n\n## Fix\n\nRestart CoreDNS.\n",
    "guides/deploy.md": "# Deploying\n\n## Steps\n\nRun the pipeline.\n",
}


def test_lag_counts_the_commits_and_seconds_head_is_ahead(edge_index, git_repo, embedder, monkeypatch):
    repo = git_repo("ops")
    monkeypatch.setenv("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
    repo.commit(FILES)
    ingest(edge_index, embedder, repo.path, "ops")
    (state,) = edge_index.repos()
    assert (repo_lag(state).commits, repo_lag(state).seconds) == (0, 0.0)
    monkeypatch.setenv("GIT_COMMITTER_DATE", "2026-01-01T00:10:00Z")
    repo.commit({"runbooks/disk.md": "# Disk full\n\n## Fix\n\nRotate and compress the logs.\n"})
    monkeypatch.setenv("GIT_COMMITTER_DATE", "2026-01-01T01:00:00Z")
    repo.commit({"runbooks/dns.md": None})
    lag = repo_lag(state)
    assert (lag.commits, lag.seconds, lag.head) == (2, 3600.0, repo.git("rev-parse", "HEAD"))


def test_lag_is_unknown_where_the_clone_or_the_commit_is_gone(edge_index, git_repo, embedder, tmp_path):
    repo = git_repo("ops")
    repo.commit(FILES)
    ingest(edge_index, embedder, repo.path, "ops")
    (state,) = edge_index.repos()
    gone = repo_lag(replace(state, path=str(tmp_path / "nowhere")))
    assert (gone.head, gone.commits, gone.seconds) == (None, None, None)
    rewritten = repo_lag(replace(state, commit="0" * 40))
    assert rewritten.head is not None and rewritten.commits is None
    first = repo_lag(replace(state, commit=None))
    assert (first.commits, first.seconds) == (1, None), "a first ingest still running lags by all of HEAD"
