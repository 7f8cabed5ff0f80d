"""BM25 tokenizer that keeps operational identifiers findable whole and by their parts.

Runbooks are searched for things like ``CrashLoopBackOff``, ``kube-apiserver`` or
``etcd_disk_wal_fsync_duration_seconds``; people type them whole, in part (``apiserver``,
``fsync``) or as words (``crash loop``). So one raw token yields:

* the whole compound, lowercased (``kube-apiserver``, ``node.kubernetes.io/unreachable``);
* every segment between ``/``, ``:`` and ``@`` that is itself compound (``10.0.0.1`` of
  ``10.0.0.1:6443``);
* every atom between ``-``, ``_`` and ``.`` (``kube``, ``apiserver``);
* for an ASCII atom, its camelCase and letter-to-digit parts (``crash``, ``loop``, ``back``,
  ``off``; ``sha``, ``256``) and adjacent pairs of word parts (``crashloop``, ``backoff``);
  one-character parts and the parts of hex-like ids (``3f9c2e1d``) are dropped as noise.

Numeric dotted segments (IP addresses, ``1.2.3``, ``v1.2.3``) stay whole, because their
atoms (``0``, ``1``) match everything; ``v1.2.3`` also yields ``1.2.3``.

Stop words are dropped only when they stand alone as a word, never as part of an
identifier. Every pure ASCII-alphabetic token is then stemmed with the Snowball English
stemmer (PyStemmer, as bm25s does), so ``pods``/``pod`` and ``restarted``/``restarting``/
``restart`` meet. It is a function of the token alone, so documents and queries always agree
(``kubernetes`` becomes ``kubernet`` on both sides). Tokens with digits, connectors or
non-ASCII letters are never stemmed: ``etcd_disk_wal_fsync_duration_seconds`` stays itself.
"""

from __future__ import annotations

import re
from functools import lru_cache
from itertools import pairwise

import Stemmer

__all__ = ["STOP_WORDS", "tokenize"]

STOP_WORDS = frozenset(
    "a an the of to is in on for and or with be this that it as at by from are was were "
    "been but if then so into its than these those such also there their which can will "
    "has have had do does we you our your s t".split()
)

# A raw token: word runs joined by connectors ("kube-apiserver", "10.0.0.1:6443").
_RAW = re.compile(r"\w+(?:[-./:@]\w+)*")
_STRONG = re.compile(r"[/:@]")
_WEAK = re.compile(r"[-_.]")
_NUMERIC_DOTTED = re.compile(r"[vV]?\d+(?:\.\d+)+")
# camelCase / acronym / digit parts of an ASCII atom: "HTTPServer2" -> HTTP, Server, 2.
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
# Hashes and ids ("3f9c2e1d") would split into junk digit runs; they stay whole.
_HEXISH = re.compile(r"[0-9a-fA-F]{7,}")
_STEMMER = Stemmer.Stemmer("english")


def tokenize(text: str) -> list[str]:
    """Lowercase BM25 terms of ``text``; the same function serves documents and queries."""
    return [term for raw in _RAW.findall(text) for term in _expand(raw)]


@lru_cache(maxsize=1 << 17)
def _expand(raw: str) -> tuple[str, ...]:
    """All terms of one raw token; cached because prose repeats the same words endlessly."""
    if raw.isalpha() and (raw.islower() or raw.isupper() or raw[1:].islower()):
        word = raw.lower()  # plain word: the common case
        return () if word in STOP_WORDS else (_stem(word),)
    segments = [s for s in _STRONG.split(raw) if s]
    terms = [raw.lower()] if len(segments) > 1 else []
    for segment in segments:
        terms.extend(_expand_segment(segment))
    return tuple(dict.fromkeys(_stem(t) for t in terms if t))


def _expand_segment(segment: str) -> list[str]:
    """Terms of a segment between strong connectors (``/``, ``:``, ``@``)."""
    low = segment.lower()
    if _NUMERIC_DOTTED.fullmatch(segment):
        return [low, low[1:]] if low[0] == "v" else [low]
    atoms = [a for a in _WEAK.split(segment) if a]
    terms = [low] if len(atoms) != 1 or atoms[0] != segment else []
    for atom in atoms:
        terms.extend(_expand_atom(atom))
    return terms


def _expand_atom(atom: str) -> list[str]:
    """An atom whole plus, for ASCII camelCase or letter-digit mixes, its parts."""
    hexish = _HEXISH.fullmatch(atom) is not None
    parts = _CAMEL.findall(atom) if atom.isascii() and not hexish else []
    if len(parts) <= 1:
        return [atom.lower()]
    pieces = [p.lower() for p in parts]
    terms = [atom.lower()]
    terms.extend(p for p in pieces if len(p) > 1)
    terms.extend(a + b for a, b in pairwise(pieces) if a.isalpha() and b.isalpha())
    return terms


def _stem(token: str) -> str:
    """The Snowball stem of a pure ASCII-alphabetic token; anything else unchanged."""
    if not (token.isascii() and token.isalpha()):
        return token
    return _STEMMER.stemWord(token)
