"""`devrag eval --from-log`: a golden set from the answers their callers marked helpful.

The query log (`devrag.retrieval.query_log`) records each search and the feedback on it. A search
whose feedback names a document as helpful becomes one golden query: the query as asked, and the
helpful documents' paths as its relevant pages, in the JSONL format `devrag eval` reads
(`devrag.eval.golden`). Feedback that only says "not helpful", or "helpful" without naming a
document, says nothing about which page should come first, so it is skipped and counted.

A golden file's paths are relative to one corpus, so a set comes from one repository: when the
helpful documents span several, `only_repo` picks one (a file per repository).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from devrag.retrieval.query_log import read_log
from devrag.retrieval.query_records import DocumentRef, FeedbackRecord


class FromLogSummary(BaseModel):
    """What was read and why each search with feedback was, or was not, written."""

    log: str
    output: str
    searches: int
    with_feedback: int
    written: int
    merged: int  # searches with the same query text as an earlier one: their pages were added to it
    skipped_negative_only: int
    skipped_no_document: int
    skipped_other_repo: int
    feedback_without_search: int  # its search was rotated out of the log before the feedback came


def helpful_documents(events: Sequence[FeedbackRecord]) -> list[DocumentRef]:
    """Documents whose latest verdict is helpful, in the order first named (a caller may change its mind)."""
    verdict: dict[tuple[str, str], bool] = {}
    for event in events:
        if event.document is not None:
            verdict[(event.document.repo, event.document.path)] = event.helpful
    return [DocumentRef(repo=repo, path=path) for (repo, path), ok in verdict.items() if ok]


def golden_from_log(log: Path, out: Path, only_repo: str | None = None) -> FromLogSummary:
    """Write the golden set of `log` (and its rotated files) to `out`; returns what was counted.

    Raises:
        QueryLogError: the log is missing or a line is malformed (names file:line).
        ValueError: nothing qualifies, the helpful documents span repositories and `only_repo`
            does not choose one, or `out` cannot be written.
    """
    logged = read_log(log)
    counts = {"with_feedback": 0, "merged": 0, "negative": 0, "no_document": 0, "other_repo": 0}
    golden: dict[str, dict[str, Any]] = {}
    repos: set[str] = set()
    for search in logged.searches:
        events = logged.feedback.get(search.query_id)
        if not events:
            continue
        counts["with_feedback"] += 1
        docs = helpful_documents(events)
        if not docs:
            said_helpful = any(e.helpful and e.document is None for e in events)
            counts["no_document" if said_helpful else "negative"] += 1
            continue
        docs = [d for d in docs if only_repo is None or d.repo == only_repo]
        if not docs:
            counts["other_repo"] += 1
            continue
        repos.update(d.repo for d in docs)
        line = golden.get(search.query)
        if line is None:
            golden[search.query] = {"id": search.query_id, "query": search.query, "relevant": []}
            line = golden[search.query]
        else:
            counts["merged"] += 1
        line["relevant"] += [d.path for d in docs if d.path not in line["relevant"]]
    summary = FromLogSummary(
        log=str(log),
        output=str(out),
        searches=len(logged.searches),
        with_feedback=counts["with_feedback"],
        written=len(golden),
        merged=counts["merged"],
        skipped_negative_only=counts["negative"],
        skipped_no_document=counts["no_document"],
        skipped_other_repo=counts["other_repo"],
        feedback_without_search=logged.orphaned_feedback,
    )
    _check(summary, repos)
    _write(out, list(golden.values()))
    return summary


def _check(summary: FromLogSummary, repos: set[str]) -> None:
    if len(repos) > 1:
        raise ValueError(
            f"{summary.log}: the helpful documents are in {len(repos)} repositories "
            f"({', '.join(sorted(repos))}); a golden set's paths belong to one corpus: "
            "pass --only-repo NAME, once per repository."
        )
    if summary.written == 0:
        raise ValueError(
            f"{summary.log}: no search has feedback naming a helpful document, so there is nothing to "
            f"write ({summary.searches} searches, {summary.with_feedback} with feedback: "
            f"{summary.skipped_negative_only} negative only, {summary.skipped_no_document} without a "
            f"document, {summary.skipped_other_repo} in other repositories)."
        )


def _write(out: Path, lines: list[dict[str, Any]]) -> None:
    """All lines or none: a half-written set would score a different evaluation."""
    text = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
    scratch = out.with_name(out.name + ".tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        scratch.write_text(text, encoding="utf-8")
        scratch.replace(out)
    except OSError as exc:
        raise ValueError(f"{out}: cannot write the golden set: {exc.strerror or exc}.") from exc
