"""Spans leave the process over OTLP/HTTP only when an endpoint is set, and never with the query."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from devrag.server.tracing import configure_tracing
from tests.server.mcp_support import server_env

QUERY = "NodeFilesystemAlmostOutOfSpace on db1"


class _Collector(BaseHTTPRequestHandler):
    """A stand-in OTLP/HTTP collector: keeps each export request it is sent."""

    received: list[tuple[str, bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    _Collector.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Collector.received
    server.shutdown()
    thread.join()
    server.server_close()


def test_nothing_is_configured_without_an_endpoint(monkeypatch):
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    assert configure_tracing() is False


@pytest.mark.model
def test_a_cli_search_exports_its_stage_spans_without_the_query(ops, collector):
    endpoint, received = collector
    done = subprocess.run(
        [sys.executable, "-m", "devrag.server.cli", "search", QUERY, "--mode", "hybrid", "--json"],
        env=server_env(ops.index_dir, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert received and {path for path, _ in received} == {"/v1/traces"}
    spans = []
    for _, body in received:
        request = ExportTraceServiceRequest.FromString(body)
        spans += [s for r in request.resource_spans for scope in r.scope_spans for s in scope.spans]
    names = {s.name for s in spans}
    assert {"retrieval.search", "search.embed", "search.dense", "search.bm25", "search.fusion"} <= names
    values = [str(a.value) for s in spans for a in s.attributes]
    assert not any("NodeFilesystem" in v for v in values)
