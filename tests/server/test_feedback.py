"""Feedback end to end: every answer carries a query_id, and a real server logs searches and the
feedback on them, only when its query log is on."""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp_types import CallToolResult

from devrag.retrieval.query_log import LOG_NAME, read_log
from devrag.server.mcp_app import FEEDBACK_HINT, create_server
from devrag.server.query_log import LOG_OFF
from devrag.server.settings import Settings
from tests.server.mcp_support import (
    FEEDBACK_FILES,
    OPS_FILES,
    Ingested,
    make_ops,
    search_and_judge,
    serve_args,
    server_env,
    text_of,
)

pytestmark = [pytest.mark.model]

QUERY_ID = re.compile(r"[0-9a-f]{16}")


@dataclass
class Session:
    ops: Ingested
    log: Path
    answers: list[dict[str, Any]] = field(default_factory=list)
    feedback: list[CallToolResult] = field(default_factory=list)
    refused: dict[str, CallToolResult] = field(default_factory=dict)
    absent: str = ""  # an indexed document the first answer did not hold


async def _talk(session: Session, params: StdioServerParameters, errlog: Any) -> None:
    async with Client(stdio_client(params, errlog=errlog), mode="legacy") as client:
        session.answers, session.feedback = await search_and_judge(client)
        first = session.answers[0]["query_id"]
        session.refused["unknown"] = await client.call_tool(
            "feedback", {"query_id": "0" * 16, "helpful": True}
        )
        shown = {r["path"] for r in session.answers[0]["results"]}
        session.absent = next(f"ops:{p}" for p in FEEDBACK_FILES if p not in shown)
        session.refused["elsewhere"] = await client.call_tool(
            "feedback", {"query_id": first, "helpful": True, "document": session.absent}
        )


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory, real_embedder) -> Session:
    """`devrag serve` over stdio with DEVRAG_QUERY_LOG=1, searched and told what helped, then closed."""
    root = Path(tmp_path_factory.mktemp("feedback"))
    ops = make_ops(root, real_embedder, only=FEEDBACK_FILES)
    recorded = Session(ops, ops.index_dir / LOG_NAME)
    params = StdioServerParameters(
        command=sys.executable, args=serve_args(), env=server_env(ops.index_dir, DEVRAG_QUERY_LOG="1")
    )
    with (root / "stderr.log").open("w") as errlog:
        anyio.run(_talk, recorded, params, errlog)
    return recorded


def test_feedback_on_a_search_answer_round_trips_through_a_real_server_into_the_log(session):
    ids = [a["query_id"] for a in session.answers]
    assert all(QUERY_ID.fullmatch(i) for i in ids) and len(set(ids)) == len(ids)
    assert all(a["_text"].endswith(f"query_id: {a['query_id']}") for a in session.answers)
    assert all(not f.is_error for f in session.feedback), [text_of(f) for f in session.feedback]
    first = session.feedback[0].structured_content
    assert first == {
        "query_id": ids[0],
        "helpful": True,
        "document": "ops:runbooks/disk.md",
        "note": "from the test",
    }
    assert session.feedback[1].structured_content["document"] == "ops:runbooks/crashloop.md", (
        "a path resolves"
    )
    assert text_of(session.feedback[4]).startswith(
        "Recorded with the note: the answer as a whole was helpful"
    )

    unknown, elsewhere = session.refused["unknown"], session.refused["elsewhere"]
    assert unknown.is_error and f"No search with query_id='{'0' * 16}'" in text_of(unknown)
    assert elsewhere.is_error and f"{session.absent!r} was not in that answer" in text_of(elsewhere)
    assert "its documents were: ops:runbooks/disk.md" in text_of(elsewhere)

    logged = read_log(session.log)
    assert [s.query_id for s in logged.searches] == ids
    for search, answer in zip(logged.searches, session.answers, strict=True):
        assert (search.query, search.k, search.mode) == (answer["query"], 3, answer["mode"])
        assert [(d.repo, d.path, d.commit) for d in search.documents] == [
            (r["repo"], r["path"], r["commit"]) for r in answer["results"]
        ]
        assert all(d.shown and d.sections and d.sections[0].scores.rrf_score for d in search.documents)
    assert sum(len(events) for events in logged.feedback.values()) == 5, "refused feedback is not logged"
    assert logged.feedback[ids[1]][1].document.path == "guides/rollback.md"


@pytest.fixture
async def quiet_server(tmp_path, models):
    ops = make_ops(tmp_path, models.wait()[0], only=("runbooks/disk.md", "guides/rollback.md"))
    async with Client(create_server(Settings(index_dir=ops.index_dir), models)) as client:
        yield client, ops


@pytest.mark.anyio
async def test_with_the_log_off_answers_carry_a_query_id_feedback_says_so_and_nothing_is_written(
    quiet_server,
):
    client, ops = quiet_server
    answer = await client.call_tool("search", {"query": "helm rollback", "k": 2})
    query_id = answer.structured_content["query_id"]
    assert QUERY_ID.fullmatch(query_id) and text_of(answer).endswith(f"query_id: {query_id}")
    assert "feedback" not in (client.instructions or ""), "not asked for where it is not kept"
    refused = await client.call_tool("feedback", {"query_id": query_id, "helpful": True})
    assert refused.is_error and text_of(refused).endswith(LOG_OFF)
    assert not list(ops.index_dir.glob("query-log*")), "no query is logged while the log is off"


@pytest.mark.anyio
async def test_a_logged_answer_marks_the_documents_its_token_budget_left_out(tmp_path, models):
    ops = make_ops(tmp_path, models.wait()[0])
    settings = Settings(index_dir=ops.index_dir, query_log=True)
    async with Client(create_server(settings, models)) as client:
        assert (client.instructions or "").endswith(FEEDBACK_HINT)
        answer = await client.call_tool(
            "search", {"query": "deployctl verify errors", "k": 10, "max_tokens": 250}
        )
    out = answer.structured_content
    assert out["left_out"] > 0
    (search,) = read_log(ops.index_dir / LOG_NAME).searches
    shown = [d.path for d in search.documents if d.shown]
    assert shown == [r["path"] for r in out["results"]]
    assert len(search.documents) == len(out["results"]) + out["left_out"]


def test_cli_search_json_carries_a_query_id_and_logs_it_only_when_the_log_is_on(cli, git_repo, monkeypatch):
    repo = git_repo("ops")
    repo.commit({p: OPS_FILES[p] for p in ("runbooks/disk.md", "guides/rollback.md")})
    cli("ingest", str(repo.path))
    off = json.loads(cli("search", "helm rollback", "--no-rerank", "--json"))
    index_dir = Path(os.environ["DEVRAG_INDEX_DIR"])
    assert QUERY_ID.fullmatch(off["query_id"]) and not (index_dir / LOG_NAME).exists()
    monkeypatch.setenv("DEVRAG_QUERY_LOG", "1")
    on = json.loads(cli("search", "helm rollback", "--no-rerank", "--json"))
    (search,) = read_log(index_dir / LOG_NAME).searches
    assert (search.query_id, search.mode, search.k) == (on["query_id"], "hybrid", 5)
    assert [d.path for d in search.documents] == [r["path"] for r in on["results"]]
    assert "query_id " in cli("search", "helm rollback", "--no-rerank")
