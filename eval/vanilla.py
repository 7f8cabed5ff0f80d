"""The vanilla RAG baseline the articles start from: fixed 512-token chunks, no overlap, dense cosine top-k.

No headings, no BM25, no reranking; the model reads what it can of each chunk (all-MiniLM-L6-v2 stops
at 256 word pieces), exactly as the naive pipeline does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from devrag.retrieval.models import Embedder

CHUNK_TOKENS = 512


def fixed_chunks(text: str, count_tokens: Callable[[str], int], size: int = CHUNK_TOKENS) -> list[str]:
    """Consecutive runs of whitespace-separated words worth about `size` word pieces each."""
    chunks: list[str] = []
    words: list[str] = []
    used = 0
    for word in text.split():
        cost = count_tokens(word)
        if words and used + cost > size:
            chunks.append(" ".join(words))
            words, used = [], 0
        words.append(word)
        used += cost
    if words:
        chunks.append(" ".join(words))
    return chunks


class VanillaIndex:
    """Every file of a folder in fixed chunks, searched by brute-force cosine similarity."""

    def __init__(self, root: Path, embedder: Embedder, suffixes: tuple[str, ...] = (".md",)) -> None:
        self.embedder = embedder
        self.paths: list[str] = []
        texts: list[str] = []
        for file in sorted(p for p in root.rglob("*") if p.suffix in suffixes and ".git" not in p.parts):
            rel = file.relative_to(root).as_posix()
            for chunk in fixed_chunks(
                file.read_text(encoding="utf-8", errors="replace"), embedder.count_tokens
            ):
                self.paths.append(rel)
                texts.append(chunk)
        self.matrix = np.asarray(embedder.embed(texts), dtype=np.float32)

    def search(self, query: str, k: int) -> list[str]:
        """Paths of the k most similar chunks, best first."""
        vector = np.asarray(self.embedder.embed([query])[0], dtype=np.float32)
        scores = self.matrix @ vector
        top = np.argsort(-scores)[:k]
        return [self.paths[i] for i in top]
