"""The query log: records of real searches, size-based rotation under threads and processes, read back."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from devrag.retrieval.query_log import LOG_NAME, QueryLog, QueryLogError, log_files, read_log
from devrag.retrieval.query_records import FeedbackRecord, SearchRecord, new_query_id, search_record
from devrag.retrieval.search import Filters, HybridIndex
from devrag.retrieval.search_input import InputError
from tests.support import REPO_ROOT


def logged_search(log: QueryLog, two_repo_searcher: HybridIndex, query: str, **filters: str) -> SearchRecord:
    flt = Filters(**filters)
    response = two_repo_searcher.search(query, 3, "hybrid", flt)
    record = search_record(new_query_id(), query, 3, "hybrid", flt, response)
    log.append(record)
    return record


def numbered(n: int) -> FeedbackRecord:
    """A small record whose note says its place in the sequence appended."""
    return FeedbackRecord.model_validate(
        {
            "query_id": new_query_id(),
            "time": "2026-05-01T00:00:00Z",
            "helpful": True,
            "note": str(n),
        }
    )


def notes(path: Path) -> list[int]:
    logged = read_log(path)
    return [int(e.note or "") for events in logged.feedback.values() for e in events]


def test_a_search_record_keeps_the_ranking_with_each_sections_evidence(tmp_path, two_repo_searcher):
    log = QueryLog(tmp_path / LOG_NAME, 1_000_000, 2)
    record = logged_search(log, two_repo_searcher, "pods in CrashLoopBackOff", repo="ops")
    (line,) = (tmp_path / LOG_NAME).read_text().splitlines()
    raw = json.loads(line)
    assert raw["type"] == "search" and raw["query"] == "pods in CrashLoopBackOff" and raw["k"] == 3
    assert raw["filters"] == {"repo": "ops"} and raw["mode"] == "hybrid"
    top = raw["documents"][0]
    assert (top["rank"], top["repo"], top["path"], len(top["commit"])) == (
        1,
        "ops",
        "runbooks/crashloop.md",
        40,
    )
    assert top["shown"] is True and top["sections"][0]["scores"]["rrf_score"] > 0
    assert "text" not in top["sections"][0], "the commit and lines recover the text; the log stays small"
    assert read_log(tmp_path / LOG_NAME).searches == [record]


def test_the_log_rotates_by_size_keeping_the_newest_records_in_order(tmp_path):
    path = tmp_path / LOG_NAME
    log = QueryLog(path, max_bytes=1000, backups=2)
    for n in range(100):
        log.append(numbered(n))
    files = log_files(path)
    assert [f.name for f in files] == [f"{LOG_NAME}.2", f"{LOG_NAME}.1", LOG_NAME]
    assert all(0 < f.stat().st_size <= 1000 for f in files)
    kept = notes(path)
    assert kept == list(range(100 - len(kept), 100)), "the oldest dropped, the rest contiguous and in order"


def test_threads_appending_at_once_lose_no_record_and_tear_no_line(tmp_path):
    path = tmp_path / LOG_NAME
    log = QueryLog(path, max_bytes=4000, backups=1000)
    threads = [
        threading.Thread(target=lambda t=t: [log.append(numbered(t * 1000 + i)) for i in range(150)])
        for t in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(log_files(path)) > 10, "rotated many times meanwhile"
    assert sorted(notes(path)) == sorted(t * 1000 + i for t in range(8) for i in range(150))
    assert all(f.stat().st_size <= 4000 for f in log_files(path))


WRITER = """
import sys
from pathlib import Path
from devrag.retrieval.query_log import QueryLog
from devrag.retrieval.query_records import FeedbackRecord
log = QueryLog(Path(sys.argv[1]), 3000, 1000)
for i in range(200):
    log.append(FeedbackRecord.model_validate(
        {"query_id": "q", "time": "2026-05-01T00:00:00Z", "helpful": True, "note": f"{sys.argv[2]}{i:03}"}))
"""


def test_processes_sharing_an_index_folder_share_one_log_safely(tmp_path):
    path = tmp_path / LOG_NAME
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(n)], cwd=REPO_ROOT) for n in (1, 2, 3)
    ]
    assert [w.wait(120) for w in writers] == [0, 0, 0]
    assert sorted(notes(path)) == sorted(int(f"{n}{i:03}") for n in (1, 2, 3) for i in range(200))
    assert all(f.stat().st_size <= 3000 for f in log_files(path))


def test_feedback_finds_its_search_in_a_rotated_file_until_it_is_rotated_away(tmp_path, two_repo_searcher):
    path = tmp_path / LOG_NAME
    record = logged_search(QueryLog(path, 1_000_000, 1), two_repo_searcher, "helm rollback checkout-api")
    log = QueryLog(path, max_bytes=path.stat().st_size, backups=1)  # full: the next record rotates
    log.append(numbered(0))
    assert (tmp_path / f"{LOG_NAME}.1").read_text().count(record.query_id) == 1
    given = log.record_feedback(record.query_id, True, "ops:guides/deploy.md", note="  ")
    assert given.document is not None
    assert (given.document.repo, given.document.path, given.note) == ("ops", "guides/deploy.md", None)
    for n in range(60):
        log.append(numbered(n))
    assert record.query_id not in "".join(f.read_text() for f in log_files(path))
    with pytest.raises(InputError, match=f"No search with query_id='{record.query_id}' is in"):
        log.record_feedback(record.query_id, True)
    with pytest.raises(InputError, match="No search with query_id='nope'"):
        log.record_feedback("nope", False)


def test_feedback_names_a_document_of_the_answer_by_repo_and_path_or_by_a_path_of_one_repo(
    tmp_path, two_repo_searcher
):
    log = QueryLog(tmp_path / LOG_NAME, 1_000_000, 2)
    both = logged_search(log, two_repo_searcher, "helm rollback checkout-api")
    names = [d.name for d in both.documents]
    assert {"ops:guides/deploy.md", "infra:guides/deploy.md"} <= set(names)
    with pytest.raises(
        InputError, match="'guides/deploy.md' is in that answer from .*: pass it as repo:path"
    ):
        log.record_feedback(both.query_id, True, "guides/deploy.md")
    with pytest.raises(
        InputError, match=f"'runbooks/none.md' was not in that answer; its documents were: {names[0]}"
    ):
        log.record_feedback(both.query_id, True, "runbooks/none.md")
    one = logged_search(log, two_repo_searcher, "helm rollback checkout-api", repo="infra")
    assert log.record_feedback(one.query_id, False, "guides/deploy.md").document.repo == "infra"
    feedback = read_log(tmp_path / LOG_NAME).feedback
    assert list(feedback) == [one.query_id], "refused feedback is not recorded"


def test_reading_a_log_names_the_file_and_line_of_what_is_wrong(tmp_path):
    path = tmp_path / LOG_NAME
    with pytest.raises(QueryLogError, match=f"{path}: no such query log"):
        read_log(path)
    QueryLog(path, 1_000_000, 2).append(numbered(0))
    with path.open("a") as f:
        f.write("\n{broken\n")
    with pytest.raises(QueryLogError, match=rf"{path}:3: not valid JSON"):
        read_log(path)
    path.write_text('{"type": "feedback", "query_id": "q"}\n')
    with pytest.raises(
        QueryLogError, match=rf"{path}:1: not a query-log record: feedback.time: Field required"
    ):
        read_log(path)
    path.write_bytes(b"\xff\xfe not utf-8\n")
    with pytest.raises(QueryLogError, match=f"{path}: cannot read the query log"):
        read_log(path)
