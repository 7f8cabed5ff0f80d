"""Prometheus metrics of one server: what its searches and ingests did, and how far each index lags.

Each server has its own `CollectorRegistry` (not prometheus-client's global one), so tests and a
benchmark can run several in one process. Series an alert divides by (searches per mode, degraded
legs, ingest outcomes) are created at zero, so `rate()` and ratios work before the first event.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from devrag.retrieval.errors import IndexWriteError
from devrag.retrieval.search import FIRST_STAGES, MODES
from devrag.retrieval.search_results import SearchResponse

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from devrag.ingest.reconcile import Drift
    from devrag.ingest.status import RepoLag
    from devrag.server.state import Models

# From a cached query's BM25 (a millisecond) to a reranked paste on a loaded CPU (tens of seconds).
_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_INGEST_SECONDS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)
_CANDIDATES = (0, 1, 5, 10, 20, 30, 50, 100, 200, 500)
_RESULTS = (0, 1, 2, 3, 5, 10, 20)
TRIGGERS = ("watch", "webhook")
OUTCOMES = ("indexed", "unchanged", "failed")


@dataclass
class IngestRun:
    """One server ingest in progress; the caller says how it ended unless it raises.

    None: there was nothing to do and no run to count (`--watch` compares HEADs every few seconds).
    """

    outcome: str | None = "indexed"


class ServerMetrics:
    """The instruments, and one method per event the server's adapters report."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.stage_seconds = Histogram(
            "devrag_search_stage_seconds",
            "Wall time of each search stage (embed, dense, bm25, fusion, rerank, lead, total), by mode.",
            ["stage", "mode"],
            buckets=_SECONDS,
            registry=r,
        )
        self.searches = Counter("devrag_searches", "Searches answered, by mode.", ["mode"], registry=r)
        self.empty = Counter(
            "devrag_search_empty", "Searches answered with no document at all, by mode.", ["mode"], registry=r
        )
        self.results = Histogram(
            "devrag_search_results", "Documents per answer, by mode.", ["mode"], buckets=_RESULTS, registry=r
        )
        self.candidates = Histogram(
            "devrag_search_candidates",
            "Chunks each stage produced per search (dense, bm25, fused, rerank).",
            ["stage"],
            buckets=_CANDIDATES,
            registry=r,
        )
        self.degraded = Counter(
            "devrag_search_degraded_leg",
            "Hybrid searches in which this first stage returned nothing while the other returned results.",
            ["leg"],
            registry=r,
        )
        self.ingests = Counter(
            "devrag_ingest_runs",
            "The server's own ingests (--watch, webhooks), by trigger and outcome.",
            ["trigger", "outcome"],
            registry=r,
        )
        self.ingest_seconds = Histogram(
            "devrag_ingest_seconds",
            "Wall time of the server's ingests.",
            ["trigger"],
            buckets=_INGEST_SECONDS,
            registry=r,
        )
        self.verification_failures = Counter(
            "devrag_verification_failures",
            "Server ingests stopped because written chunks or metadata did not read back.",
            registry=r,
        )
        self.lag_commits = Gauge(
            "devrag_index_lag_commits", "Commits on HEAD that the index does not hold.", ["repo"], registry=r
        )
        self.lag_seconds = Gauge(
            "devrag_index_lag_seconds",
            "Commit time of HEAD minus that of the indexed commit (0: up to date).",
            ["repo"],
            registry=r,
        )
        self.reachable = Gauge(
            "devrag_index_repo_reachable",
            "1 when the repository's clone can be read here, else 0 (and its lag is unknown).",
            ["repo"],
            registry=r,
        )
        self.lag_refreshed = Gauge(
            "devrag_index_lag_refreshed_timestamp_seconds",
            "When the lag gauges were last computed.",
            registry=r,
        )
        self.reconcile_drift = Counter(
            "devrag_reconcile_drift_files",
            "Files a server reconcile (at --watch start) found drifted: missing (indexable, no chunks), "
            "stale (chunks of another version), orphaned (chunks of a file no longer in the tree).",
            ["repo", "kind"],
            registry=r,
        )
        self.reconcile_repaired = Counter(
            "devrag_reconcile_repaired_files",
            "Drifted files a server reconcile repaired (its repository re-ingested with a full compare).",
            ["repo"],
            registry=r,
        )
        self.reconcile_unreachable = Counter(
            "devrag_reconcile_unreachable",
            "Repositories a server reconcile could not compare: the clone could not be read here.",
            ["repo"],
            registry=r,
        )
        self._models = _RerankLoadFailures()
        r.register(self._models)
        self._lag_repos: set[str] = set()
        self.ingest_finished = threading.Event()  # wakes the lag refresher after a server ingest
        self._zero_series()

    def _zero_series(self) -> None:
        for mode in MODES:
            self.searches.labels(mode)
            self.empty.labels(mode)
        for leg in FIRST_STAGES:
            self.degraded.labels(leg)
        for trigger in TRIGGERS:
            for outcome in OUTCOMES:
                self.ingests.labels(trigger, outcome)

    def track_models(self, models: Models) -> None:
        """Report this server's reranker load failure, read from its models when scraped."""
        self._models.models = models

    def observe_search(self, mode: str, response: SearchResponse | None) -> None:
        """One answered search; None: the filters matched nothing, so no stage ran."""
        answered = response.mode if response else mode
        results = len(response.results) if response else 0
        self.searches.labels(answered).inc()
        self.results.labels(answered).observe(results)
        if results == 0:
            self.empty.labels(answered).inc()
        if response is None:
            return
        for stage, ms in response.timings_ms.items():
            self.stage_seconds.labels(stage, answered).observe(ms / 1000)
        for stage, count in response.candidates.items():
            self.candidates.labels(stage).observe(count)
        legs = {leg: response.candidates.get(leg) for leg in FIRST_STAGES}
        if None not in legs.values():  # hybrid modes: both legs ran
            for leg, count in legs.items():
                if count == 0 and any(legs[other] for other in FIRST_STAGES if other != leg):
                    self.degraded.labels(leg).inc()

    @contextmanager
    def ingest_run(self, trigger: str) -> Iterator[IngestRun]:
        """Time one server ingest and count its outcome; a raise counts as failed and propagates."""
        run = IngestRun()
        started = time.perf_counter()
        try:
            yield run
        except Exception as exc:
            run.outcome = "failed"
            if isinstance(exc, IndexWriteError):
                self.verification_failures.inc()
            raise
        finally:
            if run.outcome is not None:
                self.ingests.labels(trigger, run.outcome).inc()
                self.ingest_seconds.labels(trigger).observe(time.perf_counter() - started)
                self.ingest_finished.set()

    def observe_reconcile(self, drifts: Iterable[Drift]) -> None:
        """What one reconcile found and repaired, per repository."""
        for drift in drifts:
            found = {"missing": drift.missing, "stale": drift.stale, "orphaned": drift.orphaned}
            for kind, files in found.items():
                if files:
                    self.reconcile_drift.labels(drift.repo, kind).inc(len(files))
            if drift.repaired is not None:
                self.reconcile_repaired.labels(drift.repo).inc(sum(map(len, found.values())))
            if drift.error is not None:
                self.reconcile_unreachable.labels(drift.repo).inc()

    def set_lag(self, lags: Iterable[RepoLag]) -> None:
        """Replace the lag gauges: repositories no longer indexed drop out."""
        lags = list(lags)
        for lag in lags:
            self.reachable.labels(lag.repo).set(lag.head is not None)
            for gauge, value in ((self.lag_commits, lag.commits), (self.lag_seconds, lag.seconds)):
                if value is None:
                    self._drop([gauge], {lag.repo})
                else:
                    gauge.labels(lag.repo).set(value)
        gone = self._lag_repos - {lag.repo for lag in lags}
        self._drop((self.lag_commits, self.lag_seconds, self.reachable), gone)
        self._lag_repos = {lag.repo for lag in lags}
        self.lag_refreshed.set_to_current_time()

    @staticmethod
    def _drop(gauges: Iterable[Gauge], repos: set[str]) -> None:
        for gauge in gauges:
            for repo in repos:
                try:
                    gauge.remove(repo)
                except KeyError:  # never set for this repository
                    pass


class _RerankLoadFailures(Collector):
    """`devrag_reranker_load_failures_total`: the models load once per process, so it is 0 or 1."""

    def __init__(self) -> None:
        self.models: Models | None = None

    def collect(self) -> Iterable[Metric]:
        failed = self.models is not None and self.models.rerank_error is not None
        family = CounterMetricFamily(
            "devrag_reranker_load_failures",
            "Reranker loads that failed; the server then answers without the rerank stage.",
        )
        family.add_metric([], float(failed))
        yield family
