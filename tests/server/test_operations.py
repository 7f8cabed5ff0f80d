"""Operations in process: readiness with a dead leg, search spans, and what the metrics count."""

from __future__ import annotations

import pytest
from mcp.server.transport_security import TransportSecuritySettings
from prometheus_client import generate_latest
from starlette.testclient import TestClient

from devrag.retrieval.errors import IndexWriteError, ModelLoadError
from devrag.retrieval.search import Filters
from devrag.retrieval.search_results import SearchResponse
from devrag.server.metrics import ServerMetrics
from devrag.server.operations import Operations, readiness
from devrag.server.settings import Settings
from devrag.server.state import App, Models
from tests.server.mcp_support import make_ops, samples, value
from tests.support import blank_keyword_field

pytestmark = pytest.mark.model


@pytest.fixture
def app(tmp_path, real_embedder, models: Models):
    """A server over its own ops index, which these tests damage."""
    app = App(Settings(index_dir=make_ops(tmp_path, real_embedder).index_dir), models, local=False)
    yield app
    app.close()


def test_readiness_fails_on_a_keyword_leg_that_returns_nothing(app):
    assert all(check.ok for check in readiness(app))
    blank_keyword_field(app.searcher().index.store, "ops")
    checks = {check.name: check for check in readiness(app)}
    assert not checks["leg.bm25"].ok and checks["leg.dense"].ok
    assert checks["leg.bm25"].detail == "returned nothing for the probe query"


def test_readyz_answers_503_with_the_failing_check(app):
    security = TransportSecuritySettings(allowed_hosts=["testserver"], allowed_origins=[])
    operations = Operations(app.metrics, security, lag_interval=60)
    operations.start(app)
    try:
        blank_keyword_field(app.searcher().index.store, "ops")
        response = TestClient(operations.health_app()).get("/readyz")
    finally:
        operations.stop()
    assert response.status_code == 503 and not response.json()["ready"]
    assert {c["name"] for c in response.json()["checks"] if not c["ok"]} == {"leg.bm25"}


def test_a_search_span_holds_its_stages_and_the_query_only_when_asked(ops, models, spans):
    for opted_in in (False, True):
        spans.clear()
        app = App(Settings(index_dir=ops.index_dir, trace_queries=opted_in), models)
        try:
            app.search("disk full on db1", 3, "hybrid", Filters(repo="ops"))
        finally:
            app.close()
        finished = {s.name: s for s in spans.get_finished_spans()}
        root = finished["search"]
        assert finished["retrieval.search"].parent.span_id == root.context.span_id
        assert {"search.embed", "search.dense", "search.bm25", "search.fusion"} <= set(finished)
        attributes = dict(root.attributes or {})
        assert attributes["devrag.repo"] == "ops" and attributes["devrag.k"] == 3
        assert attributes["devrag.results"] > 0
        assert ("devrag.query" in attributes) is opted_in
        if opted_in:
            assert attributes["devrag.query"] == "disk full on db1"


def test_a_reranker_that_failed_to_load_is_counted(ops, real_embedder):
    def fails() -> None:
        raise ModelLoadError("Could not load the reranker 'x'.")

    models = Models(lambda: real_embedder, fails)  # type: ignore[arg-type]
    app = App(Settings(index_dir=ops.index_dir), models)
    try:
        models.wait()
        scraped = samples(generate_latest(app.metrics.registry).decode())
    finally:
        app.close()
    assert value(scraped, "devrag_reranker_load_failures_total") == 1


def test_an_ingest_whose_writes_did_not_read_back_counts_a_verification_failure():
    metrics = ServerMetrics()
    with pytest.raises(IndexWriteError), metrics.ingest_run("webhook"):
        raise IndexWriteError("3 written chunks did not read back")
    assert metrics.ingest_finished.is_set(), "the lag refresher wakes after every ingest"
    metrics.ingest_finished.clear()
    with metrics.ingest_run("webhook") as run:
        run.outcome = "unchanged"
    with metrics.ingest_run("watch") as run:
        run.outcome = None  # a recheck that found HEAD indexed
    scraped = samples(generate_latest(metrics.registry).decode())
    assert value(scraped, "devrag_verification_failures_total") == 1
    assert value(scraped, "devrag_ingest_runs_total", trigger="webhook", outcome="failed") == 1
    assert value(scraped, "devrag_ingest_runs_total", trigger="webhook", outcome="unchanged") == 1
    assert value(scraped, "devrag_ingest_seconds_count", trigger="watch") == 0, "no run to count"


@pytest.mark.parametrize(
    ("mode", "candidates", "degraded"),
    [
        ("hybrid", {"dense": 30, "bm25": 0, "fused": 30}, {"bm25": 1, "dense": 0}),
        ("hybrid+rerank", {"dense": 0, "bm25": 4, "fused": 4, "rerank": 4}, {"bm25": 0, "dense": 1}),
        ("hybrid", {"dense": 0, "bm25": 0, "fused": 0}, {"bm25": 0, "dense": 0}),
        ("dense", {"dense": 30, "fused": 30}, {"bm25": 0, "dense": 0}),
    ],
)
def test_a_leg_is_degraded_only_when_it_ran_empty_beside_one_with_results(mode, candidates, degraded):
    metrics = ServerMetrics()
    response = SearchResponse(
        query="q", mode=mode, reranked=False, results=[], timings_ms={}, candidates=candidates
    )
    metrics.observe_search(mode, response)
    scraped = samples(generate_latest(metrics.registry).decode())
    for leg, count in degraded.items():
        assert value(scraped, "devrag_search_degraded_leg_total", leg=leg) == count
    assert value(scraped, "devrag_search_empty_total", mode=mode) == 1
