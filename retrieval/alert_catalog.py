"""The alert catalogue: which indexed documents answer each alert name, and how that is known.

Three sources, all read from what the index holds, so the catalogue is always the index's own:
- `front_matter`: the document's `alerts` field;
- `title`: its title or H1 is an alert name (`KubePodCrashLooping`, as most prometheus-operator and
  OpenShift runbooks are titled);
- `rule`: an indexed Prometheus/Alertmanager rule file defines the alert, and its `runbook_url`
  names the document (see `runbook_documents` for how a URL maps to a path).

Ingest writes each document's names (`alert_names`) and the key its path is found by (`path_key`)
onto its chunks (see `doc_fields`), so a search asks the engine about the few names a query holds
rather than keep a catalogue of the whole corpus; a rule file or a runbook that changes, moves or
goes away re-maps with the write that changes it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from pydantic import BaseModel

from devrag.retrieval.doc_fields import segments
from devrag.retrieval.index import Index
from devrag.retrieval.store import PointFilter, VectorStore

Document = tuple[str, str]  # (repo, path)
Record = Mapping[str, Any]  # a document's first chunk's payload, CATALOG_FIELDS of it
# `runbook_url`: not the catalogue's but the alert's own annotation, when an alert is passed whole.
CatalogSource = Literal["front_matter", "title", "rule", "runbook_url"]
CATALOG_FIELDS = ("repo", "path", "alerts", "title_alert", "alert_rules")

# Words of a text that may be alert names: runs between spaces, quotes, brackets and separators,
# and their word-character parts (`alertname=X,` holds `X`).
_CANDIDATE = re.compile(r"[^\s\"'`,;=(){}\[\]<>]+")
_WORD = re.compile(r"\w+")
# Forge URLs put the path after `blob/<ref>/` (GitHub, GitLab's `-/blob/<ref>/`) or `raw`/`tree`/`edit`.
_FORGE_VERBS = {"blob", "tree", "raw", "edit"}


class AlertMatch(BaseModel):
    """Why a document answers an alert: the name, and where the catalogue learned it."""

    alert: str
    source: CatalogSource
    rule: str | None = None  # `repo:path` of the rule file, for source "rule"
    runbook_url: str | None = None  # the rule's (or the alert's) annotation


class Documents(Protocol):
    """The indexed documents, as the catalogue asks about them (the engine, or records in memory)."""

    def naming(self, names: Sequence[str]) -> list[Record]:
        """The documents that bring any of `names` to the catalogue, in (repo, path) order."""

    def ending(self, key: str) -> list[Document]:
        """The documents whose path's last segment compares equal to `key` (see `segments`)."""

    def exists(self, doc: Document) -> bool: ...


class AlertCatalog:
    """Alert name -> the documents that answer it, asked of `Documents`."""

    def __init__(self, documents: Documents) -> None:
        self._documents = documents

    def documents(self, alert: str) -> list[tuple[Document, AlertMatch]]:
        """The documents that answer `alert` (exact name, as Prometheus compares them)."""
        name = alert.strip()
        found: dict[Document, AlertMatch] = {}  # the first source to name a document is the one shown
        for record in self._documents.naming([name]):
            for doc, match in self._entries(record, name):
                found.setdefault(doc, match)
        return list(found.items())

    def _entries(self, record: Record, name: str) -> Iterable[tuple[Document, AlertMatch]]:
        doc = (record["repo"], record["path"])
        if name in (record.get("alerts") or []):
            yield doc, AlertMatch(alert=name, source="front_matter")
        if record.get("title_alert") == name:
            yield doc, AlertMatch(alert=name, source="title")
        for rule in record.get("alert_rules") or []:
            url = rule.get("runbook_url")
            if rule["alert"] == name and url:
                match = AlertMatch(alert=name, source="rule", rule=f"{doc[0]}:{doc[1]}", runbook_url=url)
                yield from ((target, match) for target in self.runbook_documents(url, doc[0]))

    def names_in(self, text: str) -> list[str]:
        """Catalogued alert names that occur in `text` as whole words, in order of first occurrence."""
        words = {w.rstrip(".:!?") for w in _CANDIDATE.findall(text)} | set(_WORD.findall(text))
        words.discard("")
        if not words:
            return []
        known = {n for r in self._documents.naming(sorted(words)) for n in _names(r)} & words
        if not known:
            return []
        names = sorted(known, key=len, reverse=True)  # longest first: `FooBarHigh` before `FooBar`
        pattern = re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, names)) + r")(?!\w)")
        return list(dict.fromkeys(m.group(0) for m in pattern.finditer(text)))

    def runbook_documents(self, url: str, repo: str | None = None) -> list[Document]:
        """The indexed documents a runbook URL (or a path in `repo`) names; empty when none or unclear.

        A URL names a document when its path's last segments equal the document path's last
        segments, case-insensitively and without the page suffix: a site URL
        (https://runbooks.prometheus-operator.dev/runbooks/alertmanager/alertmanagerfailedreload ->
        content/runbooks/alertmanager/AlertmanagerFailedReload.md), a forge URL
        (https://github.com/org/runbooks/blob/main/alerts/X.md -> alerts/X.md), or a folder URL (its
        README or index page). The document sharing the most segments wins; a tie is no answer, so
        a vague URL falls through to search rather than to a guess.
        """
        url = url.strip()
        parts = urlsplit(url)
        if not parts.scheme and not parts.netloc and repo is not None:
            path = str(PurePosixPath(parts.path.lstrip("/")))
            if self._documents.exists((repo, path)):
                return [(repo, path)]
        wanted = segments(_forge_path(parts.path))
        if not wanted:
            return []
        best: list[Document] = []
        best_length = 0.0
        for doc in self._documents.ending(wanted[-1]):
            length = float(_common_suffix(segments(doc[1]), wanted))
            if repo is not None and doc[0] == repo:
                length += 0.5  # a relative path or a tie prefers the rule file's own repository
            if length > best_length:
                best, best_length = [doc], length
            elif length == best_length:
                best.append(doc)
        return best if len(best) == 1 else []


def _names(record: Record) -> list[str]:
    rules = [r["alert"] for r in record.get("alert_rules") or []]
    title = record.get("title_alert")
    return [*(record.get("alerts") or []), *([title] if title else []), *rules]


class StoreDocuments:
    """`Documents` answered by the engine's payload indexes, one query per question."""

    def __init__(self, store: VectorStore) -> None:
        self._store = store

    def naming(self, names: Sequence[str]) -> list[Record]:
        flt = PointFilter(first=True, alert_names=list(names))
        found = self._store.scroll(flt, fields=list(CATALOG_FIELDS))
        return sorted((p.payload for p in found), key=lambda r: (r["repo"], r["path"]))

    def ending(self, key: str) -> list[Document]:
        found = self._store.scroll(PointFilter(first=True, path_key=key), fields=["repo", "path"])
        return sorted((p.payload["repo"], p.payload["path"]) for p in found)

    def exists(self, doc: Document) -> bool:
        return self._store.count(PointFilter(repo=doc[0], paths=[doc[1]], first=True)) > 0


class RecordDocuments:
    """`Documents` over every document's record in memory: for counting the whole catalogue."""

    def __init__(self, records: Iterable[Record]) -> None:
        self.records = sorted(records, key=lambda r: (r["repo"], r["path"]))
        self._by_key: dict[str, list[Document]] = {}
        for r in self.records:
            keys = segments(r["path"])
            if keys:
                self._by_key.setdefault(keys[-1], []).append((r["repo"], r["path"]))
        self._exact = {(r["repo"], r["path"]) for r in self.records}

    def naming(self, names: Sequence[str]) -> list[Record]:
        wanted = set(names)
        return [r for r in self.records if wanted.intersection(_names(r))]

    def ending(self, key: str) -> list[Document]:
        return list(self._by_key.get(key, []))

    def exists(self, doc: Document) -> bool:
        return doc in self._exact


def catalog_counts(index: Index) -> dict[str, dict[str, int]]:
    """Per repository, how many alert names the catalogue maps to its documents, by source.

    Reads one record per document (not per chunk); a status question, never a search's.
    """
    firsts = index.store.scroll(PointFilter(first=True), fields=list(CATALOG_FIELDS))
    records = RecordDocuments(p.payload for p in firsts)
    catalog = AlertCatalog(records)
    out: dict[str, dict[str, set[str]]] = {}
    for name in sorted({n for r in records.records for n in _names(r)}):
        for (repo, _path), match in catalog.documents(name):
            out.setdefault(repo, {}).setdefault(match.source, set()).add(name)
    return {
        repo: {source: len(names) for source, names in sorted(sources.items())}
        for repo, sources in sorted(out.items())
    }


def _forge_path(path: str) -> str:
    """A forge URL's path within the repository (after `blob/<ref>/`); other paths as they are."""
    parts = [s for s in path.split("/") if s]
    for i, part in enumerate(parts[:-2]):
        if part in _FORGE_VERBS and i >= 2:
            return "/".join(parts[i + 2 :])
    return "/".join(parts)


def _common_suffix(a: list[str], b: list[str]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[-1 - n] == b[-1 - n]:
        n += 1
    return n
