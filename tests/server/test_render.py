"""Progress without a terminal: log lines at the start and end of each stage, and every few seconds."""

from __future__ import annotations

import logging

from devrag.server.render import LoggedProgress


def test_logged_progress_says_each_stage_size_then_at_most_a_line_every_few_seconds(caplog):
    caplog.set_level(logging.INFO, logger="devrag.server.render")
    now = [0.0]
    progress = LoggedProgress(every=5.0, clock=lambda: now[0])
    progress.stage("reading files", 100)
    for _ in range(40):  # 40 files in 4 seconds: no line
        now[0] += 0.1
        progress.advance(1)
    now[0] += 1.0
    progress.advance(1)  # 5 seconds in: one line
    for _ in range(59):
        progress.advance(1)  # the last file: its line
    assert [r.getMessage() for r in caplog.records] == [
        "reading files: 100 to do",
        "reading files: 41/100",
        "reading files: 100/100",
    ]
