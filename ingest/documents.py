"""Turn one committed file into chunks, or into a reason it is skipped."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from devrag.ingest.code_chunker import chunk_code, language_for
from devrag.ingest.git_source import MODE_SUBMODULE, MODE_SYMLINK, TreeEntry
from devrag.ingest.markdown_chunker import parse_markdown
from devrag.ingest.windows import TokenCounter
from devrag.retrieval.schema import DOC_TYPES, ChunkDraft

MARKDOWN_SUFFIXES = {".md", ".markdown", ".mdx"}
# Plain-text config and docs without a grammar: indexed in line windows.
TEXT_SUFFIXES = {".txt", ".rst", ".json", ".toml", ".ini", ".cfg", ".conf", ".j2", ".tpl", ".sql"}
TEXT_NAMES = {"Dockerfile", "Makefile", "Jenkinsfile", "Procfile", "CODEOWNERS"}
_BINARY_PROBE = 8192
_SYMBOL_MARGIN = 24


@dataclass(frozen=True)
class Parsed:
    """A file's chunks and the document-level facts every chunk carries."""

    title: str
    doc_type: str
    drafts: list[ChunkDraft]


def skip_reason(entry: TreeEntry, max_bytes: int) -> str | None:
    """Why a tree entry is not indexed, judged before its content is read."""
    if entry.mode == MODE_SYMLINK:
        return "symlink"
    if entry.mode == MODE_SUBMODULE:
        return "submodule"
    if not is_supported(entry.path):
        return "unsupported file type"
    if entry.size == 0:
        return "empty file"
    if entry.size > max_bytes:
        return f"larger than the {max_bytes}-byte limit ({entry.size} bytes)"
    return None


def is_supported(path: str) -> bool:
    p = PurePosixPath(path)
    suffix = p.suffix.lower()
    return (
        suffix in MARKDOWN_SUFFIXES
        or suffix in TEXT_SUFFIXES
        or p.name in TEXT_NAMES
        or language_for(path) is not None
    )


def decode(data: bytes) -> str:
    """The text of a blob; raises ValueError with the reason for binary or non-UTF-8 content."""
    if b"\0" in data[:_BINARY_PROBE]:
        raise ValueError("binary content")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"invalid UTF-8 at byte {exc.start}") from exc
    return text.removeprefix("\ufeff")


def doc_type_for(path: str, front_matter: dict[str, Any]) -> str:
    """runbook / postmortem / guide / code / other, from front matter, else from the path."""
    declared = str(front_matter.get("type") or front_matter.get("doc_type") or "").lower()
    if declared in DOC_TYPES:
        return declared
    lowered = path.lower()
    if PurePosixPath(path).suffix.lower() not in MARKDOWN_SUFFIXES:
        return "code"
    for doc_type, hints in _PATH_HINTS:
        if any(h in lowered for h in hints):
            return doc_type
    return "other"


_PATH_HINTS = (
    ("postmortem", ("postmortem", "post-mortem", "incident", "retro")),
    ("runbook", ("runbook", "playbook", "alerts/", "alert")),
    ("guide", ("guide", "howto", "how-to", "deploy", "tutorial", "docs/")),
)


def parse_file(path: str, text: str, max_tokens: int, count: TokenCounter) -> Parsed:
    """Chunks of one file: Markdown by section, code by definition, anything else by lines."""
    text = text.replace("\r\n", "\n")
    if PurePosixPath(path).suffix.lower() in MARKDOWN_SUFFIXES:
        doc = parse_markdown(path, text, max_tokens, count)
        return Parsed(doc.title, doc_type_for(path, doc.front_matter), doc.chunks)
    title = path
    # The breadcrumb adds the path and a symbol name; symbols are short, so keep a margin for them.
    budget = max_tokens - count(title) - _SYMBOL_MARGIN
    return Parsed(title, doc_type_for(path, {}), chunk_code(path, text, budget, count))
