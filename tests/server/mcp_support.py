"""Shared by the MCP tests: a small ops repository, ingestion into a temp index, server processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, TextContent
from prometheus_client.parser import text_string_to_metric_families

from devrag.ingest.pipeline import ingest
from devrag.retrieval.edge_store import EdgeStore
from devrag.retrieval.index import Index
from devrag.retrieval.models import Embedder
from devrag.server.mcp_app import create_server
from devrag.server.settings import Settings
from devrag.server.state import Models
from tests.support import ONNX_DIR, RERANKER, RUNBOOK, GitRepo, HashEmbedder

_STAGES = ["Prepare", "Build", "Canary", "Promote", "Verify", "Rollback", "Cleanup", "Notify"]


def _guide() -> str:
    """A long guide: one section per stage, `Verify` long enough to be split with overlap."""
    parts = ["# Deploying checkout-api", "", "Every release of checkout-api goes through these stages.", ""]
    for i, stage in enumerate(_STAGES):
        parts += [f"## {stage}", ""]
        for j in range(14 if stage == "Verify" else 4):
            parts += [
                f"Step {i}.{j}: run `deployctl {stage.lower()} --stage {j}` and watch the checkout-api "
                f"dashboards for {stage.lower()} errors before going on.",
                "",
            ]
    return "\n".join(parts)


OPS_FILES: dict[str, str | bytes | None] = {
    "runbooks/disk.md": RUNBOOK.format(host="db1"),
    "runbooks/crashloop.md": "# KubePodCrashLooping\n\n## Symptoms\n\nPods of `payments-api` restart in "
    "`CrashLoopBackOff`.\n\n## Fix\n\nRead `kubectl logs --previous` and roll back the last deploy.\n",
    "postmortems/2026-03-checkout-outage.md": "# Checkout outage\n\n## Summary\n\nA bad config push made "
    "checkout-api return `HTTP 503` for 40 minutes.\n\n## Follow-ups\n\nAdd a canary stage to deploys.\n",
    "guides/rollback.md": "# Rolling back\n\n## Rollback\n\nRun `helm rollback checkout-api 41` to return "
    "to the last good release.\n",
    "guides/deploy-checkout.md": _guide(),
}


@dataclass(frozen=True)
class Ingested:
    repo: GitRepo
    index_dir: Path
    commit: str


def make_ops(
    root: Path, embedder: Embedder, name: str = "ops", only: tuple[str, ...] | None = None
) -> Ingested:
    """The ops repository (or `only` some of its files) under `root`, ingested into `root/index`.

    The index is closed again when this returns.
    """
    repo = GitRepo(root / name)
    files = {p: text for p, text in OPS_FILES.items() if only is None or p in only}
    commit = repo.commit(files, "ops docs")
    index_dir = root / "index"
    ingest_repo(index_dir, repo, embedder, name)
    return Ingested(repo, index_dir, commit)


# Every tool a devrag server lists.
TOOLS = {"search", "search_alert", "get_document", "list_sources", "feedback"}


@asynccontextmanager
async def hash_client(tmp_path: Path, files: dict[str, str | bytes | None]) -> AsyncIterator[Client]:
    """An in-memory client of a server over `files`, committed to repository `ops` and indexed with
    the fast HashEmbedder (no reranker)."""
    embedder = HashEmbedder()
    repo = GitRepo(tmp_path / "ops")
    repo.commit(files)
    ingest_repo(tmp_path / "index", repo, embedder)
    server = create_server(Settings(index_dir=tmp_path / "index"), Models.loaded(embedder, None))
    async with Client(server) as client:
        yield client


def ingest_repo(index_dir: Path, repo: GitRepo, embedder: Embedder, name: str = "ops") -> None:
    store = EdgeStore(index_dir)
    try:
        ingest(Index(store, embedder.name, embedder.dim), embedder, repo.path, name)
    finally:
        store.close()  # the embedded index admits one process: release it before a server opens it


def file_lines(repo: GitRepo, commit: str, path: str) -> list[str]:
    return repo.git("show", f"{commit}:{path}").split("\n")


def server_env(index_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVRAG_")}
    env |= {
        "DEVRAG_INDEX_DIR": str(index_dir),
        "DEVRAG_RERANK_MODEL": str(RERANKER),
        "DEVRAG_DEVICE": "cpu",
        "DEVRAG_ONNX_DIR": str(ONNX_DIR),
        "HF_HUB_OFFLINE": "1",
        "DEVRAG_OWNER_IDLE_SECONDS": "5",
        **extra,
    }
    return env


def serve_args(*args: str) -> list[str]:
    return ["-m", "devrag.server.cli", "serve", *args]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_http(
    index_dir: Path, port: int, token: str, log: Path, *args: str, **env_extra: str
) -> subprocess.Popen[bytes]:
    """`devrag serve --transport http` on loopback with a token; returns once it accepts connections."""
    env = server_env(index_dir, DEVRAG_HTTP_TOKEN=token, **env_extra)
    with log.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, *serve_args("--transport", "http", "--port", str(port), *args)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=err,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited {process.returncode}: {log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"server did not listen on {port}: {log.read_text()}")


@asynccontextmanager
async def mcp_client(url: str, token: str) -> AsyncIterator[Client]:
    """An MCP client session with a server started by `start_http`."""
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=120)) as http:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            yield client


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    """Every sample of a Prometheus exposition, by name and labels."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(scraped: Samples, name: str, **labels: str) -> float:
    return scraped.get((name, frozenset(labels.items())), 0.0)


# What an agent might search and then say of each answer: (query, [(helpful, document)]). Of five
# searches, two name a helpful document, one is only judged unhelpful, one helpful without naming a
# document, and one gets no feedback at all.
FEEDBACK_SESSION: list[tuple[str, list[tuple[bool, str | None]]]] = [
    ("NodeFilesystemAlmostOutOfSpace db1", [(True, "ops:runbooks/disk.md")]),
    ("pods restart in CrashLoopBackOff", [(True, "runbooks/crashloop.md"), (False, "guides/rollback.md")]),
    ("helm rollback checkout-api 41", [(False, "guides/rollback.md")]),
    ("checkout outage HTTP 503", [(True, None)]),
    ("disk space alert on a database host", []),
]
FEEDBACK_FILES = (
    "runbooks/disk.md",
    "runbooks/crashloop.md",
    "guides/rollback.md",
    "postmortems/2026-03-checkout-outage.md",
    "guides/deploy-checkout.md",
)


async def call(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    """A tool call that must succeed: its structured output, with its text under `_text`."""
    result = await client.call_tool(tool, args)
    (block,) = result.content
    assert isinstance(block, TextContent)
    assert not result.is_error, block.text
    assert result.structured_content is not None
    return {**result.structured_content, "_text": block.text}


def text_of(result: CallToolResult) -> str:
    (block,) = result.content
    assert isinstance(block, TextContent)
    return block.text


async def search_and_judge(client: Client) -> tuple[list[dict[str, Any]], list[CallToolResult]]:
    """FEEDBACK_SESSION through `client`: each answer (its text under `_text`), and each feedback result."""
    answers, feedback = [], []
    for query, calls in FEEDBACK_SESSION:
        answer = await client.call_tool("search", {"query": query, "k": 3})
        assert not answer.is_error and answer.structured_content is not None, text_of(answer)
        answers.append({**answer.structured_content, "_text": text_of(answer)})
        for helpful, document in calls:
            args: dict[str, Any] = {"query_id": answer.structured_content["query_id"], "helpful": helpful}
            if document is not None:
                args["document"] = document
            feedback.append(await client.call_tool("feedback", {**args, "note": "from the test"}))
    return answers, feedback
