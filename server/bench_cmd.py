"""`devrag bench`: search latency per stage and mode on the configured index, warm, in process."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click
from rich.console import Console

from devrag.eval.latency_bench import (
    DEFAULT_CANDIDATES,
    DEFAULT_REPEATS,
    DEFAULT_SWEEP_REPEATS,
    load_queries,
    parse_list,
)
from devrag.eval.latency_report import render
from devrag.retrieval.search import MODES, Filters, HybridIndex, Mode

if TYPE_CHECKING:
    from devrag.retrieval.index import Index
    from devrag.retrieval.models import Embedder
    from devrag.server.cli import Context
    from devrag.server.settings import Settings

SCALE_BENCH = 0  # `--scale` given without a number


def _modes(ctx: click.Context, param: click.Parameter, value: str) -> list[str]:
    modes = parse_list(value)
    unknown = sorted(set(modes) - set(MODES))
    if unknown or not modes:
        raise click.BadParameter(f"unknown modes {unknown}; choose from {list(MODES)}")
    return modes


def _counts(ctx: click.Context, param: click.Parameter, value: str) -> list[int]:
    try:
        counts = [int(c) for c in parse_list(value)]
    except ValueError as exc:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from exc
    if any(c < 1 for c in counts):
        raise click.BadParameter("candidate counts must be >= 1")
    return counts


@click.command("bench")
@click.option(
    "--corpus",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Time a fresh index of this folder (snapshotted to Git, the folder untouched) "
    "instead of the configured index.",
)
@click.option(
    "--scale",
    type=click.IntRange(0),
    default=1,
    is_flag=False,
    flag_value=SCALE_BENCH,
    show_default=True,
    help="With --corpus N: index N copies of it, to time a larger index. Alone: the scale benchmark "
    "(the shared runbooks replicated to --sizes chunks; startup, memory, first-stage latency and "
    "incremental ingest per size, side by side).",
)
@click.option(
    "--sizes",
    help="With --scale: index sizes in chunks, comma-separated [default: 55000,200000,1000000].",
)
@click.option(
    "--backend",
    type=click.Choice(["edge", "qdrant"]),
    default="edge",
    show_default=True,
    help="With --scale: the embedded engine, or the configured Qdrant server (--qdrant-url).",
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="With --corpus: keep the snapshot and index here, reused by the next run [default: a temp "
    "dir]. With --scale: the cache of built indexes [default: ~/.cache/devrag/scale].",
)
@click.option(
    "--queries",
    "golden",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Golden JSONL file whose `query` fields are timed [default: built-in ops queries].",
)
@click.option("--max-queries", type=click.IntRange(1), help="Time only the first N distinct queries.")
@click.option(
    "--modes", default=",".join(MODES), show_default=True, callback=_modes, help="Comma-separated modes."
)
@click.option(
    "--candidates",
    default=",".join(map(str, DEFAULT_CANDIDATES)),
    show_default=True,
    callback=_counts,
    help="Rerank candidate counts to sweep (empty: no sweep).",
)
@click.option(
    "--repeats", type=click.IntRange(1), default=DEFAULT_REPEATS, show_default=True, help="Passes per mode."
)
@click.option(
    "--sweep-repeats",
    type=click.IntRange(1),
    default=DEFAULT_SWEEP_REPEATS,
    show_default=True,
    help="Passes of the candidate sweep.",
)
@click.option("-k", "k", type=click.IntRange(1, 100), default=5, show_default=True, help="Results per query.")
@click.option("--repo", help="Time searches filtered to this indexed repository.")
@click.option("--path", "path_glob", help="Time searches filtered to paths matching this glob.")
@click.option("--type", "doc_type", help="Time searches filtered to this document type.")
@click.option(
    "--overhead",
    is_flag=True,
    help="Instead: search p50 with the server's metrics and tracing on vs off, interleaved.",
)
@click.option(
    "--runtimes",
    callback=lambda ctx, param, value: _runtimes(value),
    help="Instead, with --corpus: these runtimes side by side (onnx,torch; runtime:precision picks the "
    "reranker's, e.g. onnx:int8): raw embedding throughput on the corpus and the rerank stage, each on "
    "the same index and queries.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@click.pass_obj
def bench_cmd(
    obj: Context,
    corpus: Path | None,
    scale: int,
    sizes: str | None,
    backend: str,
    workdir: Path | None,
    golden: Path | None,
    max_queries: int | None,
    modes: list[str],
    candidates: list[int],
    repeats: int,
    sweep_repeats: int,
    k: int,
    repo: str | None,
    path_glob: str | None,
    doc_type: str | None,
    overhead: bool,
    runtimes: list[str],
    as_json: bool,
) -> None:
    """Time searches on the configured index: p50/p95 per stage and mode, rerank vs raw model."""
    from devrag.eval.latency_bench import run_bench
    from devrag.server.cli import load_embedder, reranker_for, run_or_exit
    from devrag.server.render import progress

    if scale == SCALE_BENCH and corpus is None:
        _scale(obj.settings(), sizes, backend, workdir, golden, max_queries, as_json)
        return
    if corpus is None and (scale > 1 or workdir is not None):
        raise click.UsageError("--scale N and --workdir need --corpus")
    if scale == SCALE_BENCH:
        raise click.UsageError("--scale with --corpus takes a number of copies")
    try:
        queries = load_queries(golden, max_queries)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    settings = obj.settings()
    if runtimes:
        if corpus is None:
            raise click.UsageError("--runtimes needs --corpus: the texts it embeds")
        _compare(settings, runtimes, corpus, workdir, queries, repeats, k, as_json)
        return
    embedder = load_embedder(settings)
    needs_reranker = "hybrid+rerank" in modes or (bool(candidates) and not overhead)
    reranker = run_or_exit(lambda: reranker_for(settings)) if needs_reranker else None
    with _bench_index(settings, embedder, corpus, scale, workdir) as (index, title, built):
        if overhead:
            _overhead(HybridIndex(index, embedder, reranker), queries, modes, repeats, k, as_json)
            return
        with progress("Timing queries", as_json) as bar:
            report = run_bench(
                index,
                embedder,
                reranker,
                queries,
                modes,
                candidates,
                repeats,
                k,
                sweep_repeats=sweep_repeats,
                progress=bar,
                filters=Filters(repo=repo, path=path_glob, doc_type=doc_type),
            )
    if built:
        report.environment["ingest"] = built
    if as_json:
        click.echo(json.dumps(report.model_dump(mode="json"), indent=2))
    else:
        render(report, title=f"{title}: {report.chunks} chunks")


RUNTIME_PRECISIONS = {"onnx": ("float32", "int8"), "torch": ("float32", "bfloat16")}


def _runtimes(value: str | None) -> list[str]:
    """`runtime` or `runtime:precision` entries, each checked against what that runtime runs."""
    runtimes = parse_list(value or "")
    for entry in runtimes:
        runtime, _, precision = entry.partition(":")
        if runtime not in RUNTIME_PRECISIONS:
            raise click.BadParameter(f"unknown runtime {runtime!r} in {entry!r}; choose from onnx, torch")
        if precision and precision not in RUNTIME_PRECISIONS[runtime]:
            choices = ", ".join(RUNTIME_PRECISIONS[runtime])
            raise click.BadParameter(f"{entry!r}: the {runtime} runtime runs {choices}")
    return runtimes


def _compare(
    settings: Settings,
    runtimes: list[str],
    corpus: Path,
    workdir: Path | None,
    queries: list[str],
    repeats: int,
    k: int,
    as_json: bool,
) -> None:
    """`--runtimes`: each runtime's models over one index of `corpus` (built with the first runtime)."""
    from devrag.eval.ingest_bench import chunk_texts
    from devrag.eval.runtime_bench import compare_runtimes, runtime_table
    from devrag.server.cli import load_embedder, reranker_for, run_or_exit

    models = {}
    for entry in runtimes:
        runtime, _, precision = entry.partition(":")
        chosen = settings.model_copy(update={"runtime": runtime, "rerank_precision": precision or "auto"})
        models[entry] = (load_embedder(chosen), run_or_exit(lambda chosen=chosen: reranker_for(chosen)))
    first = models[runtimes[0]][0]
    with _bench_index(settings, first, corpus, 1, workdir) as (index, title, _):
        report = compare_runtimes(index, models, chunk_texts(corpus, first), queries, repeats, k)
    if as_json:
        click.echo(json.dumps(report.model_dump(mode="json"), indent=2))
    else:
        Console(highlight=False, width=150).print(runtime_table(report, title))


@contextmanager
def _bench_index(
    settings: Settings, embedder: Embedder, corpus: Path | None, scale: int, workdir: Path | None
) -> Iterator[tuple[Index, str, dict[str, Any]]]:
    """The configured index, or a fresh one of `corpus` (its repository is named `bench`)."""
    from devrag.eval.bench_index import build_index
    from devrag.server.cli import opened_index, run_or_exit

    if corpus is None:
        with opened_index(settings, embedder) as index:
            index.check_compatible()
            if index.count() == 0:
                raise click.ClickException(
                    f"The index at {settings.store_location} is empty; run `devrag ingest`."
                )
            yield index, str(settings.store_location), {}
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = workdir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        # An old index kept in --workdir is told like any other: rebuild it.
        index, built = run_or_exit(lambda: build_index(corpus, folder, embedder, scale))
        try:
            yield index, f"{corpus} x{scale}", built.model_dump()
        finally:
            index.close()


def _overhead(
    searcher: HybridIndex, queries: list[str], modes: list[str], repeats: int, k: int, as_json: bool
) -> None:
    """`--overhead`: each search bare, and through the server's telemetry (span, metrics)."""
    from devrag.eval.telemetry_overhead import run_overhead
    from devrag.server.metrics import ServerMetrics
    from devrag.server.tracing import observed_search

    metrics = ServerMetrics()
    try:
        report = run_overhead(
            searcher,
            lambda run, request: observed_search(run, metrics, request, with_query=False),
            queries,
            [cast(Mode, m) for m in modes],
            repeats,
            k,
        )
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        searcher.close()
    if as_json:
        click.echo(json.dumps(report.model_dump(mode="json"), indent=2))
        return
    click.echo(f"{report.queries} queries x {report.repeats} passes, {report.spans_recorded} spans recorded")
    click.echo("| mode | searches | p50 off ms | p50 on ms | delta ms | delta % | p95 off ms | p95 on ms |")
    click.echo("|---|---|---|---|---|---|---|---|")
    for r in report.rows:
        cells = [r.mode, r.searches, r.p50_off_ms, r.p50_on_ms, r.p50_delta_ms, r.p50_delta_pct]
        cells += [r.p95_off_ms, r.p95_on_ms]
        click.echo("| " + " | ".join(map(str, cells)) + " |")


def _scale(
    settings: Settings,
    sizes: str | None,
    backend: str,
    workdir: Path | None,
    golden: Path | None,
    max_queries: int | None,
    as_json: bool,
) -> None:
    """`--scale`: the scale benchmark (`devrag.eval.scale_bench`) with the configured models."""
    from devrag.eval.scale_bench import DEFAULT_SIZES, ScaleOptions, parse_sizes, run_scale_bench
    from devrag.eval.scale_probe import ModelSpec
    from devrag.eval.scale_report import render as render_scale

    try:
        chosen = parse_sizes(sizes) if sizes else list(DEFAULT_SIZES)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--sizes") from exc
    models = ModelSpec(
        embed_model=settings.embed_model,
        rerank_model=settings.rerank_model,
        runtime=settings.runtime,
        onnx_dir=str(settings.onnx_dir),
    )
    options = ScaleOptions(
        sizes=chosen,
        backend=backend,  # type: ignore[arg-type]
        qdrant_url=settings.qdrant_url,
        models=models,
        golden=[golden] if golden else [],
        queries=max_queries or ScaleOptions().queries,
        **({"workdir": workdir} if workdir else {}),
    )
    report = run_scale_bench(options, say=lambda line: click.echo(line, err=True))
    if as_json:
        click.echo(report.model_dump_json(indent=2))
    else:
        render_scale(report)
