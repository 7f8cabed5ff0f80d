"""Hierarchical Markdown chunks: one per H2 section, split further only when the model cannot read it.

Markdown is parsed with a CommonMark parser (markdown-it-py), so headings inside code fences, setext
headings and front matter are read as a reader sees them, and every block knows its source lines.
"""

from __future__ import annotations

import bisect
import itertools
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import yaml
from markdown_it import MarkdownIt
from markdown_it.token import Token
from mdit_py_plugins.front_matter import front_matter_plugin

from devrag.ingest.front_matter import FrontMatterError, load_front_matter
from devrag.ingest.windows import TokenCounter, clip, cost, split_lines
from devrag.retrieval.schema import ChunkDraft, embed_text_for

MARKDOWN_SUFFIXES = {".md", ".markdown", ".mdx"}
_MD = MarkdownIt("commonmark").use(front_matter_plugin).enable("table")
_BLOCK_OPENERS = {
    "paragraph_open",
    "fence",
    "code_block",
    "bullet_list_open",
    "ordered_list_open",
    "table_open",
    "blockquote_open",
    "heading_open",
    "html_block",
    "hr",
}


@dataclass
class MarkdownDoc:
    title: str
    front_matter: dict[str, Any]
    chunks: list[ChunkDraft] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Section:
    start: int  # 0-based line index, inclusive
    end: int  # exclusive
    headings: tuple[str, ...]


def _front_matter(tokens: list[Token], warnings: list[str]) -> tuple[dict[str, Any], int]:
    """The parsed front matter (empty when absent, invalid or refused) and the first body line.

    A refused front matter (aliases, too deep) is noted in `warnings`: the body is still indexed.
    """
    if not tokens or tokens[0].type != "front_matter":
        return {}, 0
    end = tokens[0].map[1] if tokens[0].map else 0
    try:
        data = load_front_matter(tokens[0].content)
    except FrontMatterError as exc:
        warnings.append(f"front matter ignored: {exc}")
        data = None
    except yaml.YAMLError as exc:
        warnings.append(f"front matter ignored: not valid YAML ({_yaml_problem(exc)})")
        data = None
    return (data if isinstance(data, dict) else {}), end


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """What PyYAML found wrong, and on which line of the file (the front matter opens on line 2)."""
    problem = getattr(exc, "problem", None) or "cannot be parsed"
    mark = getattr(exc, "problem_mark", None)
    return f"{problem}, line {mark.line + 2}" if mark is not None else problem


def _headings(tokens: list[Token]) -> list[tuple[int, int, str]]:
    """(level, start line, text) of every top-level heading."""
    found = []
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open" and tok.level == 0 and tok.map:
            found.append((int(tok.tag[1]), tok.map[0], tokens[i + 1].content.strip()))
    return found


def heading_lines(text: str) -> list[tuple[int, int, str]]:
    """(level, 0-based line, text) of every heading a reader sees, as the chunker reads them.

    Not those in code fences, front matter or HTML: the same parse the chunks were cut by.
    """
    return _headings(_MD.parse(re.sub(r"\r\n?", "\n", text)))


def _sections(
    headings: list[tuple[int, int, str]], body_start: int, n_lines: int, max_level: int
) -> list[_Section]:
    """Cut [body_start, n_lines) at headings up to `max_level`, tracking the heading path."""
    cuts = [(line, level, text) for level, line, text in headings if level <= max_level]
    sections: list[_Section] = []
    path: dict[int, str] = {}
    start = body_start
    for line, level, text in cuts:
        if line > start:
            sections.append(_Section(start, line, tuple(path[k] for k in sorted(path))))
        path = {k: v for k, v in path.items() if k < level}
        path[level] = text
        start = line
    sections.append(_Section(start, n_lines, tuple(path[k] for k in sorted(path))))
    return sections


def parse_markdown(
    path: str, text: str, max_tokens: int, count: TokenCounter, overlap: int = 50
) -> MarkdownDoc:
    """Chunk one Markdown document; each chunk's embedded text fits within `max_tokens`.

    The title is clipped to a quarter of the window and the breadcrumb to half of it, so however
    long a title or heading, a chunk always has at least half the window for its text.
    """
    text = re.sub(r"\r\n?", "\n", text)  # as the parser does, so its line numbers match ours
    lines = text.split("\n")
    tokens = _MD.parse(text)
    warnings: list[str] = []
    front, body_start = _front_matter(tokens, warnings)
    headings = [(lvl, line, clip(t, max_tokens // 2, count)) for lvl, line, t in _headings(tokens)]
    first_h1 = next((t for lvl, _, t in headings if lvl == 1), None)
    fm_title = front.get("title")
    title = str(fm_title).strip() if fm_title else first_h1 or PurePosixPath(path).stem
    title = clip(title, max_tokens // 4, count)
    doc = MarkdownDoc(title=title, front_matter=front, warnings=warnings)
    blocks = sorted({t.map[0] for t in tokens if t.type in _BLOCK_OPENERS and t.map and t.level == 0})
    costs = [cost(line, count) for line in lines]
    splitter = _Splitter(lines, costs, title, max_tokens, count, overlap, blocks, headings)
    for section in _sections(headings, body_start, len(lines), max_level=2):
        doc.chunks.extend(splitter.split(section))
    return doc


@dataclass
class _Splitter:
    lines: list[str]
    costs: list[int]  # tokens per line: WordPiece never joins across whitespace, so costs add up
    title: str
    max_tokens: int
    count: TokenCounter
    overlap: int
    blocks: list[int]
    headings: list[tuple[int, int, str]]
    # Derived lookups, so each section costs time for its own lines only, not for the whole file.
    sums: list[int] = field(init=False)
    h3: list[tuple[int, int, str]] = field(init=False)
    h3_lines: list[int] = field(init=False)

    def __post_init__(self) -> None:
        self.sums = [0, *itertools.accumulate(self.costs)]
        self.h3 = [h for h in self.headings if h[0] == 3]
        self.h3_lines = [h[1] for h in self.h3]

    def split(self, section: _Section) -> list[ChunkDraft]:
        """The section whole if it fits, else its H3 parts, else packed blocks with overlap."""
        start, end = self._trim(section.start, section.end)
        if start >= end:
            return []
        headings = self._crumb(section.headings)
        if self._fits(headings, start, end):
            return [self._draft(headings, start, end)]
        inner = self._between(self.h3, self.h3_lines, start, end)
        if any(h[1] > start for h in inner):
            parts = _sections(inner, start, end, max_level=3)
            out: list[ChunkDraft] = []
            for part in parts:
                extra = part.headings[-1:]
                out.extend(self.split(_Section(part.start, part.end, section.headings + extra)))
            return out
        return self._pack(headings, start, end)

    @staticmethod
    def _between(items: list[Any], keys: list[int], start: int, end: int) -> list[Any]:
        """The items whose (sorted) key lies in [start, end)."""
        return items[bisect.bisect_left(keys, start) : bisect.bisect_left(keys, end)]

    def _crumb(self, headings: tuple[str, ...]) -> tuple[str, ...]:
        """The headings, clipped to equal shares when the breadcrumb would take over half the window."""
        limit = self.max_tokens // 2
        if not headings or self.count(embed_text_for(self.title, list(headings), "")) <= limit:
            return headings
        # Each " > " separator costs up to two tokens; the title is already within a quarter.
        share = (limit - self.count(self.title)) // len(headings) - 2
        return tuple(clip(h, max(share, 1), self.count) for h in headings)

    def _pack(self, headings: tuple[str, ...], start: int, end: int) -> list[ChunkDraft]:
        budget = self._budget(headings)
        cuts = [start, *self._between(self.blocks, self.blocks, start + 1, end), end]
        out: list[ChunkDraft] = []
        piece_start = start
        for block_start, block_end in zip(cuts, cuts[1:], strict=False):
            # Only a piece after the first is led by overlap, so only those need room for it.
            if self._cost(piece_start, block_end) <= budget - (self.overlap if out else 0):
                continue
            if piece_start < block_start:
                out.append(self._piece(headings, piece_start, block_start, start))
            piece_start = block_start
            if self._cost(block_start, block_end) > budget - self.overlap:
                if self._cost(block_start, block_end) <= budget:  # fits alone: whole, without a lead
                    out.append(self._piece(headings, block_start, block_end, None))
                else:
                    out.extend(self._windows(headings, block_start, block_end, budget))
                piece_start = block_end
        if piece_start < end:
            out.append(self._piece(headings, piece_start, end, start))
        return [d for d in out if d.text.strip()]

    def _piece(self, headings: tuple[str, ...], start: int, end: int, floor: int | None) -> ChunkDraft:
        """A run of whole blocks, led by up to `overlap` tokens of what lies between `floor` and it."""
        start, end = self._trim(start, end)
        draft = self._draft(headings, start, end)
        if floor is None or floor >= start:
            return draft
        lead, lead_line = self._lead(start, floor)
        if not lead:
            return draft
        return draft.model_copy(update={"text": f"{lead}\n{draft.text}", "start_line": lead_line})

    def _lead(self, start: int, floor: int) -> tuple[str, int]:
        """The last `overlap` tokens in lines [floor, start): whole lines, then the tail of a long one."""
        first, carried = start, 0
        while first > floor and carried + self.costs[first - 1] <= self.overlap:
            first -= 1
            carried += self.costs[first]
        lines = self.lines[first:start]
        if first > floor and carried < self.overlap // 2:
            words = self.lines[first - 1].split()
            tail: list[str] = []
            while words and carried + cost(words[-1], self.count) <= self.overlap:
                carried += cost(words[-1], self.count)
                tail.insert(0, words.pop())
            if tail:
                first -= 1
                lines = [" ".join(tail), *lines]
        while lines and not lines[0].strip():
            lines.pop(0)
            first += 1  # the lead's first line is where its text starts
        # Joined as they are, blank lines before the piece included, so that the chunk's text is
        # its lines as the file has them (only a long line's tail starts mid-line).
        return "\n".join(lines), first + 1

    def _windows(self, headings: tuple[str, ...], start: int, end: int, budget: int) -> list[ChunkDraft]:
        windows = split_lines(self.lines[start:end], start + 1, budget, self.count, self.overlap)
        return [
            ChunkDraft(text=w.text, headings=list(headings), start_line=w.start_line, end_line=w.end_line)
            for w in windows
            if w.text.strip()
        ]

    def _trim(self, start: int, end: int) -> tuple[int, int]:
        while start < end and not self.lines[start].strip():
            start += 1
        while end > start and not self.lines[end - 1].strip():
            end -= 1
        return start, end

    def _cost(self, start: int, end: int) -> int:
        return self.sums[end] - self.sums[start]

    def _budget(self, headings: tuple[str, ...]) -> int:
        return self.max_tokens - self.count(embed_text_for(self.title, list(headings), ""))

    def _fits(self, headings: tuple[str, ...], start: int, end: int) -> bool:
        return self._cost(start, end) <= self._budget(headings)

    def _draft(self, headings: tuple[str, ...], start: int, end: int) -> ChunkDraft:
        text = "\n".join(self.lines[start:end])
        return ChunkDraft(text=text, headings=list(headings), start_line=start + 1, end_line=end)
