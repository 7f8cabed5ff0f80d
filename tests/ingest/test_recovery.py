"""A run killed between writes leaves a state the next ingest or reconcile repairs fully."""

from __future__ import annotations

from typing import Any

import pytest

from devrag.ingest.pipeline import IngestOptions, ingest
from devrag.ingest.reconcile import find_drift, reconcile
from devrag.retrieval.index import Index
from devrag.retrieval.store import PointFilter
from tests.support import RUNBOOK, assert_matches_oracle, rewrite


class Killed(RuntimeError):
    pass


class DyingStore:
    """A real store that dies on the Nth call of one operation, as a killed process would."""

    def __init__(self, inner: Any, op: str, after: int) -> None:
        self.inner, self.op, self.after = inner, op, after

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name != self.op:
            return attr

        def dying(*args: Any, **kwargs: Any) -> Any:
            self.after -= 1
            if self.after < 0:
                raise Killed(f"killed during {name}")
            return attr(*args, **kwargs)

        return dying


def _repo_with_history(git_repo):
    repo = git_repo("ops")
    repo.commit({f"r{i}.md": RUNBOOK.format(host=f"h{i}") for i in range(6)})
    return repo


def _next_commit(repo) -> None:
    repo.commit(
        {
            "r0.md": RUNBOOK.format(host="h0").replace("500M", "1G"),
            "r1.md": None,
            "r9.md": RUNBOOK.format(host="h9"),
            "r3.md": RUNBOOK.format(host="h3") + "\n## Escalation\n\nPage the DBA on call.\n",
        }
    )
    repo.move("r2.md", "moved/r2.md")
    repo.commit({})


@pytest.mark.parametrize(("op", "after"), [("upsert", 0), ("upsert", 1), ("delete", 0), ("delete", 1)])
def test_a_run_killed_between_writes_is_redone_by_the_next_ingest(edge_store, git_repo, embedder, op, after):
    repo = _repo_with_history(git_repo)
    index = Index(edge_store, embedder.name, embedder.dim)
    ingest(index, embedder, repo.path, "ops")
    before = index.repo_state("ops").commit
    _next_commit(repo)
    dying = Index(DyingStore(edge_store, op, after), embedder.name, embedder.dim)
    with pytest.raises(Killed):
        ingest(dying, embedder, repo.path, "ops", options=IngestOptions(batch_files=1))
    state = index.repo_state("ops")
    assert state.commit == before and state.in_progress == repo.head()
    summary = ingest(index, embedder, repo.path, "ops")
    assert summary.mode == "full"
    assert_matches_oracle(index, repo, "ops", embedder)


def test_reconcile_repairs_a_killed_run(edge_store, git_repo, embedder):
    repo = _repo_with_history(git_repo)
    index = Index(edge_store, embedder.name, embedder.dim)
    ingest(index, embedder, repo.path, "ops")
    _next_commit(repo)
    dying = Index(DyingStore(edge_store, "delete", 1), embedder.name, embedder.dim)
    with pytest.raises(Killed):
        ingest(dying, embedder, repo.path, "ops", options=IngestOptions(batch_files=1))
    drifts = reconcile(index, lambda: embedder, check_only=False)
    assert drifts[0].drifted and drifts[0].repaired is not None
    assert_matches_oracle(index, repo, "ops", embedder)
    assert not find_drift(index, index.repo_state("ops"), IngestOptions()).drifted


def test_reconcile_reports_missing_stale_and_orphaned_files_from_the_chunks(edge_index, git_repo, embedder):
    repo = git_repo("ops")
    repo.commit({"a.md": RUNBOOK.format(host="a"), "b.md": RUNBOOK.format(host="b"), "bin.md": b"\0\0"})
    ingest(edge_index, embedder, repo.path, "ops")
    store = edge_index.store
    store.delete([p.id for p in store.scroll(PointFilter(repo="ops", paths=["a.md"]))])
    stale = next(iter(store.scroll(PointFilter(repo="ops", paths=["b.md"]))))
    rewrite(store, PointFilter(repo="ops", paths=["b.md"]), {"blob_sha": "0" * 40})
    orphan = stale.payload | {"path": "gone.md"}
    store.upsert([type(stale)("00000000-0000-4000-8000-000000000000", orphan, [1.0] + [0.0] * 63)])
    drifts = reconcile(edge_index, lambda: embedder, check_only=True)
    assert (drifts[0].missing, drifts[0].stale, drifts[0].orphaned) == (["a.md"], ["b.md"], ["gone.md"])
    assert edge_index.count("ops") > 0 and store.count(PointFilter(paths=["gone.md"])) == 1
    reconcile(edge_index, lambda: embedder, check_only=False)
    assert_matches_oracle(edge_index, repo, "ops", embedder)
