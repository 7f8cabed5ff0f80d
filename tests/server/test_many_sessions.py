"""Many agent sessions and CLI commands on one embedded index, at the same time, as real processes."""

from __future__ import annotations

import json
import subprocess
import sys
from contextlib import AsyncExitStack
from typing import Any

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

from tests.server.mcp_support import make_ops, serve_args, server_env

pytestmark = [pytest.mark.anyio, pytest.mark.model]

NEW_RUNBOOK = (
    "# EtcdNoLeader\n\n## Meaning\n\nThe etcd member quorumkeeper reports no leader.\n\n"
    "## Fix\n\nRestart the quorumkeeper sidecar on every etcd member.\n"
)


def devrag(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """A CLI command in its own process, as a CI job or an engineer would run it."""
    return subprocess.run(
        [sys.executable, "-m", "devrag.server.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


async def search(client: Client, query: str) -> dict[str, Any]:
    result = await client.call_tool("search", {"query": query, "k": 3})
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def test_agent_sessions_and_cli_commands_share_one_index_and_see_an_ingest_at_once(
    tmp_path, real_embedder
):
    ops = make_ops(tmp_path, real_embedder, only=("runbooks/disk.md", "guides/rollback.md"))
    env = server_env(ops.index_dir)
    params = StdioServerParameters(command=sys.executable, args=serve_args(), env=env)
    async with AsyncExitStack() as stack:
        errlog = stack.enter_context((tmp_path / "sessions.log").open("w"))
        sessions = [
            await stack.enter_async_context(Client(stdio_client(params, errlog=errlog), mode="legacy"))
            for _ in range(2)
        ]
        for session in sessions:
            assert (await search(session, "helm rollback checkout-api"))["results"]

        # While both sessions hold the index: the commands the README runs after every merge.
        new = ops.repo.commit({"runbooks/etcd.md": NEW_RUNBOOK, "guides/rollback.md": None})
        ingested = devrag(env, "ingest", str(ops.repo.path), "--name", "ops", "--json")
        assert ingested.returncode == 0, ingested.stderr
        assert json.loads(ingested.stdout)["commit"] == new
        status = devrag(env, "status", "--json")
        assert status.returncode == 0 and json.loads(status.stdout)["repos"][0]["indexed_commit"] == new
        cli_search = devrag(env, "search", "quorumkeeper sidecar", "--no-rerank", "--json")
        assert cli_search.returncode == 0 and "runbooks/etcd.md" in cli_search.stdout

        for session in sessions:
            found = await search(session, "etcd quorumkeeper has no leader")
            assert found["results"][0]["path"] == "runbooks/etcd.md"
            assert found["results"][0]["commit"] == new
            gone = await search(session, "helm rollback checkout-api")
            assert all(r["path"] != "guides/rollback.md" for r in gone["results"]), "deleted file not served"
