"""The chunk schema every index holds: what a chunk knows about where it came from."""

from __future__ import annotations

import hashlib
import uuid
from typing import Literal

from pydantic import BaseModel, Field

DocType = Literal["runbook", "postmortem", "guide", "code", "other"]
DOC_TYPES: tuple[str, ...] = ("runbook", "postmortem", "guide", "code", "other")

# Bump when chunk boundaries or chunk text change: an index built by another version is refused.
CHUNKER_VERSION = "2"

_ID_NAMESPACE = uuid.UUID("5b0f7c52-3c1e-4d0a-9a43-2f4f4d1b6e11")


def content_hash(text: str) -> str:
    """Hash of the exact text that is embedded; equal hashes share one vector."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def chunk_id(repo: str, path: str, chunk_hash: str, occurrence: int) -> str:
    """A point ID that stays the same while the chunk's text and place stay the same."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"{repo}\0{path}\0{chunk_hash}\0{occurrence}"))


class ChunkDraft(BaseModel):
    """A chunk as a chunker produces it, before it knows its repository or commit."""

    text: str
    headings: list[str] = Field(default_factory=list)
    start_line: int
    end_line: int
    symbol: str | None = None


class Chunk(BaseModel):
    """One indexed chunk: the payload stored beside its vector."""

    id: str
    repo: str
    path: str
    title: str
    headings: list[str]
    doc_type: DocType
    text: str
    content_hash: str
    start_line: int
    end_line: int
    commit: str
    last_commit: str
    blob_sha: str
    symbol: str | None = None

    @property
    def embed_text(self) -> str:
        return embed_text_for(self.title, self.headings, self.text)


def embed_text_for(title: str, headings: list[str], text: str) -> str:
    """The text a model reads: the title > H1 > H2 breadcrumb, then the chunk."""
    parts: list[str] = []
    for part in [title, *headings]:
        if part and (not parts or parts[-1] != part):
            parts.append(part)
    crumb = " > ".join(parts)
    return f"{crumb}\n\n{text}" if crumb else text
