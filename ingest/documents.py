"""Turn one committed file into chunks, or into a reason it is skipped."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath
from typing import Any

from devrag.ingest.alert_rules import alert_rules
from devrag.ingest.code_chunker import chunk_code, language_for
from devrag.ingest.doc_meta import document_meta
from devrag.ingest.git_source import MODE_SUBMODULE, MODE_SYMLINK, UNDECODABLE, TreeEntry
from devrag.ingest.markdown_chunker import MARKDOWN_SUFFIXES, parse_markdown
from devrag.ingest.redaction import redact
from devrag.ingest.windows import TokenCounter, clip
from devrag.retrieval.schema import DOC_TYPES, AlertRule, ChunkDraft, DocMeta

log = logging.getLogger(__name__)

# Plain-text config and docs without a grammar: indexed in line windows.
TEXT_SUFFIXES = {".txt", ".rst", ".json", ".toml", ".ini", ".cfg", ".conf", ".j2", ".tpl", ".sql"}
TEXT_NAMES = {"Dockerfile", "Makefile", "Jenkinsfile", "Procfile", "CODEOWNERS"}
_SYMBOL_MARGIN = 24
# No real runbook comes close (the most in the runbooks corpus: 137); a file of 10,000 headings
# would otherwise cost 10,000 embeddings. A 1 MB file of plain prose makes about 1,000 chunks.
MAX_FILE_CHUNKS = 2000


@dataclass(frozen=True)
class Parsed:
    """A file's chunks and the document-level facts every chunk carries."""

    title: str
    doc_type: str
    drafts: list[ChunkDraft]
    warnings: list[str] = field(default_factory=list)
    meta: DocMeta = field(default_factory=DocMeta)
    # Secrets replaced in the file's text before it was chunked: kind -> values (see `redaction`).
    redacted: dict[str, int] = field(default_factory=dict)
    # The alerting rules of a Prometheus/Alertmanager rule file (see `alert_rules`); empty otherwise.
    rules: list[AlertRule] = field(default_factory=list)


def skip_reason(entry: TreeEntry, max_bytes: int) -> str | None:
    """Why a tree entry is not indexed, judged before its content is read."""
    if UNDECODABLE in entry.path:
        return "file name is not valid UTF-8"
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
    """The text of a blob; raises ValueError with the reason for binary or non-UTF-8 content.

    The whole blob is searched for NUL (a fast scan), not a prefix: text never holds one, and a
    NUL after the first few KB would otherwise be indexed as text.
    """
    if b"\0" in data:
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


def parse_file(
    path: str, text: str, max_tokens: int, count: TokenCounter, max_chunks: int = MAX_FILE_CHUNKS
) -> Parsed:
    """Chunks of one file: Markdown by section, code by definition, anything else by lines.

    Secrets are replaced first (`redaction`), so no chunk, title, breadcrumb or metadata value
    holds one, and lines keep their numbers. At most `max_chunks` are kept, the first ones, with
    a warning that says where the file was cut. Warnings (a cut, an ignored front matter) are
    also logged, since the file is still indexed.
    """
    redaction = redact(path, text.replace("\r\n", "\n"))
    text = redaction.text
    if PurePosixPath(path).suffix.lower() in MARKDOWN_SUFFIXES:
        doc = parse_markdown(path, text, max_tokens, count)
        meta, notes = document_meta(path, doc.front_matter)
        doc_type = doc_type_for(path, doc.front_matter)
        parsed = Parsed(doc.title, doc_type, doc.chunks, doc.warnings + notes, meta)
    else:
        # The title is the path (clipped like a Markdown title) and the breadcrumb adds a symbol,
        # clipped to the margin kept for it, so the text keeps over half the window.
        title = clip(path, max_tokens // 4, count)
        budget = max_tokens - count(title) - _SYMBOL_MARGIN
        drafts = chunk_code(path, text, budget, count, symbol_tokens=_SYMBOL_MARGIN - 2)
        rules, notes = alert_rules(path, text)
        meta = document_meta(path, {})[0]
        parsed = Parsed(title, doc_type_for(path, {}), drafts, notes, meta, rules=rules)
    parsed = replace(_cut(parsed, max_chunks), redacted=dict(redaction.kinds))
    for warning in parsed.warnings:
        log.warning("%s: %s", path, warning)
    return parsed


def _cut(parsed: Parsed, max_chunks: int) -> Parsed:
    """The parse with no more than `max_chunks` chunks; a cut is named in its warnings."""
    if len(parsed.drafts) <= max_chunks:
        return parsed
    kept = parsed.drafts[:max_chunks]
    note = (
        f"cut at the {max_chunks}-chunk limit: {len(parsed.drafts)} chunks, "
        f"lines after {kept[-1].end_line} not indexed"
        if kept
        else f"over the {max_chunks}-chunk limit"
    )
    return replace(parsed, drafts=kept, warnings=[*parsed.warnings, note])
