"""`golden_from_log`: helpful feedback on logged searches becomes a golden set; the rest is counted."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from devrag.eval.from_log import golden_from_log
from devrag.eval.golden import GoldenQuery, load_golden
from devrag.retrieval.query_log import LOG_NAME, QueryLog
from devrag.retrieval.query_records import FeedbackRecord, new_query_id, search_record
from devrag.retrieval.search import Filters, HybridIndex


def search(log: QueryLog, two_repo_searcher: HybridIndex, query: str, repo: str | None = "ops") -> str:
    filters = Filters(repo=repo)
    response = two_repo_searcher.search(query, 3, "hybrid", filters)
    record = search_record(new_query_id(), query, 3, "hybrid", filters, response)
    log.append(record)
    return record.query_id


def test_searches_with_a_helpful_document_become_golden_queries_and_the_others_are_counted(
    tmp_path, two_repo_searcher
):
    log = QueryLog(tmp_path / LOG_NAME, 1_000_000, 2)
    crash = search(log, two_repo_searcher, "pods in CrashLoopBackOff")
    log.record_feedback(crash, True, "runbooks/crashloop.md")
    log.record_feedback(crash, False, "runbooks/crashloop.md")  # changed its mind: the last word counts
    log.record_feedback(crash, True, "postmortems/2026-01-01-outage.md")
    etcd = search(log, two_repo_searcher, "slow apiserver fsync")
    log.record_feedback(etcd, True, "ops:runbooks/etcd.md")
    again = search(log, two_repo_searcher, "slow apiserver fsync")
    log.record_feedback(again, True, "runbooks/etcd.md")
    log.record_feedback(again, True, "runbooks/gateway.md")
    negative = search(log, two_repo_searcher, "HTTP 503 from the gateway")
    log.record_feedback(negative, False, "runbooks/gateway.md")
    whole = search(log, two_repo_searcher, "helm rollback")
    log.record_feedback(whole, True)
    search(log, two_repo_searcher, "no feedback on this one")
    log.append(FeedbackRecord(query_id=new_query_id(), time=datetime.now(UTC), helpful=True))  # rotated away

    out = tmp_path / "sets" / "logged.jsonl"
    summary = golden_from_log(tmp_path / LOG_NAME, out)
    assert summary.model_dump() == {
        "log": str(tmp_path / LOG_NAME),
        "output": str(out),
        "searches": 6,
        "with_feedback": 5,
        "written": 2,
        "merged": 1,
        "skipped_negative_only": 1,
        "skipped_no_document": 1,
        "skipped_other_repo": 0,
        "feedback_without_search": 1,
    }
    assert load_golden(out) == [
        GoldenQuery(
            id=crash, query="pods in CrashLoopBackOff", relevant=["postmortems/2026-01-01-outage.md"]
        ),
        GoldenQuery(
            id=etcd, query="slow apiserver fsync", relevant=["runbooks/etcd.md", "runbooks/gateway.md"]
        ),
    ]
    assert set(json.loads(out.read_text().splitlines()[0])) == {"id", "query", "relevant"}


def test_a_set_from_two_repositories_needs_only_repo_to_pick_one(tmp_path, two_repo_searcher):
    log = QueryLog(tmp_path / LOG_NAME, 1_000_000, 2)
    ops = search(log, two_repo_searcher, "pods in CrashLoopBackOff", repo="ops")
    log.record_feedback(ops, True, "runbooks/crashloop.md")
    infra = search(log, two_repo_searcher, "helm rollback checkout-api", repo="infra")
    log.record_feedback(infra, True, "guides/deploy.md")
    out = tmp_path / "logged.jsonl"
    with pytest.raises(ValueError, match=r"in 2 repositories \(infra, ops\).*pass --only-repo NAME"):
        golden_from_log(tmp_path / LOG_NAME, out)
    assert not out.exists(), "nothing is written when the set would be wrong"
    summary = golden_from_log(tmp_path / LOG_NAME, out, only_repo="infra")
    assert (summary.written, summary.skipped_other_repo) == (1, 1)
    assert [q.relevant for q in load_golden(out)] == [["guides/deploy.md"]]


def test_a_log_without_helpful_documents_writes_nothing_and_says_why(tmp_path, two_repo_searcher):
    log = QueryLog(tmp_path / LOG_NAME, 1_000_000, 2)
    log.record_feedback(search(log, two_repo_searcher, "helm rollback"), False)
    with pytest.raises(ValueError, match=r"nothing to write \(1 searches, 1 with feedback: 1 negative only"):
        golden_from_log(tmp_path / LOG_NAME, tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()


def test_an_output_that_cannot_be_written_is_named(tmp_path, two_repo_searcher):
    log = QueryLog(tmp_path / LOG_NAME, 1_000_000, 2)
    log.record_feedback(search(log, two_repo_searcher, "helm rollback"), True, "guides/deploy.md")
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match=f"{tmp_path / 'file' / 'out.jsonl'}: cannot write the golden set"):
        golden_from_log(tmp_path / LOG_NAME, tmp_path / "file" / "out.jsonl")
