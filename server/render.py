"""Human output for the CLI: tables and summaries on stdout, progress bars on stderr."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from devrag.eval.harness import EvalReport
from devrag.ingest.forget import ForgetSummary
from devrag.ingest.pipeline import IngestSummary
from devrag.ingest.reconcile import Drift
from devrag.ingest.status import IndexStatus
from devrag.retrieval.search import SearchResponse

out = Console(highlight=False)
err = Console(stderr=True)


@contextmanager
def progress(label: str, quiet: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A progress callback drawing a bar on a terminal; None when nobody watches."""
    if quiet or not err.is_terminal:
        yield None
        return
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def ingest_summary(s: IngestSummary) -> None:
    verdict = "[green]verified[/green]" if s.verified else "[red]NOT verified[/red]"
    out.print(f"[bold]{s.repo}[/bold] at {s.commit[:12]} ({s.mode}, {s.seconds:.2f}s, {verdict})")
    out.print("files:  " + ", ".join(f"{k} {v}" for k, v in s.files.items()))
    out.print("chunks: " + ", ".join(f"{k} {v}" for k, v in s.chunks.items()))
    for skipped in s.skipped:
        out.print(f"  skipped {skipped.path}: {skipped.reason}")


def index_status(status: IndexStatus) -> None:
    out.print(f"store: {status.store}  model: {status.embed_model}  chunker: {status.chunker}")
    if not status.repos:
        out.print("No repositories indexed yet. Run `devrag ingest PATH`.")
        return
    table = Table("repo", "indexed", "HEAD", "behind", "files", "chunks")
    for r in status.repos:
        behind = {None: "?", True: "yes", False: "no"}[r.behind]
        if r.in_progress:
            behind += " (unfinished run)"
        table.add_row(
            r.name,
            _short(r.indexed_commit),
            _short(r.head),
            behind,
            str(r.files),
            str(r.chunks),
        )
    out.print(table)
    # Below the table, not in it: a table folds long paths and URLs across lines.
    for r in status.repos:
        origin = f"origin {r.origin}" if r.origin else "no origin remote"
        out.print(f"{r.name}: last ingested from {r.path} ({origin})", soft_wrap=True, markup=False)


def drift_report(drifts: list[Drift], check: bool) -> None:
    if not drifts:
        out.print("No repositories indexed yet.")
    for d in drifts:
        if d.error:
            out.print(f"[red]{d.repo}[/red]: {d.error}")
            continue
        state = "drifted" if d.drifted else "in sync"
        found = {"missing": d.missing, "stale": d.stale, "orphaned": d.orphaned}
        counts = _counts({label: len(paths) for label, paths in found.items()}, "no files out of step")
        out.print(f"[bold]{d.repo}[/bold] at HEAD {_short(d.head)}: {state} ({counts}).")
        for label, paths in found.items():
            for path in paths:
                out.print(f"  {label}: {path}")
        if d.repaired:
            files = _counts(d.repaired.files, "none")
            chunks = _counts(d.repaired.chunks, "none")
            out.print(f"  Repaired with a full compare: files {files}; chunks {chunks}.")
        elif d.drifted and check:
            out.print("  (--check: not repaired)")


def _counts(counts: dict[str, int], nothing: str) -> str:
    """`3 missing, 1 orphaned`: the non-zero counts as words, for people rather than scripts."""
    return ", ".join(f"{n} {label}" for label, n in counts.items() if n) or nothing


def forget_summary(s: ForgetSummary) -> None:
    out.print(
        f"Forgot [bold]{s.repo}[/bold] (last ingested from {s.path}): removed {s.chunks} chunks of "
        f"{s.files} files and the records of {s.skipped_files} skipped files."
    )


def _short(sha: str | None) -> str:
    return sha[:12] if sha else "-"


def search_results(response: SearchResponse) -> None:
    if not response.results:
        out.print("No results.")
    for n, r in enumerate(response.results, start=1):
        crumb = " > ".join([r.title, *[h for h in r.headings if h != r.title]])
        out.print(f"[bold]{n}. {crumb}[/bold]  (score {r.score:.3f})")
        out.print(f"   {r.repo}:{r.path}#L{r.start_line}-L{r.end_line} @ {r.commit[:12]}")
        snippet = " ".join(r.text.split())[:240]
        out.print(f"   {snippet}", markup=False)
    note = "reranked" if response.reranked else "not reranked"
    out.print(f"[dim]{response.mode}, {note}, {response.timings_ms.get('total', 0):.0f} ms[/dim]")


def eval_report(name: str, report: EvalReport) -> None:
    table = Table(
        "mode",
        "recall@1",
        "recall@5",
        "recall@10",
        "mrr@10",
        "ndcg@10",
        "misses",
        title=f"{name}: {report.queries} queries",
    )
    for mode, m in report.modes.items():
        cells = [f"{m[key]:.3f}" for key in ("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10")]
        table.add_row(mode, *cells, str(len(report.misses[mode])))
    out.print(table)
    for mode, ids in report.misses.items():
        if ids:
            out.print(f"[dim]{mode} misses: {', '.join(ids[:20])}{' ...' if len(ids) > 20 else ''}[/dim]")
