"""`--watch` reconciles once on start: drift at an unchanged commit is repaired and counted."""

from __future__ import annotations

from devrag.ingest.pipeline import ingest
from devrag.retrieval.edge_store import EdgeStore
from devrag.retrieval.index import Index
from devrag.retrieval.store import PointFilter
from devrag.server.settings import Settings
from devrag.server.state import App, Models
from devrag.server.watch import RefWatcher
from tests.support import RUNBOOK, HashEmbedder, assert_matches_oracle


def test_watching_starts_with_a_reconcile_that_repairs_lost_chunks_and_counts_them(tmp_path, git_repo):
    embedder = HashEmbedder()
    repo = git_repo("ops")
    repo.commit({"a.md": RUNBOOK.format(host="a"), "b.md": RUNBOOK.format(host="b")})
    gone = git_repo("gone")
    gone.commit({"c.md": RUNBOOK.format(host="c")})
    store = EdgeStore(tmp_path / "index")
    index = Index(store, embedder.name, embedder.dim)
    ingest(index, embedder, repo.path, "ops")
    ingest(index, embedder, gone.path, "gone")
    store.delete([p.id for p in store.scroll(PointFilter(repo="ops", paths=["a.md"]))])  # a store lost them
    store.close()
    for path in sorted(gone.path.rglob("*"), reverse=True):  # its clone is no longer on this machine
        path.unlink() if path.is_file() or path.is_symlink() else path.rmdir()

    app = App(Settings(index_dir=tmp_path / "index"), Models.loaded(embedder, None))
    try:
        started(app)
        metric = app.metrics.registry.get_sample_value
        assert metric("devrag_reconcile_drift_files_total", {"repo": "ops", "kind": "missing"}) == 1
        assert metric("devrag_reconcile_drift_files_total", {"repo": "ops", "kind": "stale"}) is None
        assert metric("devrag_reconcile_repaired_files_total", {"repo": "ops"}) == 1
        assert metric("devrag_reconcile_unreachable_total", {"repo": "gone"}) == 1
        assert_matches_oracle(app.searcher().index, repo, "ops", embedder)
    finally:
        app.close()


def test_the_startup_reconcile_leaves_a_commit_a_push_indexed_past_the_clones_head(tmp_path, git_repo):
    app = App(Settings(index_dir=tmp_path / "index"), Models.loaded(HashEmbedder(), None))
    try:
        repo = git_repo("ops")
        first = repo.commit({"a.md": RUNBOOK.format(host="a")})
        pushed = repo.commit({"a.md": RUNBOOK.format(host="b")})
        searcher = app.searcher()
        ingest(searcher.index, searcher.embedder, repo.path, "ops")
        repo.git("reset", "-q", "--hard", first)
        started(app)
        assert app.index().repo_state("ops").commit == pushed
        assert (
            app.metrics.registry.get_sample_value(
                "devrag_reconcile_drift_files_total", {"repo": "ops", "kind": "stale"}
            )
            is None
        )
    finally:
        app.close()


def started(app: App) -> None:
    """A watcher started on `app` and stopped once its startup reconcile has ended."""
    watcher = RefWatcher(app)
    watcher.start()
    try:
        assert watcher.reconciled.wait(120)
    finally:
        watcher.stop()
