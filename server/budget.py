"""Fit answers into a token budget, counted with the embedding model's own tokenizer.

Lower-ranked passages are shortened first; a passage cut away entirely is left out, and the answer
says how many were. Every cut is marked by the renderer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from devrag.server.outputs import Passage

TokenCounter = Callable[[str], int]
# A passage cut below this many tokens says too little to be worth its tokens: cite it instead.
MIN_SNIPPET_TOKENS = 16
_WORD = re.compile(r"\S+")


def cut_to_tokens(text: str, limit: int, count: TokenCounter) -> str:
    """The longest prefix of `text` that ends at a word and counts at most `limit` tokens."""
    if count(text) <= limit:
        return text
    ends = [m.end() for m in _WORD.finditer(text)]
    kept, upper = 0, len(ends)
    while kept < upper:
        mid = (kept + upper + 1) // 2
        if count(text[: ends[mid - 1]]) <= limit:
            kept = mid
        else:
            upper = mid - 1
    return text[: ends[kept - 1]] if kept else ""


@dataclass(frozen=True)
class Fitted:
    passages: list[Passage]  # the first len(passages) of those given, some cut
    text: str
    tokens: int


def fit_passages(
    passages: Sequence[Passage],
    render: Callable[[list[Passage]], str],
    count: TokenCounter,
    max_tokens: int,
) -> Fitted:
    """Cut the last passage until it fits; once it is gone, drop it and go on up the list.

    `passages` come in the order they should survive a small budget; `render(shown)` is the text
    the caller reads for the first `len(shown)` of them, and must mark cut ones. The first passage
    is never dropped: it is cut instead, down to its citation alone.
    """
    kept = list(passages)
    full = [count(p.text) for p in kept]
    allow = list(full)
    while True:
        shown = [_shorten(p, a, f, count) for p, a, f in zip(kept, allow, full, strict=True)]
        text = render(shown)
        tokens = count(text)
        if tokens <= max_tokens or not kept or (len(kept) == 1 and allow[0] == 0):
            return Fitted(shown, text, tokens)
        if allow[-1] == 0 and len(kept) > 1:
            kept.pop(), full.pop(), allow.pop()
            continue
        over = tokens - max_tokens
        allow[-1] -= over + (0 if allow[-1] < full[-1] else MIN_SNIPPET_TOKENS // 2)
        if allow[-1] < MIN_SNIPPET_TOKENS:
            allow[-1] = 0


def _shorten(passage: Passage, allow: int, full: int, count: TokenCounter) -> Passage:
    if allow >= full:
        return passage
    text = cut_to_tokens(passage.text, allow, count) if allow > 0 else ""
    return passage.model_copy(update={"text": text, "truncated": True, "tokens_cut": full - count(text)})


@dataclass(frozen=True)
class Page:
    count: int  # whole lines on the page
    cut_line: str | None  # the first line cut short, when even it alone does not fit
    text: str
    tokens: int


def fit_lines(
    lines: Sequence[str],
    render: Callable[[list[str], bool], str],
    count: TokenCounter,
    max_tokens: int,
) -> Page:
    """As many leading `lines` as fit; at least part of the first, so paging always moves on.

    `render(page_lines, cut)` is the text the caller reads; `cut` says the one line was cut short.
    """
    frame = count(render([], False))
    costs = [count(line) for line in lines]
    n, used = 0, frame
    while n < len(lines) and used + costs[n] <= max_tokens:
        used += costs[n]
        n += 1
    while n > 0:
        text = render(list(lines[:n]), False)
        tokens = count(text)
        if tokens <= max_tokens:
            return Page(n, None, text, tokens)
        n -= 1
    if not lines:
        text = render([], False)
        return Page(0, None, text, count(text))
    allow = max_tokens - count(render([""], True))
    while True:
        part = cut_to_tokens(lines[0], max(allow, 0), count)
        text = render([part], True)
        tokens = count(text)
        if tokens <= max_tokens or not part:
            return Page(1, part, text, tokens)
        allow -= tokens - max_tokens
