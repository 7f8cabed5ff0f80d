"""The command line end to end, with the real bundled embedding model and the shared reranker."""

from __future__ import annotations

import importlib.metadata
import io
import json
import logging
import re
import subprocess

import pytest
from rich.console import Console

from devrag.retrieval import lexical_field
from devrag.retrieval.factory import open_store
from devrag.retrieval.index import INDEX_META_KEY
from devrag.retrieval.store import PointFilter
from devrag.server import render
from tests.support import RERANKER, RUNBOOK

needs_reranker = pytest.mark.skipif(not RERANKER.exists(), reason=f"reranker weights not found at {RERANKER}")


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


def test_reconcile_vacuum_rewrites_what_the_engine_holds_after_repairs_and_not_with_check(cli, ops_repo):
    cli("ingest", str(ops_repo.path))
    ops_repo.commit({"runbooks/disk.md": RUNBOOK.format(host="db2")})
    out = cli("reconcile", "--vacuum")
    assert "Repaired with a full compare" in out
    # The ops index is one appendable segment, whose text index drops a replaced chunk by itself.
    assert re.search(r"Vacuum: no segment held replaced or deleted chunks \([\d.]+ s\)\.", out), out
    assert json.loads(cli("reconcile", "--vacuum", "--json"))[0]["stale"] == []
    assert "Pass one of them" in cli("reconcile", "--check", "--vacuum", code=2)


def test_errors_name_the_bad_argument(cli, tmp_path):
    out = cli("ingest", str(tmp_path), code=1)
    assert f"{tmp_path} is not in a Git repository" in out and "git init && git add -A && git commit" in out
    assert "Error" in out and "Traceback" not in out
    assert f"{tmp_path / 'nowhere'} does not exist." in cli("ingest", str(tmp_path / "nowhere"), code=1)


def test_ingest_of_a_folder_in_a_repository_indexes_that_subtree_and_status_says_so(cli, ops_repo):
    summary = json.loads(cli("ingest", str(ops_repo.path / "runbooks"), "--exclude", "*.txt", "--json"))
    assert (summary["repo"], summary["files"]["added"]) == ("runbooks", 1)
    (repo,) = json.loads(cli("status", "--json"))["repos"]
    assert (repo["path"], repo["subtree"], repo["exclude"]) == (str(ops_repo.path), "runbooks", ["*.txt"])
    assert "  only folder runbooks/, --exclude *.txt" in cli("status")
    ops_repo.commit({"runbooks/new.md": RUNBOOK.format(host="db2"), "guides/new.md": "# New\n\ntext\n"})
    drift = json.loads(cli("reconcile", "--check", "--json", code=1))
    assert drift[0]["missing"] == ["runbooks/new.md"]


@needs_reranker
def test_search_json_returns_cited_reranked_results(cli, ops_repo):
    cli("ingest", str(ops_repo.path))
    answer = json.loads(cli("search", "how do I roll back a bad release", "-k", "2", "--json"))
    assert re.fullmatch(r"[0-9a-f]{16}", answer["query_id"]) and answer["mode"] == "hybrid+rerank"
    results = answer["results"]
    assert len(results) == 2
    top = results[0]
    assert {"repo", "path", "title", "doc_type", "commit", "score", "sections"} <= set(top)
    assert results[0]["path"] != results[1]["path"], "k counts documents"
    best = top["sections"][0]
    assert {"headings", "start_line", "end_line", "text", "score", "scores"} <= set(best)
    assert top["path"] == "guides/rollback.md" and best["headings"] == ["Rolling back", "Rollback"]
    assert best["scores"]["rerank_score"] is not None and best["scores"]["rrf_score"] is not None
    assert results[0]["score"] >= results[1]["score"]
    source = (ops_repo.path / top["path"]).read_text().splitlines()
    for section in top["sections"]:
        assert "\n".join(source[section["start_line"] - 1 : section["end_line"]]) == section["text"]


def test_search_without_rerank_says_so(cli, ops_repo):
    cli("ingest", str(ops_repo.path))
    out = cli("search", "helm rollback", "--no-rerank")
    assert "guides/rollback.md" in out and "not reranked" in out


def test_a_path_glob_that_matches_no_file_is_told_apart_from_a_search_that_found_nothing(cli, ops_repo):
    cli("ingest", str(ops_repo.path))
    unmatched = cli("search", "helm rollback", "--no-rerank", "--path", "playbooks/*")
    assert "No results." in unmatched and "No indexed file matches --path" in unmatched
    assert json.loads(cli("search", "helm rollback", "--no-rerank", "--path", "playbooks/*", "--json"))[
        "path_unmatched"
    ]
    excluded = cli("search", "helm rollback", "--no-rerank", "--path", "guides/*", "--type", "postmortem")
    assert "No results." in excluded and "--path" not in excluded


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


def test_status_shows_where_each_repository_was_last_ingested_from(cli, ops_repo, tmp_path, monkeypatch):
    clone = tmp_path / "checkouts" / "ops"
    subprocess.run(["git", "clone", "-q", str(ops_repo.path), str(clone)], check=True, capture_output=True)
    cli("ingest", str(ops_repo.path))
    assert json.loads(cli("ingest", str(clone), "--name", "ops", "--json"))["mode"] == "noop"
    (repo,) = json.loads(cli("status", "--json"))["repos"]
    assert (repo["path"], repo["origin"]) == (str(clone), f"file:{ops_repo.path.resolve()}")
    monkeypatch.setenv("COLUMNS", "400")
    assert f"ops: last ingested from {clone}\n  origin file:{ops_repo.path.resolve()}\n" in cli("status")


def test_status_fits_80_columns_cutting_long_paths_on_the_left(cli, git_repo, tmp_path, monkeypatch):
    deep = git_repo("team-platform/" + "very-long-folder-name/" * 5 + "payments-runbooks")
    deep.commit({"runbooks/disk.md": RUNBOOK.format(host="db1")})
    deep.git("remote", "add", "origin", "git@github.com:acme/" + "x" * 60 + "/payments-runbooks.git")
    cli("ingest", str(deep.path), "--name", "payments-runbooks-eu-west")
    monkeypatch.setenv("COLUMNS", "80")
    lines = cli("status").splitlines()
    assert max(len(line) for line in lines) <= 80, "\n".join(lines)
    (row,) = [line for line in lines if deep.head()[:12] in line]
    assert "payments-runbooks-eu-west" in row and deep.head()[:13] not in row
    assert "payments-runbooks-eu-west: last ingested from …/payments-runbooks" in lines
    assert any(line.startswith("  origin …/") and line.endswith("/payments-runbooks") for line in lines)


def test_config_shows_each_setting_and_where_it_came_from(cli, tmp_path, monkeypatch):
    config = tmp_path / "config.toml"
    config.write_text('embed_model = "file/model"\ndevice = "cuda"\n')
    monkeypatch.setenv("DEVRAG_DEVICE", "cpu")
    report = json.loads(cli("config", "--json", "--qdrant-url", "http://q:6333"))
    assert report["file"] == str(config) and report["file_exists"] is True
    shown = {name: (s["value"], s["source"]) for name, s in report["settings"].items()}
    assert shown["embed_model"] == ("file/model", f"config file {config}")
    assert shown["device"] == ("cpu", "environment DEVRAG_DEVICE")
    assert shown["qdrant_url"] == ("http://q:6333", "flag --qdrant-url")
    assert shown["collection"] == ("devrag", "default")
    assert f"file/model  (config file {config})" in cli("config")


def test_a_bad_config_file_stops_a_command_with_one_line_naming_the_file_and_key(cli, tmp_path):
    (tmp_path / "config.toml").write_text('rerank_modle = "x"\n')
    out = cli("status", code=1)
    assert f"{tmp_path / 'config.toml'}: unknown key 'rerank_modle'; did you mean 'rerank_model'?" in out
    assert len(out.strip().splitlines()) == 1 and "Traceback" not in out


def test_global_options_are_accepted_after_the_subcommand_too(cli, ops_repo, tmp_path):
    other = tmp_path / "other-index"
    cli("ingest", str(ops_repo.path), "--json", "--index-dir", str(other), "--device", "cpu")
    assert json.loads(cli("status", "--json", "--index-dir", str(other)))["store"] == str(other)
    assert [r["name"] for r in json.loads(cli("status", "--json", "--index-dir", str(other)))["repos"]] == [
        "ops"
    ]
    assert json.loads(cli("status", "--json"))["repos"] == [], "without the flag: DEVRAG_INDEX_DIR"
    assert json.loads(cli("--device", "cuda", "config", "--json", "--device", "cpu"))["settings"]["device"][
        "value"
    ] == ("cpu"), "the last one given wins"


def test_version_comes_from_the_package_metadata(cli):
    assert cli("--version").strip() == f"devrag, version {importlib.metadata.version('devrag')}"


@needs_reranker
def test_search_finds_the_reranker_recorded_in_the_config_file(cli, ops_repo, monkeypatch, tmp_path):
    monkeypatch.delenv("DEVRAG_RERANK_MODEL")
    (tmp_path / "config.toml").write_text('# kept\ndevice = "cpu"\n')
    cli("config", "set", "rerank_model", str(RERANKER))
    assert (tmp_path / "config.toml").read_text() == f'# kept\ndevice = "cpu"\nrerank_model = "{RERANKER}"\n'
    cli("ingest", str(ops_repo.path))
    top = json.loads(cli("search", "how do I roll back a bad release", "-k", "1", "--json"))["results"][0]
    assert top["sections"][0]["scores"]["rerank_score"] is not None


def test_ingest_at_v_logs_each_stage_before_it_starts_and_when_it_ends(cli, ops_repo, caplog):
    caplog.set_level(logging.INFO)
    summary = json.loads(cli("ingest", str(ops_repo.path), "--json", "-v"))
    logged = [r.getMessage() for r in caplog.records]
    embedded = summary["chunks"]["embedded"]
    assert "loading embedding model sentence-transformers/all-MiniLM-L6-v2 ..." in logged
    assert logged.index("reading files: 2 to do") < logged.index("reading files: 2/2")
    assert (
        f"embedding chunks: {embedded} to do" in logged
        and f"embedding chunks: {embedded}/{embedded}" in logged
    )


def test_ingest_on_a_terminal_draws_progress_bars_on_stderr(cli, ops_repo, monkeypatch):
    terminal = io.StringIO()
    monkeypatch.setattr(render, "err", Console(file=terminal, force_terminal=True, width=120))
    out = cli("ingest", str(ops_repo.path))
    drawn = terminal.getvalue()
    assert "loading embedding model sentence-transformers/all-MiniLM-L6-v2 ..." in drawn
    assert "reading files" in drawn and "embedding chunks" in drawn and "2/2" in drawn
    assert "reading files" not in out, "progress goes to stderr, the summary to stdout"


def test_an_index_of_older_bm25_spellings_is_refused_by_search_shown_by_status_and_rewritten_by_ingest(
    cli, ops_repo, tmp_path, monkeypatch
):
    with monkeypatch.context() as version_1:
        version_1.setattr(lexical_field, "COUNTED", 1)
        cli("ingest", str(ops_repo.path))
    store = open_store(tmp_path / "index")
    store.put_meta(INDEX_META_KEY, {**(store.get_meta(INDEX_META_KEY) or {}), "lexical": "1"})
    store.close()
    refused = " ".join(cli("search", "disk full", code=1).split())
    assert "Run an ingest of any of its repositories once" in refused and "--name ops" in refused
    pending = json.loads(cli("status", "--json"))["respell_pending"]
    assert pending > 0 and "stored as an older devrag stored them" in " ".join(cli("status").split())
    summary = json.loads(cli("ingest", str(ops_repo.path), "--json"))
    assert summary["mode"] == "noop" and summary["chunks"]["respelled"] == pending
    assert json.loads(cli("status", "--json"))["respell_pending"] == 0
    assert "runbooks/disk.md" in cli("search", "disk disk full", "-k", "1")


def test_reconcile_fails_when_a_repository_cannot_be_read(cli, ops_repo, tmp_path):
    cli("ingest", str(ops_repo.path))
    ops_repo.path.rename(tmp_path / "moved")
    for args in (["reconcile", "--json"], ["reconcile"], ["reconcile", "--check", "--json"]):
        out = cli(*args, code=1)
        assert "not a Git repository" in out, args


def test_a_size_limit_given_to_ingest_holds_for_reconcile(cli, ops_repo):
    ops_repo.commit({"runbooks/long.md": "# Long\n\n## Steps\n\n" + "drain the node first. " * 40})
    summary = json.loads(cli("ingest", str(ops_repo.path), "--max-file-bytes", "400", "--json"))
    assert [s["path"] for s in summary["skipped"]] == ["runbooks/long.md"]
    assert json.loads(cli("reconcile", "--check", "--json"))[0]["missing"] == [], "in sync right after"
    ops_repo.commit({"runbooks/long.md": "# Long\n\n## Steps\n\n" + "cordon the node first. " * 40})
    repaired = json.loads(cli("reconcile", "--json"))[0]["repaired"]
    assert [s["path"] for s in repaired["skipped"]] == ["runbooks/long.md"], "the repair keeps the limit"
    status = json.loads(cli("status", "--json"))["repos"][0]
    assert status["files"] == 2


def test_an_empty_answer_names_a_filter_value_that_no_document_has(cli, git_repo):
    repo = git_repo("svc")
    repo.commit({"runbooks/a.md": "---\nservice: checkout\n---\n# CheckoutDown\n\n## Meaning\n\nDown.\n"})
    cli("ingest", str(repo.path))
    out = cli("search", "checkout down", "--no-rerank", "--service", "checkot")
    assert "No results." in out and "No indexed document has service='checkot'" in out
    answer = json.loads(cli("search", "checkout down", "--no-rerank", "--service", "checkot", "--json"))
    assert answer["values_unmatched"] == ["service='checkot'"]
    assert "No indexed document" not in cli("search", "checkout down", "--no-rerank", "--service", "checkout")


def test_an_index_ahead_of_head_is_not_behind_but_a_diverged_head_is(cli, ops_repo):
    main = ops_repo.head()
    ops_repo.git("checkout", "-q", "-b", "feature")
    ops_repo.commit({"new.md": "# New\n\ntext\n"})
    ops_repo.git("checkout", "-q", main)  # HEAD back on the older commit, the branch ahead of it
    cli("ingest", str(ops_repo.path), "--rev", "feature")
    assert json.loads(cli("status", "--json"))["repos"][0]["behind"] is False
    ops_repo.git("checkout", "-q", "-b", "other")
    ops_repo.commit({"other.md": "# Other\n\ntext\n"})  # HEAD now holds a commit the index lacks
    assert json.loads(cli("status", "--json"))["repos"][0]["behind"] is True
