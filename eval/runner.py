"""Set up an evaluation run: a golden JSONL file over a corpus folder, or a BEIR folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from devrag.eval.golden import GoldenQuery, beir_queries, load_beir, load_golden, materialise_beir
from devrag.eval.harness import git_snapshot


@dataclass(frozen=True)
class EvalSet:
    name: str
    queries: list[GoldenQuery]
    repo: Path  # a Git repository holding the corpus


def is_beir(path: Path) -> bool:
    return path.is_dir() and (path / "corpus.jsonl").exists()


def prepare(golden: Path, corpus: Path | None, workdir: Path) -> EvalSet:
    """Load the queries and make sure the corpus is a Git repository devrag can ingest.

    A plain folder (the shared corpora are plain trees) is snapshotted into one commit under
    `workdir`, at a stable place so a second run reuses the index.
    """
    if is_beir(golden):
        beir = load_beir(golden)
        dest = workdir / "repos" / golden.name
        if not (dest / ".git").exists():
            staging = workdir / "staging" / golden.name
            materialise_beir(beir, staging)
            git_snapshot(staging, dest)
        return EvalSet(golden.name, beir_queries(beir), dest)
    if corpus is None:
        raise ValueError(f"{golden} is a golden JSONL file: pass the corpus with --repo PATH.")
    queries = load_golden(golden)
    if (corpus / ".git").exists():
        return EvalSet(golden.stem, queries, corpus)
    return EvalSet(golden.stem, queries, git_snapshot(corpus, workdir / "repos" / corpus.name))
