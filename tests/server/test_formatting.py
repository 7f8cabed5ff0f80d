"""The text a model reads: the calls it is told to make must be valid as written."""

from __future__ import annotations

import json
import re

from devrag.server.formatting import result_block
from devrag.server.outputs import Passage, Result


def test_the_get_document_hint_quotes_a_heading_with_quotes_in_it():
    heading = 'Run "kubectl drain" first'
    passage = Passage(
        headings=[heading],
        start_line=3,
        end_line=9,
        score=1.0,
        text="",
        truncated=True,
        tokens_cut=120,
        via_title=False,
    )
    result = Result(
        rank=1,
        repo="ops",
        path='runbooks/"odd".md',
        title="Node maintenance",
        doc_type="runbook",
        commit="0" * 40,
        score=1.0,
        passages=[passage],
        passages_left_out=0,
    )
    call = re.search(r"get_document\((.*)\) returns", result_block(result))
    assert call is not None
    values = dict(re.findall(r'(\w+)=("(?:[^"\\]|\\.)*")', call.group(1)))
    assert {k: json.loads(v) for k, v in values.items()} == {
        "repo": "ops",
        "path": 'runbooks/"odd".md',
        "section": heading,
    }
