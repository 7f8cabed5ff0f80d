"""Human output for the CLI: tables and summaries on stdout, progress bars on stderr."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from devrag.retrieval.index import FileScope
from devrag.retrieval.lexical_field import LEXICAL_FIELD
from devrag.server.formatting import review_line, route_words

if TYPE_CHECKING:
    from devrag.eval.harness import EvalReport
    from devrag.ingest.forget import ForgetSummary
    from devrag.ingest.pipeline import IngestSummary, StageProgress
    from devrag.ingest.rebuild import RebuildSummary
    from devrag.ingest.reconcile import Drift, Vacuum
    from devrag.ingest.status import IndexStatus, RepoStatus
    from devrag.server.config_cmd import Setting
    from devrag.server.outputs import SearchAnswer

log = logging.getLogger(__name__)
out = Console(highlight=False)
err = Console(stderr=True)
LOG_EVERY_SECONDS = 5.0


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


@contextmanager
def stage_progress(quiet: bool) -> Iterator[StageProgress]:
    """Bars on a terminal (unless `quiet`); otherwise log lines, shown at `-v`, every few seconds."""
    if quiet or not err.is_terminal:
        yield LoggedProgress()
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        yield BarProgress(bar)


class BarProgress:
    """One rich bar per stage; the finished stage's bar stays until the run ends."""

    def __init__(self, bar: Progress) -> None:
        self.bar = bar
        self.task: TaskID | None = None

    def stage(self, name: str, total: int) -> None:
        self.task = self.bar.add_task(name, total=total)

    def advance(self, steps: int) -> None:
        if self.task is not None:
            self.bar.advance(self.task, steps)


class LoggedProgress:
    """Progress as INFO log lines: each stage's size, then at most one line per `every` seconds.

    Why: a CI log or a cron mail has no terminal to redraw a bar on, and a line per file would bury it.
    """

    def __init__(self, every: float = LOG_EVERY_SECONDS, clock: Callable[[], float] = time.monotonic):
        self.every, self.clock = every, clock
        self.name, self.total, self.done, self.last = "", 0, 0, 0.0

    def stage(self, name: str, total: int) -> None:
        self.name, self.total, self.done, self.last = name, total, 0, self.clock()
        log.info("%s: %d to do", name, total)

    def advance(self, steps: int) -> None:
        self.done += steps
        now = self.clock()
        if self.done >= self.total or now - self.last >= self.every:
            self.last = now
            log.info("%s: %d/%d", self.name, self.done, self.total)


def loading(what: str, name: str) -> None:
    """Say that a model is loading: that takes seconds, and a silent command looks hung."""
    message = f"loading {what} {name} ..."
    if err.is_terminal:
        err.print(message, style="dim", markup=False, highlight=False)
    else:
        log.info(message)


def config_report(path: str, exists: bool, settings: dict[str, Setting]) -> None:
    out.print(f"config file: {path}{'' if exists else ' (not found)'}", markup=False, soft_wrap=True)
    width = max(map(len, settings))
    # Lines, not a table: a table would cut the paths and model names this is read for.
    for name, setting in settings.items():
        value = "(unset)" if setting.value is None else setting.value
        out.print(f"{name:<{width}}  {value}  ({setting.source})", markup=False, soft_wrap=True)


def ingest_summary(s: IngestSummary) -> None:
    verdict = "[green]verified[/green]" if s.verified else "[red]NOT verified[/red]"
    out.print(f"[bold]{escape(s.repo)}[/bold] at {s.commit[:12]} ({s.mode}, {s.seconds:.2f}s, {verdict})")
    out.print("files:  " + ", ".join(f"{k} {v}" for k, v in s.files.items()))
    out.print("chunks: " + ", ".join(f"{k} {v}" for k, v in s.chunks.items()))
    for skipped in s.skipped:
        out.print(f"  skipped {skipped.path}: {skipped.reason}", markup=False)
    if s.redacted:
        total = sum(r.count for r in s.redacted)
        out.print(f"redacted: {total} secrets in {len(s.redacted)} files", markup=False)
    for redacted in s.redacted:
        kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(redacted.kinds.items()))
        out.print(f"  redacted {redacted.path}: {redacted.count} ({kinds})", markup=False, soft_wrap=True)


def index_status(status: IndexStatus) -> None:
    """One row per repository, then where each was ingested from, every line within the terminal.

    A table folds what does not fit, so the commits and counts do not wrap and paths are cut on
    the left (`…/end/of/path`): the end of a path names the repository, its start rarely does.
    """
    out.print(f"store: {_fit(status.store, out.width - 7)}", markup=False)
    out.print(
        f"model: {_fit(status.embed_model or '-', out.width - 7)}  chunker: {status.chunker}", markup=False
    )
    if not status.repos:
        out.print("No repositories indexed yet. Run `devrag ingest PATH`.")
        return
    out.print(_payload_indexes(status), markup=False)
    if status.respell_pending:
        out.print(
            f"{status.respell_pending} chunks stored as an older devrag stored them (BM25 spelling, "
            "ids); searches refuse the index until the next `devrag ingest` of any repository "
            "rewrites them (vectors kept)",
            markup=False,
        )
    # No borders: at 80 columns they would cost the repository name 17 characters.
    table = Table("repo", "indexed", "HEAD", "behind", "files", "chunks", box=None, pad_edge=False)
    table.columns[0].overflow = "fold"  # a name too long wraps; an ellipsis would hide which repo it is
    for column in table.columns[1:]:
        column.no_wrap = True
    for r in status.repos:
        behind = {None: "?", True: "yes", False: "no"}[r.behind]
        table.add_row(
            escape(r.name), _short(r.indexed_commit), _short(r.head), behind, str(r.files), str(r.chunks)
        )
    out.print(table)
    for r in status.repos:
        for line in _whereabouts(r):
            out.print(line, markup=False)


def _payload_indexes(status: IndexStatus) -> str:
    """Which of the indexes that filters rely on the store has, and what a missing one costs."""
    if status.payload_indexes is None:
        return "payload indexes: none (qdrant-client's local mode keeps none; filters scan)"
    line = f"payload indexes: {', '.join(status.payload_indexes) or 'none'}"
    if not status.missing_payload_indexes:
        return line + " (all present)"
    missing = status.missing_payload_indexes
    costs = ["filters on them scan every chunk"] if set(missing) - {LEXICAL_FIELD} else []
    costs += [f"BM25 searches fail without `{LEXICAL_FIELD}`"] if LEXICAL_FIELD in missing else []
    return f"{line}; MISSING: {', '.join(missing)} ({'; '.join(costs)}; `devrag ingest` creates them)"


def _whereabouts(r: RepoStatus) -> list[str]:
    """Where the repository was last ingested from, which part of it, and any unfinished run."""
    lead = f"{r.name}: last ingested from "
    lines = [lead + _fit(r.path, out.width - len(lead))]
    lines.append("  " + (f"origin {_fit(r.origin, out.width - 9)}" if r.origin else "no origin remote"))
    scope = FileScope(r.subtree, tuple(r.include), tuple(r.exclude))
    if not scope.whole:
        lines.append(f"  only {scope.describe()}")
    if r.in_progress:
        lines.append(
            f"  a run to {_short(r.in_progress)} is under way or did not finish; the next one redoes it"
        )
    return lines


def _fit(text: str, room: int) -> str:
    """`text` cut on the left to `room` characters, at a folder boundary when one is near."""
    room = max(room, 16)
    if len(text) <= room:
        return text
    tail = text[len(text) - room + 1 :]
    cut = tail.find("/")
    return "…" + (tail[cut:] if 0 <= cut < len(tail) - 1 else tail)


def drift_report(drifts: list[Drift], check: bool, vacuumed: Vacuum | None = None) -> None:
    if not drifts:
        out.print("No repositories indexed yet.")
    for d in drifts:
        if d.error:
            out.print(f"[red]{escape(d.repo)}[/red]: {escape(d.error)}")
            continue
        state = "drifted" if d.drifted else "in sync"
        found = {"missing": d.missing, "stale": d.stale, "orphaned": d.orphaned}
        counts = _counts({label: len(paths) for label, paths in found.items()}, "no files out of step")
        out.print(f"[bold]{escape(d.repo)}[/bold] at HEAD {_short(d.head)}: {state} ({counts}).")
        for label, paths in found.items():
            for path in paths:
                out.print(f"  {label}: {path}", markup=False)
        if d.repaired:
            files = _counts(d.repaired.files, "none")
            chunks = _counts(d.repaired.chunks, "none")
            out.print(f"  Repaired with a full compare: files {files}; chunks {chunks}.")
        elif d.drifted and check:
            out.print("  (--check: not repaired)")
    if vacuumed is not None and vacuumed.rewritten is None:
        out.print("Vacuum: left to the Qdrant server's own optimizer (its collection's deleted_threshold).")
    elif vacuumed is not None:
        done = "rewrote the segments that held" if vacuumed.rewritten else "no segment held"
        out.print(f"Vacuum: {done} replaced or deleted chunks ({vacuumed.seconds} s).")


def _counts(counts: dict[str, int], nothing: str) -> str:
    """`3 missing, 1 orphaned`: the non-zero counts as words, for people rather than scripts."""
    return ", ".join(f"{n} {label}" for label, n in counts.items() if n) or nothing


def forget_summary(s: ForgetSummary) -> None:
    out.print(
        f"Forgot [bold]{s.repo}[/bold] (last ingested from {s.path}): removed {s.chunks} chunks of "
        f"{s.files} files and the records of {s.skipped_files} skipped files."
    )


def rebuild_summary(s: RebuildSummary) -> None:
    for repo in s.repos:
        ingest_summary(repo)
    before = ", ".join(s.retired) or "nothing"
    fate = "kept (switch back with an alias change)" if s.kept_retired else "dropped"
    out.print(
        f"[bold]{s.collection}[/bold] now reads {s.built} ({len(s.repos)} repositories checked against "
        f"HEAD, {s.seconds:.1f} s); it read {before} before, {fate}."
    )


def _short(sha: str | None) -> str:
    return sha[:12] if sha else "-"


def search_results(response: SearchAnswer) -> None:
    if not response.results:
        out.print("No results.")
    if response.path_unmatched:
        out.print("No indexed file matches --path; it is a glob from the repository root ('runbooks/*').")
    for url in response.runbook_urls_unmatched:
        out.print(f"runbook_url {url} names no indexed document: the runbook may live outside the index.")
    for value in response.values_unmatched:
        out.print(f"No indexed document has {value}; values match exactly (MCP's list_sources lists them).")
    for n, r in enumerate(response.results, start=1):
        out.print(f"[bold]{n}. {escape(r.title)}[/bold]  (score {r.score:.3f})")
        out.print(f"   {r.repo}:{r.path} @ {r.commit[:12]}", markup=False)
        m = r.metadata
        facts = (
            [f"service {m.service}{' (from path)' if m.service_source == 'path' else ''}"]
            if m.service
            else []
        )
        facts += [
            f"{k} {v}" for k, v in (("team", m.team), ("sev", m.severity), ("reviewed", m.last_reviewed)) if v
        ]
        if r.review and review_line(r.review):
            facts.append(review_line(r.review))
        if facts:
            out.print(f"   [dim]{escape(', '.join(facts))}[/dim]")
        how = route_words(r.alert_match)
        if how:
            out.print(f"   found by {how}", markup=False)
        for section in r.sections:
            destructive = [c.text for c in section.commands if c.kind == "destructive"]
            if destructive:
                out.print(
                    f"   ! destructive: {'; '.join(destructive[:2])} — confirm before running", markup=False
                )
            crumb = " > ".join(h for h in section.headings if h != r.title) or "(top)"
            where = f"L{section.start_line}-L{section.end_line}"
            why = "matched by title" if section.via_title else f"score {section.score:.3f}"
            out.print(f"   [dim]{where}[/dim] {escape(crumb)}  [dim]({why})[/dim]")
            snippet = " ".join(section.text.split())[:240]
            out.print(f"     {snippet}", markup=False)
    note = "reranked" if response.reranked else "not reranked"
    out.print(f"[dim]{response.mode}, {note}, {response.timings_ms.get('total', 0):.0f} ms[/dim]")
    if response.read_tokens is not None:
        out.print(
            f"[dim]The query is longer than the models read, so it was read as a pasted alert: "
            f"every stage read its first {response.read_tokens} word pieces.[/dim]"
        )
    out.print(f"[dim]query_id {response.query_id}[/dim]")


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
            out.print(
                f"[dim]{mode} misses: {escape(', '.join(ids[:20]))}{' ...' if len(ids) > 20 else ''}[/dim]"
            )
