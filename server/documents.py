"""Whole documents as indexed: read from Git at the indexed commit, or rebuilt from their chunks.

The repository is the exact source: `git show <commit>:<path>` gives every line, including the
ones no chunk holds (front matter, blank lines between sections). When the repository is not
reachable from the server (an index built elsewhere), the document is reassembled from its
chunks in line order: lines that overlapping pieces share appear once, and lines no chunk holds
(front matter, blank lines between sections) are left blank.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from git.exc import GitCommandError

from devrag.ingest.documents import decode
from devrag.ingest.git_source import GitSource, SourceError
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
    """The document at the commit its chunks were indexed at."""
    first = chunks[0]
    commit = first["commit"]
    state = index.repo_state(repo)
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
    lines = text.replace("\r\n", "\n").split("\n")
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


def section_range(chunks: list[dict[str, Any]], section: str) -> tuple[int, int, str]:
    """First and last line (1-based, inclusive) of the section and its full heading path.

    `section` is one heading ("Mitigation") or a path of them ("Disk full > Mitigation"), matched
    without regard to case; failing that, a unique heading that contains it ("helm").

    Raises:
        ValueError: no section, or several, match; the message lists the candidates.
    """
    wanted = [p.strip().casefold() for p in section.split(">") if p.strip()]
    found = _sections_at(chunks, lambda folded: _position(folded, wanted), len(wanted))
    if not found and wanted:
        found = _sections_at(chunks, lambda folded: _containing(folded, wanted[-1]), 1)
    if len(found) > 1:
        raise ValueError(f"Several sections match {section!r}: {'; '.join(found)}. Pass one of them.")
    if not found:
        raise ValueError(_no_section(chunks, section))
    ((label, prefix),) = found.items()
    mine = [c for c in chunks if c["headings"][: len(prefix)] == prefix]
    return min(c["start_line"] for c in mine), max(c["end_line"] for c in mine), label


def _sections_at(
    chunks: list[dict[str, Any]], locate: Callable[[list[str]], int | None], depth: int
) -> dict[str, list[str]]:
    """Heading path -> its headings, for each section where `locate` finds a match."""
    found: dict[str, list[str]] = {}
    for chunk in chunks:
        at = locate([h.strip().casefold() for h in chunk["headings"]])
        if at is not None:
            prefix = list(chunk["headings"][: at + depth])
            found.setdefault(" > ".join(prefix), prefix)
    return found


def _position(folded: list[str], wanted: list[str]) -> int | None:
    for i in range(len(folded) - len(wanted) + 1):
        if wanted and folded[i : i + len(wanted)] == wanted:
            return i
    return None


def _containing(folded: list[str], needle: str) -> int | None:
    return next((i for i, h in enumerate(folded) if needle in h), None)


def _no_section(chunks: list[dict[str, Any]], section: str) -> str:
    paths = list(dict.fromkeys(" > ".join(c["headings"]) for c in chunks if c["headings"]))
    if not paths:
        return f"No section {section!r}: this document has no headings. Call again without section."
    listed = "; ".join(paths[:20])
    return f"No section {section!r} in this document. Its sections: {listed}."
