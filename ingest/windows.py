"""Pack source lines into windows that fit a token budget, with a token overlap between neighbours."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

TokenCounter = Callable[[str], int]


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


def _explode(text: str, line: int, budget: int, count: TokenCounter) -> list[Unit]:
    """Split one over-long line at word boundaries (any whitespace) so no piece exceeds the budget."""
    pieces: list[Unit] = []
    piece = ""
    for word in re.findall(r"\s*\S+", text) or [text]:  # each word with the whitespace before it
        if piece and count(piece + word) > budget:
            pieces.append(Unit(piece, line))
            piece, word = "", word.lstrip()
        piece += word
    if piece:
        pieces.append(Unit(piece, line))
    return pieces


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
        if count(line) + 1 > budget:
            units.extend(_explode(line, first_line + offset, budget - 1, count))
        else:
            units.append(Unit(line, first_line + offset))
    costs = [count(u.text) + 1 for u in units]
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
