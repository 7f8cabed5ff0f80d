"""The runtime flags the standalone benchmarks share, and the models they name.

A benchmark that builds its own index and then starts servers on it must embed as those servers
will: the same runtime (the environment's `DEVRAG_RUNTIME`, else onnx, devrag's default) and the
same ONNX exports. `runtime_env` hands both to the servers it starts.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from devrag.retrieval.factory import open_embedder, open_reranker
from devrag.retrieval.models import DEFAULT_EMBED_MODEL, Embedder
from devrag.retrieval.onnx_models import default_onnx_dir
from devrag.retrieval.rerank import Reranker


def add_runtime_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--runtime",
        choices=["onnx", "torch"],
        default=os.environ.get("DEVRAG_RUNTIME") or "onnx",
        help="Where the models run [DEVRAG_RUNTIME, else onnx].",
    )
    parser.add_argument(
        "--onnx-dir",
        type=Path,
        default=Path(os.environ.get("DEVRAG_ONNX_DIR") or default_onnx_dir()),
        help="The ONNX exports [DEVRAG_ONNX_DIR].",
    )


def embedder_from(args: argparse.Namespace) -> Embedder:
    return open_embedder(DEFAULT_EMBED_MODEL, args.runtime, "auto", args.onnx_dir)


def reranker_from(args: argparse.Namespace, name: str) -> Reranker:
    return open_reranker(name, args.runtime, "auto", args.onnx_dir, "auto")


def runtime_env(args: argparse.Namespace) -> dict[str, str]:
    """The variables that make a devrag server run the benchmark's runtime."""
    return {"DEVRAG_RUNTIME": args.runtime, "DEVRAG_ONNX_DIR": str(args.onnx_dir)}
