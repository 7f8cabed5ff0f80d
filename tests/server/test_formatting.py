"""The text a model reads: the calls it is told to make must be valid as written."""

from __future__ import annotations

import json
import re

from devrag.server.formatting import hit_block
from devrag.server.outputs import Hit


def test_the_get_document_hint_quotes_a_heading_with_quotes_in_it():
    heading = 'Run "kubectl drain" first'
    hit = Hit(
        rank=1,
        repo="ops",
        path='runbooks/"odd".md',
        headings=["Node maintenance", heading],
        doc_type="runbook",
        commit="0" * 40,
        start_line=3,
        end_line=9,
        score=1.0,
        text="",
        truncated=True,
        tokens_cut=120,
    )
    call = re.search(r"get_document\((.*)\) returns", hit_block(hit))
    assert call is not None
    values = dict(re.findall(r'(\w+)=("(?:[^"\\]|\\.)*")', call.group(1)))
    assert {k: json.loads(v) for k, v in values.items()} == {
        "repo": "ops",
        "path": 'runbooks/"odd".md',
        "section": heading,
    }
