"""The BM25 field every chunk carries, so the engine itself ranks by devrag's BM25.

The engine scores a text query over a payload field with a text index (BM25, ``k1`` and ``b``
per query, Lucene IDF, the average length over the indexed points), exactly the ranking pinned
in `devrag.retrieval.lexical` once it sees the same terms. So the field holds devrag's own terms
(`tokenize` over `lexical_text`), each spelled as one base32 word: every Qdrant tokenizer keeps
such a word whole and unchanged (lowercase letters and digits 2-7, nothing to split, fold or
stem), and spellings cannot collide, because base32 is reversible. The embedded engine indexes
the field with its `Whitespace` tokenizer and no lowercasing; qdrant-client's local mode (the
tests' stand-in for a server) ranks text queries only with the default `Word` tokenizer, which
reads the same words. Raw terms would not survive it: `kube-apiserver` would count as two.

Bump LEXICAL_VERSION whenever the terms of a chunk change (the tokenizer, `lexical_text`, the
spelling): an index built with other terms is refused until rebuilt.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Mapping
from typing import Any

from devrag.retrieval.schema import embed_text_for
from devrag.retrieval.tokenize import tokenize

__all__ = ["B", "K1", "LEXICAL_FIELD", "LEXICAL_VERSION", "field_text", "lexical_text", "query_parts"]

# BM25's parameters, for the engine's text queries and the reference `Bm25Index` alike.
K1 = 1.2
B = 0.75
LEXICAL_FIELD = "lexical"
LEXICAL_VERSION = "1"


def lexical_text(chunk: Mapping[str, Any]) -> str:
    """BM25 reads the path and breadcrumb too: alert names often live only in the file name."""
    return f"{chunk['path']}\n{embed_text_for(chunk['title'], chunk['headings'], chunk['text'])}"


def field_text(chunk: Mapping[str, Any]) -> str:
    """The chunk's BM25 field: every term, repeats kept (they are its term frequencies)."""
    return " ".join(map(_spell, tokenize(lexical_text(chunk))))


def query_parts(query: str) -> list[tuple[int, str]]:
    """A query as weighted text queries in the field's spelling, whose weighted BM25 scores add up
    to the query's.

    The engine scores each distinct term of a text query once; BM25 counts a term as often as
    the query holds it. The first part holds every term, weight 1; then, for each count c > 1 the
    query repeats some term, the terms it holds exactly c times, weight c - 1. So each term counts
    c times in all, every later part's terms are among the first part's, and the later parts
    share no term. Empty when the query has no term.
    """
    counts = Counter(tokenize(query))
    if not counts:
        return []
    parts = [(1, " ".join(map(_spell, counts)))]
    for repeats in sorted({c for c in counts.values() if c > 1}):
        parts.append((repeats - 1, " ".join(_spell(t) for t, c in counts.items() if c == repeats)))
    return parts


def _spell(term: str) -> str:
    return base64.b32encode(term.encode("utf-8")).decode("ascii").rstrip("=").lower()
