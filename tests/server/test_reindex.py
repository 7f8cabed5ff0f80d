"""The re-index step that `--watch` and the push webhooks share."""

from __future__ import annotations

from devrag.ingest.pipeline import ingest
from devrag.server.settings import Settings
from devrag.server.state import App, Models
from devrag.server.watch import reindex
from tests.support import HashEmbedder

DOC = "# Disk full\n\n## Fix\n\nrun logrotate on {host}\n"


def test_watching_never_takes_the_index_back_behind_a_commit_a_push_indexed(tmp_path, git_repo):
    app = App(Settings(index_dir=tmp_path / "index"), Models.loaded(HashEmbedder(), None))
    repo = git_repo("ops")
    first = repo.commit({"runbooks/disk.md": DOC.format(host="db1")})
    searcher = app.searcher()
    ingest(searcher.index, searcher.embedder, repo.path, "ops")
    pushed = repo.commit({"runbooks/disk.md": DOC.format(host="db2")})
    repo.git("reset", "-q", "--hard", first)  # the clone's HEAD stays behind what a webhook indexed
    (state,) = app.index().repos()
    assert reindex(app, state, rev=pushed) is not None
    (state,) = app.index().repos()

    assert reindex(app, state) is None, "HEAD is behind the index: nothing to undo"
    assert app.index().repo_state("ops").commit == pushed

    repo.git("merge", "-q", "--ff-only", pushed)
    later = repo.commit({"runbooks/disk.md": DOC.format(host="db3")})
    assert reindex(app, state) is not None, "HEAD moved past the index: it follows"
    assert app.index().repo_state("ops").commit == later
    app.close()


def test_watching_re_indexes_only_the_folder_the_command_line_chose(tmp_path, git_repo):
    app = App(Settings(index_dir=tmp_path / "index"), Models.loaded(HashEmbedder(), None))
    repo = git_repo("mono")
    repo.commit({"runbooks/disk.md": DOC.format(host="db1"), "guides/deploy.md": "# Deploy\n\nsteps\n"})
    searcher = app.searcher()
    ingest(searcher.index, searcher.embedder, repo.path / "runbooks")
    repo.commit({"runbooks/kafka.md": DOC.format(host="kafka1"), "guides/new.md": "# New\n\ntext\n"})
    (state,) = app.index().repos()
    assert reindex(app, state) is not None
    assert set(app.index().file_manifest("runbooks")) == {"runbooks/disk.md", "runbooks/kafka.md"}
    app.close()
