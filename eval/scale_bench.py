"""The scale benchmark: the shared corpora replicated to about 55k, 200k and 1M chunks, side by side.

`python -m devrag.eval.scale_bench [--sizes 55000,200000,1000000] [--json]` (or `devrag bench
--scale`) builds each index once under `--workdir` (see `devrag.eval.scale_index`: vectors are
copied, never embedded again) and measures, per size:

- the engine: its owner process opening the shard cold, and its resident memory;
- a fresh search process per first mode (`devrag.eval.scale_probe`): opening the index and the
  first answer with the models already warm, the same from the process's start, and its RSS
  after the first answer and after the timed queries;
- the first stage (mode `hybrid`: embed, dense, BM25, fusion) p50/p95 over the same distinct
  golden queries, unfiltered, filtered by `--path` (one folder of one copy) and by `--repo` (the
  small side repository), timed side by side (see `_variants`);
- an incremental ingest of one edited section (an edit and its revert, repeated), as a fraction
  of the same at the smallest size.

A size whose process passes `--max-rss-gib` or `--probe-timeout` is stopped and reported as such;
a size whose index would not fit the free disk is not built.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from itertools import zip_longest
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from devrag.eval.golden import load_golden
from devrag.eval.report_output import print_report
from devrag.eval.scale_index import (
    BENCH,
    SIDE,
    Layout,
    ScaleIndex,
    Seed,
    build,
    copies_for,
    copy_folder,
    load_seed,
)
from devrag.eval.scale_probe import ModelSpec, ProbeRequest, rss_mib
from devrag.eval.scale_report import IngestCost, Probe, ScaleReport, SizeRow, render
from devrag.ingest.pipeline import ingest
from devrag.retrieval.models import Embedder
from devrag.retrieval.owned_store import OwnedStore

log = logging.getLogger(__name__)

_SHARED = Path(os.environ.get("DEVRAG_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared"))
DEFAULT_SIZES = (55_000, 200_000, 1_000_000)
DEFAULT_GOLDEN = (
    "alerts-to-runbooks.jsonl",
    "openshift-alerts-to-runbooks.jsonl",
    "gitlab-alerts-to-runbooks.jsonl",
)
FIRST_MODES = ("hybrid", "hybrid+rerank")
ENGINE_COLD = "engine cold"
_MIN_AVAILABLE_MIB = 1536.0
_GIT_ENV = {
    "GIT_AUTHOR_NAME": "devrag",
    "GIT_AUTHOR_EMAIL": "devrag@localhost",
    "GIT_COMMITTER_NAME": "devrag",
    "GIT_COMMITTER_EMAIL": "devrag@localhost",
    "PATH": "/usr/bin:/bin",
}


class ScaleOptions(BaseModel):
    sizes: list[int] = list(DEFAULT_SIZES)
    workdir: Path = Path.home() / ".cache" / "devrag" / "scale"
    corpora: list[Path] = []
    golden: list[Path] = []
    queries: int = 50
    k: int = 5
    edits: int = 2  # edit-and-revert pairs: twice as many timed ingests
    backend: Literal["edge", "qdrant"] = "edge"
    qdrant_url: str | None = None
    models: ModelSpec = ModelSpec()
    first_modes: list[str] = list(FIRST_MODES)
    max_rss_gib: float = 16.0
    probe_timeout_s: float = 3600.0


def default_corpora() -> list[Path]:
    root = _SHARED / "data" / "runbooks-corpus"
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def default_golden() -> list[Path]:
    return [_SHARED / "data" / "golden" / name for name in DEFAULT_GOLDEN]


def run_scale_bench(options: ScaleOptions, say: Callable[[str], None] = log.info) -> ScaleReport:
    """Every size of `options`, smallest first; a size that fails is reported and the run goes on."""
    environment: dict[str, str | int | float] = {"cores": os.cpu_count() or 0, "k": options.k}
    if options.backend == "qdrant" and not options.qdrant_url:
        note = "not measured: no Qdrant server URL given (--qdrant-url)"
        return ScaleReport(backend="qdrant", backend_note=note, environment=environment, rows=[])
    url = options.qdrant_url if options.backend == "qdrant" else None
    note = (
        f"Qdrant server at {url}" if url else "embedded qdrant-edge shard, reached through its owner process"
    )
    layout = Layout(options.workdir, url)
    options.workdir.mkdir(parents=True, exist_ok=True)
    embedder = options.models.embedder()
    say("ingesting the seed corpus (cached after the first run)")
    seed = load_seed(options.corpora or default_corpora(), layout, embedder)
    if not url:
        stop_owner(layout.workdir / "seed-index")
    queries = golden_queries(options.golden or default_golden())
    environment |= {"seed_chunks": seed.per_copy(), "side_repo_chunks": len(seed.side())}
    report = ScaleReport(backend=options.backend, backend_note=note, environment=environment, rows=[])
    for size in sorted(options.sizes):
        say(f"size {size:,}: {copies_for(size, seed)} copies")
        row = SizeRow(size=size)
        report.rows.append(row)
        _measure(row, options, layout, seed, embedder, queries, say)
    _fractions(report)
    return report


def _measure(
    row: SizeRow,
    options: ScaleOptions,
    layout: Layout,
    seed: Seed,
    embedder: Embedder,
    queries: list[str],
    say: Callable[[str], None],
) -> None:
    index_dir = layout.index_dir(copies_for(row.size, seed))
    if not layout.backend_url and (reason := _no_room(layout, seed, row.size, index_dir)):
        row.errors.append(reason)
        return
    try:
        row.index = build(row.size, seed, layout, embedder)
        say(f"size {row.size:,}: {row.index.chunks:,} chunks, build {row.index.build_seconds} s")
        if not layout.backend_url:
            _engine_open(row, layout, index_dir, embedder)
            if options.first_modes:
                # The first reader after the engine opened cold pays for the engine's caches too:
                # reported apart, so the other probes time the search process alone.
                say(f"size {row.size:,}: fresh process, first answer right after the engine opened")
                row.probes[ENGINE_COLD] = _run_probe(
                    options, layout, row, seed, queries, "hybrid", timed=False
                )
            # The timed probes measure a running server: its owner has read the vectors by then.
            say(f"size {row.size:,}: waiting for the engine to read its vectors")
            row.engine_warm_s = _engine_warm(layout, index_dir, embedder)
        for mode in options.first_modes:
            if mode == "hybrid+rerank" and options.models.rerank_model is None and not options.models.factory:
                continue
            say(f"size {row.size:,}: fresh process, first answer in {mode}")
            row.probes[mode] = _run_probe(options, layout, row, seed, queries, mode, timed=mode == "hybrid")
        say(f"size {row.size:,}: incremental ingest of one edited section")
        row.ingest = _edit_cost(layout, row.index, seed, embedder, options.edits)
    except (ProbeFailed, OSError, MemoryError) as exc:
        row.errors.append(str(exc))
    finally:
        if not layout.backend_url:
            row.engine_rss_end_mib = _owner_rss(index_dir)
            stop_owner(index_dir)


def _no_room(layout: Layout, seed: Seed, size: int, index_dir: Path) -> str | None:
    """Why an index of `size` chunks cannot be built here (free disk), judged from a smaller one built."""
    if index_dir.exists():
        return None
    built = [d for d in layout.workdir.glob("index-x*") if d.is_dir()]
    if not built:
        return None
    largest = max(built, key=lambda d: int(d.name.removeprefix("index-x")))
    copies = int(largest.name.removeprefix("index-x"))
    per_chunk = _du(largest) / (copies * seed.per_copy())
    needed = per_chunk * size * 1.2 + _du(layout.repo(copies)) / copies * copies_for(size, seed)
    free = shutil.disk_usage(layout.workdir).free
    if needed < free * 0.9:
        return None
    return f"not built: needs about {needed / 1024**3:.0f} GiB of disk, {free / 1024**3:.0f} GiB free"


def _du(folder: Path) -> int:
    out = subprocess.run(["du", "-sb", str(folder)], capture_output=True, text=True, check=False).stdout
    return int(out.split()[0]) if out else 0


def _engine_open(row: SizeRow, layout: Layout, index_dir: Path, embedder: Embedder) -> None:
    """The engine's owner started cold: shard opened and counted, and its memory then."""
    stop_owner(index_dir)
    started = time.perf_counter()
    index = layout.open(index_dir, embedder)
    index.count()
    row.engine_open_s = round(time.perf_counter() - started, 3)
    row.engine_rss_open_mib = _owner_rss(index_dir)
    index.close()


def _engine_warm(
    layout: Layout, index_dir: Path, embedder: Embedder, timeout_s: float = 1800.0
) -> float | None:
    """Seconds the owner took to read every vector after it opened the shard; None past the timeout."""
    index = layout.open(index_dir, embedder)
    store = index.store
    deadline = time.monotonic() + timeout_s
    try:
        while isinstance(store, OwnedStore) and time.monotonic() < deadline:
            if (seconds := store.warm_seconds()) is not None:
                return seconds
            time.sleep(0.2)
        return None
    finally:
        index.close()


class ProbeFailed(RuntimeError):
    """A probe process that crashed, was stopped at the memory limit, or ran out of time."""


def _variants(
    filters: dict[str, dict[str, str]], queries: list[str]
) -> dict[str, tuple[dict[str, str], list[str]]]:
    """Each filter with the same queries, the n-th filter's spelled with n trailing spaces.

    Why: filtered and unfiltered searches are compared on the same queries (the probe interleaves
    them), and a searcher keeps each query's vector by its text. Trailing spaces change neither the
    embedding (the tokenizer drops them) nor the BM25 terms, so every variant embeds afresh.
    """
    spelled = {name: [q + " " * n for q in queries] for n, name in enumerate(filters)}
    return {name: (fields, spelled[name]) for name, fields in filters.items()}


def _run_probe(
    options: ScaleOptions,
    layout: Layout,
    row: SizeRow,
    seed: Seed,
    queries: list[str],
    mode: str,
    timed: bool,
) -> Probe:
    assert row.index is not None
    folder = f"{copy_folder(1)}/{seed.side_folder}/"
    shown = {
        "path": f"{folder} ({len(seed.side()):,} chunks)",
        "repo": f"{SIDE} ({len(seed.side()):,} chunks)",
    }
    filters = {"unfiltered": {}, "path": {"path": folder}, "repo": {"repo": SIDE}}
    variants = _variants(filters, queries[2 : 2 + options.queries]) if timed else {}
    request = ProbeRequest(
        workdir=str(layout.workdir),
        backend_url=layout.backend_url,
        index_dir=row.index.index_dir,
        models=options.models,
        mode=mode,
        k=options.k,
        first_query=queries[0] if mode == "hybrid" else queries[1],
        variants=variants,
        spawned_at=time.time(),
    )
    probe = Probe.model_validate_json(_watched(request, options))
    for name, latency in probe.latency.items():
        latency.filter = shown.get(name)
    return probe


def _watched(request: ProbeRequest, options: ScaleOptions) -> str:
    """Run the probe, stopping it past the memory limit or the timeout; its JSON line.

    The request goes in a file: as an argument, a few hundred queries per variant pass the limit
    on one argument's length.
    """
    with tempfile.TemporaryDirectory(prefix="devrag-probe-") as folder:
        path = Path(folder) / "request.json"
        path.write_text(request.model_dump_json(), encoding="utf-8")
        return _watch([sys.executable, "-m", "devrag.eval.scale_probe", str(path)], request, options)


def _watch(command: list[str], request: ProbeRequest, options: ScaleOptions) -> str:
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started, peak = time.monotonic(), 0.0
    while process.poll() is None:
        peak = max(peak, rss_mib(process.pid) or 0.0)
        why = _stop_reason(peak, time.monotonic() - started, options, Path(request.index_dir))
        if why:
            process.send_signal(signal.SIGKILL)
            process.wait()
            raise ProbeFailed(
                f"{request.mode} probe stopped after {time.monotonic() - started:,.0f} s: {why}"
            )
        time.sleep(0.2)
    out, err = process.communicate()
    if process.returncode != 0:
        tail = " | ".join(err.strip().splitlines()[-3:])
        raise ProbeFailed(
            f"{request.mode} probe exited {process.returncode} (peak RSS {peak:,.0f} MiB): {tail}"
        )
    return out.strip().splitlines()[-1]


def _stop_reason(peak_mib: float, elapsed: float, options: ScaleOptions, index_dir: Path) -> str | None:
    """Why a probe must stop now: its memory, the machine's (other work shares it), or time."""
    if peak_mib > options.max_rss_gib * 1024:
        return f"its RSS reached {peak_mib:,.0f} MiB, past --max-rss-gib {options.max_rss_gib}"
    available = _available_mib()
    if available is not None and available < _MIN_AVAILABLE_MIB:
        engine = _owner_rss(index_dir)
        return (
            f"the machine had {available:,.0f} MiB available left (probe RSS {peak_mib:,.0f} MiB, "
            f"engine RSS {engine or 0:,.0f} MiB)"
        )
    if elapsed > options.probe_timeout_s:
        return f"--probe-timeout {options.probe_timeout_s:.0f} s passed"
    return None


def _available_mib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _edit_cost(layout: Layout, built: ScaleIndex, seed: Seed, embedder: Embedder, edits: int) -> IngestCost:
    """Ingest one edited section, then its revert, `edits` times; each run timed by ingest itself."""
    repo = Path(built.repo_dir)
    relative = _edited_file(seed)
    original = (seed.repo / relative).read_bytes()
    target = repo / copy_folder(1) / relative
    index = layout.open(Path(built.index_dir), embedder)
    samples, embedded, written = [], 0, 0
    try:
        for round_ in range(1, edits + 1):
            note = f"\n\nEdited by the scale benchmark, round {round_}.\n".encode()
            for content in (original.rstrip(b"\n") + note, original):
                target.write_bytes(content)
                subprocess.run(
                    ["git", "commit", "-q", "-am", "scale bench edit"], cwd=repo, env=_GIT_ENV, check=True
                )
                summary = ingest(index, embedder, repo, BENCH)
                samples.append(summary.seconds)
                embedded, written = (
                    max(embedded, summary.chunks["embedded"]),
                    max(written, summary.chunks["written"]),
                )
    finally:
        index.close()
    median = statistics.median(samples) if samples else float("nan")
    return IngestCost(samples_s=samples, median_s=median, embedded=embedded, written=written)


def _edited_file(seed: Seed) -> str:
    """A Markdown file of the seed with few sections but several: an edit changes only its last one.

    Ingest rewrites every chunk of an edited file (each records the file's last commit) and embeds
    only the changed one, so a short file keeps the measure about one section.
    """
    counts: dict[str, int] = {}
    for chunk in seed.chunks:
        counts[chunk["path"]] = counts.get(chunk["path"], 0) + 1
    return min((n, p) for p, n in counts.items() if n >= 3 and p.endswith(".md"))[1]


def _fractions(report: ScaleReport) -> None:
    costs = [r.ingest for r in report.rows if r.ingest]
    if costs and costs[0].median_s:
        for cost in costs:
            cost.fraction_of_smallest = round(cost.median_s / costs[0].median_s, 2)


def golden_queries(golden: list[Path]) -> list[str]:
    """Distinct golden queries, the sets interleaved so each slice mixes them."""
    sets = [[q.query for q in load_golden(path)] for path in golden]
    seen: dict[str, None] = {}
    for group in zip_longest(*sets):
        seen |= {q: None for q in group if q}
    return list(seen)


def _owner_pids(index_dir: Path) -> Iterator[int]:
    """The owner processes serving `index_dir` (one, or none when it has gone idle)."""
    wanted = str(index_dir.resolve())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"devrag.retrieval.owner" in argv and wanted.encode() in argv:
            yield int(entry.name)


def _owner_rss(index_dir: Path) -> float | None:
    return next((rss_mib(pid) for pid in _owner_pids(index_dir)), None)


def stop_owner(index_dir: Path, wait_s: float = 60.0) -> None:
    """Stop the owner of this benchmark index, so the next open starts one cold (and memory is freed)."""
    for pid in list(_owner_pids(index_dir)):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + wait_s
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)


def parse_sizes(value: str) -> list[int]:
    sizes = [int(v.replace("_", "")) for v in value.split(",") if v.strip()]
    if not sizes or min(sizes) < 1:
        raise ValueError(f"expected comma-separated chunk counts, got {value!r}")
    return sizes


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sizes", type=parse_sizes, default=list(DEFAULT_SIZES), help="Chunk counts, comma-separated."
    )
    parser.add_argument(
        "--workdir", type=Path, default=ScaleOptions().workdir, help="Cache of built indexes."
    )
    parser.add_argument(
        "--corpora", type=Path, nargs="*", default=[], help="Corpus folders [the shared runbooks]."
    )
    parser.add_argument("--golden", type=Path, nargs="*", default=[], help="Golden JSONL files of queries.")
    parser.add_argument("--queries", type=int, default=50, help="Queries per search variant.")
    parser.add_argument("--edits", type=int, default=2, help="Edit-and-revert pairs ingested per size.")
    parser.add_argument("--backend", choices=["edge", "qdrant"], default="edge")
    parser.add_argument("--qdrant-url", default=os.environ.get("DEVRAG_QDRANT_URL"))
    parser.add_argument("--first-modes", default=",".join(FIRST_MODES), help="Modes of the first answer.")
    parser.add_argument("--max-rss-gib", type=float, default=16.0, help="Stop a probe process past this RSS.")
    parser.add_argument(
        "--probe-timeout", type=float, default=3600.0, help="Stop a probe after these seconds."
    )
    parser.add_argument("--json", action="store_true", help="Print the report as one JSON object.")
    parser.add_argument("--show", type=Path, help="Only print the tables of a report saved with --json.")


def options_from(args: argparse.Namespace, models: ModelSpec) -> ScaleOptions:
    return ScaleOptions(
        sizes=args.sizes,
        workdir=args.workdir,
        corpora=args.corpora,
        golden=args.golden,
        queries=args.queries,
        edits=args.edits,
        backend=args.backend,
        qdrant_url=args.qdrant_url,
        models=models,
        first_modes=[m for m in args.first_modes.split(",") if m],
        max_rss_gib=args.max_rss_gib,
        probe_timeout_s=args.probe_timeout,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devrag.eval.scale_bench", description=__doc__)
    add_args(parser)
    args = parser.parse_args(argv)
    if args.show:
        render(ScaleReport.model_validate_json(args.show.read_text(encoding="utf-8")))
        return 0
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    print_report(run_scale_bench(options_from(args, ModelSpec.from_env())), args.json, render)
    return 0


if __name__ == "__main__":
    sys.exit(main())
