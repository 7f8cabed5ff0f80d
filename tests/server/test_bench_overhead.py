"""`devrag bench --overhead`: the same searches bare and through the server's telemetry, in one run."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.server.mcp_support import server_env

pytestmark = pytest.mark.model


def test_overhead_reports_p50_on_and_off_per_mode(ops):
    # A process of its own: the global tracer provider can be set once per process.
    args = ["bench", "--overhead", "--modes", "bm25,dense", "--max-queries", "2", "--repeats", "1", "--json"]
    done = subprocess.run(
        [sys.executable, "-m", "devrag.server.cli", *args],
        env=server_env(ops.index_dir),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [row["mode"] for row in report["rows"]] == ["bm25", "dense"]
    assert all(row["searches"] == 2 and row["p50_on_ms"] > 0 < row["p50_off_ms"] for row in report["rows"])
    # Only instrumented searches record: 2 warm-up and 2 timed per mode, each `search` and
    # `retrieval.search` over its stages (bm25: bm25, payloads, fusion; dense: embed, dense,
    # payloads, fusion).
    assert report["spans_recorded"] == 4 * (2 + 3) + 4 * (2 + 4)
