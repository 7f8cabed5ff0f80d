"""Operations over real HTTP: /metrics after real searches and ingests, /healthz, /readyz, the token rule."""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.mcp_support import (
    Ingested,
    Samples,
    free_port,
    ingest_repo,
    make_ops,
    mcp_client,
    samples,
    start_http,
    stop,
    value,
)
from tests.support import GitRepo

pytestmark = [pytest.mark.anyio, pytest.mark.model]


@dataclass(frozen=True)
class Served:
    base: str
    token: str
    ops: Ingested
    live: GitRepo
    process: subprocess.Popen[bytes]

    def scrape(self) -> Samples:
        response = httpx.get(f"{self.base}/metrics", headers={"Authorization": f"Bearer {self.token}"})
        assert response.status_code == 200
        return samples(response.text)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, real_embedder) -> Iterator[Served]:
    root = Path(tmp_path_factory.mktemp("ops-http"))
    ops = make_ops(root, real_embedder)
    live = GitRepo(root / "live")
    live.commit({"runbooks/kafka.md": "# KafkaUnderReplicatedPartitions\n\n## Fix\n\nCheck broker disks.\n"})
    ingest_repo(ops.index_dir, live, real_embedder, "live")
    port, token = free_port(), secrets.token_urlsafe(24)
    process = start_http(
        ops.index_dir, port, token, root / "server.log", "--watch", DEVRAG_LAG_REFRESH_SECONDS="1"
    )
    yield Served(f"http://127.0.0.1:{port}", token, ops, live, process)
    stop(process)


def poll(condition: Any, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


async def search(served: Served, **args: Any) -> dict[str, Any]:
    async with mcp_client(f"{served.base}/mcp", served.token) as client:
        result = await client.call_tool("search", args)
    assert not result.is_error and result.structured_content is not None
    return result.structured_content


def test_metrics_need_the_token_and_health_does_not(served):
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        assert httpx.get(f"{served.base}/metrics", headers=headers).status_code == 401
    assert httpx.get(f"{served.base}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{served.base}/readyz").status_code in (200, 503)
    assert httpx.get(f"{served.base}/healthz", headers={"Host": "evil.example"}).status_code == 421


async def test_searches_are_counted_timed_and_a_dead_leg_shows(served):
    before = served.scrape()
    normal = await search(served, query="KubePodCrashLooping payments-api", k=3)
    keywordless = await search(served, query="zzyzx qwvx", k=3)  # no indexed word: BM25 has nothing
    nothing = await search(served, query="disk full", k=3, path="no-such-folder/*")
    after = served.scrape()
    mode = normal["mode"]
    assert normal["results"] and keywordless["results"] and not nothing["results"]

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("devrag_searches_total", mode=mode) == 3
    assert delta("devrag_search_empty_total", mode=mode) == 1
    assert delta("devrag_search_degraded_leg_total", leg="bm25") == 1
    assert delta("devrag_search_degraded_leg_total", leg="dense") == 0
    # The search filtered to nothing ran no stage.
    assert delta("devrag_search_stage_seconds_count", stage="total", mode=mode) == 2
    assert delta("devrag_search_stage_seconds_count", stage="bm25", mode=mode) == 2
    assert delta("devrag_search_stage_seconds_sum", stage="total", mode=mode) > 0
    assert delta("devrag_search_candidates_count", stage="dense") == 2
    assert delta("devrag_search_candidates_bucket", stage="bm25", le="0.0") == 1, "one search, zero BM25 hits"
    assert delta("devrag_search_results_bucket", mode=mode, le="0.0") == 1
    assert value(after, "devrag_reranker_load_failures_total") == 0


async def test_readyz_reports_every_check_once_the_models_are_loaded(served):
    await search(served, query="disk full on db1", k=1)  # waits for the models
    poll(lambda: httpx.get(f"{served.base}/readyz").status_code == 200, seconds=10)
    body = httpx.get(f"{served.base}/readyz").json()
    names = [c["name"] for c in body["checks"]]
    assert body["ready"] and names == ["models", "index", "leg.dense", "leg.bm25"]
    assert all(c["ok"] for c in body["checks"])
    assert str(served.ops.index_dir) not in str(body), "no path goes out without the token"


def test_a_watched_commit_counts_an_ingest_and_the_lag_returns_to_zero(served):
    def indexed() -> float:
        return value(served.scrape(), "devrag_ingest_runs_total", trigger="watch", outcome="indexed")

    runs = indexed()
    head = served.live.commit({"runbooks/kafka.md": "# KafkaUnderReplicatedPartitions\n\nAdd one.\n"})
    poll(lambda: indexed() > runs)
    committed = time.time()
    poll(lambda: value(served.scrape(), "devrag_index_lag_refreshed_timestamp_seconds") > committed)
    scraped = served.scrape()
    assert value(scraped, "devrag_index_lag_commits", repo="live") == 0, head
    assert value(scraped, "devrag_index_lag_commits", repo="ops") == 0
    assert value(scraped, "devrag_index_repo_reachable", repo="live") == 1
    assert value(scraped, "devrag_ingest_seconds_count", trigger="watch") >= 1
    assert value(scraped, "devrag_ingest_runs_total", trigger="watch", outcome="failed") == 0
    assert value(scraped, "devrag_verification_failures_total") == 0
