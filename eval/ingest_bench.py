"""Ingestion benchmark: full ingest against raw embedding, no-op re-ingest, and a one-section edit.

Run: `python -m devrag.eval.ingest_bench ../shared/data/runbooks-corpus [--runtime onnx|torch]` (or
`make bench`).
Everything is measured side by side in one process on the same chunk texts; small steps are
repeated and reported as medians, since these machines are noisy.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from devrag.eval.harness import git_snapshot
from devrag.ingest.documents import decode, is_supported, parse_file
from devrag.ingest.pipeline import IngestSummary, ingest
from devrag.retrieval.factory import Runtime, open_embedder, open_store
from devrag.retrieval.index import Index
from devrag.retrieval.models import DEFAULT_EMBED_MODEL, Embedder
from devrag.retrieval.onnx_models import default_onnx_dir
from devrag.retrieval.schema import embed_text_for

REPEATS = 5


def chunk_texts(repo: Path, embedder: Embedder) -> list[str]:
    """The embedded text of every chunk of the tree, as ingestion would produce it."""
    texts: list[str] = []
    for file in sorted(p for p in repo.rglob("*") if p.is_file() and ".git" not in p.parts):
        rel = file.relative_to(repo).as_posix()
        if not is_supported(rel):
            continue
        parsed = parse_file(rel, decode(file.read_bytes()), embedder.max_tokens, embedder.count_tokens)
        texts.extend(embed_text_for(parsed.title, d.headings, d.text) for d in parsed.drafts)
    return texts


def edit_one_section(repo: Path) -> None:
    """Change one sentence in the largest Markdown file and commit it."""
    target = max(repo.rglob("*.md"), key=lambda p: p.stat().st_size)
    lines = target.read_text(encoding="utf-8").splitlines()
    body = next(i for i, line in enumerate(lines) if line.strip() and not line.startswith(("#", "---")))
    lines[body] += " (Edited for the benchmark.)"
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    env = {"GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b"}
    env |= {"GIT_COMMITTER_EMAIL": "b@b", "PATH": "/usr/bin:/bin"}
    subprocess.run(["git", "commit", "-qam", "edit"], cwd=repo, env=env, check=True)


def timed_ingest(index: Index, embedder: Embedder, repo: Path) -> tuple[float, IngestSummary]:
    started = time.perf_counter()
    summary = ingest(index, embedder, repo, "bench")
    return time.perf_counter() - started, summary


def run(corpus: Path, runtime: Runtime = "onnx", onnx_dir: Path | None = None) -> Table:
    embedder = open_embedder(DEFAULT_EMBED_MODEL, runtime, "auto", onnx_dir or default_onnx_dir())
    with tempfile.TemporaryDirectory() as tmp:
        repo = git_snapshot(corpus, Path(tmp) / "repo")
        files = sum(1 for p in repo.rglob("*") if p.is_file() and ".git" not in p.parts)
        texts = chunk_texts(repo, embedder)
        embedder.embed(texts[:64])  # warm the model before either timing
        started = time.perf_counter()
        embedder.embed(texts)
        raw = time.perf_counter() - started
        index = Index(open_store(Path(tmp) / "index"), embedder.name, embedder.dim)
        full, first = timed_ingest(index, embedder, repo)
        noop = statistics.median(timed_ingest(index, embedder, repo)[0] for _ in range(REPEATS))
        edits = []
        for _ in range(3):
            edit_one_section(repo)
            edits.append(timed_ingest(index, embedder, repo))
        index.store.close()
    edit_time = statistics.median(t for t, _ in edits)
    embedded = sorted(s.chunks["embedded"] for _, s in edits)
    table = Table(title=f"ingest benchmark, {runtime} runtime: {corpus} ({files} files, {len(texts)} chunks)")
    for column in ("measure", "value", "target"):
        table.add_column(column)
    table.add_row("raw embedding of the same chunk texts", f"{raw:.1f} s", "")
    table.add_row("full ingest", f"{full:.1f} s ({first.chunks['embedded']} embedded)", "")
    table.add_row("full-ingest throughput / raw embedding throughput", f"{raw / full:.3f}", ">= 0.85")
    table.add_row(
        f"no-op re-ingest (median of {REPEATS})",
        f"{noop * 1000:.0f} ms = {noop / full:.4f} of full",
        "<= 0.02",
    )
    table.add_row(
        "edit one section, re-ingest (median of 3)",
        f"{edit_time * 1000:.0f} ms = {edit_time / full:.4f} of full; embedded {embedded}",
        "<= 0.03, embedded [1, 1, 1]",
    )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description="Ingestion benchmark on a corpus folder.")
    parser.add_argument("corpus", type=Path, nargs="?", default=Path("../shared/data/runbooks-corpus"))
    parser.add_argument("--runtime", choices=["onnx", "torch"], default="onnx")
    parser.add_argument("--onnx-dir", type=Path, default=default_onnx_dir(), help="The ONNX exports.")
    args = parser.parse_args()
    Console().print(run(args.corpus, args.runtime, args.onnx_dir))


if __name__ == "__main__":
    main()
