"""What metrics and tracing cost a search: p50 with them on and off, interleaved in one run.

Each query runs in each mode twice per pass, once bare and once through the caller's instrumented
path (the server's span and metrics) with an OpenTelemetry SDK recording every span, in an order
that alternates per pass, so load on the machine falls on both alike. Every search is a fresh query
(caches cleared, see `latency_bench`). Spans go through a `BatchSpanProcessor`, as with the OTLP
exporter, into memory: the cost measured is the search's own, not the network's.

The global tracer provider can be set once per process, so this installs one whose tracers switch
between the SDK and no-op per search; it refuses to run where a provider is already set.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel

from devrag.eval.latency_bench import forget_caches, unique_queries
from devrag.retrieval.search import Filters, HybridIndex, Mode
from devrag.retrieval.search_results import SearchResponse

# How the caller runs one search with its telemetry: (run, (query, k, mode, filters)) -> response.
Instrumented = Callable[[Callable[[], SearchResponse], tuple[str, int, str, Filters]], SearchResponse | None]


class OverheadRow(BaseModel):
    mode: str
    searches: int  # per condition
    p50_off_ms: float
    p50_on_ms: float
    p50_delta_ms: float
    p50_delta_pct: float
    p95_off_ms: float
    p95_on_ms: float


class OverheadReport(BaseModel):
    rows: list[OverheadRow]
    spans_recorded: int
    queries: int
    repeats: int


def run_overhead(
    searcher: HybridIndex,
    instrumented: Instrumented,
    queries: Sequence[str],
    modes: Sequence[Mode],
    repeats: int = 3,
    k: int = 5,
) -> OverheadReport:
    """Time every query in every mode, bare and instrumented, `repeats` passes; see the module docstring.

    Raises:
        RuntimeError: an OpenTelemetry tracer provider is already set in this process.
    """
    texts = unique_queries(queries)
    with _switched_tracing() as (switch, exported):
        for query in texts[:3]:  # warm the models in both conditions
            for mode in modes:
                for on in (False, True):
                    _timed(searcher, instrumented, switch, on, query, mode, k)
        times: dict[tuple[str, bool], list[float]] = {(m, on): [] for m in modes for on in (False, True)}
        for repeat in range(repeats):
            for n, query in enumerate(texts):
                for mode in modes:
                    for on in (False, True) if (n + repeat) % 2 == 0 else (True, False):
                        times[(mode, on)].append(_timed(searcher, instrumented, switch, on, query, mode, k))
        spans = len(exported())
    return OverheadReport(
        rows=[_row(mode, times[(mode, False)], times[(mode, True)]) for mode in modes],
        spans_recorded=spans,
        queries=len(texts),
        repeats=repeats,
    )


def _timed(
    searcher: HybridIndex,
    instrumented: Instrumented,
    switch: _Switch,
    on: bool,
    query: str,
    mode: Mode,
    k: int,
) -> float:
    forget_caches(searcher)
    filters = Filters()
    switch.on = on

    def run() -> SearchResponse:
        return searcher.search(query, k, mode, filters)

    started = time.perf_counter()
    if on:
        instrumented(run, (query, k, mode, filters))
    else:
        run()
    return (time.perf_counter() - started) * 1000


def _row(mode: str, off: list[float], on: list[float]) -> OverheadRow:
    p50_off, p50_on = statistics.median(off), statistics.median(on)
    return OverheadRow(
        mode=mode,
        searches=len(off),
        p50_off_ms=round(p50_off, 3),
        p50_on_ms=round(p50_on, 3),
        p50_delta_ms=round(p50_on - p50_off, 3),
        p50_delta_pct=round(100 * (p50_on - p50_off) / p50_off, 2),
        p95_off_ms=round(_p95(off), 3),
        p95_on_ms=round(_p95(on), 3),
    )


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]


class _Switch(trace.TracerProvider):
    """A tracer provider whose tracers record through the SDK while `on`, and do nothing otherwise."""

    def __init__(self, sdk: TracerProvider) -> None:
        self.sdk, self.on = sdk, False

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        return _SwitchedTracer(self, self.sdk.get_tracer(*args, **kwargs))


class _SwitchedTracer(trace.Tracer):
    def __init__(self, switch: _Switch, recording: trace.Tracer) -> None:
        self._switch, self._recording, self._idle = switch, recording, trace.NoOpTracer()

    def _current(self) -> trace.Tracer:
        return self._recording if self._switch.on else self._idle

    def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
        return self._current().start_span(*args, **kwargs)

    @contextmanager
    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Iterator[trace.Span]:
        with self._current().start_as_current_span(*args, **kwargs) as span:
            yield span


@contextmanager
def _switched_tracing() -> Iterator[tuple[_Switch, Callable[[], Sequence[Any]]]]:
    if isinstance(trace.get_tracer_provider(), TracerProvider | _Switch):
        raise RuntimeError("A tracer provider is already set: unset OTEL_EXPORTER_OTLP_ENDPOINT to measure.")
    exporter = InMemorySpanExporter()
    sdk = TracerProvider()
    sdk.add_span_processor(BatchSpanProcessor(exporter))
    switch = _Switch(sdk)
    trace.set_tracer_provider(switch)
    try:
        yield switch, lambda: (sdk.force_flush(), exporter.get_finished_spans())[1]
    finally:
        switch.on = False
        sdk.shutdown()
