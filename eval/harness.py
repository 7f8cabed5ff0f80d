"""`devrag eval`: retrieval quality per mode on a golden set, with the vanilla baseline beside it."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import BaseModel

from devrag.eval.golden import GoldenQuery
from devrag.eval.metrics import is_miss, summarize
from devrag.eval.vanilla import VanillaIndex
from devrag.ingest.pipeline import ingest
from devrag.retrieval.index import Index
from devrag.retrieval.models import Embedder
from devrag.retrieval.search import Filters, HybridIndex

VANILLA = "vanilla"
DEFAULT_MODES = (VANILLA, "dense", "bm25", "hybrid", "hybrid+rerank")

Progress = Callable[[int, int], None]


class EvalReport(BaseModel):
    queries: int
    modes: dict[str, dict[str, float]]
    misses: dict[str, list[str]]
    subsets: dict[str, dict[str, dict[str, float]]]


def git_snapshot(folder: Path, dest: Path) -> Path:
    """A one-commit Git repository holding a copy of `folder`, for corpora kept as plain trees."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(folder, dest, ignore=shutil.ignore_patterns(".git"))
    env = {"GIT_AUTHOR_NAME": "devrag", "GIT_AUTHOR_EMAIL": "devrag@localhost"}
    env |= {
        "GIT_COMMITTER_NAME": "devrag",
        "GIT_COMMITTER_EMAIL": "devrag@localhost",
        "PATH": "/usr/bin:/bin",
    }
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "snapshot"]):
        subprocess.run(["git", *args], cwd=dest, env=env, check=True, capture_output=True)
    return dest


def rank_paths(
    searcher: HybridIndex, queries: Sequence[GoldenQuery], mode: str, k: int, repo: str | None
) -> list[list[str]]:
    """The documents a caller receives per query for one devrag mode, in the order received."""
    filters = Filters(repo=repo)
    return [[r.path for r in searcher.search(q.query, k, mode, filters).results] for q in queries]  # type: ignore[arg-type]


def evaluate(
    queries: Sequence[GoldenQuery],
    repo_path: Path,
    index: Index,
    embedder: Embedder,
    searcher: HybridIndex,
    modes: Sequence[str] = DEFAULT_MODES,
    k: int = 10,
    repo_name: str | None = None,
) -> EvalReport:
    """Ingest (or reuse) the repository, then score every mode on the same queries."""
    summary = ingest(index, embedder, repo_path, repo_name)
    rankings: dict[str, list[list[str]]] = {}
    for mode in modes:
        if mode == VANILLA:
            vanilla = VanillaIndex(repo_path, embedder)
            rankings[mode] = [vanilla.search(q.query, k) for q in queries]
        else:
            rankings[mode] = rank_paths(searcher, queries, mode, k, summary.repo)
    return report(queries, rankings, k)


def report(queries: Sequence[GoldenQuery], rankings: dict[str, list[list[str]]], k: int) -> EvalReport:
    subsets = {
        "verbatim": [i for i, q in enumerate(queries) if q.verbatim],
        "not_verbatim": [i for i, q in enumerate(queries) if not q.verbatim],
    }
    for kind in sorted({q.kind for q in queries if q.kind}):
        subsets[f"kind={kind}"] = [i for i, q in enumerate(queries) if q.kind == kind]
    modes, misses, by_subset = {}, {}, {}
    for mode, ranked in rankings.items():
        pairs = [(r, q.relevant) for r, q in zip(ranked, queries, strict=True)]
        modes[mode] = summarize(pairs)
        misses[mode] = [q.id for r, q in zip(ranked, queries, strict=True) if is_miss(r, q.relevant, k)]
        by_subset[mode] = {name: summarize([pairs[i] for i in idx]) for name, idx in subsets.items() if idx}
    return EvalReport(queries=len(queries), modes=modes, misses=misses, subsets=by_subset)
