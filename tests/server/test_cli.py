"""The command line end to end, with the real bundled embedding model and the shared reranker."""

from __future__ import annotations

import json
import subprocess

import pytest
from click.testing import CliRunner

from devrag.retrieval.factory import open_store
from devrag.retrieval.store import PointFilter
from devrag.server.cli import main
from tests.support import RERANKER, RUNBOOK

needs_reranker = pytest.mark.skipif(not RERANKER.exists(), reason=f"reranker weights not found at {RERANKER}")


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.setenv("DEVRAG_INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("DEVRAG_RERANK_MODEL", str(RERANKER))
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(main, list(args), catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result.output

    return run


@pytest.fixture
def ops_repo(git_repo):
    repo = git_repo("ops")
    repo.commit(
        {
            "runbooks/disk.md": RUNBOOK.format(host="db1"),
            "guides/rollback.md": "# Rolling back\n\n## Rollback\n\nRun `helm rollback checkout-api 41` "
            "to return to the last good release.\n\n## Configure\n\nSet replicas in values.yaml.\n",
        }
    )
    return repo


def test_ingest_json_reports_files_chunks_and_verification(cli, ops_repo):
    summary = json.loads(cli("ingest", str(ops_repo.path), "--json"))
    assert {"repo", "commit", "files", "chunks", "verified", "seconds"} <= set(summary)
    assert summary["repo"] == "ops" and summary["commit"] == ops_repo.head() and summary["verified"] is True
    assert summary["files"]["added"] == 2 and summary["chunks"]["written"] == summary["chunks"]["embedded"]


def test_status_says_when_head_has_moved_on(cli, ops_repo):
    cli("ingest", str(ops_repo.path), "--json")
    status = json.loads(cli("status", "--json"))
    assert status["embed_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    (repo,) = status["repos"]
    assert (repo["name"], repo["behind"], repo["files"]) == ("ops", False, 2)
    ops_repo.commit({"new.md": "# New\n\ntext\n"})
    assert json.loads(cli("status", "--json"))["repos"][0]["behind"] is True


def test_reconcile_check_exits_1_on_drift_and_repair_fixes_it(cli, ops_repo, tmp_path):
    cli("ingest", str(ops_repo.path))
    ops_repo.commit({"runbooks/disk.md": None})
    drift = json.loads(cli("reconcile", "--check", "--json", code=1))
    assert drift[0]["orphaned"] == ["runbooks/disk.md"] and drift[0]["repaired"] is None
    repaired = json.loads(cli("reconcile", "--json"))
    assert repaired[0]["repaired"]["chunks"]["deleted"] > 0
    assert json.loads(cli("reconcile", "--check", "--json"))[0]["orphaned"] == []


def test_errors_name_the_bad_argument(cli, tmp_path):
    out = cli("ingest", str(tmp_path), code=1)
    assert f"{tmp_path} is not a Git repository" in out
    assert "Error" in out and "Traceback" not in out


@needs_reranker
def test_search_json_returns_cited_reranked_results(cli, ops_repo):
    cli("ingest", str(ops_repo.path))
    results = json.loads(cli("search", "how do I roll back a bad release", "-k", "2", "--json"))
    assert len(results) == 2
    top = results[0]
    expected = {
        "repo",
        "path",
        "title",
        "headings",
        "commit",
        "start_line",
        "end_line",
        "text",
        "score",
        "scores",
    }
    assert expected <= set(top)
    assert top["path"] == "guides/rollback.md" and top["headings"] == ["Rolling back", "Rollback"]
    assert top["scores"]["rerank_score"] is not None and top["scores"]["rrf_score"] is not None
    assert results[0]["score"] >= results[1]["score"]
    source = (ops_repo.path / top["path"]).read_text().splitlines()
    assert "\n".join(source[top["start_line"] - 1 : top["end_line"]]) == top["text"]


def test_search_without_rerank_says_so(cli, ops_repo):
    cli("ingest", str(ops_repo.path))
    out = cli("search", "helm rollback", "--no-rerank")
    assert "guides/rollback.md" in out and "not reranked" in out


def test_a_reranker_that_cannot_load_fails_startup_naming_it(cli, ops_repo, monkeypatch):
    cli("ingest", str(ops_repo.path))
    monkeypatch.setenv("DEVRAG_RERANK_MODEL", "/nonexistent/reranker")
    out = cli("search", "helm rollback", code=1)
    assert "/nonexistent/reranker" in out and "DEVRAG_RERANK_MODEL" in out and "--no-rerank" in out


def test_an_index_with_chunks_of_a_deleted_file_is_found_by_reconcile(cli, ops_repo, tmp_path):
    cli("ingest", str(ops_repo.path))
    store = open_store(tmp_path / "index")
    store.delete([p.id for p in store.scroll(PointFilter(paths=["guides/rollback.md"]))])
    store.close()
    drift = json.loads(cli("reconcile", "--check", "--json", code=1))
    assert drift[0]["missing"] == ["guides/rollback.md"]


def test_reconcile_check_is_clean_right_after_ingest_of_pages_without_text(cli, ops_repo):
    ops_repo.commit(
        {"runbooks/_index.md": "---\ntitle: runbooks\nbookCollapseSection: true\n---\n", "logo.md": b"\0\1\2"}
    )
    cli("ingest", str(ops_repo.path))
    out = cli("reconcile", "--check")
    assert "ops at HEAD" in out and "in sync (no files out of step)" in out
    ops_repo.commit({"guides/rollback.md": None})
    out = cli("reconcile")
    assert (
        "drifted (1 orphaned)" in out
        and "Repaired with a full compare: files 1 deleted, 3 unchanged; chunks 3 deleted." in out
    )
    assert "{" not in out, "counts read as words, not as a Python dict"
    cli("reconcile", "--check")


def test_forget_removes_a_repository_and_an_unknown_name_lists_the_indexed_ones(cli, ops_repo, git_repo):
    kept = git_repo("kept")
    kept.commit({"k.md": RUNBOOK.format(host="k")})
    cli("ingest", str(ops_repo.path))
    cli("ingest", str(kept.path))
    removed = json.loads(cli("forget", "ops", "--json"))
    assert (removed["repo"], removed["files"], removed["skipped_files"]) == ("ops", 2, 0)
    assert removed["chunks"] > 0
    assert [r["name"] for r in json.loads(cli("status", "--json"))["repos"]] == ["kept"]
    out = cli("forget", "ops", code=1)
    assert "No repository named 'ops' in the index. Indexed repositories: kept." in out
    assert "Traceback" not in out
    assert "Forgot kept" in cli("forget", "kept") and "No repositories are indexed" in cli(
        "forget", "x", code=1
    )


def test_status_shows_where_each_repository_was_last_ingested_from(cli, ops_repo, tmp_path):
    clone = tmp_path / "checkouts" / "ops"
    subprocess.run(["git", "clone", "-q", str(ops_repo.path), str(clone)], check=True, capture_output=True)
    cli("ingest", str(ops_repo.path))
    assert json.loads(cli("ingest", str(clone), "--name", "ops", "--json"))["mode"] == "noop"
    (repo,) = json.loads(cli("status", "--json"))["repos"]
    assert (repo["path"], repo["origin"]) == (str(clone), f"file:{ops_repo.path.resolve()}")
    assert f"ops: last ingested from {clone} (origin file:{ops_repo.path.resolve()})" in cli("status")
