"""What the shared-index benchmark measured: every answer checked against Git, and a table of it."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from devrag.ingest.git_source import GitSource


@dataclass(frozen=True)
class Probe:
    """One search by one session, timed on this process's monotonic clock."""

    session: int
    query: str
    started: float
    finished: float
    hits: list[dict[str, Any]]
    error: str | None


@dataclass(frozen=True)
class Ingested:
    """One writer round: when it began and its ingest returned, and the canary it added and removed."""

    began: float
    finished: float
    commit: str
    token: str
    path: str
    removed: tuple[str, ...]


class ShareReport(BaseModel):
    sessions: int
    seconds: float
    ingests: int
    searches: int
    errors: int
    stale: int
    stale_examples: list[str]
    search_p50_ms: float
    search_p95_ms: float
    canary_probes_after_ingest: int
    canary_missed_after_ingest: int
    visibility_lag_max_s: float


def analyse(
    repo: Path, probes: list[Probe], ingests: list[Ingested], sessions: int, seconds: float
) -> ShareReport:
    """Check each answer against Git and each canary probe against the ingest it followed."""
    source = GitSource(repo)
    stale = [f"{p.query!r}: {why}" for p in probes for why in _stale(source, p, ingests)]
    latencies = sorted((p.finished - p.started) * 1000 for p in probes if p.error is None)
    after, missed, lag = _visibility(probes, ingests)
    return ShareReport(
        sessions=sessions,
        seconds=seconds,
        ingests=len(ingests),
        searches=len(probes),
        errors=sum(1 for p in probes if p.error is not None),
        stale=len(stale),
        stale_examples=stale[:5],
        search_p50_ms=round(statistics.median(latencies), 1) if latencies else 0.0,
        search_p95_ms=round(_p95(latencies), 1),
        canary_probes_after_ingest=after,
        canary_missed_after_ingest=missed,
        visibility_lag_max_s=round(lag, 3),
    )


def _stale(source: GitSource, probe: Probe, ingests: list[Ingested]) -> list[str]:
    """Why each hit is stale: its text is not at its cited lines, or its file was gone before the query."""
    gone = {path for i in ingests if i.finished < probe.started for path in i.removed}
    out = []
    for hit in probe.hits:
        if hit["path"] in gone:
            out.append(f"{hit['path']} was deleted before the query began")
            continue
        for passage in hit["passages"]:
            cited = _cited_text(source, hit, passage)
            if not passage["truncated"] and _lines(cited) != _lines(passage["text"]):
                lines = f"L{passage['start_line']}-L{passage['end_line']}"
                out.append(f"{hit['path']}#{lines} differs from {hit['commit'][:12]}")
    return out


def _cited_text(source: GitSource, hit: dict[str, Any], passage: dict[str, Any]) -> str:
    lines = source.repo.git.show(f"{hit['commit']}:{hit['path']}").split("\n")
    return "\n".join(lines[passage["start_line"] - 1 : passage["end_line"]])


def _lines(text: str) -> list[str]:
    """Non-blank lines: a split section's overlap lead is joined to its piece without blank lines."""
    return [line for line in text.split("\n") if line.strip()]


def _visibility(probes: list[Probe], ingests: list[Ingested]) -> tuple[int, int, float]:
    """Canary probes begun after their ingest finished, how many missed it, and the longest such miss.

    A probe for round r's token that starts after round r's ingest returned (and before round r + 1
    began, which removes the page again) must find it;
    the lag is how long after the ingest the last probe that still missed it began (0: none did).
    """
    after = missed = 0
    lag = 0.0
    ends = [i.began for i in ingests[1:]] + [float("inf")]  # the next round deletes the page
    for ingest, end in zip(ingests, ends, strict=False):
        for probe in probes:
            if probe.query != ingest.token or not ingest.finished <= probe.started < end or probe.error:
                continue
            after += 1
            if all(h["path"] != ingest.path for h in probe.hits):
                missed += 1
                lag = max(lag, probe.started - ingest.finished)
    return after, missed, lag


def _p95(values: list[float]) -> float:
    if not values:
        return 0.0
    return values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]


def print_report(report: ShareReport, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.model_dump(), indent=2))
        return
    table = Table(title=f"{report.sessions} agent sessions, {report.seconds:.0f} s, {report.ingests} ingests")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    table.add_row("searches", str(report.searches), "")
    table.add_row("errors", str(report.errors), "0")
    table.add_row("stale results", str(report.stale), "0")
    table.add_row("search p50 / p95 ms", f"{report.search_p50_ms:,.0f} / {report.search_p95_ms:,.0f}", "")
    table.add_row(
        "canary probes after their ingest: missed",
        f"{report.canary_missed_after_ingest} of {report.canary_probes_after_ingest}",
        "0",
    )
    table.add_row(
        "ingest finished -> every session sees it", f"{report.visibility_lag_max_s:.3f} s", "<= 1 s"
    )
    Console().print(table)
    for example in report.stale_examples:
        Console(stderr=True).print(f"stale: {example}")
