"""Health checks, shared by `/readyz` and `devrag doctor`: each says one thing, passed or not.

A process that answers HTTP can still be useless: models that failed to load, an index that
would not open or holds nothing, or one first-stage leg that returns nothing (hybrid search then
quietly becomes dense-only or keyword-only). Each check is cheap enough to run on every probe.
"""

from __future__ import annotations

from pydantic import BaseModel

from devrag.retrieval.index import Index
from devrag.retrieval.search import FIRST_STAGES, HybridIndex


class Check(BaseModel):
    name: str
    ok: bool
    detail: str


def index_check(index: Index) -> Check:
    """Whether the index holds chunks; an empty one answers every search with nothing."""
    chunks, repos = index.count(), len(index.repos())
    if chunks == 0:
        return Check(name="index", ok=False, detail="empty: run `devrag ingest <repo>`")
    return Check(name="index", ok=True, detail=f"open, {chunks} chunks in {repos} repositories")


def leg_checks(searcher: HybridIndex) -> list[Check]:
    """One check per first stage: does it return candidates for words the index holds?"""
    probe = searcher.probe()
    checks = []
    for leg in FIRST_STAGES:
        found = probe.get(leg, 0)
        detail = (
            f"{found} candidates for the probe query" if found else "returned nothing for the probe query"
        )
        checks.append(Check(name=f"leg.{leg}", ok=found > 0, detail=detail))
    return checks


def failed(checks: list[Check]) -> list[Check]:
    return [c for c in checks if not c.ok]
