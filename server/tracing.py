"""OpenTelemetry for devrag processes: an OTLP exporter when the operator names an endpoint.

Retrieval and ingest open their spans through opentelemetry-api, which does nothing until a
tracer provider is set; this module sets one only when `OTEL_EXPORTER_OTLP_ENDPOINT` (or its
traces-only form) is set, so an unconfigured process pays for no-op spans only. The exporter reads
the standard OTEL_* variables (headers, timeout, protocol details); `OTEL_SERVICE_NAME` overrides
the service name.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from opentelemetry import trace

from devrag.retrieval.search import Filters, filter_attributes
from devrag.retrieval.search_results import SearchResponse
from devrag.server.metrics import ServerMetrics

_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
_tracer = trace.get_tracer("devrag.server")


def exporting() -> bool:
    """Whether this process exports its spans: an OTLP endpoint is configured."""
    return any(os.environ.get(name, "").strip() for name in _ENDPOINTS)


def configure_tracing() -> bool:
    """Export spans over OTLP/HTTP when an endpoint is configured; returns whether it was."""
    if not exporting():
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # Batched: a search only queues its spans; a background thread sends them.
    provider = TracerProvider(resource=Resource.create({"service.name": "devrag"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return True


def observed_search(
    run: Callable[[], SearchResponse | None],
    metrics: ServerMetrics,
    request: tuple[str, int, str, Filters],
    with_query: bool,
) -> SearchResponse | None:
    """Run one search (`request`: query, k, mode, filters) under its span, and count it in `metrics`.

    Every server search goes through here; `devrag bench --overhead` times exactly this against
    the bare search.
    """
    query, k, mode, filters = request
    with _search_span(query, k, mode, filters, with_query) as span:
        response = run()
        metrics.observe_search(mode, response)
        span.set_attribute("devrag.results", len(response.results) if response else 0)
        if response is not None and response.mode != mode:
            span.set_attribute("devrag.answered_mode", response.mode)
    return response


@contextmanager
def _search_span(query: str, k: int, mode: str, filters: Filters, with_query: bool) -> Iterator[trace.Span]:
    """The span of one search tool call: admission and retrieval under it, the query text only if asked.

    Queries may carry customer names, hostnames or pasted log lines, so they stay out of traces
    unless the operator sets DEVRAG_TRACE_QUERIES=1.
    """
    attributes: dict[str, str | int] = {"devrag.k": k, "devrag.mode": mode, **filter_attributes(filters)}
    if with_query:
        attributes["devrag.query"] = query
    with _tracer.start_as_current_span("search", attributes=attributes) as span:
        yield span
