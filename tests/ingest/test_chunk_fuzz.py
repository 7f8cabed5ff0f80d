"""Any text chunks without error, covers every line, and costs no more chunks than its size allows.

`make test` runs a short budget; for a long run set DEVRAG_FUZZ_EXAMPLES, e.g.
`DEVRAG_FUZZ_EXAMPLES=20000 .venv/bin/pytest tests/ingest/test_chunk_fuzz.py`.
"""

from __future__ import annotations

import os
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from mdit_py_plugins.front_matter import front_matter_plugin

from devrag.ingest.documents import Parsed, parse_file
from devrag.ingest.windows import CHARS_PER_TOKEN
from devrag.retrieval.schema import embed_text_for
from tests.support import HashEmbedder

EXAMPLES = int(os.environ.get("DEVRAG_FUZZ_EXAMPLES", "50"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
EMBEDDER = HashEmbedder()
_FRONT = MarkdownIt("commonmark").use(front_matter_plugin)

word = st.one_of(
    st.sampled_from(["restart", "the", "pod", "`kubectl`", "&a", "*a", "<<:", "{", "}", "|", "-", "#", ":"]),
    st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\0"), max_size=12),
    st.integers(min_value=1, max_value=3000).map(lambda n: "x" * n),  # over the word-piece limit
)
phrase = st.lists(word, max_size=40).map(" ".join)
markdown_line = st.one_of(
    phrase,
    st.tuples(st.sampled_from(["#", "##", "###", "####"]), phrase).map(" ".join),
    st.sampled_from(
        ["", "", "---", "```", "~~~", "===", "> quote", "| a | b |", "|---|---|", "\t", "\r", "\x0b"]
    ),
    st.tuples(st.sampled_from(["- ", "1. ", "    ", "  - "]), phrase).map("".join),
)
config_line = st.one_of(
    phrase,
    st.tuples(st.from_regex(r"[a-z_]{1,12}", fullmatch=True), phrase).map(": ".join),
    st.sampled_from(
        ["", "---", "  nested: 1", "- item", "def f():", "    return 1", "func main() {", "}", "x = 1"]
    ),
    st.sampled_from(['resource "a" "b" {', "#!/bin/bash", "f() { echo; }", "key: &k [1]", "other: *k"]),
)
lines_of = {
    "runbooks/doc.md": markdown_line,
    "conf/values.yaml": config_line,
    "scripts/tool.py": config_line,
    "cmd/main.go": config_line,
    "bin/run.sh": config_line,
    "infra/main.tf": config_line,
    "notes.txt": config_line,
}


@st.composite
def files(draw: st.DrawFn) -> tuple[str, str]:
    path = draw(st.sampled_from(sorted(lines_of)))
    lines = draw(st.lists(lines_of[path], max_size=60))
    if path.endswith(".md") and draw(st.booleans()):
        lines = ["---", *draw(st.lists(config_line, max_size=8)), "---", *lines]
    return path, draw(st.sampled_from(["\n", "\r\n"])).join(lines)


def front_matter_lines(path: str, text: str) -> set[int]:
    """1-based lines of a Markdown front matter block: metadata, not chunked."""
    if not path.endswith(".md"):
        return set()
    tokens = _FRONT.parse("\n".join(source_lines(path, text)))
    if tokens and tokens[0].type == "front_matter" and tokens[0].map:
        return set(range(tokens[0].map[0] + 1, tokens[0].map[1] + 1))
    return set()


def source_lines(path: str, text: str) -> list[str]:
    """Lines as the chunker numbers them: CRLF first, then for CommonMark a lone CR too, not for code."""
    text = text.replace("\r\n", "\n")
    return re.split(r"\r\n?|\n", text) if path.endswith(".md") else text.split("\n")


def assert_sound(path: str, text: str, parsed: Parsed) -> None:
    lines = source_lines(path, text)
    covered = {n for d in parsed.drafts for n in range(d.start_line, d.end_line + 1)}
    wanted = {n for n, line in enumerate(lines, 1) if line.strip()} - front_matter_lines(path, text)
    assert wanted <= covered, f"lines {sorted(wanted - covered)[:5]} are in no chunk"
    assert all(d.text.strip() for d in parsed.drafts), "an empty chunk"
    assert len(parsed.drafts) <= len(text.split()) + len(text) // 1000 + 1
    for d in parsed.drafts:
        assert 1 <= d.start_line <= d.end_line <= len(lines)
        embedded = embed_text_for(parsed.title, d.headings, d.text)
        assert EMBEDDER.count_tokens(embedded) <= EMBEDDER.max_tokens
        # Costs round characters down per line and per word, so allow twice the window's worth.
        assert len(d.text) <= 2 * EMBEDDER.max_tokens * CHARS_PER_TOKEN


@FUZZ
@given(file=files())
def test_any_file_chunks_soundly(file: tuple[str, str]) -> None:
    path, text = file
    parsed = parse_file(path, text, EMBEDDER.max_tokens, EMBEDDER.count_tokens)
    assert_sound(path, text, parsed)
