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

The engine counts each distinct word of a text query once, where BM25 counts a query word as often
as the query repeats it. So the field also holds every term's second and third spelling (`COUNTED`
in all: the term, then the term with one and two `8`s appended; base32 never writes an 8): each
spelling appears in exactly the chunks and as often as the term, so it scores exactly what the term
scores (the same document frequency, term frequency and, since every length grows by the same
factor, the same length ratio), and a query that holds a word c <= COUNTED times sends its first c
spellings and is scored whole by one text query. A query repeating a word more often adds weighted
parts (`query_parts`). The field is three times as long; most repeating queries need no second
text query, where each used to need two or more, often over deep hit lists.

Bump LEXICAL_VERSION whenever the terms of a chunk change (the tokenizer, `lexical_text`, the
spelling, `COUNTED`): an index built with other terms is refused until rebuilt.
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
LEXICAL_VERSION = "2"
# How many times one text query counts a word the query repeats (see the module's docstring).
COUNTED = 3


def lexical_text(chunk: Mapping[str, Any]) -> str:
    """BM25 reads the path and breadcrumb too: alert names often live only in the file name."""
    return f"{chunk['path']}\n{embed_text_for(chunk['title'], chunk['headings'], chunk['text'])}"


def field_text(chunk: Mapping[str, Any]) -> str:
    """The chunk's BM25 field: every term in its `COUNTED` spellings, repeats kept (they are its
    term frequencies)."""
    terms = tokenize(lexical_text(chunk))
    return " ".join(spelling for term in terms for spelling in _spellings(term, COUNTED))


def query_parts(query: str) -> list[tuple[int, str]]:
    """A query as weighted text queries in the field's spelling, whose weighted BM25 scores add up
    to the query's.

    BM25 counts a term as often as the query holds it. The first part holds every term, in as many
    of its spellings as the query repeats it (at most `COUNTED`), weight 1; then, for each count
    c > COUNTED the query repeats some term, the terms it holds exactly c times, weight
    c - COUNTED. So each term counts c times in all, every later part's terms are among the first
    part's, and the later parts share no term. Empty when the query has no term.
    """
    counts = Counter(tokenize(query))
    if not counts:
        return []
    parts = [(1, " ".join(s for term, c in counts.items() for s in _spellings(term, min(c, COUNTED))))]
    for repeats in sorted({c for c in counts.values() if c > COUNTED}):
        spelled = " ".join(_spellings(t, 1)[0] for t, c in counts.items() if c == repeats)
        parts.append((repeats - COUNTED, spelled))
    return parts


def _spellings(term: str, count: int) -> list[str]:
    """The term's first `count` spellings: its base32 word, then that word with 8s appended."""
    word = base64.b32encode(term.encode("utf-8")).decode("ascii").rstrip("=").lower()
    return [word + "8" * n for n in range(count)]
