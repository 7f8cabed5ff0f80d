"""How far the embedded engine's BM25 drifts from devrag's as chunks are rewritten, and what a
vacuum costs: `python -m devrag.eval.bm25_drift INDEX_DIR [--shares 1,2,5,10,20] [--queries 200]`.

Why: the engine keeps a replaced or deleted chunk in its BM25 statistics (the number of chunks,
each term's document frequency, the average length) until the segment that held it is vacuumed,
and its optimizer vacuums a segment on its own only once a fifth of it is deleted. An ingest
replaces every chunk of an edited file (each carries its file's commit), so an index drifts from
the BM25 that `lexical.Bm25Index` pins as it ages. The parity tests run on indexes of one
appendable segment, where it does not happen.

The benchmark works on a copy of the index (the index itself is never written): it rewrites a
growing share of the chunks unchanged, in the engine's usual write path, and after each share
counts the golden queries whose engine BM25 top 10 is not a top 10 of the reference (order or
set, exact ties allowed either way) and the range of engine/reference score ratios; then it
vacuums the copy (`EdgeStore.vacuum`) and measures again.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from devrag.eval.report_output import print_report
from devrag.eval.scale_bench import default_golden, golden_queries
from devrag.retrieval.edge_store import EdgeStore
from devrag.retrieval.lexical import Bm25Index
from devrag.retrieval.lexical_field import lexical_text
from devrag.retrieval.lexical_query import bm25_search

TOP = 10
REFERENCE_DEPTH = 300  # deep enough that every engine top-10 chunk has its reference score
TIE = 1e-6
_BATCH = 512


class DriftRow(BaseModel):
    """The engine's BM25 against the reference after `share` of the chunks were rewritten."""

    stage: str
    rewritten: int
    queries: int
    top10_differs: int  # queries whose engine top 10 is no top 10 of the reference
    top10_set_differs: int  # of those, the ones where a chunk outside the reference's top 10 got in
    ratio_min: float
    ratio_max: float
    seconds: float | None = None  # the vacuum's wall time


class DriftReport(BaseModel):
    index: str
    chunks: int
    rows: list[DriftRow]


def run_drift(index_dir: Path, shares: list[float], queries: list[str], seed: int = 1) -> DriftReport:
    """Measure the drift on a copy of `index_dir` (see the module docstring)."""
    with tempfile.TemporaryDirectory(prefix="devrag-drift-", dir=index_dir.parent) as tmp:
        copy = Path(tmp) / "index"
        shutil.copytree(index_dir, copy, ignore=shutil.ignore_patterns("owner.*"))
        store = EdgeStore(copy)
        try:
            return _measure(store, str(index_dir), shares, queries, seed)
        finally:
            store.close()


def _measure(store: EdgeStore, name: str, shares: list[float], queries: list[str], seed: int) -> DriftReport:
    chunks = list(store.scroll(fields=["path", "title", "headings", "text"]))
    reference = Bm25Index([(c.id, lexical_text(c.payload)) for c in chunks])
    expected = [dict(reference.search(q, REFERENCE_DEPTH)) for q in queries]
    order = [c.id for c in chunks]
    random.Random(seed).shuffle(order)
    rows = [_compare(store, queries, expected, "as built", 0)]
    done = 0
    for share in shares:
        upto = int(share * len(order))
        for start in range(done, upto, _BATCH):
            batch = order[start : min(start + _BATCH, upto)]
            store.upsert(store.retrieve(batch, with_vectors=True, fields=None))
        done = max(done, upto)
        rows.append(_compare(store, queries, expected, f"{share:.0%} rewritten", done))
    started = time.perf_counter()
    store.vacuum()
    seconds = round(time.perf_counter() - started, 1)
    vacuumed = _compare(store, queries, expected, "after a vacuum", done)
    vacuumed.seconds = seconds
    rows.append(vacuumed)
    return DriftReport(index=name, chunks=len(chunks), rows=rows)


def _compare(
    store: EdgeStore, queries: list[str], expected: list[dict[str, float]], stage: str, rewritten: int
) -> DriftRow:
    differs = set_differs = 0
    ratios: list[float] = []
    for query, scores in zip(queries, expected, strict=True):
        ranked = sorted(scores.values(), reverse=True)
        kth = ranked[TOP - 1] if len(ranked) >= TOP else 0.0
        hits = bm25_search(store, query, TOP)
        got = [hit.id for hit in hits]
        ref = [scores.get(cid, -1.0) for cid in got]
        outside = any(score < kth - TIE for score in ref)
        misordered = any(a < b - TIE for a, b in zip(ref, ref[1:], strict=False))
        differs += outside or misordered
        set_differs += outside
        ratios += [hit.score / scores[hit.id] for hit in hits if scores.get(hit.id)]
    return DriftRow(
        stage=stage,
        rewritten=rewritten,
        queries=len(queries),
        top10_differs=differs,
        top10_set_differs=set_differs,
        ratio_min=round(min(ratios, default=1.0), 5),
        ratio_max=round(max(ratios, default=1.0), 5),
    )


def render(report: DriftReport) -> None:
    table = Table(title=f"Engine BM25 against the reference: {report.index} ({report.chunks:,} chunks)")
    for column in ("stage", "chunks rewritten", "top 10 differs", "of which the set", "score ratio", "s"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for row in report.rows:
        table.add_row(
            row.stage,
            f"{row.rewritten:,}",
            f"{row.top10_differs}/{row.queries}",
            str(row.top10_set_differs),
            f"{row.ratio_min:.5f} - {row.ratio_max:.5f}",
            "" if row.seconds is None else f"{row.seconds}",
        )
    Console().print(table)


def _shares(value: str) -> list[float]:
    shares = sorted(float(v) / 100 for v in value.split(",") if v.strip())
    if not shares or shares[0] <= 0 or shares[-1] > 100:
        raise argparse.ArgumentTypeError(f"expected percentages in (0, 100], got {value!r}")
    return shares


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devrag.eval.bm25_drift", description=__doc__)
    parser.add_argument("index_dir", type=Path, help="An embedded index folder (it is copied, not written).")
    parser.add_argument(
        "--shares", type=_shares, default=_shares("1,2,5,10,20"), help="Percentages, cumulative."
    )
    parser.add_argument("--queries", type=int, default=200, help="Distinct golden queries.")
    parser.add_argument("--golden", type=Path, nargs="*", default=[], help="Golden JSONL files of queries.")
    parser.add_argument("--json", action="store_true", help="Print the report as one JSON object.")
    args = parser.parse_args(argv)
    if not (args.index_dir / "shard").is_dir():
        parser.error(f"{args.index_dir} holds no embedded index (no shard/ folder)")
    queries = golden_queries(args.golden or default_golden())[: args.queries]
    print_report(run_drift(args.index_dir, args.shares, queries), args.json, render)
    return 0


if __name__ == "__main__":
    sys.exit(main())
