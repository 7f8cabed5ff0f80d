"""`devrag eval --from-log LOG --shadow CONFIG`: logged queries replayed through a second configuration.

Before changing how a server searches (another mode, reranker or candidate count), replay what its
callers actually asked, both ways, on the same index: per query, whether the top document changed
and how much the top k overlap, and where a caller named a helpful document, which configuration
put it higher. Both arms run now, on the index as it is, so an index that moved on since the
queries were logged moves both alike; the answers recorded in the log are not compared.

A configuration file (TOML, JSON or YAML) holds `mode`, `rerank_model` and any field of
`SearchConfig` (candidate counts, fusion constants); a key it does not set keeps the live value.
"""

from __future__ import annotations

import json
import statistics
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from devrag.eval.from_log import helpful_documents
from devrag.retrieval.query_log import LoggedQueries
from devrag.retrieval.query_records import SearchRecord
from devrag.retrieval.search import HybridIndex, Mode
from devrag.retrieval.search_config import SearchConfig

Progress = Callable[[int, int], None]
Higher = Literal["live", "shadow", "same"]


class ShadowConfig(SearchConfig):
    """The second configuration: SearchConfig's fields, plus the mode and the reranker to use."""

    model_config = ConfigDict(extra="forbid")

    mode: Mode | None = None
    rerank_model: str | None = None

    def search_config(self) -> SearchConfig:
        return SearchConfig.model_validate(self.model_dump(include=set(SearchConfig.model_fields)))


def load_shadow_config(path: Path) -> ShadowConfig:
    """The configuration in `path`, by its suffix (.toml, .json, .yaml or .yml).

    Raises:
        ValueError: the file cannot be read or parsed, has an unknown key or a wrong value (named).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the shadow configuration: {exc.strerror}.") from exc
    data = _parse(path, text)
    try:
        return ShadowConfig.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(p) for p in error["loc"])
        if error["type"] == "extra_forbidden":
            known = ", ".join(ShadowConfig.model_fields)
            raise ValueError(f"{path}: unknown key {key!r}; known keys: {known}.") from exc
        raise ValueError(f"{path}: key {key!r}: {error['msg']} (got {error['input']!r}).") from exc


def _parse(path: Path, text: str) -> Any:
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            return tomllib.loads(text)
        if suffix == ".json":
            return json.loads(text)
        if suffix in (".yaml", ".yml"):
            return yaml.safe_load(text) or {}
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: not valid {suffix[1:].upper()}: {exc}") from exc
    raise ValueError(f"{path}: a shadow configuration is a .toml, .json or .yaml file.")


@dataclass(frozen=True)
class Arm:
    """One configuration to replay through: a searcher (its reranker and SearchConfig) and a mode."""

    searcher: HybridIndex
    mode: Mode


class QueryComparison(BaseModel):
    query_id: str
    query: str
    k: int
    live: list[str]  # repo:path, best first
    shadow: list[str]
    top1_changed: bool
    overlap: float  # shared documents / the longer list (1.0: the same documents, in any order)
    helpful: list[str]  # documents its caller marked helpful
    live_rank: int | None  # best rank of a helpful document; None: not in the top k
    shadow_rank: int | None
    higher: Higher | None  # which put a helpful document higher; None without such feedback


class ShadowReport(BaseModel):
    live_mode: str
    shadow_mode: str
    shadow_config: dict[str, Any]  # the keys the file set
    queries: int
    top1_changed: int
    mean_overlap: float
    judged: int  # queries with a helpful document named
    live_higher: int
    shadow_higher: int
    same: int
    comparisons: list[QueryComparison]


def replay(
    logged: LoggedQueries,
    live: Arm,
    shadow: Arm,
    config: ShadowConfig,
    max_queries: int | None = None,
    progress: Progress | None = None,
) -> ShadowReport:
    """Each logged search (the latest `max_queries`), through both arms with its own k and filters."""
    searches = logged.searches[-max_queries:] if max_queries else logged.searches
    comparisons = []
    for n, search in enumerate(searches, start=1):
        helpful = [f"{d.repo}:{d.path}" for d in helpful_documents(logged.feedback.get(search.query_id, []))]
        comparisons.append(_compare(search, _ranked(live, search), _ranked(shadow, search), helpful))
        if progress is not None:
            progress(n, len(searches))
    verdicts = [c.higher for c in comparisons]
    return ShadowReport(
        live_mode=live.mode,
        shadow_mode=shadow.mode,
        shadow_config=config.model_dump(exclude_unset=True),
        queries=len(comparisons),
        top1_changed=sum(c.top1_changed for c in comparisons),
        mean_overlap=round(statistics.fmean([c.overlap for c in comparisons]), 4) if comparisons else 0.0,
        judged=sum(v is not None for v in verdicts),
        live_higher=verdicts.count("live"),
        shadow_higher=verdicts.count("shadow"),
        same=verdicts.count("same"),
        comparisons=comparisons,
    )


def _ranked(arm: Arm, search: SearchRecord) -> list[str]:
    response = arm.searcher.search(search.query, search.k, arm.mode, search.filters)
    return [f"{r.repo}:{r.path}" for r in response.results]


def _compare(
    search: SearchRecord, live: list[str], shadow: list[str], helpful: Sequence[str]
) -> QueryComparison:
    live_rank, shadow_rank = _best_rank(live, helpful), _best_rank(shadow, helpful)
    return QueryComparison(
        query_id=search.query_id,
        query=search.query,
        k=search.k,
        live=live,
        shadow=shadow,
        top1_changed=live[:1] != shadow[:1],
        overlap=_overlap(live, shadow),
        helpful=list(helpful),
        live_rank=live_rank,
        shadow_rank=shadow_rank,
        higher=_higher(live_rank, shadow_rank) if helpful else None,
    )


def _overlap(live: list[str], shadow: list[str]) -> float:
    """Shared documents over the longer list: 1.0 for the same documents (or none), in any order.

    Not over k: a filter that matches fewer than k documents would otherwise read as disagreement.
    """
    if not live and not shadow:
        return 1.0
    return round(len(set(live) & set(shadow)) / max(len(live), len(shadow)), 4)


def _best_rank(ranked: list[str], helpful: Sequence[str]) -> int | None:
    return next((n for n, doc in enumerate(ranked, start=1) if doc in helpful), None)


def _higher(live: int | None, shadow: int | None) -> Higher:
    """A document found beats one not found; missing in both is a tie."""
    a, b = live or 10**9, shadow or 10**9
    return "same" if a == b else ("live" if a < b else "shadow")
