"""The latency benchmark's report: its JSON shape and the tables a person reads."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

STAGES: tuple[str, ...] = ("embed", "dense", "bm25", "fusion", "rerank", "total")
TARGETS = {"hybrid_p95_ms": 50.0, "hybrid_rerank_p95_ms": 1000.0, "rerank_over_raw": 1.15}


class Percentiles(BaseModel):
    p50_ms: float
    p95_ms: float


class RerankSample(BaseModel):
    """The rerank stage and the raw model on the same pairs, for one query."""

    stage_ms: float
    raw_ms: float
    pairs: int


class LatencyReport(BaseModel):
    """What `devrag bench --json` prints; the first five keys are the stable summary."""

    chunks: int
    stages: dict[str, Percentiles]  # of `default_mode`
    raw_rerank: Percentiles | None
    modes: dict[str, dict[str, Percentiles]]
    rerank_by_candidates: dict[str, Percentiles]
    raw_rerank_by_candidates: dict[str, Percentiles]
    pairs_by_candidates: dict[str, float]  # mean pairs actually scored per query
    rerank_over_raw: dict[str, float]  # p50 ratio, p95 ratio, median of per-query ratios
    default_mode: str
    queries: int
    repeats: int
    sweep_repeats: int
    k: int
    filters: dict[str, str]  # applied to every timed search (none by default)
    rerank_candidates: int
    rerank_pairs_mean: float | None
    seconds: float
    environment: dict[str, Any]


def percentiles(values: Sequence[float]) -> Percentiles:
    """p50 and p95 with linear interpolation (numpy's default)."""
    if not values:
        return Percentiles(p50_ms=math.nan, p95_ms=math.nan)
    p50, p95 = np.percentile(np.asarray(values, dtype=float), [50, 95])
    return Percentiles(p50_ms=round(float(p50), 3), p95_ms=round(float(p95), 3))


def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b and not math.isnan(a) and not math.isnan(b) else math.nan


def _cell(p: Percentiles | None) -> str:
    if p is None or math.isnan(p.p50_ms):
        return "-"
    return f"{p.p50_ms:.1f} / {p.p95_ms:.1f}"


def _verdict(ok: bool) -> str:
    return "[green]met[/green]" if ok else "[red]missed[/red]"


def tables(report: LatencyReport, title: str | None = None) -> list[Table]:
    """The report as rich tables: stages per mode, rerank per candidate count, targets."""
    head = title or f"search latency: {report.chunks} chunks"
    where = ", filters " + " ".join(f"{k}={v}" for k, v in report.filters.items()) if report.filters else ""
    stages = Table(
        "mode",
        *STAGES,
        title=f"{head}, {report.queries} queries x {report.repeats}, k={report.k}{where} (p50 / p95 ms)",
    )
    for mode, values in report.modes.items():
        stages.add_row(mode, *[_cell(values.get(s)) for s in STAGES])
    if report.raw_rerank is not None:
        stages.add_row(
            f"raw predict, same pairs ({report.rerank_pairs_mean} pairs/query)",
            *["" for _ in STAGES[:4]],
            _cell(report.raw_rerank),
            "",
            style="dim",
        )
    out = [stages]
    if report.rerank_by_candidates:
        sweep = Table(
            "candidates",
            "pairs scored",
            "rerank stage",
            "raw predict",
            "stage / raw (p50)",
            title=f"rerank time by candidate count, {report.queries} queries x {report.sweep_repeats}"
            " (p50 / p95 ms)",
        )
        for count, stat in report.rerank_by_candidates.items():
            raw = report.raw_rerank_by_candidates.get(count)
            sweep.add_row(
                count,
                f"{report.pairs_by_candidates.get(count, 0):.1f}",
                _cell(stat),
                _cell(raw),
                f"{ratio(stat.p50_ms, raw.p50_ms):.3f}" if raw else "-",
            )
        out.append(sweep)
    out.append(_targets(report))
    return out


def _targets(report: LatencyReport) -> Table:
    table = Table("target", "measured", "verdict", title="targets")
    hybrid = report.modes.get("hybrid", {}).get("total")
    if hybrid is not None:
        limit = TARGETS["hybrid_p95_ms"]
        table.add_row(
            f"hybrid p95 <= {limit:.0f} ms", f"{hybrid.p95_ms:.1f} ms", _verdict(hybrid.p95_ms <= limit)
        )
    reranked = report.modes.get("hybrid+rerank", {}).get("total")
    if reranked is not None:
        limit = TARGETS["hybrid_rerank_p95_ms"]
        pairs = report.rerank_pairs_mean or 0.0
        few = (
            f"; only {pairs} distinct passages per query of {report.rerank_candidates} candidates "
            "(identical texts are scored once): not representative"
            if pairs < 0.9 * report.rerank_candidates
            else ""
        )
        table.add_row(
            f"hybrid+rerank p95 <= {limit:.0f} ms",
            f"{reranked.p95_ms:.1f} ms{few}",
            _verdict(reranked.p95_ms <= limit),
        )
    ratio = report.rerank_over_raw.get("p50")
    if ratio is not None and not math.isnan(ratio):
        limit = TARGETS["rerank_over_raw"]
        per_query = report.rerank_over_raw.get("median_per_query", math.nan)
        table.add_row(
            f"rerank stage / raw predict <= {limit}",
            f"{ratio:.3f} (p50s), {per_query:.3f} (median per query), "
            f"{report.rerank_over_raw.get('p95', math.nan):.3f} (p95s)",
            _verdict(ratio <= limit),
        )
    env = report.environment
    table.add_row(
        "load average (1 min) before / after",
        f"{env.get('load_avg_before', ['?'])[0]} / {env.get('load_avg_after', ['?'])[0]} "
        f"on {env.get('cpus')} CPUs, {env.get('torch_threads')} torch threads, "
        f"OMP_WAIT_POLICY={(env.get('omp') or {}).get('OMP_WAIT_POLICY') or 'unset'}",
        "",
    )
    return table


def render(report: LatencyReport, console: Console | None = None, title: str | None = None) -> None:
    if console is None:
        console = Console(highlight=False)
        if not console.is_terminal:  # rich assumes 80 columns when piped; the tables need more
            console.width = 150
    for table in tables(report, title):
        console.print(table)
