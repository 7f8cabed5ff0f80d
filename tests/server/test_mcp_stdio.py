"""`devrag serve` over stdio as a subprocess, driven by the SDK's stdio client."""

from __future__ import annotations

import json
import shlex
import sys
import time
from typing import Any

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

from tests.server.mcp_support import TOOLS, file_lines, make_ops, serve_args, server_env

pytestmark = [pytest.mark.anyio, pytest.mark.model]


async def search(client: Client, query: str, **args: Any) -> dict[str, Any]:
    result = await client.call_tool("search", {"query": query, **args})
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def test_stdio_answers_every_tool_and_writes_only_jsonrpc_to_stdout(tmp_path, real_embedder):
    ops = make_ops(
        tmp_path, real_embedder, only=("runbooks/disk.md", "runbooks/crashloop.md", "guides/rollback.md")
    )
    stdout_copy = tmp_path / "stdout.jsonl"
    server = shlex.join([sys.executable, *serve_args()])
    params = StdioServerParameters(
        command="/bin/sh",
        args=["-c", f"{server} | tee {shlex.quote(str(stdout_copy))}"],
        env=server_env(ops.index_dir),
    )
    with (tmp_path / "stderr.log").open("w") as errlog:
        started = time.perf_counter()
        async with Client(stdio_client(params, errlog=errlog), mode="legacy") as client:
            tools = await client.list_tools()
            ready = time.perf_counter() - started
            answer = await search(client, "NodeFilesystemAlmostOutOfSpace db1", k=2)
            page = await client.call_tool("get_document", {"repo": "ops", "path": "runbooks/disk.md"})
            sources = await client.call_tool("list_sources", {})
    # Reported, not asserted: timings belong to benchmarks, and CI machines are noisy.
    print(f"initialize + tools/list answered {ready:.2f} s after start")
    assert {t.name for t in tools.tools} == TOOLS
    top = answer["results"][0]
    lines = file_lines(ops.repo, top["commit"], top["path"])
    assert top["path"] == "runbooks/disk.md" and top["commit"] == ops.commit
    best = top["passages"][0]
    assert "\n".join(lines[best["start_line"] - 1 : best["end_line"]]) == best["text"]
    assert not page.is_error and sources.structured_content["models"].startswith("ready")
    messages = [json.loads(line) for line in stdout_copy.read_text().splitlines()]
    assert all(m["jsonrpc"] == "2.0" and ("result" in m or "method" in m) for m in messages)
    answered = [m["id"] for m in messages if "result" in m]
    assert len(answered) == len(set(answered)) == 5, "initialize, tools/list and three tool calls"
    said = [line for line in (tmp_path / "stderr.log").read_text().splitlines() if "MCP over stdio" in line]
    assert said == [f"devrag: MCP over stdio, index {ops.index_dir}"], "one line on start, on stderr"
