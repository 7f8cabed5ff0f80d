"""Every file ingest considered leaves a record, so reconcile converges right after any ingest."""

from __future__ import annotations

import pytest

from devrag.eval.harness import git_snapshot
from devrag.ingest.pipeline import IngestOptions, ingest
from devrag.ingest.reconcile import find_drift, reconcile, vacuum
from devrag.retrieval.index import Index
from devrag.retrieval.qdrant_store import QdrantStore
from tests.support import RUNBOOK, SHARED, GitRepo, assert_matches_oracle

PROMETHEUS_OPERATOR = SHARED / "data" / "runbooks-corpus" / "prometheus-operator"
FRONT_MATTER_ONLY = "---\ntitle: node\nbookCollapseSection: true\nweight: 10\n---\n"
OPTIONS = IngestOptions(max_file_bytes=1000)


def _in_sync(index: Index, name: str, options: IngestOptions = OPTIONS) -> bool:
    state = index.repo_state(name)
    assert state is not None
    return not find_drift(index, state, options).drifted


def _blob(repo: GitRepo, path: str) -> str:
    return repo.git("rev-parse", f"HEAD:{path}")


def test_files_without_chunks_are_recorded_and_reconcile_finds_no_drift(index, git_repo, embedder):
    repo = git_repo("ops")
    repo.commit(
        {
            "runbooks/disk.md": RUNBOOK.format(host="db1"),
            "runbooks/_index.md": FRONT_MATTER_ONLY,
            "binary.md": b"\x89PNG\r\n\x1a\n\x00\x00\x00",
            "big.md": "# Big\n\n" + "word " * 400,
            "empty.md": "",
        }
    )
    ingest(index, embedder, repo.path, "ops", options=OPTIONS)
    records = index.skipped_files("ops")
    assert {p: r.reason for p, r in records.items()} == {
        "runbooks/_index.md": "no indexable text",
        "binary.md": "binary content",
        "big.md": "larger than the 1000-byte limit (2007 bytes)",
        "empty.md": "empty file",
    }
    assert all(r.blob_sha == _blob(repo, p) for p, r in records.items())
    assert _in_sync(index, "ops")
    again = ingest(index, embedder, repo.path, "ops", options=OPTIONS, full=True)
    assert again.files["skipped"] == 0 and again.files["unchanged"] == 5, "a full compare re-reads none"


def test_a_vacuum_says_what_the_engine_did_and_keeps_the_index_in_sync(index, git_repo, embedder):
    repo = git_repo("ops")
    repo.commit({"runbooks/disk.md": RUNBOOK.format(host="db1")})
    ingest(index, embedder, repo.path, "ops", options=OPTIONS)
    repo.commit({"runbooks/disk.md": RUNBOOK.format(host="db2")})
    ingest(index, embedder, repo.path, "ops", options=OPTIONS)
    chunks = index.count("ops")
    done = vacuum(index)
    # One appendable segment has nothing to rewrite; a Qdrant server vacuums by its own settings.
    assert done.rewritten is (None if isinstance(index.store, QdrantStore) else False)
    assert index.count("ops") == chunks and _in_sync(index, "ops")


def _shares(index: Index, repo: str) -> dict[str, dict]:
    """The stored keys of the repo's shares of skip records, with what each holds."""
    keys = [k for k in index.store.meta_keys() if k.startswith("skipped.") and k.endswith(f":{repo}")]
    return {key: index.store.get_meta(key) for key in keys}


def test_an_edit_elsewhere_leaves_the_skip_records_as_they_were_written(index, git_repo, embedder):
    repo = git_repo("ops")
    repo.commit({"runbooks/disk.md": RUNBOOK.format(host="db1"), "binary.md": b"\x89PNG\r\n\x1a\n\x00"})
    ingest(index, embedder, repo.path, "ops", options=OPTIONS)
    ((key, written),) = _shares(index, "ops").items()
    index.store.put_meta(key, {**written, "marker": "left alone"})  # seen if rewritten
    repo.commit({"runbooks/disk.md": RUNBOOK.format(host="db2")})
    assert ingest(index, embedder, repo.path, "ops", options=OPTIONS).files["modified"] == 1
    assert index.store.get_meta(key) == {**written, "marker": "left alone"}
    repo.commit({"binary.md": "# Now text\n\nreadable at last\n"})
    ingest(index, embedder, repo.path, "ops", options=OPTIONS)
    assert _shares(index, "ops") == {}, "its last record went with the file's new text"


def test_an_edit_of_a_skipped_file_rewrites_only_the_share_of_records_it_falls_in(index, git_repo, embedder):
    repo = git_repo("ops")
    binaries = {f"assets/{n}.md": b"\x89PNG\r\n\x1a\n\x00" + bytes([n]) for n in range(40)}
    repo.commit({"runbooks/disk.md": RUNBOOK.format(host="db1"), **binaries})
    ingest(index, embedder, repo.path, "ops", options=OPTIONS)
    shares = _shares(index, "ops")
    assert len(shares) > 10 and sum(len(s["files"]) for s in shares.values()) == 40
    for key, held in shares.items():
        index.store.put_meta(key, {**held, "marker": "left alone"})
    repo.commit({"assets/7.md": b"\x89PNG\r\n\x1a\n\x00 another picture"})
    ingest(index, embedder, repo.path, "ops", options=OPTIONS)
    ((rewritten, held),) = [(k, v) for k, v in _shares(index, "ops").items() if "marker" not in v]
    assert "assets/7.md" in {row["path"] for row in held["files"]}
    assert index.skipped_files("ops")["assets/7.md"].blob_sha == _blob(repo, "assets/7.md")
    near = index.skipped_files("ops", near=["assets/7.md"])
    assert set(near) == {row["path"] for row in held["files"]} and len(near) < 40
    assert _in_sync(index, "ops")


def test_skip_records_kept_as_one_key_by_an_older_version_are_read_then_split(index, git_repo, embedder):
    repo = git_repo("ops")
    binaries = {f"assets/{n}.md": b"\x89PNG\r\n\x1a\n\x00" + bytes([n]) for n in range(12)}
    repo.commit({"runbooks/disk.md": RUNBOOK.format(host="db1"), **binaries})
    ingest(index, embedder, repo.path, "ops", options=OPTIONS)
    records = index.skipped_files("ops")
    rows = [
        {"path": p, "blob_sha": r.blob_sha, "reason": r.reason, "read": r.read}
        for p, r in sorted(records.items())
    ]
    for key in _shares(index, "ops"):
        index.store.delete_meta(key)
    index.store.put_meta("skipped:ops", {"files": rows})  # as 0.7.0 kept them
    assert index.skipped_files("ops") == records and _in_sync(index, "ops")
    repo.commit({"runbooks/disk.md": RUNBOOK.format(host="db2")})
    ingest(index, embedder, repo.path, "ops", options=OPTIONS)  # the next ingest splits them
    assert index.store.get_meta("skipped:ops") is None and index.skipped_files("ops") == records
    index.store.put_meta("skipped:ops", {"files": rows})
    repo.commit({"assets/3.md": b"\x89PNG\r\n\x1a\n\x00 redrawn"})
    ingest(index, embedder, repo.path, "ops", options=OPTIONS)
    assert index.store.get_meta("skipped:ops") is None
    now = index.skipped_files("ops")
    assert now["assets/3.md"].blob_sha == _blob(repo, "assets/3.md")
    assert {p: r for p, r in now.items() if p != "assets/3.md"} == {
        p: r for p, r in records.items() if p != "assets/3.md"
    }
    assert sum(len(s["files"]) for s in _shares(index, "ops").values()) == 12 and _in_sync(index, "ops")


@pytest.mark.skipif(
    not PROMETHEUS_OPERATOR.exists(), reason=f"shared corpus not found at {PROMETHEUS_OPERATOR}"
)
def test_the_prometheus_operator_corpus_is_in_sync_right_after_ingest(edge_index, tmp_path, embedder):
    repo = git_snapshot(PROMETHEUS_OPERATOR, tmp_path / "prometheus-operator")
    summary = ingest(edge_index, embedder, repo, "po")
    front_matter_only = {s.path for s in summary.skipped if s.reason == "no indexable text"}
    assert sum(p.endswith("_index.md") for p in front_matter_only) == 9, "the Hugo section pages"
    assert front_matter_only <= set(edge_index.skipped_files("po"))
    assert _in_sync(edge_index, "po", IngestOptions())
    (drift,) = reconcile(edge_index, lambda: embedder, check_only=False)
    assert not drift.drifted and drift.repaired is None


def test_a_skipped_file_that_gains_text_is_indexed_and_loses_its_record(index, git_repo, embedder):
    repo = git_repo("ops")
    repo.commit({"a.md": RUNBOOK.format(host="a"), "section/_index.md": FRONT_MATTER_ONLY})
    ingest(index, embedder, repo.path, "ops")
    repo.commit({"section/_index.md": FRONT_MATTER_ONLY + "\n# Node\n\n## About\n\nNode alerts.\n"})
    summary = ingest(index, embedder, repo.path, "ops")
    assert summary.mode == "diff" and summary.files["modified"] == 1
    assert index.skipped_files("ops") == {}
    assert_matches_oracle(index, repo, "ops", embedder)
    assert _in_sync(index, "ops")


def test_an_indexed_file_that_loses_its_text_is_recorded_and_loses_its_chunks(index, git_repo, embedder):
    repo = git_repo("ops")
    repo.commit({"a.md": RUNBOOK.format(host="a"), "b.md": RUNBOOK.format(host="b")})
    ingest(index, embedder, repo.path, "ops")
    repo.commit({"b.md": FRONT_MATTER_ONLY})
    ingest(index, embedder, repo.path, "ops")
    assert {p: r.blob_sha for p, r in index.skipped_files("ops").items()} == {"b.md": _blob(repo, "b.md")}
    assert_matches_oracle(index, repo, "ops", embedder)
    assert _in_sync(index, "ops")


def test_deleted_and_renamed_skipped_files_keep_their_records_current(index, git_repo, embedder):
    repo = git_repo("ops")
    repo.commit({"a.md": RUNBOOK.format(host="a"), "x/_index.md": FRONT_MATTER_ONLY, "y.md": ""})
    ingest(index, embedder, repo.path, "ops")
    repo.move("x/_index.md", "z/_index.md")
    repo.commit({"y.md": None})
    ingest(index, embedder, repo.path, "ops")
    assert set(index.skipped_files("ops")) == {"z/_index.md"}
    assert _in_sync(index, "ops")


def test_a_raised_size_limit_gets_an_oversize_file_read_by_a_full_compare(index, git_repo, embedder):
    repo = git_repo("ops")
    repo.commit({"a.md": RUNBOOK.format(host="a"), "big.md": "# Big\n\n## Words\n\n" + "word " * 400})
    ingest(index, embedder, repo.path, "ops", options=OPTIONS)
    assert set(index.skipped_files("ops")) == {"big.md"}
    assert _in_sync(index, "ops", IngestOptions()), "reconcile keeps the limit ops was ingested with"
    summary = ingest(index, embedder, repo.path, "ops", full=True)  # an ingest with the default limit
    assert summary.files["added"] == 1 and index.skipped_files("ops") == {}
    assert _in_sync(index, "ops", IngestOptions())
