from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from devrag.ingest.markdown_chunker import MarkdownDoc, parse_markdown
from devrag.retrieval.schema import ChunkDraft, embed_text_for


def words(text: str) -> int:
    return len(text.split())


def chunk(
    text: str, max_tokens: int = 200, overlap: int = 5, path: str = "runbooks/disk-full.md"
) -> MarkdownDoc:
    return parse_markdown(path, text, max_tokens, words, overlap)


def heading_paths(doc: MarkdownDoc) -> list[list[str]]:
    return [c.headings for c in doc.chunks]


def para(prefix: str, n: int) -> str:
    """One line of `n` distinct words, so any piece of it can be traced back."""
    return " ".join(f"{prefix}{i}" for i in range(n))


def source(text: str, c: ChunkDraft) -> str:
    return "\n".join(text.split("\n")[c.start_line - 1 : c.end_line])


def assert_fits(doc: MarkdownDoc, max_tokens: int) -> None:
    for c in doc.chunks:
        assert words(embed_text_for(doc.title, c.headings, c.text)) <= max_tokens, c


def split_lead(text: str, c: ChunkDraft, overlap: int) -> tuple[str, int] | None:
    """(lead, first own line) when the chunk is a leading overlap then exact source lines, else None.

    The lead must be at most `overlap` tokens, be the tail of the lines before the chunk's own ones,
    and start on the chunk's start_line.
    """
    lines = text.split("\n")
    for own in range(c.start_line, c.end_line + 1):
        body = "\n".join(lines[own - 1 : c.end_line])
        if own == c.start_line:
            if c.text == body:
                return "", own
            continue
        if not lines[own - 1].strip() or not c.text.endswith("\n" + body):
            continue  # own text starts on a line with text
        lead = c.text[: -len(body) - 1].split()
        before = " ".join(lines[c.start_line - 1 : own - 1]).split()
        after_start = " ".join(lines[c.start_line : own - 1]).split()
        if 0 < len(lead) <= overlap and before[-len(lead) :] == lead and len(lead) > len(after_start):
            return " ".join(lead), own
    return None


# ---------------------------------------------------------------- headings and titles


def test_hash_lines_inside_a_fenced_block_are_not_headings():
    text = (
        "# Restart runbook\n\n"
        "## Restart\n\n"
        "```bash\n# stop the service first\nsystemctl stop app\n## not a heading either\n```\n\n"
        "## Verify\n\n"
        "curl the health endpoint\n"
    )
    doc = chunk(text)
    assert heading_paths(doc) == [
        ["Restart runbook"],
        ["Restart runbook", "Restart"],
        ["Restart runbook", "Verify"],
    ]
    assert "# stop the service first" in doc.chunks[1].text
    assert "## not a heading either" in doc.chunks[1].text


def test_setext_h1_and_h2_are_headings():
    text = "Disk Full\n=========\n\nWhen /var fills up.\n\nCleanup\n-------\n\nRotate the logs.\n"
    doc = chunk(text)
    assert doc.title == "Disk Full"
    assert heading_paths(doc) == [["Disk Full"], ["Disk Full", "Cleanup"]]
    assert doc.chunks[1].text == "Cleanup\n-------\n\nRotate the logs."
    assert (doc.chunks[1].start_line, doc.chunks[1].end_line) == (6, 9)


def test_front_matter_title_is_the_title_and_front_matter_lines_are_in_no_chunk():
    text = (
        "---\ntitle: Failover the primary database\nowner: dba-team\ntags: [db, failover]\n---\n"
        "# Database failover\n\nPromote the replica.\n\n## Check lag\n\nSELECT lag;\n"
    )
    doc = chunk(text)
    assert doc.title == "Failover the primary database"
    assert doc.front_matter["owner"] == "dba-team"
    assert doc.front_matter["tags"] == ["db", "failover"]
    assert all(c.start_line >= 6 for c in doc.chunks)
    assert not any("dba-team" in c.text or "---" in c.text for c in doc.chunks)
    assert heading_paths(doc) == [["Database failover"], ["Database failover", "Check lag"]]


def test_front_matter_without_a_title_falls_back_to_the_first_h1():
    doc = chunk("---\nowner: sre\n---\nIntro.\n\n# First\n\ntext\n\n# Second\n\nmore\n")
    assert doc.title == "First"
    assert doc.front_matter == {"owner": "sre"}


def test_the_title_is_the_file_stem_without_front_matter_title_or_h1():
    doc = chunk("Some notes.\n\n## Steps\n\nDo it.\n", path="ops/runbooks/rotate-certs.md")
    assert doc.title == "rotate-certs"
    assert heading_paths(doc) == [[], ["Steps"]]


def test_text_before_the_first_h2_is_its_own_chunk():
    text = "# Runbook\n\nRead this first.\nIt is the preamble.\n\n## Step one\n\nDo the thing.\n"
    doc = chunk(text)
    first = doc.chunks[0]
    assert first.headings == ["Runbook"]
    assert first.text == "# Runbook\n\nRead this first.\nIt is the preamble."
    assert (first.start_line, first.end_line) == (1, 4)


def test_text_before_any_heading_has_no_headings():
    doc = chunk("Loose intro line.\n\n# Title\n\nbody\n")
    assert doc.chunks[0].text == "Loose intro line."
    assert doc.chunks[0].headings == []
    assert doc.chunks[1].headings == ["Title"]


def test_heading_paths_follow_h1_then_h2_and_restart_at_a_second_h1():
    text = (
        "# Deploy\n\nintro\n\n## Build\n\nmake\n\n## Ship\n\npush\n\n"
        "# Rollback\n\nwhen it breaks\n\n## Revert\n\ngit revert\n\n### Detail\n\nsmall\n"
    )
    doc = chunk(text)
    assert heading_paths(doc) == [
        ["Deploy"],
        ["Deploy", "Build"],
        ["Deploy", "Ship"],
        ["Rollback"],
        ["Rollback", "Revert"],
    ]
    assert doc.title == "Deploy"
    assert "### Detail" in doc.chunks[-1].text  # a section that fits is not split at H3


def test_an_h2_without_an_h1_has_just_its_own_heading():
    doc = chunk("## Alone\n\ntext\n")
    assert heading_paths(doc) == [["Alone"]]


def test_non_ascii_heading_text_is_kept():
    text = "# Déploiement 🚀\n\nintro\n\n## Überprüfung der Dienste\n\nok\n\n## 回滚步骤\n\n步骤\n"
    doc = chunk(text)
    assert doc.title == "Déploiement 🚀"
    assert heading_paths(doc)[1:] == [
        ["Déploiement 🚀", "Überprüfung der Dienste"],
        ["Déploiement 🚀", "回滚步骤"],
    ]


# ---------------------------------------------------------------- input quirks


def test_crlf_input_gives_the_same_chunks_as_lf():
    lf = (
        "---\ntitle: T\n---\n# Head\n\nintro\n\n## A\n\n"
        + para("a", 30)
        + "\n\n```sh\nls\n```\n\n"
        + para("b", 30)
        + "\n\n## B\n\nbody\n"
    )
    crlf = lf.replace("\n", "\r\n")
    a, b = chunk(lf, max_tokens=40), chunk(crlf, max_tokens=40)
    assert (a.title, a.front_matter) == (b.title, b.front_matter)
    assert [c.model_dump() for c in a.chunks] == [c.model_dump() for c in b.chunks]
    assert not any("\r" in c.text for c in b.chunks)


def test_lone_carriage_returns_are_line_breaks_too():
    lf = "# T\n\nintro\n## B\nbody\n"
    doc = chunk(lf.replace("\n", "\r"))
    assert [c.model_dump() for c in doc.chunks] == [c.model_dump() for c in chunk(lf).chunks]


def test_an_unclosed_code_fence_does_not_crash_and_its_text_is_kept():
    text = "# Broken\n\n## Steps\n\n```bash\necho one\n## inside the open fence\necho two\n"
    doc = chunk(text)
    assert heading_paths(doc) == [["Broken"], ["Broken", "Steps"]]
    assert doc.chunks[-1].text.endswith("```bash\necho one\n## inside the open fence\necho two")


def test_an_unclosed_code_fence_longer_than_the_budget_is_split_and_kept():
    body = "\n".join(para(f"l{n}x", 4) for n in range(30))
    text = "## Steps\n\n```\n" + body + "\n"
    doc = chunk(text, max_tokens=30, overlap=0)
    assert_fits(doc, 30)
    got = " ".join(c.text for c in doc.chunks).split()
    assert got == text.split()


def test_an_empty_document_has_no_chunks():
    assert chunk("").chunks == []
    assert chunk("\n\n   \n").chunks == []
    assert chunk("---\ntitle: Only front matter\n---\n").chunks == []


# ---------------------------------------------------------------- splitting


def test_a_section_that_fits_is_one_chunk_with_its_exact_lines():
    text = "# R\n\n## Step\n\nline one\nline two\n\n- a\n- b\n"
    doc = chunk(text)
    step = doc.chunks[1]
    assert step.text == "## Step\n\nline one\nline two\n\n- a\n- b"
    assert source(text, step) == step.text


def test_a_long_section_is_split_at_h3_first():
    text = (
        "# Ops\n\n## Upgrade\n\n"
        + para("u", 10)
        + "\n\n### Drain\n\n"
        + para("d", 20)
        + "\n\n### Patch\n\n"
        + para("p", 20)
        + "\n"
    )
    max_tokens = 35  # each H3 part fits, the whole H2 section does not
    doc = chunk(text, max_tokens=max_tokens)
    assert heading_paths(doc) == [
        ["Ops"],
        ["Ops", "Upgrade"],
        ["Ops", "Upgrade", "Drain"],
        ["Ops", "Upgrade", "Patch"],
    ]
    assert [c.text.split("\n")[0] for c in doc.chunks[1:]] == ["## Upgrade", "### Drain", "### Patch"]
    for c in doc.chunks:
        assert source(text, c) == c.text  # H3 parts are whole: no overlap between them
    assert_fits(doc, max_tokens)


def test_an_h3_part_that_is_still_too_long_is_split_at_paragraphs():
    text = "## Big\n\n### Part\n\n" + "\n\n".join(para(f"q{n}x", 12) for n in range(5)) + "\n"
    doc = chunk(text, max_tokens=40)
    assert len(doc.chunks) > 1
    assert all(c.headings == ["Big", "Part"] for c in doc.chunks[1:])
    assert_fits(doc, 40)


def test_an_h3_at_the_very_start_of_a_section_is_in_its_headings():
    text = "### Setup\n\n" + para("s", 20) + "\n\n### Teardown\n\n" + para("t", 20) + "\n"
    doc = chunk(text, max_tokens=30, path="notes.md")
    assert heading_paths(doc) == [["Setup"], ["Teardown"]]
    assert_fits(doc, 30)


def test_a_long_section_without_h3_is_split_at_paragraphs_with_overlap():
    paragraphs = [para(f"p{n}x", 12) for n in range(6)]
    text = "# Guide\n\n## Long\n\n" + "\n\n".join(paragraphs) + "\n"
    overlap = 5
    doc = chunk(text, max_tokens=35, overlap=overlap)
    pieces = doc.chunks[1:]
    assert len(pieces) >= 3
    assert all(c.headings == ["Guide", "Long"] for c in pieces)
    assert_fits(doc, 35)
    # The first piece is exact; every later one starts with the last `overlap` words before it,
    # then continues with whole paragraphs from the source.
    assert source(text, pieces[0]) == pieces[0].text
    own_lines = text.split("\n")
    for before, after in zip(pieces, pieces[1:], strict=False):
        lead, own = split_lead(text, after, overlap)
        assert lead, after
        assert lead.split() == before.text.split()[-overlap:]
        assert own_lines[own - 1] in paragraphs  # the own text starts on a paragraph boundary
        assert after.start_line <= before.end_line


def test_overlap_takes_the_tail_words_of_a_long_line():
    text = "## S\n\n" + para("a", 18) + "\n\n" + para("b", 18) + "\n"
    doc = chunk(text, max_tokens=30, overlap=4, path="x.md")
    assert len(doc.chunks) == 2
    assert doc.chunks[1].text == "a14 a15 a16 a17\n\n" + para("b", 18), "the lines as the file has them"
    assert doc.chunks[1].start_line == 3


def test_overlap_never_reaches_back_into_front_matter_or_the_previous_section():
    text = "---\ntitle: T\nsecret: frontmatter\n---\n## A\n\n" + para("a", 16) + "\n\n" + para("b", 16) + "\n"
    doc = chunk(text, max_tokens=30, overlap=10)
    assert len(doc.chunks) == 2
    assert all(c.start_line >= 5 for c in doc.chunks)
    assert not any("frontmatter" in c.text for c in doc.chunks)

    text = "## A\n\nend of a\n\n## B\n\nb0\n\n" + para("c", 16) + "\n\n" + para("d", 16) + "\n"
    doc = chunk(text, max_tokens=30, overlap=10, path="x.md")
    assert not any("end of a" in c.text for c in doc.chunks if c.headings == ["B"])
    assert all(c.start_line >= 5 for c in doc.chunks if c.headings == ["B"])


def test_a_first_block_that_leaves_no_room_for_overlap_is_not_left_as_a_heading_only_chunk():
    text = "## Rollback\n\n" + para("r", 20) + "\n\n" + para("s", 20) + "\n"
    doc = chunk(text, max_tokens=30, overlap=10, path="x.md")
    assert doc.chunks[0].text == "## Rollback\n\n" + para("r", 20)
    assert all(words(c.text) > 2 for c in doc.chunks)


def test_a_fence_that_fits_is_kept_whole():
    fence = "```bash\n" + "\n".join(f"step{n}" for n in range(24)) + "\n```"
    text = "# R\n\n## Run\n\n" + para("a", 12) + "\n\n" + fence + "\n\n" + para("b", 12) + "\n"
    max_tokens = 30  # the fence (26 tokens) fits alone, but not with room for overlap
    doc = chunk(text, max_tokens=max_tokens, overlap=5)
    assert_fits(doc, max_tokens)
    holding = [c for c in doc.chunks if "```bash" in c.text]
    assert len(holding) == 1
    assert fence in holding[0].text
    assert sum("step7" in c.text for c in doc.chunks) == 1


def test_a_fence_longer_than_the_budget_is_split_into_pieces_that_fit():
    fence_lines = [f"run command{n} --flag" for n in range(30)]
    text = "# R\n\n## Run\n\n```bash\n" + "\n".join(fence_lines) + "\n```\n"
    doc = chunk(text, max_tokens=40, overlap=6)
    run = [c for c in doc.chunks if "command" in c.text]
    assert len(run) > 2
    assert_fits(doc, 40)
    for line in fence_lines:
        assert any(line in c.text.split("\n") for c in run), line
    for c in run:
        assert source(text, c) == c.text  # windows of a fence are whole source lines
    for before, after in zip(run, run[1:], strict=False):
        assert after.start_line <= before.end_line  # neighbouring windows overlap


def test_a_paragraph_with_one_enormous_line_is_cut_within_budget():
    text = "## Log\n\n" + para("z", 200) + "\n\nafter\n"
    doc = chunk(text, max_tokens=30, overlap=4, path="x.md")
    assert_fits(doc, 30)
    got = set(" ".join(c.text for c in doc.chunks).split())
    assert {f"z{i}" for i in range(200)} <= got
    assert "after" in got


def test_every_chunk_fits_max_tokens_and_exact_pieces_have_exact_line_numbers():
    text = (
        "---\ntitle: Incident handbook\n---\n"
        "# Handbook\n\n" + para("i", 20) + "\n\n"
        "## Paging\n\n" + "\n\n".join(para(f"g{n}x", 9) for n in range(6)) + "\n\n"
        "### Escalation\n\n- call the lead\n- call the manager\n\n"
        "| who | when |\n| --- | --- |\n| sre | always |\n\n"
        "## Comms\n\n```text\n" + "\n".join(para(f"c{n}x", 3) for n in range(15)) + "\n```\n"
    )
    max_tokens = 32
    doc = chunk(text, max_tokens=max_tokens, overlap=5)
    assert_fits(doc, max_tokens)
    exact = [c for c in doc.chunks if source(text, c) == c.text]
    assert len(exact) >= 3
    for c in doc.chunks:
        assert split_lead(text, c, 5) is not None, c
        assert c.start_line <= c.end_line


# ---------------------------------------------------------------- properties


@dataclass
class Doc:
    text: str
    front_lines: int  # lines of front matter, 0 when there is none
    long_lines: bool


letters = st.text(alphabet="abcdefghijklmnopqrstuvwxyzéü日", min_size=1, max_size=8)


def line_of(min_words: int, max_words: int) -> st.SearchStrategy[str]:
    return st.lists(letters, min_size=min_words, max_size=max_words).map(" ".join)


short_heading = line_of(1, 3)
atx_heading = st.tuples(st.integers(min_value=1, max_value=3), short_heading).map(
    lambda t: "#" * t[0] + " " + t[1]
)
setext_heading = st.tuples(st.sampled_from(["=", "-"]), short_heading).map(lambda t: f"{t[1]}\n{t[0] * 3}")
paragraph = st.lists(st.one_of(line_of(1, 12), line_of(1, 12), line_of(40, 120)), min_size=1, max_size=4).map(
    "\n".join
)
fence = st.tuples(
    st.lists(st.one_of(line_of(0, 6), st.just("# not a heading"), st.just("")), max_size=30),
    st.booleans(),
).map(lambda t: "```sh\n" + "\n".join(t[0]) + ("\n```" if t[1] else ""))
bullets = st.lists(line_of(1, 10), min_size=1, max_size=6).map(
    lambda items: "\n".join(f"- {i}" for i in items)
)
block = st.one_of(atx_heading, atx_heading, setext_heading, paragraph, paragraph, fence, bullets)


@st.composite
def markdown_docs(draw: st.DrawFn, allow_long_lines: bool = True) -> Doc:
    blocks = draw(st.lists(block, max_size=14))
    if not allow_long_lines:
        blocks = [b for b in blocks if all(len(line.split()) < 30 for line in b.split("\n"))]
    seps = [draw(st.sampled_from(["\n\n", "\n\n", "\n", "\n\n\n"])) for _ in blocks]
    # A setext underline right after a paragraph line would make the whole paragraph one heading.
    seps = [
        "\n\n" if i + 1 < len(blocks) and blocks[i + 1].endswith(("\n===", "\n---")) else sep
        for i, sep in enumerate(seps)
    ]
    body = "".join(b + s for b, s in zip(blocks, seps, strict=False))
    front = ""
    if draw(st.booleans()):
        title = draw(st.one_of(st.none(), short_heading))
        front = "---\n" + (f"title: {title}\n" if title else "") + "fmkey: fmvalue\n---\n"
    long_lines = any(len(line.split()) >= 30 for line in body.split("\n"))
    return Doc(front + body, front.count("\n"), long_lines)


def check_structure(doc_in: Doc, doc: MarkdownDoc, max_tokens: int) -> None:
    lines = doc_in.text.split("\n")
    assert_fits(doc, max_tokens)
    covered: set[int] = set()
    for c in doc.chunks:
        assert 1 <= c.start_line <= c.end_line <= len(lines), c
        assert c.start_line > doc_in.front_lines, c
        assert "fmvalue" not in c.text
        assert c.text.strip()
        covered.update(range(c.start_line, c.end_line + 1))
        # start_line and end_line point at where the text really starts and ends.
        head, tail = c.text.split("\n")[0].split(), c.text.split("\n")[-1].split()
        assert " ".join(head) in " ".join(lines[c.start_line - 1].split()), c
        assert " ".join(tail) in " ".join(lines[c.end_line - 1].split()), c
    missing = [
        n for n, line in enumerate(lines, 1) if n > doc_in.front_lines and line.strip() and n not in covered
    ]
    assert missing == []
    ends = [c.end_line for c in doc.chunks]
    assert ends == sorted(ends), "chunks out of document order"


@settings(max_examples=300, deadline=None)
@given(
    doc_in=markdown_docs(),
    max_tokens=st.integers(min_value=40, max_value=120),
    overlap=st.integers(min_value=0, max_value=15),
)
def test_random_documents_chunk_within_budget_cover_every_line_in_order(doc_in, max_tokens, overlap):
    doc = parse_markdown("runbooks/doc.md", doc_in.text, max_tokens, words, overlap)
    check_structure(doc_in, doc, max_tokens)
    crlf = parse_markdown("runbooks/doc.md", doc_in.text.replace("\n", "\r\n"), max_tokens, words, overlap)
    assert [c.model_dump() for c in crlf.chunks] == [c.model_dump() for c in doc.chunks]


@settings(max_examples=200, deadline=None)
@given(
    doc_in=markdown_docs(allow_long_lines=False),
    max_tokens=st.integers(min_value=40, max_value=120),
    overlap=st.integers(min_value=0, max_value=15),
)
def test_random_documents_without_long_lines_are_exact_source_lines_after_any_overlap(
    doc_in, max_tokens, overlap
):
    doc = parse_markdown("runbooks/doc.md", doc_in.text, max_tokens, words, overlap)
    check_structure(doc_in, doc, max_tokens)
    for c in doc.chunks:
        assert split_lead(doc_in.text, c, overlap) is not None, c
