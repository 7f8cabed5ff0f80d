"""`devrag doctor`: one line per check, JSON on request, exit 1 on any failure."""

from __future__ import annotations

import json

import pytest
import qdrant_edge as qe

from devrag.retrieval.edge_store import EdgeStore
from devrag.retrieval.index import Index
from devrag.server.doctor import payload_check
from tests.support import RERANKER, RUNBOOK

pytestmark = [
    pytest.mark.model,
    pytest.mark.skipif(not RERANKER.exists(), reason=f"reranker weights not found at {RERANKER}"),
]


@pytest.fixture
def ops_repo(git_repo):
    repo = git_repo("ops")
    repo.commit(
        {
            "runbooks/disk.md": RUNBOOK.format(host="db1"),
            "guides/rollback.md": "# Rolling back\n\n## Rollback\n\nRun `helm rollback checkout-api 41`.\n",
            "guides/deploy.md": "# Deploying\n\n## Steps\n\nRun the pipeline, then watch the canary.\n",
        }
    )
    return repo


def test_a_healthy_index_passes_every_check_one_line_each(cli, ops_repo):
    cli("ingest", str(ops_repo.path), "--json")
    lines = cli("doctor").splitlines()
    names = [line.split()[1].rstrip(":") for line in lines]
    assert names == [
        "index",
        "payload_indexes",
        "embedding",
        "reranker",
        "compatibility",
        "leg.dense",
        "leg.bm25",
        "reconcile.ops",
    ]
    assert all(line.startswith("ok ") for line in lines), lines
    # the default runtime is named beside each model, and the precision `auto` chose (the export has int8)
    assert lines[2].endswith("all-MiniLM-L6-v2 loaded (onnx)") and lines[3].endswith("loaded (onnx, int8)")


def test_drift_and_a_missing_reranker_fail_and_exit_1(cli, ops_repo, monkeypatch, tmp_path):
    cli("ingest", str(ops_repo.path), "--json")
    ops_repo.commit({"guides/deploy.md": "# Deploying\n\n## Steps\n\nRun the new pipeline.\n"})
    monkeypatch.setenv("DEVRAG_RERANK_MODEL", str(tmp_path / "no-such-model"))
    report = json.loads(cli("doctor", "--json", code=1))
    failing = {c["name"]: c["detail"] for c in report["checks"] if not c["ok"]}
    assert not report["ok"] and set(failing) == {"reranker", "reconcile.ops"}
    assert failing["reconcile.ops"].startswith("0 missing, 1 stale, 0 orphaned")
    assert "devrag reconcile" in failing["reconcile.ops"] and "DEVRAG_RERANK_MODEL" in failing["reranker"]


def test_an_empty_index_fails_and_skips_the_probes(cli):
    output = cli("doctor", code=1)
    assert output.splitlines()[0] == "FAIL  index: empty: run `devrag ingest <repo>`"
    assert "leg." not in output


def test_a_missing_payload_index_fails_the_check(tmp_path):
    store = EdgeStore(tmp_path / "index")
    store.ensure_collection(8)
    index = Index(store, "test", 8)
    assert payload_check(index).ok
    store._shard.update(qe.UpdateOperation.delete_field_index("doc_type"))  # what a killed setup leaves
    check = payload_check(index)
    assert not check.ok and check.detail.startswith("missing doc_type: filters on them scan")
    store.close()
