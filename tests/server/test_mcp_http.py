"""`devrag serve --transport http --watch` as a subprocess, driven by the SDK's streamable HTTP client."""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx
import httpx2
import pytest
from click.testing import CliRunner
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from devrag.server.cli import main
from tests.server.mcp_support import (
    TOOLS,
    Ingested,
    file_lines,
    free_port,
    ingest_repo,
    make_ops,
    start_http,
    stop,
)
from tests.support import RERANKER, GitRepo

pytestmark = [pytest.mark.anyio, pytest.mark.model]


@dataclass(frozen=True)
class Served:
    url: str
    token: str
    ops: Ingested
    live: GitRepo  # the watch test commits to this one; the others read `ops`
    process: subprocess.Popen[bytes]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, real_embedder) -> Iterator[Served]:
    root = Path(tmp_path_factory.mktemp("http"))
    ops = make_ops(root, real_embedder)
    live = GitRepo(root / "live")
    live.commit({"runbooks/kafka.md": "# KafkaUnderReplicatedPartitions\n\n## Fix\n\nCheck broker disks.\n"})
    ingest_repo(ops.index_dir, live, real_embedder, "live")
    port, token = free_port(), secrets.token_urlsafe(24)
    process = start_http(ops.index_dir, port, token, root / "server.log", "--watch")
    yield Served(f"http://127.0.0.1:{port}/mcp", token, ops, live, process)
    stop(process)


@asynccontextmanager
async def connect(served: Served, scheme: str = "Bearer") -> AsyncIterator[Client]:
    headers = {"Authorization": f"{scheme} {served.token}"}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=120)) as http:
        async with Client(streamable_http_client(served.url, http_client=http)) as client:
            yield client


def test_requests_without_the_token_get_401(served):
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = httpx.post(served.url, json=initialize, headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("scheme", ["bearer", "BEARER"])
async def test_the_bearer_scheme_is_read_in_any_case(served, scheme):
    async with connect(served, scheme) as client:
        sources = await client.call_tool("list_sources", {})
    assert not sources.is_error
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
    for wrong in (f"{scheme} {served.token}x", f"Basic {served.token}", served.token):
        assert httpx.post(served.url, json=initialize, headers={"Authorization": wrong}).status_code == 401


async def test_each_tool_answers_over_http_with_real_citations(served):
    ops = served.ops
    async with connect(served) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        search = await client.call_tool("search", {"query": "helm rollback checkout-api 41", "k": 3})
        sources = await client.call_tool("list_sources", {})
        page = await client.call_tool("get_document", {"repo": "ops", "path": "guides/rollback.md"})
    assert names == TOOLS
    hits = search.structured_content["results"]
    assert "guides/rollback.md" in [h["path"] for h in hits]
    for hit in hits:
        lines = file_lines(ops.repo, hit["commit"], hit["path"])
        assert hit["commit"] == ops.commit
        for passage in hit["passages"]:
            assert "\n".join(lines[passage["start_line"] - 1 : passage["end_line"]]) == passage["text"]
    repos = {r["name"]: r for r in sources.structured_content["repos"]}
    assert repos["ops"]["indexed_commit"] == ops.commit and sources.structured_content["watching"]
    assert repos["ops"]["path"] is None and sources.structured_content["store"] is None
    assert str(ops.repo.path) not in sources.content[0].text, "a remote client learns no server folders"
    assert sources.structured_content["rerank_model"] == RERANKER.name, "a model folder by its own name"
    assert str(RERANKER) not in sources.content[0].text
    assert page.structured_content["text"].split("\n") == file_lines(
        ops.repo, ops.commit, "guides/rollback.md"
    )


async def test_twenty_concurrent_searches_all_succeed(served):
    queries = ["disk full on db1", "CrashLoopBackOff payments-api", "HTTP 503 checkout", "helm rollback"]
    results = {}

    async def one(client: Client, n: int) -> None:
        results[n] = await client.call_tool("search", {"query": queries[n % 4], "k": 3})

    async with connect(served) as first, connect(served) as second:
        async with anyio.create_task_group() as tg:
            for n in range(20):
                tg.start_soon(one, first if n % 2 else second, n)
    assert len(results) == 20
    assert all(not r.is_error and r.structured_content["results"] for r in results.values())


async def test_watch_serves_a_new_commit_within_seconds(served):
    query = "ZookeeperSessionExpired kafka-broker-3"
    async with connect(served) as client:
        before = await client.call_tool("search", {"query": query, "k": 1, "repo": "live"})
        assert before.structured_content["results"][0]["path"] == "runbooks/kafka.md"
        fix = "# ZookeeperSessionExpired\n\n## Fix\n\nRestart `kafka-broker-3`.\n"
        head = served.live.commit({"runbooks/zookeeper.md": fix})
        committed = time.perf_counter()
        while True:
            answer = (
                await client.call_tool("search", {"query": query, "k": 1, "repo": "live"})
            ).structured_content
            if answer["results"][0]["commit"] == head:
                break
            assert time.perf_counter() - committed < 30, "the new commit was not served within 30 s"
            await anyio.sleep(0.2)
    print(f"new commit served {time.perf_counter() - committed:.2f} s after it was made")
    top = answer["results"][0]
    assert top["path"] == "runbooks/zookeeper.md" and top["passages"][0]["text"].startswith("## Fix")
    assert answer["freshness"] == [{"repo": "live", "indexed_commit": head, "head": head, "behind": False}]


async def test_errors_over_http_are_tool_errors(served):
    async with connect(served) as client:
        result = await client.call_tool("search", {"query": "disk", "repo": "infra"})
    assert result.is_error and "Unknown repository 'infra'" in result.content[0].text


def test_binding_beyond_loopback_needs_a_token(monkeypatch, tmp_path):
    monkeypatch.delenv("DEVRAG_HTTP_TOKEN", raising=False)
    monkeypatch.setenv("DEVRAG_INDEX_DIR", str(tmp_path / "index"))
    result = CliRunner().invoke(main, ["serve", "--transport", "http", "--host", "0.0.0.0"])
    assert result.exit_code == 1
    assert "DEVRAG_HTTP_TOKEN" in result.output and "Traceback" not in result.output
