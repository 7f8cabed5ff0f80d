"""The commands that write or inspect the index: ingest, status, reconcile, forget, rebuild.

Kept apart from `cli` so that a search, run again and again by agents, never imports the ingest
pipeline (Git, Markdown parsing, the secret scanner); `cli.main` imports this module only when
one of these commands runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from devrag.ingest.forget import forget
from devrag.ingest.git_source import locate
from devrag.ingest.pipeline import IngestOptions, ingest
from devrag.ingest.rebuild import rebuild
from devrag.ingest.reconcile import reconcile, vacuum
from devrag.ingest.status import index_status
from devrag.retrieval.index import FileScope
from devrag.server import render
from devrag.server.cli import Context, bind_model, emit, load_embedder, opened_index, run_or_exit


@click.command("ingest")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--name", help="Name of the repository in the index (default: its folder name).")
@click.option("--rev", help="Commit, branch or tag to index (default: HEAD).")
@click.option(
    "--include", multiple=True, help="Only files matching this glob from the repository root (repeatable)."
)
@click.option("--exclude", multiple=True, help="Never files matching this glob (repeatable).")
@click.option("--max-file-bytes", type=int, help="Skip files larger than this [DEVRAG_MAX_FILE_BYTES].")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.pass_obj
def ingest_cmd(
    obj: Context,
    path: Path,
    name: str | None,
    rev: str | None,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    max_file_bytes: int | None,
    as_json: bool,
) -> None:
    """Index a Git repository (or a folder in one) at HEAD (or REV), incrementally and verified.

    Globs work as search's --path: `*` crosses folders, `dir/` is everything under dir.
    """
    run_or_exit(lambda: locate(path))  # a wrong path is told before the model takes seconds to load
    scope = FileScope(include=include, exclude=exclude)
    settings = obj.settings(max_file_bytes=max_file_bytes)
    options = IngestOptions(max_file_bytes=settings.max_file_bytes)
    embedder = load_embedder(settings)
    with (
        opened_index(settings, embedder) as index,
        render.stage_progress(as_json) as bar,
    ):
        summary = ingest(index, embedder, path, name, rev, options, progress=bar, scope=scope)
    emit(as_json, summary, lambda: render.ingest_summary(summary))


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the status as one JSON object.")
@click.pass_obj
def status_cmd(obj: Context, as_json: bool) -> None:
    """List indexed repositories, their commits, and whether HEAD has moved on."""
    with opened_index(obj.settings()) as index:
        status = index_status(index)
    emit(as_json, status, lambda: render.index_status(status))


@click.command("reconcile")
@click.option(
    "--check",
    is_flag=True,
    help="Only report drift; exit 1 when there is any (always when a repository cannot be read).",
)
@click.option(
    "--vacuum",
    "and_vacuum",
    is_flag=True,
    help="Then rewrite the embedded engine's segments that hold replaced chunks, so that its BM25 "
    "counts live chunks only (searches wait; README: its cost).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as a JSON array.")
@click.pass_obj
def reconcile_cmd(obj: Context, check: bool, and_vacuum: bool, as_json: bool) -> None:
    """Compare each repository's HEAD with the index and repair what drifted (nightly cron)."""
    if check and and_vacuum:
        raise click.UsageError("--check only reports; --vacuum rewrites the index. Pass one of them.")
    settings = obj.settings()
    options = IngestOptions(max_file_bytes=settings.max_file_bytes)
    with opened_index(settings) as index:
        drifts = reconcile(index, lambda: bind_model(index, load_embedder(settings)), check, options)
        vacuumed = vacuum(index) if and_vacuum else None
    emit(as_json, drifts, lambda: render.drift_report(drifts, check, vacuumed))
    # A repository that could not be read was neither checked nor repaired: a nightly run must fail.
    if any(d.error for d in drifts) or (check and any(d.drifted for d in drifts)):
        sys.exit(1)


@click.command("forget")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print what was removed as one JSON object.")
@click.pass_obj
def forget_cmd(obj: Context, name: str, as_json: bool) -> None:
    """Remove a repository from the index: its chunks, its skipped-file records and its state."""
    with opened_index(obj.settings()) as index:
        summary = forget(index, name)
    emit(as_json, summary, lambda: render.forget_summary(summary))


@click.command("rebuild")
@click.option("--keep-previous", is_flag=True, help="Keep the collection read before, to switch back.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.pass_obj
def rebuild_cmd(obj: Context, keep_previous: bool, as_json: bool) -> None:
    """Rebuild a Qdrant server's index (new model or chunker) while searches keep answering.

    Every recorded repository is ingested at HEAD into a new collection, which is checked against
    each repository and then put behind the collection name in one alias switch.
    """
    settings = obj.settings()
    options = IngestOptions(max_file_bytes=settings.max_file_bytes)
    with opened_index(settings) as index, render.stage_progress(as_json) as bar:
        summary = rebuild(index, lambda: load_embedder(settings), options, keep_previous, bar)
    emit(as_json, summary, lambda: render.rebuild_summary(summary))
