"""Search filters, and the engine conditions they become: no filter is matched in this process.

A folder or a file is one condition on an indexed field (`path_dirs`, `path`); any other path
glob is matched here against the paths of the documents under its literal folder, which the
engine lists one record per document, and becomes the list of paths it matched.
"""

from __future__ import annotations

import re
from dataclasses import replace

from pydantic import BaseModel

from devrag.retrieval.paths import path_matches
from devrag.retrieval.schema import keyword
from devrag.retrieval.store import PointFilter, VectorStore

_GLOB = re.compile(r"[*?\[]")


class Filters(BaseModel):
    repo: str | None = None
    path: str | None = None  # a glob over the path within the repository (see `path_matches`)
    doc_type: str | None = None
    # Document metadata (see DocMeta): `tag` and `alert` match any one of a document's tags or alerts.
    service: str | None = None
    team: str | None = None
    severity: str | None = None
    environment: str | None = None
    tag: str | None = None
    alert: str | None = None

    @property
    def active(self) -> bool:
        return any((self.repo, self.path, self.doc_type)) or bool(self.metadata())

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """(payload field, value) of each metadata filter, spelled as ingest stores values.

        Alert names keep their case (Prometheus compares them so); other values are keywords.
        """
        wanted = {
            "service": self.service,
            "team": self.team,
            "severity": self.severity,
            "environment": self.environment,
            "tags": self.tag,
            "alerts": self.alert,
        }
        return tuple(
            (name, value.strip() if name == "alerts" else keyword(value))
            for name, value in wanted.items()
            if value is not None
        )


def store_filter(filters: Filters, store: VectorStore) -> PointFilter | None:
    """The engine filter of a search under `filters`; None when no indexed path matches its glob."""
    base = PointFilter(repo=filters.repo, doc_type=filters.doc_type, metadata=filters.metadata())
    if filters.path is None:
        return base
    return _with_path(base, filters.path, store)


def _with_path(base: PointFilter, pattern: str, store: VectorStore) -> PointFilter | None:
    glob = _GLOB.search(pattern)
    if glob is None:  # a file, else a folder (a path is never both)
        plain = pattern.rstrip("/")
        if not pattern.endswith("/") and store.count(replace(base, paths=[plain], first=True)):
            return replace(base, paths=[plain])
        return replace(base, folder=plain)
    folder = pattern[: glob.start()].rpartition("/")[0]
    rest = pattern[len(folder) + 1 :] if folder else pattern
    if rest.strip("*") == "":  # `*` crosses folders: `docs/*`, `docs/**` and `**` are folders
        return replace(base, folder=folder) if folder else base
    under = replace(base, folder=folder or None, first=True)
    paths = sorted(p.payload["path"] for p in store.scroll(under, fields=["path"]))
    matched = [p for p in paths if path_matches(pattern, p)]
    return replace(base, paths=matched) if matched else None


def path_indexed(pattern: str, store: VectorStore) -> bool:
    """Whether any indexed file matches the path glob `pattern`, whatever the other filters.

    Why: an empty answer under a path filter should say when the glob, not the query, is wrong; a
    folder filter is one engine condition, so only a count tells an absent folder apart.
    """
    flt = store_filter(Filters(path=pattern), store)
    return flt is not None and store.count(replace(flt, first=True)) > 0


# The argument each metadata payload field is filtered by (`Filters.metadata`), to name it back.
_ARGUMENT = {"tags": "tag", "alerts": "alert"}


def unmatched_values(filters: Filters, store: VectorStore) -> list[str]:
    """Each metadata filter (`service='checkout'`) that no indexed document has, whatever the others.

    Why: values match exactly, so a typo or a value from another team's index answers "nothing"
    just as a real miss does; an empty answer should say which value is unknown.
    """
    return [
        f"{_ARGUMENT.get(name, name)}={value!r}"
        for name, value in filters.metadata()
        if store.count(PointFilter(metadata=((name, value),), first=True)) == 0
    ]
