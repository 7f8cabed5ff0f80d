"""The query log turned into evaluation: `devrag eval --from-log` writes a golden set that `devrag
eval` reads back, and `--shadow` replays the logged searches through a second configuration.

The log is made by a real MCP session (in memory) against a server with the query log on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from devrag.retrieval.factory import open_store
from devrag.retrieval.index import Index
from devrag.retrieval.query_log import LOG_NAME, read_log
from devrag.retrieval.search import HybridIndex
from devrag.server.mcp_app import create_server
from devrag.server.settings import Settings
from devrag.server.state import Models
from tests.server.mcp_support import FEEDBACK_FILES, FEEDBACK_SESSION, Ingested, make_ops, search_and_judge

pytestmark = [pytest.mark.model]


@dataclass(frozen=True)
class Session:
    ops: Ingested
    log: Path
    answers: list[dict[str, Any]]


async def _judge(settings: Settings, models: Models) -> list[dict[str, Any]]:
    async with Client(create_server(settings, models)) as client:
        answers, feedback = await search_and_judge(client)
    assert not any(f.is_error for f in feedback)
    return answers


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory, models: Models) -> Session:
    """Five searches and the feedback on them, logged by a server with DEVRAG_QUERY_LOG on."""
    ops = make_ops(Path(tmp_path_factory.mktemp("logged")), models.wait()[0], only=FEEDBACK_FILES)
    answers = anyio.run(_judge, Settings(index_dir=ops.index_dir, query_log=True), models)
    return Session(ops, ops.index_dir / LOG_NAME, answers)


def test_from_log_writes_a_golden_set_that_devrag_eval_reads(session, cli, tmp_path):
    out = tmp_path / "golden" / "from-log.jsonl"
    summary = json.loads(cli("eval", "--from-log", str(session.log), "-o", str(out), "--json"))
    assert summary == {
        "log": str(session.log),
        "output": str(out),
        "searches": 5,
        "with_feedback": 4,
        "written": 2,
        "merged": 0,
        "skipped_negative_only": 1,
        "skipped_no_document": 1,
        "skipped_other_repo": 0,
        "feedback_without_search": 0,
    }
    ids = [a["query_id"] for a in session.answers]
    assert [json.loads(line) for line in out.read_text().splitlines()] == [
        {"id": ids[0], "query": FEEDBACK_SESSION[0][0], "relevant": ["runbooks/disk.md"]},
        {"id": ids[1], "query": FEEDBACK_SESSION[1][0], "relevant": ["runbooks/crashloop.md"]},
    ]
    workdir = tmp_path / "eval"
    report = json.loads(
        cli(
            "eval",
            str(out),
            "--repo",
            str(session.ops.repo.path),
            "--modes",
            "bm25,dense",
            "-k",
            "3",
            "--workdir",
            str(workdir),
            "--json",
        )
    )
    assert report["queries"] == 2 and set(report["modes"]) == {"bm25", "dense"}
    assert report["modes"]["bm25"]["recall@1"] == 1.0, "the alert name and the crash-loop state are verbatim"
    human = cli("eval", "--from-log", str(session.log), "-o", str(out))
    assert "Wrote 2 golden queries" in human and "1 with negative feedback only" in human


def test_from_log_names_a_missing_log_or_the_line_that_is_malformed(cli, tmp_path):
    missing = tmp_path / "nowhere.jsonl"
    assert f"{missing}: no such query log" in cli("eval", "--from-log", str(missing), "-o", "x.jsonl", code=1)
    bad = tmp_path / LOG_NAME
    bad.write_text('{"type": "search"}\n')
    said = cli("eval", "--from-log", str(bad), "-o", str(tmp_path / "x.jsonl"), code=1)
    assert f"{bad}:1: not a query-log record: search.query_id" in said
    assert "either -o OUT.jsonl or --shadow CONFIG" in cli("eval", "--from-log", str(bad), code=2)
    assert "Pass GOLDEN" in cli("eval", code=2)


def test_shadow_replays_the_logged_searches_beside_the_live_configuration(
    session, cli, tmp_path, real_embedder
):
    config = tmp_path / "shadow.toml"
    config.write_text('mode = "bm25"\nmin_candidates = 10\n')
    index_dir = str(session.ops.index_dir)
    report = json.loads(
        cli(
            "eval",
            "--from-log",
            str(session.log),
            "--shadow",
            str(config),
            "--json",
            "--index-dir",
            index_dir,
        )
    )
    assert (report["live_mode"], report["shadow_mode"]) == ("hybrid+rerank", "bm25")
    assert report["shadow_config"] == {"mode": "bm25", "min_candidates": 10}
    assert report["queries"] == 5 and report["judged"] == 2
    logged = read_log(session.log).searches
    store = open_store(session.ops.index_dir, None, "devrag", None)
    try:
        searcher = HybridIndex(Index(store, real_embedder.name, real_embedder.dim), real_embedder, None)
        for c, search in zip(report["comparisons"], logged, strict=True):
            assert c["live"] == [d.name for d in search.documents], "the live arm answers as the server did"
            bm25 = searcher.search(search.query, search.k, "bm25", search.filters).results
            assert c["shadow"] == [f"{r.repo}:{r.path}" for r in bm25]
            assert c["top1_changed"] == (c["live"][:1] != c["shadow"][:1])
            assert c["overlap"] == round(
                len(set(c["live"]) & set(c["shadow"])) / max(len(c["live"]), len(c["shadow"])), 4
            )
        searcher.close()
    finally:
        store.close()
    first = report["comparisons"][0]
    assert first["helpful"] == ["ops:runbooks/disk.md"] and first["live_rank"] == 1
    ranks = (first["live_rank"], first["shadow_rank"] or 99)
    assert first["higher"] == ("same" if ranks[0] == ranks[1] else "live")
    assert report["top1_changed"] == sum(c["top1_changed"] for c in report["comparisons"])
    last = FEEDBACK_SESSION[-1][0]
    human = cli(
        "eval",
        "--from-log",
        str(session.log),
        "--shadow",
        str(config),
        "--max-queries",
        "1",
        "--index-dir",
        index_dir,
    )
    assert (
        last[:40] in human
        and "live hybrid+rerank vs shadow bm25 (min_candidates=10, mode='bm25'): 1 searches" in human
    )
    wrong = tmp_path / "wrong.toml"
    wrong.write_text("rerank_candidatez = 5\n")
    said = cli("eval", "--from-log", str(session.log), "--shadow", str(wrong), code=1)
    assert f"{wrong}: unknown key 'rerank_candidatez'" in said
