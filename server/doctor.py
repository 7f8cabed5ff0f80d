"""`devrag doctor`: the server's readiness checks from the command line, and what only a full look finds.

Beside `/readyz`'s checks (models, index, each first-stage leg) it checks the payload indexes
filters use, that the index was built
with the configured model and chunker, that the reranker loads, and that every repository's
chunks match its HEAD (`reconcile --check`). Each check prints one line; any failure exits 1, so
cron or CI can run it as is.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import click

from devrag.ingest.pipeline import IngestOptions
from devrag.ingest.reconcile import Drift, find_drift
from devrag.retrieval.errors import DevragError
from devrag.retrieval.index import Index
from devrag.retrieval.models import Embedder
from devrag.retrieval.rerank import Reranker
from devrag.retrieval.search import HybridIndex
from devrag.retrieval.store import INDEXED_FIELDS
from devrag.server.health import Check, failed, index_check, leg_checks

if TYPE_CHECKING:
    from devrag.server.cli import Context
    from devrag.server.settings import Settings

M = TypeVar("M")


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as one JSON object.")
@click.pass_obj
def doctor_cmd(obj: Context, as_json: bool) -> None:
    """Check models, index, search legs and every repository against HEAD; exit 1 on any failure."""
    from devrag.server.cli import opened_index

    settings = obj.settings()
    with opened_index(settings) as index:
        checks = run_checks(settings, index)
    if as_json:
        click.echo(
            json.dumps({"ok": not failed(checks), "checks": [c.model_dump() for c in checks]}, indent=2)
        )
    else:
        for check in checks:
            click.echo(f"{'ok  ' if check.ok else 'FAIL'}  {check.name}: {check.detail}")
    if failed(checks):
        sys.exit(1)


def run_checks(settings: Settings, index: Index) -> list[Check]:
    """Every check, in order; one whose prerequisite failed is left out rather than run blind."""
    from devrag.server.settings import embedder_for, reranker_for

    checks = [index_check(index), payload_check(index)]
    embedder, loaded = _load("embedding model", lambda: embedder_for(settings))
    reranker, reranker_loaded = _load("reranker", lambda: reranker_for(settings))
    checks += [loaded, reranker_loaded]
    if embedder is not None:
        index.model, index.dim = embedder.name, embedder.dim
        checks.append(_compatibility(index))
        if checks[0].ok and checks[-1].ok:
            checks += _legs(index, embedder, reranker)
    options = IngestOptions(max_file_bytes=settings.max_file_bytes)
    checks += [_drift_check(find_drift(index, state, options)) for state in index.repos()]
    return checks


def _legs(index: Index, embedder: Embedder, reranker: Reranker | None) -> list[Check]:
    searcher = HybridIndex(index, embedder, reranker)
    try:
        return leg_checks(searcher)
    finally:
        searcher.close()


def _load(name: str, load: Callable[[], M]) -> tuple[M | None, Check]:
    try:
        model = load()
    except DevragError as exc:
        return None, Check(name=name, ok=False, detail=str(exc))
    return model, Check(name=name, ok=True, detail=_loaded_detail(model))


def _loaded_detail(model: object) -> str:
    """`<name> loaded (onnx, int8)`: which runtime and precision answer is what a slow search asks first."""
    how = [str(v) for v in (getattr(model, "runtime", None), getattr(model, "precision", None)) if v]
    return f"{getattr(model, 'name', '')} loaded" + (f" ({', '.join(how)})" if how else "")


def _compatibility(index: Index) -> Check:
    try:
        index.check_compatible()
    except DevragError as exc:
        return Check(name="compatibility", ok=False, detail=str(exc))
    return Check(name="compatibility", ok=True, detail=f"the index matches {index.model} and this chunker")


def payload_check(index: Index) -> Check:
    """The keyword indexes every filter uses; without one, that filter scans every chunk."""
    present = index.payload_indexes()
    if present is None:
        return Check(name="payload_indexes", ok=True, detail="this engine keeps none (filters scan)")
    missing = [f for f in INDEXED_FIELDS if f not in present]
    if missing:
        return Check(
            name="payload_indexes",
            ok=False,
            detail=f"missing {', '.join(missing)}: filters on them scan every chunk; "
            "`devrag ingest` (or the next start of the index's owner) creates them",
        )
    return Check(name="payload_indexes", ok=True, detail=", ".join(INDEXED_FIELDS))


def _drift_check(drift: Drift) -> Check:
    name = f"reconcile.{drift.repo}"
    if drift.error:
        return Check(name=name, ok=False, detail=drift.error)
    if drift.drifted:
        counts = f"{len(drift.missing)} missing, {len(drift.stale)} stale, {len(drift.orphaned)} orphaned"
        return Check(
            name=name, ok=False, detail=f"{counts} at HEAD {(drift.head or '')[:12]}: run `devrag reconcile`"
        )
    return Check(name=name, ok=True, detail=f"matches HEAD {(drift.head or '')[:12]}")
