"""The tools through the SDK's in-memory client, with the real embedding model and reranker."""

from __future__ import annotations

import importlib.metadata
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp_types import CallToolResult, TextContent

from devrag.retrieval.errors import ModelLoadError
from devrag.server.mcp_app import create_server
from devrag.server.settings import Settings
from devrag.server.state import Models
from tests.server.mcp_support import TOOLS, Ingested, file_lines, hash_client, ingest_repo, make_ops
from tests.support import GitRepo

pytestmark = [pytest.mark.anyio, pytest.mark.model]

GUIDE = "guides/deploy-checkout.md"


def text_of(result: CallToolResult) -> str:
    (block,) = result.content
    assert isinstance(block, TextContent)
    return block.text


@pytest.fixture
async def client(ops: Ingested, models: Models) -> AsyncIterator[Client]:
    async with Client(create_server(Settings(index_dir=ops.index_dir), models)) as c:
        yield c


async def call(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    return {**result.structured_content, "_text": text_of(result)}


async def test_tools_publish_typed_inputs_and_output_schemas(client):
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == TOOLS
    search = tools["search"].input_schema
    assert search["required"] == ["query"]
    assert (search["properties"]["k"]["minimum"], search["properties"]["k"]["maximum"]) == (1, 20)
    assert search["properties"]["doc_type"]["anyOf"][0]["enum"] == [
        "runbook",
        "postmortem",
        "guide",
        "code",
        "other",
    ]
    assert tools["get_document"].input_schema["required"] == ["repo", "path"]
    assert "alert name" in tools["search"].description
    for tool in tools.values():
        assert tool.output_schema is not None
        assert tool.annotations.read_only_hint is (tool.name != "feedback"), "feedback appends to the log"
    assert tools["feedback"].input_schema["required"] == ["query_id", "helpful"]


async def test_search_cites_real_lines_at_the_indexed_commit(client, ops):
    answer = await call(client, "search", query="NodeFilesystemAlmostOutOfSpace", k=3)
    top = answer["results"][0]
    assert (top["repo"], top["path"], top["commit"]) == ("ops", "runbooks/disk.md", ops.commit)
    best = top["passages"][0]
    assert top["title"] == "Disk full on db1" and best["headings"] == ["Symptoms"]
    assert len({r["path"] for r in answer["results"]}) == len(answer["results"]), "one result per document"
    for result in answer["results"]:
        lines = file_lines(ops.repo, result["commit"], result["path"])
        for passage in result["passages"]:
            assert_cites(lines[passage["start_line"] - 1 : passage["end_line"]], passage)
    assert answer["freshness"] == [
        {"repo": "ops", "indexed_commit": ops.commit, "head": ops.commit, "behind": False}
    ]
    assert (
        f"[1] ops:runbooks/disk.md @ {ops.commit[:12]} | Disk full on db1" in answer["_text"]
        and f"[1.1] #L{best['start_line']}-L{best['end_line']} | Symptoms" in answer["_text"]
    )
    assert "which is its HEAD (up to date)" in answer["_text"]


def assert_cites(cited: list[str], passage: dict[str, Any]) -> None:
    """The passage is the cited lines as the file has them; an overlap may start mid-line, a cut
    may end mid-line."""
    text = passage["text"].split("\n")
    assert cited[0].endswith(text[0])
    if passage["truncated"]:
        assert text[1:-1] == cited[1 : len(text) - 1] and cited[len(text) - 1].startswith(text[-1])
    else:
        assert text[1:] == cited[1:]


async def test_search_filters_by_repo_path_and_doc_type(client):
    answer = await call(client, "search", query="checkout-api", k=10, path="guides/*", doc_type="guide")
    assert answer["results"] and {h["path"][:7] for h in answer["results"]} == {"guides/"}
    nothing = await call(client, "search", query="checkout-api", path="nowhere/*")
    assert nothing["results"] == [] and "No indexed path matches path='nowhere/*'" in nothing["_text"]
    excluded = await call(client, "search", query="checkout-api", path="guides/*", doc_type="postmortem")
    assert excluded["results"] == [] and "No indexed path matches" not in excluded["_text"]


async def test_every_search_answer_fits_max_tokens_and_says_what_it_cut(client, real_embedder):
    query = "deployctl verify errors"
    whole = await call(client, "search", query=query, k=10, max_tokens=32000)
    assert whole["left_out"] == 0 and all(r["passages_left_out"] == 0 for r in whole["results"])
    assert not any(p["truncated"] for r in whole["results"] for p in r["passages"])
    found = [len(r["passages"]) for r in whole["results"]]
    assert max(found) > 1, "the fixture has documents matching in several sections"
    for budget in (250, 260, 280, 300, 350, 400, 500, 650, 800, 1000, 1300, 1600, 2000, 3000):
        answer = await call(client, "search", query=query, k=10, max_tokens=budget)
        text, results = answer["_text"], answer["results"]
        assert real_embedder.count_tokens(text) == answer["tokens"] <= budget
        assert len(results) + answer["left_out"] == len(found), "no document dropped silently"
        assert [r["rank"] for r in results] == list(range(1, len(results) + 1))
        for r in results:
            assert len(r["passages"]) + r["passages_left_out"] == found[r["rank"] - 1], "no section dropped"
        cut = [p for r in results for p in r["passages"] if p["truncated"]]
        assert len(cut) <= 1 and text.count("to fit max_tokens (") == len(cut)
        assert all(p["tokens_cut"] > 0 for p in cut)
        if answer["left_out"]:
            assert f"{answer['left_out']} more document" in text
            assert all(len(r["passages"]) == 1 for r in results), "documents go only after extra sections"
        if any(r["passages_left_out"] for r in results):
            assert "more matching section" in text


async def test_get_document_pages_read_the_whole_file_at_its_commit(client, ops, real_embedder):
    expected = file_lines(ops.repo, ops.commit, GUIDE)
    for budget in (200, 450, 1000, 4000):
        read: list[str] = []
        offset: int | None = 0
        while offset is not None:
            page = await call(
                client, "get_document", repo="ops", path=GUIDE, max_tokens=budget, offset=offset
            )
            assert real_embedder.count_tokens(page["_text"]) == page["tokens"] <= budget
            assert (page["commit"], page["source"], page["start_line"]) == (
                ops.commit,
                "repository",
                offset + 1,
            )
            read += page["text"].split("\n")
            if page["next_offset"] is not None:
                assert f"offset={page['next_offset']})" in page["_text"]
            offset = page["next_offset"]
        assert read == expected


async def test_get_document_returns_one_section_by_heading(client, ops):
    page = await call(client, "get_document", repo="ops", path=GUIDE, section="rollback")
    lines = file_lines(ops.repo, ops.commit, GUIDE)
    start = lines.index("## Rollback") + 1
    assert page["section"] == "Deploying checkout-api > Rollback"
    assert page["start_line"] == start and page["text"].startswith("## Rollback\n")
    assert page["text"] == "\n".join(lines[start - 1 : page["end_line"]])
    assert "## Cleanup" not in page["text"] and page["next_offset"] is None


async def test_the_server_names_itself_with_devrags_version(client):
    assert client.server_info is not None
    assert (client.server_info.name, client.server_info.version) == (
        "devrag",
        importlib.metadata.version("devrag"),
    )


async def test_list_sources_reports_commits_sizes_types_and_models(client, ops):
    sources = await call(client, "list_sources")
    (repo,) = sources["repos"]
    assert (repo["name"], repo["indexed_commit"], repo["head"], repo["behind"]) == (
        "ops",
        ops.commit,
        ops.commit,
        False,
    )
    assert repo["files"] == 5 and repo["chunks"] == sum(repo["doc_types"].values())
    assert set(repo["doc_types"]) == {"runbook", "postmortem", "guide"}
    assert sources["embed_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert sources["models"] in ("ready", "loading") and not sources["watching"]
    assert repo["path"] == str(ops.repo.path) and sources["store"] == str(ops.index_dir), (
        "local: folders shown"
    )


@pytest.mark.parametrize(
    ("tool", "args", "message"),
    [
        ("search", {"query": "disk", "repo": "nope"}, "Unknown repository 'nope'. Indexed repositories: ops"),
        ("search", {"query": "disk", "path": "/runbooks/*"}, "Invalid path glob '/runbooks/*'"),
        ("search", {"query": "disk", "path": "runbooks/[ab.md"}, "do not pair up"),
        ("search", {"query": "disk", "path": "*.{md,yaml}"}, "brace alternatives"),
        ("search", {"query": "disk " * 8001}, "The query is 8001 tokens; the limit is 8000"),
        ("search", {"query": "x" * 1_000_000}, "The query is 1,000,000 characters; the limit is 64,000"),
        ("search", {"query": "   "}, "The query is empty"),
        ("search", {"query": "\u0000\u0001\u0002"}, "The query is empty"),
        ("search", {"query": "\u200b \u200b"}, "The query is empty"),
        ("search_alert", {"alert": ""}, "found no alert name, runbook_url, summary or description"),
        ("search_alert", {}, "alert is missing"),
        ("search_alert", {"alert": "alertname: DiskFull", "k": 0}, "k=0 is out of range"),
        ("search_alert", {"alert": "alertname: DiskFull", "max_tokens": 10}, "max_tokens=10 is out of range"),
        ("search_alert", {"alert": "x" * 200_001}, "alert is 200,001 characters; the limit is 200,000"),
        ("feedback", {"query_id": "q1"}, "helpful is missing"),
        ("feedback", {"query_id": "q1", "helpful": "maybe"}, "helpful is 'maybe', not true or false"),
        ("feedback", {"query_id": "q" * 65, "helpful": True}, "query_id is 65 characters"),
        ("feedback", {"query_id": "q1", "helpful": True, "note": "n" * 2001}, "note is 2,001 characters"),
        ("search", {}, "query is missing"),
        (
            "search",
            {"query": "disk", "k": 0},
            "k=0 is out of range; k is how many documents to return, from 1",
        ),
        ("search", {"query": "disk", "k": 1000}, "k=1000 is out of range"),
        ("search", {"query": "disk", "k": "five"}, "k='five' is not a whole number"),
        ("search", {"query": "disk", "max_tokens": 50}, "max_tokens=50 is out of range"),
        (
            "search",
            {"query": "disk", "doc_type": "playbook"},
            "doc_type='playbook' is not a document type; use one of runbook, postmortem, guide, code, other",
        ),
        ("get_document", {"repo": "ops"}, "path is missing"),
        (
            "get_document",
            {"repo": "ops", "path": "runbooks/disk.md", "offset": -1},
            "offset=-1 is out of range",
        ),
        ("get_document", {"repo": "ops", "path": "runbooks/dsk.md"}, "Close matches: runbooks/disk.md"),
        ("get_document", {"repo": "ops", "path": GUIDE, "section": "Teardown"}, "Its sections: Deploying"),
        (
            "get_document",
            {"repo": "ops", "path": "runbooks/disk.md", "offset": 99},
            "offset=99 is past the end",
        ),
    ],
)
async def test_bad_calls_are_tool_errors_that_say_what_to_do(client, tool, args, message):
    result = await client.call_tool(tool, args)
    assert result.is_error
    assert message in text_of(result) and "Traceback" not in text_of(result)
    assert "pydantic" not in text_of(result) and "validation error" not in text_of(result)


async def test_a_pasted_alert_with_its_log_is_answered_and_says_what_the_models_read(client):
    alert = "KubePodCrashLooping payments-api: pod restarts in CrashLoopBackOff after the deploy.\n"
    log = "".join(
        f'2026-11-30T10:{i:02d}:00Z level=info msg="request served" latency_ms={i}\n' for i in range(40)
    )
    answer = await call(client, "search", query=alert + log, k=2)
    assert answer["results"][0]["path"] == "runbooks/crashloop.md"
    (note,) = [n for n in answer["notes"] if "pasted alert" in n]
    assert "every stage read its first 64 word pieces" in note


async def test_an_empty_index_says_which_command_fills_it(tmp_path, models):
    async with Client(create_server(Settings(index_dir=tmp_path / "empty"), models)) as c:
        result = await c.call_tool("search", {"query": "disk full"})
        sources = await c.call_tool("list_sources", {})
    assert result.is_error and "devrag ingest PATH/TO/REPO" in text_of(result)
    assert "No repositories indexed yet" in text_of(sources)


async def test_search_says_when_the_repository_has_moved_on(tmp_path, models, real_embedder):
    mine = make_ops(tmp_path, real_embedder, only=("runbooks/disk.md",))
    head = mine.repo.commit({"runbooks/new.md": "# New\n\nnot indexed yet\n"})
    async with Client(create_server(Settings(index_dir=mine.index_dir), models)) as c:
        answer = await call(c, "search", query="NodeFilesystemAlmostOutOfSpace", k=1)
        sources = await call(c, "list_sources")
    assert answer["freshness"] == [
        {"repo": "ops", "indexed_commit": mine.commit, "head": head, "behind": True}
    ]
    assert f"HEAD has moved on to {head[:12]}" in answer["_text"]
    assert sources["repos"][0]["behind"] is True


async def test_get_document_rebuilds_the_file_from_chunks_when_the_repository_is_gone(
    tmp_path, models, real_embedder
):
    mine = make_ops(tmp_path, real_embedder, only=("runbooks/disk.md", GUIDE))
    expected = file_lines(mine.repo, mine.commit, GUIDE)
    shutil.move(mine.repo.path, Path(tmp_path) / "moved")
    async with Client(create_server(Settings(index_dir=mine.index_dir), models)) as c:
        page = await call(c, "get_document", repo="ops", path=GUIDE, max_tokens=32000)
        answer = await call(c, "search", query="disk full", k=1)
    assert page["source"] == "chunks" and page["commit"] == mine.commit
    assert page["text"].split("\n") == expected, "overlapping pieces appear once, in line order"
    assert "the repository is not reachable" in page["_text"]
    assert answer["freshness"][0]["behind"] is None and "HEAD is unknown" in answer["_text"]


def _fails(message: str) -> Any:
    def load() -> Any:
        raise ModelLoadError(message)

    return load


async def test_a_reranker_that_cannot_load_leaves_search_working_and_says_so(ops, real_embedder):
    models = Models(lambda: real_embedder, _fails("Could not load the reranker 'x'. Set DEVRAG_RERANK_MODEL"))
    async with Client(create_server(Settings(index_dir=ops.index_dir), models)) as c:
        answer = await call(c, "search", query="NodeFilesystemAlmostOutOfSpace", k=1)
        sources = await call(c, "list_sources")
    assert answer["mode"] == "hybrid" and answer["results"][0]["path"] == "runbooks/disk.md"
    assert "not reranked" in answer["_text"]
    assert sources["models"].startswith("ready without reranker: Could not load the reranker 'x'")


async def test_an_embedding_model_that_cannot_load_is_a_tool_error_naming_the_fix(ops):
    models = Models(_fails("Could not load the embedding model 'nope'. Set DEVRAG_EMBED_MODEL"))
    async with Client(create_server(Settings(index_dir=ops.index_dir), models)) as c:
        result = await c.call_tool("search", {"query": "disk full"})
        sources = await call(c, "list_sources")
    assert result.is_error and "Set DEVRAG_EMBED_MODEL" in text_of(result)
    assert sources["models"].startswith("failed: Could not load the embedding model 'nope'")


@pytest.mark.parametrize("folder", ["runbooks/", "runbooks"])
async def test_a_folder_as_path_filter_means_everything_under_it(client, folder):
    answer = await call(client, "search", query="checkout-api pods disk", k=10, path=folder)
    assert answer["results"] and {h["path"].split("/")[0] for h in answer["results"]} == {"runbooks"}


async def test_left_out_results_are_said_to_need_a_bigger_budget_not_a_smaller_k(client):
    answer = await call(client, "search", query="deployctl verify errors", k=10, max_tokens=250)
    assert answer["left_out"] > 0
    assert "left out to fit max_tokens=250: raise max_tokens to see them." in answer["_text"]
    assert "lower k" not in answer["_text"]


NESTED = """# Disk full

## Mitigation

Free space first.

### Logs

```sh
# Rotate now
journalctl --vacuum-size=500M
```

### Images

Prune unused images.

## Follow-ups

File a ticket.
"""


async def test_a_heading_inside_a_chunk_can_be_read_alone(tmp_path, models, real_embedder):
    repo = GitRepo(tmp_path / "ops")
    commit = repo.commit({"runbooks/disk.md": NESTED})
    ingest_repo(tmp_path / "index", repo, real_embedder)
    async with Client(create_server(Settings(index_dir=tmp_path / "index"), models)) as c:
        page = await call(c, "get_document", repo="ops", path="runbooks/disk.md", section="logs")
        fenced = await c.call_tool(
            "get_document", {"repo": "ops", "path": "runbooks/disk.md", "section": "Rotate now"}
        )
    lines = file_lines(repo, commit, "runbooks/disk.md")
    assert page["section"] == "Disk full > Mitigation > Logs"
    assert page["text"] == "\n".join(lines[lines.index("### Logs") : lines.index("### Images") - 1])
    assert fenced.is_error and "No section 'Rotate now'" in text_of(fenced), "a fenced comment is no heading"


async def test_an_empty_answer_names_each_filter_value_no_document_has(tmp_path):
    files = {
        "runbooks/a.md": "---\nservice: checkout\nteam: payments\n---\n# CheckoutDown\n\n## Meaning\n\nDown\n"
    }
    async with hash_client(tmp_path, files) as client:
        typo = await call(client, "search", query="checkout down", service="checkot", team="payments")
        assert typo["results"] == []
        assert "No indexed document has service='checkot'" in typo["_text"] and "team=" not in typo["_text"]
        excluded = await call(
            client, "search", query="checkout down", service="checkout", doc_type="postmortem"
        )
        assert excluded["results"] == [] and "No indexed document has" not in excluded["_text"]


async def test_a_line_longer_than_the_page_says_how_to_read_it_whole(tmp_path):
    long_line = "Restart " + " ".join(f"checkout-api-{i}" for i in range(300)) + " in this order."
    files = {"runbooks/a.md": f"# A\n\n## Steps\n\n{long_line}\n\nThen check the logs.\n"}
    async with hash_client(tmp_path, files) as client:
        page = await call(client, "get_document", repo="ops", path="runbooks/a.md", offset=4, max_tokens=200)
        assert page["start_line"] == 5 and page["text"] != long_line and page["next_offset"] == 5
        assert (
            'get_document(repo="ops", path="runbooks/a.md", offset=4) with more to read it whole'
            in page["_text"]
        )
        whole = await call(
            client, "get_document", repo="ops", path="runbooks/a.md", offset=4, max_tokens=4000
        )
        assert whole["text"].split("\n")[0] == long_line
