"""The reference BM25 ranking: the test oracle for the engine's BM25, which searches use.

Searches rank by the engine's text query over each chunk's BM25 field (`lexical_field`); this
in-memory index pins down the ranking that query must give, and tests hold the engine to it:

* query terms: a term counts as often as the query holds it, as ``get_scores`` counts it (the
  engine counts each distinct term once per text query, so `lexical_query` sends weighted text
  queries and adds their scores; counting once cost GitLab bm25 nDCG@10 0.359 -> 0.337);
* term frequency part: rank_bm25's ``BM25Okapi.get_scores`` with ``k1=1.2, b=0.75``;
* IDF: ``ln(1 + (N - n + 0.5) / (n + 0.5))`` (Lucene's, and Qdrant's IDF modifier), set by
  overriding ``BM25Okapi._calc_idf``. BM25Okapi's own IDF is 0 for a term in exactly half
  the documents and negative above that, patched by an ``epsilon * average_idf`` floor that
  is itself <= 0 in tiny corpora; so a matching document could score 0 or less. The
  Lucene IDF is > 0 for every term, so every matching document scores > 0.

``get_scores`` walks every document in Python per query term; :class:`Bm25Index` instead
keeps postings (term -> documents, frequencies) and scores only documents that contain a
query term, with numpy, using the same arithmetic so scores equal ``get_scores``.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from itertools import chain
from typing import Protocol, runtime_checkable

import numpy as np
from rank_bm25 import BM25Okapi

from devrag.retrieval.lexical_field import K1, B
from devrag.retrieval.tokenize import tokenize

__all__ = ["B", "K1", "Bm25Index", "LexicalIndex", "PositiveIdfBM25Okapi", "idf"]


@runtime_checkable
class LexicalIndex(Protocol):
    """Keyword search over chunks; implementations must rank alike for the same corpus."""

    def rebuild(self, docs: Sequence[tuple[str, str]]) -> None:
        """Replace the whole index with these ``(chunk_id, text)`` pairs."""
        ...

    def search(
        self, query: str, limit: int, allowed: Collection[str] | None = None
    ) -> list[tuple[str, float]]:
        """``(chunk_id, score)`` best first, score > 0, only ids in ``allowed`` if given."""
        ...

    def __len__(self) -> int: ...


def idf(n_docs: int, doc_freq: int) -> float:
    """Lucene/Qdrant BM25 IDF: positive for every term, even one in every document."""
    return math.log(1.0 + (n_docs - doc_freq + 0.5) / (doc_freq + 0.5))


class PositiveIdfBM25Okapi(BM25Okapi):
    """``BM25Okapi`` with :func:`idf` instead of its floored Robertson IDF."""

    def _calc_idf(self, nd: dict[str, int]) -> None:
        self.idf = {word: idf(self.corpus_size, freq) for word, freq in nd.items()}
        self.average_idf = sum(self.idf.values()) / len(self.idf) if self.idf else 0.0


@dataclass(frozen=True)
class _State:
    """Everything a search reads, swapped as one object so a rebuild is atomic to readers."""

    ids: list[str] = field(default_factory=list)
    position: dict[str, int] = field(default_factory=dict)
    span: dict[str, tuple[int, int]] = field(default_factory=dict)  # term -> postings slice
    idf: dict[str, float] = field(default_factory=dict)
    post_docs: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    post_tf: np.ndarray = field(default_factory=lambda: np.zeros(0))
    norm: np.ndarray = field(default_factory=lambda: np.zeros(0))  # k1 * (1 - b + b*len/avg)


class Bm25Index:
    """In-memory BM25 over tokenized chunks; see the module docstring for the scoring."""

    def __init__(self, docs: Sequence[tuple[str, str]] = ()) -> None:
        self._state = _State()
        if docs:
            self.rebuild(docs)

    def __len__(self) -> int:
        return len(self._state.ids)

    def rebuild(self, docs: Sequence[tuple[str, str]]) -> None:
        """Tokenize and index ``docs``, replacing everything; duplicate ids are an error."""
        ids = [chunk_id for chunk_id, _ in docs]
        position = {chunk_id: i for i, chunk_id in enumerate(ids)}
        if len(position) != len(ids):
            raise ValueError("duplicate chunk ids in a lexical index rebuild")
        if not ids:
            self._state = _State()
            return
        model = PositiveIdfBM25Okapi([tokenize(text) for _, text in docs], k1=K1, b=B)
        span, post_docs, post_tf = _invert(model.doc_freqs, model.idf)
        doc_len = np.array(model.doc_len)
        avgdl = model.avgdl or 1.0  # 0 only when no document has a token: nothing to score
        norm = K1 * (1 - B + B * doc_len / avgdl)  # the expression get_scores evaluates
        self._state = _State(ids, position, span, model.idf, post_docs, post_tf, norm)

    def search(
        self, query: str, limit: int, allowed: Collection[str] | None = None
    ) -> list[tuple[str, float]]:
        """Best ``limit`` chunks for ``query``; only chunks sharing a term with it score."""
        state = self._state
        terms = [t for t in tokenize(query) if t in state.span]
        if limit <= 0 or not terms:
            return []
        scores = np.zeros(len(state.ids))
        for term in terms:
            lo, hi = state.span[term]
            docs, tf = state.post_docs[lo:hi], state.post_tf[lo:hi]
            scores[docs] += state.idf[term] * (tf * (K1 + 1) / (tf + state.norm[docs]))
        hits = np.flatnonzero(scores > 0)
        if allowed is not None:
            hits = _restrict(state, hits, allowed)
        return [(state.ids[i], float(scores[i])) for i in _top(hits, scores[hits], limit)]


def _invert(
    doc_freqs: Sequence[dict[str, int]], vocabulary: Iterable[str]
) -> tuple[dict[str, tuple[int, int]], np.ndarray, np.ndarray]:
    """Postings from rank_bm25's per-document term counts, as slices of two flat arrays."""
    vocab = {word: i for i, word in enumerate(vocabulary)}
    count = sum(map(len, doc_freqs))
    terms = np.fromiter(map(vocab.__getitem__, chain.from_iterable(doc_freqs)), np.int32, count)
    tfs = np.fromiter(chain.from_iterable(d.values() for d in doc_freqs), np.float64, count)
    docs = np.repeat(np.arange(len(doc_freqs)), [len(d) for d in doc_freqs])
    order = np.argsort(terms, kind="stable")  # stable: each posting list in document order
    ends = np.cumsum(np.bincount(terms, minlength=len(vocab))).tolist()
    span = {word: (ends[t - 1] if t else 0, ends[t]) for word, t in vocab.items()}
    return span, docs[order], tfs[order]


def _restrict(state: _State, hits: np.ndarray, allowed: Collection[str]) -> np.ndarray:
    """The hits whose ids are in ``allowed``, walking whichever of the two is smaller."""
    if isinstance(allowed, AbstractSet) and len(hits) < len(allowed):
        ids = state.ids
        return hits[np.array([ids[i] in allowed for i in hits.tolist()], dtype=bool)]
    mask = np.zeros(len(state.ids), dtype=bool)
    mask[[i for i in map(state.position.get, allowed) if i is not None]] = True
    return hits[mask[hits]]


def _top(hits: np.ndarray, hit_scores: np.ndarray, limit: int) -> np.ndarray:
    """Indexes of the best ``limit`` hits, score descending, ties by document order."""
    if len(hits) > limit:  # partition first: sorting every hit of a common term is waste
        kth = np.partition(hit_scores, len(hits) - limit)[len(hits) - limit]
        keep = hit_scores >= kth  # ties at the cut all stay, so the tie-break below decides
        hits, hit_scores = hits[keep], hit_scores[keep]
    return hits[np.lexsort((hits, -hit_scores))][:limit]
