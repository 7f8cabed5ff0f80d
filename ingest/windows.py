"""Pack source lines into windows that fit a token budget, with a token overlap between neighbours."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

TokenCounter = Callable[[str], int]

# Characters one token may stand for before length, not the tokenizer, sets a text's cost. The
# densest real line measured (runbooks corpus and corpus-sample) has 73 characters per word piece.
CHARS_PER_TOKEN = 128
# A single word over the budget is kept whole up to this length, as it always was: real runbooks
# hold URLs of up to 2.7 KB that the model reads the start of. Longer words are cut by characters.
LONG_WORD_CHARS = 4096


@dataclass(frozen=True)
class Unit:
    """A piece of one source line (a whole line unless the line alone is over budget)."""

    text: str
    line: int


@dataclass(frozen=True)
class Window:
    text: str
    start_line: int
    end_line: int


def cost(text: str, count: TokenCounter) -> int:
    """Tokens of `text`, but at least one per `CHARS_PER_TOKEN` characters.

    A word longer than the tokenizer's word limit reads as a single [UNK] piece, so a 5 MB line
    without spaces "fits" any window by tokens alone; the character floor keeps such text out of
    one chunk. Real prose and code stay far below the ratio, so their costs are the token counts.
    """
    return max(count(text), len(text) // CHARS_PER_TOKEN)


def clip(text: str, max_tokens: int, count: TokenCounter) -> str:
    """The longest prefix of `text` costing at most `max_tokens`, cut after a word when it can be.

    Titles and headings are clipped so that the breadcrumb never eats the window; text within the
    limit is returned unchanged, so ordinary titles are untouched.
    """
    text = text[: max_tokens * CHARS_PER_TOKEN]  # also bounds the cost of counting
    if cost(text, count) <= max_tokens:
        return text
    end = _longest(0, len(text), lambda k: cost(text[:k], count) <= max_tokens, max_tokens)
    word_end = text.rfind(" ", 0, end + 1)
    return text[: word_end if word_end > 0 else end].rstrip()


def _longest(low: int, high: int, fits: Callable[[int], bool], guess: int) -> int:
    """The largest k in [low, high] with fits(k), given fits(low) and that fits is monotone.

    Tries `guess` first, then gallops up or bisects down, so a good guess (the size of the piece
    before) costs two or three calls and each call looks at no more than about twice the answer.
    """
    probe = min(max(guess, low), high)
    if fits(probe):
        low, step = probe, 1
        while low < high:
            probe = min(low + step, high)
            if not fits(probe):
                high = probe - 1
                break
            low, step = probe, step * 2
    else:
        high = probe - 1
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low


def _explode(text: str, line: int, budget: int, count: TokenCounter) -> list[Unit]:
    """Split one over-long line at word boundaries (any whitespace) so no piece exceeds the budget.

    Each piece is the longest run of words that fits, found by a search over run lengths rather
    than by counting word after word, so a multi-megabyte line costs a few tokenizer calls per
    piece. A single word over the budget is a piece of its own, cut by characters if very long.
    """
    words = re.findall(r"\s*\S+", text) or [text]  # each word with the whitespace before it
    pieces: list[Unit] = []
    first, guess = 0, 1
    while first < len(words):
        words[first] = words[first].lstrip() if pieces else words[first]
        start = first

        def fits(k: int, start: int = start) -> bool:
            return cost("".join(words[start:k]), count) <= budget

        if not fits(start + 1):
            parts = _cut_word(words[start], budget, count) if len(words[start]) > LONG_WORD_CHARS else None
            pieces.extend(Unit(part, line) for part in parts or [words[start]])
            first += 1
            continue
        first = _longest(start + 1, len(words), fits, start + guess)
        guess = first - start
        pieces.append(Unit("".join(words[start:first]), line))
    return pieces


def _cut_word(word: str, budget: int, count: TokenCounter) -> list[str]:
    """A word over the budget in pieces of whole characters that each fit."""
    parts: list[str] = []
    while word:

        def fits(k: int, rest: str = word) -> bool:
            return cost(rest[:k], count) <= budget

        end = _longest(1, len(word), fits, budget)
        parts.append(word[:end])
        word = word[end:]
    return parts


def _join(units: list[Unit]) -> str:
    out: list[str] = []
    for i, unit in enumerate(units):
        if i and units[i - 1].line == unit.line:
            out.append(" ")
        elif i:
            out.append("\n")
        out.append(unit.text)
    return "".join(out)


def split_lines(
    lines: list[str], first_line: int, budget: int, count: TokenCounter, overlap: int = 50
) -> list[Window]:
    """Greedy windows of lines within `budget` tokens; `first_line` numbers lines[0] (1-based).

    Each window after the first starts with up to `overlap` tokens taken from the end of the one
    before, so a sentence cut at a boundary is read whole by one of the two. A line longer than
    the budget is cut at word boundaries, since the model would silently cut it anyway.
    """
    units: list[Unit] = []
    for offset, line in enumerate(lines):
        if cost(line, count) + 1 > budget:
            units.extend(_explode(line, first_line + offset, budget - 1, count))
        else:
            units.append(Unit(line, first_line + offset))
    costs = [cost(u.text, count) + 1 for u in units]
    windows: list[Window] = []
    first = 0
    while first < len(units):
        used, last = costs[first], first
        while last + 1 < len(units) and used + costs[last + 1] <= budget:
            last += 1
            used += costs[last]
        chosen = units[first : last + 1]
        windows.append(Window(_join(chosen), chosen[0].line, chosen[-1].line))
        if last + 1 >= len(units):
            break
        first = _next_start(costs, first, last, budget, overlap)
    return windows


def _next_start(costs: list[int], first: int, last: int, budget: int, overlap: int) -> int:
    """Where the next window starts: back from `last` by at most `overlap` tokens, always forward."""
    start, carried = last + 1, 0
    while start - 1 > first and carried + costs[start - 1] <= overlap:
        start -= 1
        carried += costs[start]
    # The overlap plus the next unit must fit, or the window would make no progress.
    while start <= last and carried + costs[last + 1] > budget:
        carried -= costs[start]
        start += 1
    return start
