"""What every chunk knows about its document, written at ingest so a search needs only its candidates.

A search ranks documents, shows a document's opening section, maps alert names and runbook URLs
to documents and filters by folder. Reading any of that from the chunks as a whole would make
every search process hold the corpus; instead ingest, which sees each document whole, copies it
onto each chunk, and the engine answers the rest by its payload indexes. A file that changes is
rewritten whole (every chunk's payload differs), so these fields never go stale.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

from pydantic import BaseModel, Field

# An ATX or setext H1 alone: all a runbook holds before its first H2 when it opens with its title.
_TITLE_ONLY = re.compile(r"\A(?:#[ \t]+[^\n]*|[^\n]+\n=+)\Z")
# An alert name as a title: one identifier with a lower-to-upper hump (`KubeAPIDown`, `etcdNoLeader`).
_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_HUMP = re.compile(r"[a-z0-9][A-Z]")
# A page a URL to its folder means (`.../sidekiq/` -> `sidekiq/README.md`).
_FOLDER_PAGES = {"readme", "index", "_index"}
_PAGE_SUFFIXES = {".md", ".markdown", ".mdx", ".html", ".htm"}


class DocFields(BaseModel):
    """A chunk's place in its document, and the document facts searches look up by the engine."""

    section: int = 0  # place in the document, 0 for its first chunk (one chunk per document: 0)
    title_only: bool = False  # the chunk's whole text is its document's H1 (see `title_only`)
    # The document's lead (its first chunk that says more than its title) and opening (its lead,
    # else its first chunk: what the page is about), by chunk id.
    lead: str | None = None
    opening: str = ""
    # The alert name the document's title or H1 is (see `title_alert`), and every alert name the
    # document brings to the alert catalogue: front matter `alerts`, that title, its rules' names.
    title_alert: str | None = None
    alert_names: list[str] = Field(default_factory=list)
    # The path's last segment as runbook URLs are compared (see `segments`), and its folders
    # (`a`, `a/b` for `a/b/c.md`), which a folder filter matches.
    path_key: str | None = None
    path_dirs: list[str] = Field(default_factory=list)


def document_fields(
    path: str, chunks: Sequence[Mapping[str, Any]], alerts: Sequence[str], rules: Sequence[str]
) -> list[DocFields]:
    """Each chunk's DocFields, for one document's chunks in line order (each with `id`, `text`,
    `title`, `headings`, `doc_type`); `alerts` and `rules` are its front matter alerts and the
    names its alerting rules define."""
    if not chunks:
        return []
    lead = next((c["id"] for c in chunks if not title_only(c["text"])), None)
    title = title_alert(path, chunks[0])
    names = list(dict.fromkeys([*alerts, *([title] if title else []), *rules]))
    keys = segments(path)
    shared = {
        "lead": lead,
        "opening": lead or chunks[0]["id"],
        "title_alert": title,
        "alert_names": names,
        "path_key": keys[-1] if keys else None,
        "path_dirs": folders(path),
    }
    return [DocFields(section=i, title_only=title_only(c["text"]), **shared) for i, c in enumerate(chunks)]


def title_only(text: str) -> bool:
    """Whether a chunk's whole text is its document's H1.

    Such chunks stay indexed, because their short vector and title words match alert names well:
    leaving them out cost the reranked mode 0.880 -> 0.866 Recall@1 on alerts-to-runbooks (dense
    alone 0.823 -> 0.791). But shown as a passage, a title tells the reader nothing the result's
    title does not, so results show other sections instead.
    """
    return bool(_TITLE_ONLY.match(text.strip()))


def title_alert(path: str, chunk: Mapping[str, Any]) -> str | None:
    """The alert name a document's title or H1 is, if it is one.

    An identifier with a camel hump alone also fits product names (`PostgreSQL`, `GitLab`,
    `InfluxDB` are titles in the GitLab runbooks), so it counts only when it also names the file,
    case and all as Prometheus compares alert names (`KubePodCrashLooping.md`; `zendesk.md` titled
    `ZenDesk` is a product page), or the document is a runbook.
    """
    headings = chunk.get("headings") or []
    for text in (chunk.get("title"), headings[0] if headings else None):
        name = (text or "").strip()
        if not _IDENTIFIER.fullmatch(name) or not _HUMP.search(name):
            continue
        if PurePosixPath(path).stem == name or chunk.get("doc_type") == "runbook":
            return name
    return None


def segments(path: str) -> list[str]:
    """A path's segments as runbook URLs are compared: lowercased, page suffix dropped, a folder's
    page as the folder."""
    parts = [s.lower() for s in path.split("/") if s and s != "-"]
    if parts:
        last = PurePosixPath(parts[-1])
        if last.suffix in _PAGE_SUFFIXES:
            parts[-1] = last.stem
        if parts[-1] in _FOLDER_PAGES:
            parts.pop()
    return parts


def folders(path: str) -> list[str]:
    """Every folder `path` lies in, outermost first: `a/b/c.md` -> [`a`, `a/b`]."""
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]
