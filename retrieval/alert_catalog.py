"""The alert catalogue: which indexed documents answer each alert name, and how that is known.

Three sources, all read from what the index holds, so the catalogue is always the index's own:
- `front_matter`: the document's `alerts` field;
- `title`: its title or H1 is an alert name (`KubePodCrashLooping`, as most prometheus-operator and
  OpenShift runbooks are titled);
- `rule`: an indexed Prometheus/Alertmanager rule file defines the alert, and its `runbook_url`
  names the document (see `runbook_documents` for how a URL maps to a path).

It is rebuilt with every view (a few milliseconds: one pass over payloads the view holds already),
so a rule file or a runbook that changes, moves or goes away re-maps on the next read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import PurePosixPath
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel

from devrag.retrieval.index import Index

Document = tuple[str, str]  # (repo, path)
# `runbook_url`: not the catalogue's but the alert's own annotation, when an alert is passed whole.
CatalogSource = Literal["front_matter", "title", "rule", "runbook_url"]

# An alert name as a title: one identifier with a lower-to-upper hump (`KubeAPIDown`, `etcdNoLeader`).
_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_HUMP = re.compile(r"[a-z0-9][A-Z]")
# A page a URL to its folder means (`.../sidekiq/` -> `sidekiq/README.md`).
_FOLDER_PAGES = {"readme", "index", "_index"}
_PAGE_SUFFIXES = {".md", ".markdown", ".mdx", ".html", ".htm"}
# Forge URLs put the path after `blob/<ref>/` (GitHub, GitLab's `-/blob/<ref>/`) or `raw`/`tree`/`edit`.
_FORGE_VERBS = {"blob", "tree", "raw", "edit"}


class AlertMatch(BaseModel):
    """Why a document answers an alert: the name, and where the catalogue learned it."""

    alert: str
    source: CatalogSource
    rule: str | None = None  # `repo:path` of the rule file, for source "rule"
    runbook_url: str | None = None  # the rule's (or the alert's) annotation


class AlertCatalog:
    """Alert name -> the documents that answer it, built from one view's chunk payloads."""

    def __init__(
        self, chunks: Mapping[str, Mapping[str, Any]], documents: Mapping[Document, list[str]]
    ) -> None:
        """`documents` maps each (repo, path) to its chunk ids in line order."""
        self._paths = _PathIndex(documents)
        self._entries: dict[str, list[tuple[Document, AlertMatch]]] = {}
        for doc, ids in documents.items():
            first = chunks[ids[0]]
            for name in first.get("alerts") or []:
                self._add(name, doc, AlertMatch(alert=name, source="front_matter"))
            title = _title_alert(doc[1], first)
            if title:
                self._add(title, doc, AlertMatch(alert=title, source="title"))
            for rule in first.get("alert_rules") or []:
                url = rule.get("runbook_url")
                for target in self._paths.resolve(url, doc[0]) if url else []:
                    match = AlertMatch(
                        alert=rule["alert"], source="rule", rule=f"{doc[0]}:{doc[1]}", runbook_url=url
                    )
                    self._add(rule["alert"], target, match)
        names = sorted(self._entries, key=len, reverse=True)  # longest first: `FooBarHigh` before `FooBar`
        self._names = (
            re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, names)) + r")(?!\w)") if names else None
        )

    def _add(self, name: str, doc: Document, match: AlertMatch) -> None:
        entries = self._entries.setdefault(name, [])
        if all(d != doc for d, _ in entries):  # the first source to name it is the one shown
            entries.append((doc, match))

    def documents(self, alert: str) -> list[tuple[Document, AlertMatch]]:
        """The documents that answer `alert` (exact name, as Prometheus compares them)."""
        return list(self._entries.get(alert.strip(), []))

    def names_in(self, text: str) -> list[str]:
        """Catalogued alert names that occur in `text` as whole words, in order of first occurrence."""
        if self._names is None:
            return []
        return list(dict.fromkeys(m.group(0) for m in self._names.finditer(text)))

    def runbook_documents(self, url: str, repo: str | None = None) -> list[Document]:
        """The indexed documents a runbook URL (or a path in `repo`) names; empty when none or unclear."""
        return self._paths.resolve(url, repo)

    def counts(self) -> dict[str, dict[str, int]]:
        """Per repository, how many alert names the catalogue maps to its documents, by source."""
        out: dict[str, dict[str, set[str]]] = {}
        for name, entries in self._entries.items():
            for (repo, _path), match in entries:
                out.setdefault(repo, {}).setdefault(match.source, set()).add(name)
        return {
            repo: {source: len(names) for source, names in sorted(sources.items())}
            for repo, sources in sorted(out.items())
        }


_CATALOG_FIELDS = ("repo", "path", "title", "headings", "doc_type", "alerts", "alert_rules")


def catalog_of(index: Index) -> AlertCatalog:
    """The catalogue of what the index holds, read from payloads alone (no models, no view)."""
    chunks: dict[str, dict[str, Any]] = {}
    documents: dict[Document, list[str]] = {}
    for point in index.store.scroll(fields=list(_CATALOG_FIELDS)):
        doc = (point.payload["repo"], point.payload["path"])
        if doc not in documents:  # every chunk carries its document's title, H1, alerts and rules
            documents[doc] = [point.id]
            chunks[point.id] = point.payload
    return AlertCatalog(chunks, documents)


def _title_alert(path: str, chunk: Mapping[str, Any]) -> str | None:
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


class _PathIndex:
    """Indexed documents by the last segment of their path, for mapping runbook URLs to them.

    A URL names a document when its path's last segments equal the document path's last segments,
    case-insensitively and without the page suffix: a site URL
    (https://runbooks.prometheus-operator.dev/runbooks/alertmanager/alertmanagerfailedreload ->
    content/runbooks/alertmanager/AlertmanagerFailedReload.md), a forge URL
    (https://github.com/org/runbooks/blob/main/alerts/X.md -> alerts/X.md), or a folder URL (its
    README or index page). The document sharing the most segments wins; a tie is no answer, so a
    vague URL falls through to search rather than to a guess.
    """

    def __init__(self, documents: Iterable[Document]) -> None:
        self._by_last: dict[str, list[tuple[Document, list[str]]]] = {}
        self._exact: set[Document] = set()
        for doc in documents:
            self._exact.add(doc)
            segments = _segments(doc[1])
            if segments:
                self._by_last.setdefault(segments[-1], []).append((doc, segments))

    def resolve(self, url: str, repo: str | None) -> list[Document]:
        url = url.strip()
        parts = urlsplit(url)
        if not parts.scheme and not parts.netloc and repo is not None:
            path = str(PurePosixPath(parts.path.lstrip("/")))
            if (repo, path) in self._exact:
                return [(repo, path)]
        wanted = _segments(_forge_path(parts.path))
        if not wanted:
            return []
        best: list[Document] = []
        best_length = 0.0
        for doc, segments in self._by_last.get(wanted[-1], []):
            length = float(_common_suffix(segments, wanted))
            if repo is not None and doc[0] == repo:
                length += 0.5  # a relative path or a tie prefers the rule file's own repository
            if length > best_length:
                best, best_length = [doc], length
            elif length == best_length:
                best.append(doc)
        return best if len(best) == 1 else []


def _forge_path(path: str) -> str:
    """A forge URL's path within the repository (after `blob/<ref>/`); other paths as they are."""
    segments = [s for s in path.split("/") if s]
    for i, segment in enumerate(segments[:-2]):
        if segment in _FORGE_VERBS and i >= 2:
            return "/".join(segments[i + 2 :])
    return "/".join(segments)


def _segments(path: str) -> list[str]:
    """A path's segments as compared: lowercased, page suffix dropped, a folder's page as the folder."""
    segments = [s.lower() for s in path.split("/") if s and s != "-"]
    if segments:
        last = PurePosixPath(segments[-1])
        if last.suffix in _PAGE_SUFFIXES:
            segments[-1] = last.stem
        if segments[-1] in _FOLDER_PAGES:
            segments.pop()
    return segments


def _common_suffix(a: list[str], b: list[str]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[-1 - n] == b[-1 - n]:
        n += 1
    return n
