"""Pasted alerts: how much of a long query each stage should read, measured on a golden set.

Run: `python -m devrag.eval.pasted_queries GOLDEN --repo CORPUS [--every 2] [--read 64,128,254,8000]`
(the reranker from DEVRAG_RERANK_MODEL or `--reranker`).

Each golden query is followed by a 1,100-token kubelet log excerpt, as an agent pastes an alert
with what it saw; the reranked mode then runs with every stage reading the first N word pieces of
such a query (`SearchConfig.pasted_query_tokens`; 8,000 means all of it). The plain queries are
scored beside them.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from devrag.eval.golden import GoldenQuery, load_golden
from devrag.eval.harness import git_snapshot
from devrag.eval.metrics import summarize
from devrag.eval.model_args import add_runtime_args, embedder_from, reranker_from
from devrag.ingest.pipeline import ingest
from devrag.retrieval.factory import open_store
from devrag.retrieval.index import Index
from devrag.retrieval.search import HybridIndex
from devrag.retrieval.search_config import SearchConfig


def kubelet_log(seed: int) -> str:
    """Fourteen lines of the log an agent sees beside a crash-looping pod (about 1,100 word pieces)."""
    return "\n".join(
        f"2026-11-30T10:{j:02d}:{seed % 60:02d}Z kubelet[812]: I1130 10:{j:02d} pod_workers.go:{900 + j}] "
        f'"Error syncing pod, skipping" err="failed to \\"StartContainer\\" for \\"app\\" with '
        f'CrashLoopBackOff" pod="ns{seed % 7}/app-{j}"'
        for j in range(14)
    )


def score(searcher: HybridIndex, queries: list[GoldenQuery], texts: list[str]) -> list[str]:
    """Recall@1, MRR@10 and nDCG@10 of the documents the reranked mode ranks for `texts`."""
    ranked = [[r.path for r in searcher.search(text, 10, "hybrid+rerank").results] for text in texts]
    metrics = summarize([(r, q.relevant) for r, q in zip(ranked, queries, strict=True)])
    return [f"{metrics[key]:.3f}" for key in ("recall@1", "mrr@10", "ndcg@10")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("golden", type=Path)
    parser.add_argument("--repo", type=Path, required=True, help="The corpus folder.")
    parser.add_argument("--every", type=int, default=2, help="Use every Nth query (default 2).")
    parser.add_argument("--read", default="64,128,254,8000", help="Word pieces each stage reads.")
    parser.add_argument(
        "--reranker", default=os.environ.get("DEVRAG_RERANK_MODEL"), help="[DEVRAG_RERANK_MODEL]"
    )
    add_runtime_args(parser)
    args = parser.parse_args(argv)
    queries = load_golden(args.golden)[:: args.every]
    embedder = embedder_from(args)
    with tempfile.TemporaryDirectory() as tmp:
        repo = git_snapshot(args.repo, Path(tmp) / "repo")
        index = Index(open_store(Path(tmp) / "index"), embedder.name, embedder.dim)
        ingest(index, embedder, repo, "corpus")
        searcher = HybridIndex(index, embedder, reranker_from(args, args.reranker))
        table = Table("query", "each stage reads", "recall@1", "mrr@10", "ndcg@10", title=args.golden.name)
        table.add_row("plain", "all", *score(searcher, queries, [q.query for q in queries]))
        pasted = [f"{q.query}\n{kubelet_log(i)}" for i, q in enumerate(queries)]
        for tokens in (int(t) for t in args.read.split(",")):
            searcher.config = SearchConfig(pasted_query_tokens=tokens)
            table.add_row("alert + log", f"first {tokens}", *score(searcher, queries, pasted))
        searcher.close()
        index.close()
    Console().print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
