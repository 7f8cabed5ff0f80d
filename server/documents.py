"""Whole documents as indexed: read from Git at the indexed commit, or rebuilt from their chunks.

The repository is the exact source: `git show <commit>:<path>` gives every line, including the
ones no chunk holds (front matter, blank lines between sections), with secrets replaced as ingest
replaced them. When the repository is not
reachable from the server (an index built elsewhere), the document is reassembled from its
chunks in line order: lines that overlapping pieces share appear once, and lines no chunk holds
(front matter, blank lines between sections) are left blank.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from git.exc import GitCommandError

from devrag.ingest.documents import MARKDOWN_SUFFIXES, decode
from devrag.ingest.git_source import GitSource, SourceError
from devrag.ingest.markdown_chunker import heading_lines
from devrag.ingest.redaction import redact
from devrag.retrieval.index import Index

TokenCounter = Callable[[str], int]


@dataclass(frozen=True)
class Document:
    title: str
    doc_type: str
    commit: str
    source: str  # "repository" or "chunks"
    lines: list[str]


def load(index: Index, repo: str, path: str, chunks: list[dict[str, Any]]) -> Document:
    """The document at the commit its repository is indexed at (see `RepoState.cited`)."""
    first = chunks[0]
    state = index.repo_state(repo)
    commit = state.cited(first["commit"]) if state else first["commit"]
    lines = _from_git(state.path, commit, path) if state else None
    source = "repository"
    if lines is None:
        lines, source = _from_chunks(chunks), "chunks"
    return Document(first["title"], first["doc_type"], commit, source, lines)


def _from_git(repo_path: str, commit: str, path: str) -> list[str] | None:
    try:
        source = GitSource(Path(repo_path))
    except SourceError:
        return None
    try:
        data = source.repo.git.show(f"{commit}:{path}", stdout_as_string=False, strip_newline_in_stdout=False)
        text = decode(bytes(data))
    except (GitCommandError, ValueError):
        return None
    finally:
        source.repo.close()
    # Redacted as ingest redacts, so what Git gives holds no secret the index does not.
    lines = redact(path, text.replace("\r\n", "\n")).text.split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


def _from_chunks(chunks: list[dict[str, Any]]) -> list[str]:
    """Chunk texts laid out by line number, each overlap once.

    A piece after the first may open with a lead: lines repeated from the piece before, which
    the chunker may join to the rest without the blank lines between them. The lead is laid out
    from the piece's first line and the rest from its last, so both land on their own lines.
    """
    by_line: dict[int, str] = {}
    covered = 0
    for chunk in chunks:
        text = chunk["text"].split("\n")
        start, end = chunk["start_line"], chunk["end_line"]
        last_lead = covered
        while last_lead >= start and not by_line.get(last_lead, "").strip():
            last_lead -= 1  # the chunker drops the blank lines between a lead and the rest
        lead = min(max(last_lead - start + 1, 0), len(text))
        rest_start = end - (len(text) - lead) + 1
        for number, line in [*enumerate(text[:lead], start), *enumerate(text[lead:], rest_start)]:
            by_line[number] = _merge_line(by_line.get(number, ""), line)
        covered = max(covered, end)
    return [by_line.get(n, "") for n in range(1, covered + 1)]


def _merge_line(old: str, new: str) -> str:
    """One source line from two pieces: a line too long for one chunk is split across several."""
    if new in old:
        return old
    if old in new:
        return new
    before, after = old.split(), new.split()
    shared = next(
        (k for k in range(min(len(before), len(after)), 0, -1) if before[-k:] == after[:k]),
        0,
    )
    return " ".join([*before, *after[shared:]])


@dataclass(frozen=True)
class Section:
    """One heading's section: its heading path (outermost first) and its lines, 1-based, inclusive."""

    path: tuple[str, ...]
    start: int
    end: int

    @property
    def label(self) -> str:
        return " > ".join(self.path)


def outline(path: str, lines: list[str], chunks: list[dict[str, Any]]) -> list[Section]:
    """Every section of the document, in order.

    Markdown sections come from the headings in its lines, so a `###` inside a section the
    chunker kept whole (or split elsewhere) can be asked for too; each runs to the next heading
    of the same or a higher level. Other files have only what their chunks name (code symbols).
    """
    if PurePosixPath(path).suffix.lower() in MARKDOWN_SUFFIXES:
        return _markdown_outline(lines)
    return _chunk_outline(chunks)


def _markdown_outline(lines: list[str]) -> list[Section]:
    found = heading_lines("\n".join(lines))
    sections = []
    enclosing: list[tuple[int, str]] = []
    for i, (level, line, text) in enumerate(found):
        enclosing = [(lvl, t) for lvl, t in enclosing if lvl < level] + [(level, text)]
        end = next((at for lvl, at, _ in found[i + 1 :] if lvl <= level), len(lines))
        while end > line + 1 and not lines[end - 1].strip():
            end -= 1  # the blank lines before the next heading belong to neither
        sections.append(Section(tuple(t for _, t in enclosing), line + 1, end))
    return sections


def _chunk_outline(chunks: list[dict[str, Any]]) -> list[Section]:
    """Each heading path the chunks carry, and its prefixes, over the lines of the chunks under it."""
    spans: dict[tuple[str, ...], tuple[int, int]] = {}
    for chunk in chunks:
        headings = tuple(chunk["headings"])
        for depth in range(1, len(headings) + 1):
            first, last = spans.get(headings[:depth], (chunk["start_line"], chunk["end_line"]))
            spans[headings[:depth]] = (min(first, chunk["start_line"]), max(last, chunk["end_line"]))
    return [Section(path, first, last) for path, (first, last) in spans.items()]


def section_range(sections: list[Section], section: str) -> tuple[int, int, str]:
    """First and last line (1-based, inclusive) of the section and its full heading path.

    `section` is one heading ("Mitigation") or the end of a path of them ("Disk full >
    Mitigation"), matched without regard to case; failing that, a unique heading that contains it
    ("helm"). A match inside another match is part of it, so the outer one is returned.

    Raises:
        ValueError: no section, or several, match; the message lists the candidates.
    """
    wanted = [p.strip().casefold() for p in section.split(">") if p.strip()]
    found = _outermost([s for s in sections if wanted and _folded(s)[-len(wanted) :] == wanted])
    if not found and wanted:
        found = _outermost([s for s in sections if wanted[-1] in _folded(s)[-1]])
    labels = list(dict.fromkeys(s.label for s in found))
    if len(labels) > 1:
        raise ValueError(f"Several sections match {section!r}: {'; '.join(labels)}. Pass one of them.")
    if not found:
        raise ValueError(_no_section(sections, section))
    return found[0].start, found[0].end, found[0].label


def _folded(s: Section) -> list[str]:
    return [h.strip().casefold() for h in s.path]


def _outermost(found: list[Section]) -> list[Section]:
    paths = {s.path for s in found}
    return [s for s in found if not any(s.path[:depth] in paths for depth in range(1, len(s.path)))]


def _no_section(sections: list[Section], section: str) -> str:
    labels = list(dict.fromkeys(s.label for s in sections))
    if not labels:
        return f"No section {section!r}: this document has no headings. Call again without section."
    return f"No section {section!r} in this document. Its sections: {'; '.join(labels[:20])}."
