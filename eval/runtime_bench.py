"""The runtimes side by side in one run: raw embedding throughput and the rerank stage, per runtime.

`devrag bench --corpus DIR --runtimes onnx,torch` runs this. Each runtime embeds the same chunk
texts of the corpus (the raw model call that ingestion's throughput is held against) and then
answers the same queries in hybrid+rerank on the same index, timed as `run_bench` times it: the
rerank stage and the raw `predict` on the very pairs that stage scored. The runtimes embed in
turns, slice by slice, each turn starting with the next runtime: timed one after the other, the
runtime timed later ran slower in both orders on a shared machine (1.61x against 1.28x for the
same pair). The rerank stages still run one runtime after the other.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from pydantic import BaseModel
from rich.table import Table

from devrag.eval.latency_bench import DEFAULT_REPEATS, run_bench
from devrag.eval.latency_report import Percentiles
from devrag.retrieval.index import Index
from devrag.retrieval.models import Embedder
from devrag.retrieval.rerank import Reranker
from devrag.retrieval.search_config import SearchConfig

WARM_TEXTS = 64
EMBED_TURNS = 8  # slices of the texts, each embedded by every runtime in turn


class RuntimeRow(BaseModel):
    runtime: str
    embed_model: str
    rerank_model: str
    rerank_precision: str | None  # what `auto` resolved to
    embed_chunks: int
    embed_seconds: float
    embed_chunks_per_second: float
    rerank_stage: Percentiles
    raw_rerank: Percentiles | None
    rerank_over_raw: dict[str, float]
    rerank_pairs_mean: float | None


class RuntimeComparison(BaseModel):
    """What `devrag bench --runtimes ... --json` prints."""

    chunks: int
    queries: int
    repeats: int
    rerank_candidates: int
    rows: list[RuntimeRow]
    load_avg: dict[str, list[float]]


def compare_runtimes(
    index: Index,
    models: dict[str, tuple[Embedder, Reranker]],
    texts: Sequence[str],
    queries: Sequence[str],
    repeats: int = DEFAULT_REPEATS,
    k: int = 5,
) -> RuntimeComparison:
    """Embed `texts` with each runtime in turns, then time `queries` reranked, one runtime after another."""
    before = [round(x, 2) for x in os.getloadavg()]
    embed_seconds = embedding_seconds({runtime: pair[0] for runtime, pair in models.items()}, texts)
    rows = []
    for runtime, (embedder, reranker) in models.items():
        seconds = embed_seconds[runtime]
        report = run_bench(index, embedder, reranker, queries, ["hybrid+rerank"], [], repeats, k)
        rows.append(
            RuntimeRow(
                runtime=runtime,
                embed_model=embedder.name,
                rerank_model=reranker.name,
                rerank_precision=getattr(reranker, "precision", None),
                embed_chunks=len(texts),
                embed_seconds=round(seconds, 2),
                embed_chunks_per_second=round(len(texts) / seconds, 1) if seconds else 0.0,
                rerank_stage=report.stages["rerank"],
                raw_rerank=report.raw_rerank,
                rerank_over_raw=report.rerank_over_raw,
                rerank_pairs_mean=report.rerank_pairs_mean,
            )
        )
    return RuntimeComparison(
        chunks=index.count(),
        queries=len(queries),
        repeats=repeats,
        rerank_candidates=SearchConfig().rerank_candidates,
        rows=rows,
        load_avg={"before": before, "after": [round(x, 2) for x in os.getloadavg()]},
    )


def embedding_seconds(embedders: dict[str, Embedder], texts: Sequence[str]) -> dict[str, float]:
    """Each runtime's time to embed `texts`, taken in turns so a drifting machine favours none."""
    for embedder in embedders.values():
        embedder.embed(list(texts[:WARM_TEXTS]))  # the first calls pay for allocations, not the model
    seconds = dict.fromkeys(embedders, 0.0)
    names = list(embedders)
    step = max(1, -(-len(texts) // EMBED_TURNS))
    for turn, start in enumerate(range(0, len(texts), step)):
        part = list(texts[start : start + step])
        for name in names[turn % len(names) :] + names[: turn % len(names)]:
            started = time.perf_counter()
            embedders[name].embed(part)
            seconds[name] += time.perf_counter() - started
    return seconds


def runtime_table(report: RuntimeComparison, title: str) -> Table:
    table = Table(
        "runtime",
        "raw embedding, chunks/s",
        "rerank stage p50 / p95 ms",
        "raw predict p50 / p95 ms",
        "stage / raw (p95)",
        title=f"{title}: {report.chunks} chunks, {report.queries} queries x {report.repeats}, "
        f"{report.rerank_candidates} candidates; load average {report.load_avg}",
    )
    for row in report.rows:
        raw = row.raw_rerank
        table.add_row(
            f"{row.runtime} ({row.rerank_precision})" if row.rerank_precision else row.runtime,
            f"{row.embed_chunks_per_second:.1f} ({row.embed_chunks} in {row.embed_seconds:.1f} s)",
            f"{row.rerank_stage.p50_ms:.1f} / {row.rerank_stage.p95_ms:.1f}",
            f"{raw.p50_ms:.1f} / {raw.p95_ms:.1f}" if raw else "-",
            f"{row.rerank_over_raw.get('p95', float('nan')):.3f}",
        )
    return table
