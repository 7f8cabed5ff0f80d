"""What the scale benchmark measured, per index size, and the table that shows it side by side."""

from __future__ import annotations

from pydantic import BaseModel, Field
from rich.console import Console
from rich.table import Table

from devrag.eval.latency_report import percentiles
from devrag.eval.scale_index import ScaleIndex

MIB = 1024 * 1024


class Latency(BaseModel):
    """Wall-clock milliseconds of one search variant over its queries."""

    queries: int
    p50_ms: float
    p95_ms: float
    # Chunks the variant's filter keeps (None: unfiltered).
    filter: str | None = None
    # The median and p95 of each stage the search reports (embed, dense, bm25, payloads, fusion):
    # where the time goes, and which stage makes the tail.
    stages_p50_ms: dict[str, float] = Field(default_factory=dict)
    stages_p95_ms: dict[str, float] = Field(default_factory=dict)

    @classmethod
    def of(
        cls, samples_ms: list[float], filter: str | None = None, stages: dict[str, list[float]] | None = None
    ) -> Latency:
        p = percentiles(samples_ms)
        each = {name: percentiles(values) for name, values in (stages or {}).items()}
        return cls(
            queries=len(samples_ms),
            p50_ms=round(p.p50_ms, 1),
            p95_ms=round(p.p95_ms, 1),
            filter=filter,
            stages_p50_ms={name: round(q.p50_ms, 1) for name, q in each.items()},
            stages_p95_ms={name: round(q.p95_ms, 1) for name, q in each.items()},
        )


class Probe(BaseModel):
    """One fresh search process on one index (`devrag.eval.scale_probe`), models loaded before timing."""

    mode: str
    # Opening the index and answering the first query in `mode`, models already warm.
    first_answer_s: float
    # From the process's start (interpreter, imports, model loading) to that first answer.
    whole_process_s: float
    models_s: float
    rss_first_mib: float
    rss_after_queries_mib: float | None = None
    latency: dict[str, Latency] = Field(default_factory=dict)  # "unfiltered", "path", "repo"


class IngestCost(BaseModel):
    """Incremental ingests of one edited section (edits and their reverts), in seconds."""

    samples_s: list[float]
    median_s: float
    embedded: int  # chunks embedded per run (1 is the point: one section)
    written: int
    fraction_of_smallest: float | None = None


class SizeRow(BaseModel):
    size: int
    index: ScaleIndex | None = None
    # The engine's own process: opening the shard cold, and its resident memory then and at the end.
    engine_open_s: float | None = None
    engine_warm_s: float | None = None  # until the owner had read every vector (see `_Owner.warm`)
    engine_rss_open_mib: float | None = None
    engine_rss_end_mib: float | None = None
    probes: dict[str, Probe] = Field(default_factory=dict)
    ingest: IngestCost | None = None
    errors: list[str] = Field(default_factory=list)


class ScaleReport(BaseModel):
    backend: str
    backend_note: str
    environment: dict[str, str | int | float]
    rows: list[SizeRow]
    notes: list[str] = Field(default_factory=list)


def _ms(latency: Latency | None) -> str:
    """p50 / p95 to the tenth: filtered and unfiltered differ by a few milliseconds at most."""
    return f"{latency.p50_ms:.1f} / {latency.p95_ms:.1f}" if latency else "-"


def _num(value: float | None, fmt: str = "{:.2f}") -> str:
    return "-" if value is None else fmt.format(value)


def startup_table(report: ScaleReport) -> Table:
    table = Table(title=f"Startup and memory ({report.backend}): fresh process per size, models warm")
    for column in (
        "size",
        "chunks",
        "build s",
        "vector index s",
        "disk GiB",
        "engine open s",
        "engine warm s",
        "engine RSS MiB",
        "first answer s (engine cold)",
        "first answer s (hybrid)",
        "first answer s (+rerank)",
        "whole process s",
        "RSS first MiB",
        "RSS after queries MiB",
    ):
        table.add_column(column, justify="right")
    for row in report.rows:
        hybrid, rerank = row.probes.get("hybrid"), row.probes.get("hybrid+rerank")
        cold = row.probes.get("engine cold")
        index = row.index
        engine_rss = (
            f"{_num(row.engine_rss_open_mib, '{:,.0f}')} -> {_num(row.engine_rss_end_mib, '{:,.0f}')}"
        )
        table.add_row(
            f"{row.size:,}",
            f"{index.chunks:,}" if index else "-",
            _built(index.build_seconds) if index else "-",
            _built(index.vector_index_seconds) if index else "-",
            f"{index.disk_bytes / 1024**3:.1f}" if index else "-",
            _num(row.engine_open_s),
            _num(row.engine_warm_s),
            engine_rss,
            _num(cold.first_answer_s if cold else None),
            _num(hybrid.first_answer_s if hybrid else None),
            _num(rerank.first_answer_s if rerank else None),
            _num(hybrid.whole_process_s if hybrid else None),
            _num(hybrid.rss_first_mib if hybrid else None, "{:,.0f}"),
            _num(hybrid.rss_after_queries_mib if hybrid else None, "{:,.0f}"),
        )
    return table


def latency_table(report: ScaleReport) -> Table:
    table = Table(
        title="First stage (mode hybrid: embed + dense + BM25 + fusion), p50 / p95 ms; ingest of one edit"
    )
    for column in ("size", "unfiltered", "--path", "--repo", "ingest one edit s", "x smallest"):
        table.add_column(column, justify="right")
    for row in report.rows:
        hybrid = row.probes.get("hybrid")
        latency = hybrid.latency if hybrid else {}
        ingest = row.ingest
        table.add_row(
            f"{row.size:,}",
            _ms(latency.get("unfiltered")),
            _ms(latency.get("path")),
            _ms(latency.get("repo")),
            _num(ingest.median_s if ingest else None),
            _num(ingest.fraction_of_smallest if ingest else None),
        )
    return table


_STAGES = ("embed", "dense", "bm25", "payloads", "fusion")


def stage_table(report: ScaleReport) -> Table:
    """The unfiltered first stage by stage: the p95 of the whole is one stage's tail or several's."""
    table = Table(title="Unfiltered first stage by stage, p50 / p95 ms (BM25 runs beside embed and dense)")
    for column in ("size", *_STAGES):
        table.add_column(column, justify="right")
    for row in report.rows:
        hybrid = row.probes.get("hybrid")
        latency = hybrid.latency.get("unfiltered") if hybrid else None
        cells = [_stage(latency, name) for name in _STAGES]
        table.add_row(f"{row.size:,}", *cells)
    return table


def _stage(latency: Latency | None, name: str) -> str:
    if latency is None or name not in latency.stages_p50_ms:
        return "-"
    return f"{latency.stages_p50_ms[name]:.1f} / {latency.stages_p95_ms.get(name, float('nan')):.1f}"


def render(report: ScaleReport, console: Console | None = None) -> None:
    console = console or Console(highlight=False, width=200)
    console.print(f"backend: {report.backend} ({report.backend_note})")
    console.print(startup_table(report))
    console.print(latency_table(report))
    console.print(stage_table(report))
    filters = next((p.latency for r in report.rows for p in r.probes.values() if p.latency), {})
    for name, latency in filters.items():
        if latency.filter:
            console.print(f"{name}: {latency.filter}")
    for row in report.rows:
        for error in row.errors:
            console.print(f"[red]{row.size:,}: {error}[/red]")
    for note in report.notes:
        console.print(note)


def _built(seconds: float | None) -> str:
    return "cached" if seconds is None else f"{seconds:,.0f}"
