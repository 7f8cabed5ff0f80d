"""Search latency benchmark: per-stage p50/p95 per mode, the reranker against its raw model, and
rerank time per candidate count, all measured warm and in process on the index at hand.

`devrag bench` runs :func:`run_bench` on the configured index, or with `--corpus DIR [--scale N]`
on a fresh index of a corpus folder (optionally replicated N times under `copy-01/`, `copy-02/`,
... to reach a larger index; see `devrag.eval.bench_index`).

What a number means:

* every timed query is a *fresh* query: the searcher's query-vector cache and the reranker's
  score cache are cleared before each search, so repeats cost what a new query costs;
* modes (and candidate counts) are interleaved query by query, so load on the machine falls on
  all of them alike, and ratios measured side by side are more trustworthy than absolute times;
* `raw_rerank` is `predict()` on exactly the (query, passage) pairs the rerank stage sent to the
  model in the same run, timed right before or right after it (alternating between repeats).

Replicated copies share their texts, and the reranker scores an identical passage once, so on a
`--scale N` index the rerank stage sees far fewer pairs than candidates (`pairs_by_candidates`
says how many): its cost depends on the pairs scored, not on the index size, so read rerank
times from an unreplicated index. On a busy machine, torch's OpenMP threads spin while they wait
and stall each other; `OMP_WAIT_POLICY=PASSIVE` avoids that (the report records the setting).
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from devrag.eval.latency_report import STAGES, LatencyReport, RerankSample, percentiles, ratio
from devrag.retrieval.index import Index
from devrag.retrieval.models import Embedder
from devrag.retrieval.rerank import Reranker
from devrag.retrieval.search import MODES, Filters, HybridIndex
from devrag.retrieval.search_config import SearchConfig

DEFAULT_MODE = "hybrid+rerank"
DEFAULT_CANDIDATES: tuple[int, ...] = (10, 20, 30, 50)
DEFAULT_REPEATS = 3
DEFAULT_SWEEP_REPEATS = 1  # the sweep scores 110 pairs per query: one pass is most of a run's time

# What on-call engineers type: alert names, symptoms, and how-do-I questions, across the three
# shared corpora (prometheus-operator, OpenShift, GitLab) and beyond them.
DEFAULT_QUERIES: tuple[str, ...] = (
    "pods stuck in CrashLoopBackOff after a deploy",
    "node filesystem almost out of space",
    "etcd high fsync durations slow disk",
    "Alertmanager failed to reload its configuration",
    "Prometheus target down, scrape failing",
    "kube-apiserver returning a high rate of 5xx errors",
    "client certificate for the API server is about to expire",
    "PersistentVolume is filling up",
    "how do I drain a node before maintenance",
    "KubeJobFailed: job did not complete",
    "container OOMKilled, memory limit reached",
    "high CPU throttling in the payments namespace",
    "DNS resolution failures inside the cluster, CoreDNS errors",
    "postgres replication lag on the replica is growing",
    "Sidekiq queue backlog keeps growing",
    "Gitaly latency is high for git operations",
    "Redis memory saturation",
    "roll back a bad release with helm",
    "machine config pool is degraded",
    "cluster operator reports Degraded=True",
    "ingress controller returns 503 Service Unavailable",
    "ImagePullBackOff, registry unreachable",
    "namespace resource quota almost full",
    "deployment has not matched the expected number of replicas",
    "Prometheus remote write is falling behind",
    "clock skew detected, NTP not synchronised on node",
    "HorizontalPodAutoscaler is running at max replicas",
    "network interface is dropping packets on a node",
    "TLS handshake errors at the load balancer",
    "pgbouncer connection pool saturated",
    "how to silence an alert in Alertmanager",
    "Thanos compactor has halted",
)
WARMUP_QUERIES: tuple[str, ...] = (
    "disk pressure eviction on worker nodes",
    "alert for too many restarts of a pod",
    "how to rotate the etcd encryption key",
)


def unique_queries(texts: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(t for t in texts if t.strip()))


class _PairRecorder:
    """Records the pairs a reranker sends to its model, by wrapping its `predict` on the instance.

    The wrapper adds one list append to the timed stage. Rerankers without `predict` (only the
    `Reranker` protocol) get no raw measurement.
    """

    def __init__(self, reranker: Reranker | None) -> None:
        self.reranker = reranker
        self.raw: Callable[[Sequence[tuple[str, str]]], list[float]] | None = getattr(
            reranker, "predict", None
        )
        self.calls: list[list[tuple[str, str]]] = []

    @contextmanager
    def installed(self) -> Iterator[None]:
        raw = self.raw
        if raw is None or self.reranker is None:
            yield
            return

        def recording(pairs: Sequence[tuple[str, str]]) -> list[float]:
            self.calls.append(list(pairs))
            return raw(pairs)

        self.reranker.predict = recording  # type: ignore[attr-defined]
        try:
            yield
        finally:
            del self.reranker.predict  # type: ignore[attr-defined]

    def take(self) -> list[list[tuple[str, str]]]:
        calls, self.calls = self.calls, []
        return calls

    def time_raw(self, calls: Sequence[Sequence[tuple[str, str]]]) -> float:
        assert self.raw is not None
        started = time.perf_counter()
        for pairs in calls:
            self.raw(pairs)
        return (time.perf_counter() - started) * 1000


def forget_caches(searcher: HybridIndex) -> None:
    """Make the next search a fresh query: no cached query vector, no cached rerank score."""
    searcher._query_vectors.clear()
    cache = getattr(searcher.reranker, "_cache", None)
    if cache is not None:
        cache.clear()


class _Bench:
    def __init__(self, searcher: HybridIndex, recorder: _PairRecorder, k: int, filters: Filters) -> None:
        self.searcher, self.recorder, self.k, self.filters = searcher, recorder, k, filters
        self.known: dict[tuple[str, int], list[list[tuple[str, str]]]] = {}

    def search(self, query: str, mode: str) -> dict[str, float]:
        forget_caches(self.searcher)
        return self.searcher.search(query, self.k, mode, self.filters).timings_ms  # type: ignore[arg-type]

    def reranked(self, query: str, candidates: int, raw_first: bool) -> tuple[dict[str, float], RerankSample]:
        """One hybrid+rerank search and the raw model on its pairs, the raw call before or after."""
        key = (query, candidates)
        known = self.known.get(key)
        measure_raw = self.recorder.raw is not None
        raw_ms = self.recorder.time_raw(known) if measure_raw and raw_first and known else None
        self.recorder.take()
        timings = self.search(query, "hybrid+rerank")
        calls = self.recorder.take()
        if measure_raw and (raw_ms is None or calls != known):
            raw_ms = self.recorder.time_raw(calls)  # after the search: the first time, or pairs changed
        self.known[key] = calls
        sample = RerankSample(
            stage_ms=timings.get("rerank", 0.0),
            raw_ms=raw_ms if raw_ms is not None else math.nan,
            pairs=sum(map(len, calls)),
        )
        return timings, sample


def _configured(searcher: HybridIndex, base: SearchConfig, candidates: int) -> None:
    """Rerank `candidates`, and fetch enough first-stage candidates that fusion can supply them."""
    searcher.config = base.model_copy(
        update={"rerank_candidates": candidates, "min_candidates": max(base.min_candidates, candidates)}
    )


def run_bench(
    index: Index,
    embedder: Embedder,
    reranker: Reranker | None,
    queries: Sequence[str] = DEFAULT_QUERIES,
    modes: Sequence[str] = MODES,
    candidates: Sequence[int] = DEFAULT_CANDIDATES,
    repeats: int = DEFAULT_REPEATS,
    k: int = 5,
    config: SearchConfig | None = None,
    sweep_repeats: int = DEFAULT_SWEEP_REPEATS,
    warmup: Sequence[str] = WARMUP_QUERIES,
    progress: Callable[[int, int], None] | None = None,
    filters: Filters | None = None,
) -> LatencyReport:
    """Time `queries` on `index` in every mode, `repeats` times each, warm; see the module docstring."""
    queries = unique_queries(queries)
    if not queries:
        raise ValueError("no queries to time")
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        raise ValueError(f"unknown modes {unknown}; choose from {list(MODES)}")
    if reranker is None and (DEFAULT_MODE in modes or candidates):
        raise ValueError("mode hybrid+rerank and the candidate sweep need a reranker")
    base = config or SearchConfig()
    searcher = HybridIndex(index, embedder, reranker, base)
    recorder = _PairRecorder(reranker)
    filters = filters or Filters()
    bench = _Bench(searcher, recorder, k, filters)
    load_before = os.getloadavg()
    started = time.perf_counter()
    try:
        with recorder.installed():
            _warm_up(bench, searcher, base, warmup or queries[:3], modes, candidates)
            stage_samples, rerank_samples, sweep = _measure(
                bench, searcher, base, queries, modes, candidates, repeats, sweep_repeats, progress
            )
    finally:
        searcher.config = base
        searcher.close()
    return _report(
        index.count(),
        stage_samples,
        rerank_samples,
        sweep,
        modes,
        queries,
        (repeats, sweep_repeats),
        k,
        filters,
        base,
        time.perf_counter() - started,
        _environment(index, embedder, reranker, load_before),
    )


def _warm_up(
    bench: _Bench,
    searcher: HybridIndex,
    base: SearchConfig,
    warmup: Sequence[str],
    modes: Sequence[str],
    candidates: Sequence[int],
) -> None:
    for query in warmup:
        for mode in modes:
            if mode == "hybrid+rerank":
                bench.reranked(query, base.rerank_candidates, raw_first=False)
            else:
                bench.search(query, mode)
        for count in candidates:
            _configured(searcher, base, count)
            bench.reranked(query, count, raw_first=False)
        searcher.config = base


def _measure(
    bench: _Bench,
    searcher: HybridIndex,
    base: SearchConfig,
    queries: Sequence[str],
    modes: Sequence[str],
    candidates: Sequence[int],
    repeats: int,
    sweep_repeats: int,
    progress: Callable[[int, int], None] | None,
) -> tuple[dict[str, list[dict[str, float]]], list[RerankSample], dict[int, list[RerankSample]]]:
    stage_samples: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
    rerank_samples: list[RerankSample] = []
    sweep: dict[int, list[RerankSample]] = {c: [] for c in candidates}
    passes = max(repeats, sweep_repeats)
    for repeat in range(passes):
        raw_first = repeat % 2 == 1
        for n, query in enumerate(queries):
            searcher.config = base
            for mode in _rotated(modes, n + repeat) if repeat < repeats else []:
                if mode == "hybrid+rerank":
                    timings, sample = bench.reranked(query, base.rerank_candidates, raw_first)
                    rerank_samples.append(sample)
                else:
                    timings = bench.search(query, mode)
                stage_samples[mode].append(timings)
            for count in candidates if repeat < sweep_repeats else []:
                _configured(searcher, base, count)
                sweep[count].append(bench.reranked(query, count, raw_first)[1])
            if progress:
                progress(repeat * len(queries) + n + 1, passes * len(queries))
    searcher.config = base
    return stage_samples, rerank_samples, sweep


def _rotated(modes: Sequence[str], shift: int) -> list[str]:
    """`modes` starting at another one each query, so that none always runs first (after a sweep)."""
    shift %= max(len(modes), 1)
    return [*modes[shift:], *modes[:shift]]


def _report(
    chunks: int,
    stage_samples: dict[str, list[dict[str, float]]],
    rerank_samples: list[RerankSample],
    sweep: dict[int, list[RerankSample]],
    modes: Sequence[str],
    queries: Sequence[str],
    repeats: tuple[int, int],
    k: int,
    filters: Filters,
    base: SearchConfig,
    seconds: float,
    environment: dict[str, Any],
) -> LatencyReport:
    by_mode = {
        mode: {
            stage: percentiles([t[stage] for t in samples])
            for stage in STAGES
            if samples and stage in samples[0]
        }
        for mode, samples in stage_samples.items()
    }
    default = DEFAULT_MODE if DEFAULT_MODE in modes else modes[-1]
    raw = [s.raw_ms for s in rerank_samples if not math.isnan(s.raw_ms)]
    stage = [s.stage_ms for s in rerank_samples if not math.isnan(s.raw_ms)]
    raw_stats = percentiles(raw) if raw else None
    stage_stats = percentiles(stage)
    paired = [s.stage_ms / s.raw_ms for s in rerank_samples if s.raw_ms > 0]
    ratios = {}
    if raw_stats is not None:
        ratios = {
            "p50": ratio(stage_stats.p50_ms, raw_stats.p50_ms),
            "p95": ratio(stage_stats.p95_ms, raw_stats.p95_ms),
            "median_per_query": round(statistics.median(paired), 3) if paired else math.nan,
        }
    return LatencyReport(
        chunks=chunks,
        stages=by_mode.get(default, {}),
        raw_rerank=raw_stats,
        modes=by_mode,
        rerank_by_candidates={str(c): percentiles([s.stage_ms for s in v]) for c, v in sweep.items()},
        raw_rerank_by_candidates={
            str(c): percentiles([s.raw_ms for s in v if not math.isnan(s.raw_ms)]) for c, v in sweep.items()
        },
        pairs_by_candidates={
            str(c): round(statistics.fmean(s.pairs for s in v), 1) if v else 0.0 for c, v in sweep.items()
        },
        rerank_over_raw=ratios,
        default_mode=default,
        queries=len(queries),
        repeats=repeats[0],
        sweep_repeats=repeats[1],
        k=k,
        filters=filters.model_dump(exclude_none=True),
        rerank_candidates=base.rerank_candidates,
        rerank_pairs_mean=(
            round(statistics.fmean(s.pairs for s in rerank_samples), 1) if rerank_samples else None
        ),
        seconds=round(seconds, 1),
        environment=environment,
    )


def _environment(
    index: Index, embedder: Embedder, reranker: Reranker | None, load_before: tuple[float, ...]
) -> dict[str, Any]:
    env: dict[str, Any] = {
        "store": index.store.location,
        "embed_model": embedder.name,
        "rerank_model": reranker.name if reranker is not None else None,
        "cpus": os.cpu_count(),
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        # libgomp's threads spin while they wait (ACTIVE, the default): on a busy machine that stalls
        # every torch call with 2+ threads; these decide how the model calls behave.
        "omp": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")},
    }
    shard = getattr(index.store, "shard", None)  # the embedded engine: is the vector index built?
    if shard is not None:
        info = shard.info()
        env["segments"], env["indexed_vectors"] = info.segments_count, info.indexed_vectors_count
    try:
        import torch

        env["torch_threads"] = torch.get_num_threads()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return env


def parse_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def load_queries(golden: Path | None, limit: int | None = None) -> list[str]:
    """The built-in queries, or the `query` fields of a golden JSONL file; first `limit` distinct."""
    if golden is None:
        texts = list(DEFAULT_QUERIES)
    else:
        from devrag.eval.golden import load_golden

        texts = [q.query for q in load_golden(golden)]
    texts = unique_queries(texts)
    return texts[:limit] if limit else texts
