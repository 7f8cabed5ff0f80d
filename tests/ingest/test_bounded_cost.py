"""One file's cost is bounded: the reliability probe's hostile inputs, ingested from a real repository.

Chunk counts and sizes are asserted; times are printed (run with -s), not asserted.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from devrag.ingest.documents import decode, parse_file
from devrag.ingest.pipeline import IngestOptions, IngestSummary, ingest
from devrag.ingest.windows import CHARS_PER_TOKEN
from devrag.retrieval.index import Index
from devrag.retrieval.schema import embed_text_for
from devrag.retrieval.store import PointFilter
from tests.support import GitRepo, HashEmbedder

BODY = "## Steps\n\nRestart the `checkout-api` pods and watch the error rate.\n"


def alias_bomb(levels: int = 9) -> str:
    """Front matter of 428 bytes whose title `yaml.safe_load` expands to 9**9 items (3.6 GB as text)."""
    rows = ["a0: &a0 [lol]"]
    rows += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    rows.append(f"title: [{','.join([f'*a{levels - 1}'] * 9)}]")
    return "---\n" + "\n".join(rows) + "\n---\n\n# Disk full\n\n" + BODY


@contextmanager
def timed(label: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    print(f"\n{label}: {time.perf_counter() - started:.2f} s")


def ingest_one(
    index: Index, repo: GitRepo, embedder: HashEmbedder, path: str, text: str, **opts: int
) -> IngestSummary:
    repo.commit({path: text})
    with timed(f"ingest {path} ({len(text.encode()):,} bytes)"):
        return ingest(index, embedder, repo.path, options=IngestOptions(**opts))


def stored(index: Index, repo: str) -> list[dict[str, object]]:
    return [p.payload for p in index.store.scroll(PointFilter(repo=repo))]


def assert_fits(payloads: list[dict[str, object]], embedder: HashEmbedder) -> None:
    for p in payloads:
        text = embed_text_for(str(p["title"]), list(p["headings"]), str(p["text"]))  # type: ignore[call-overload]
        assert embedder.count_tokens(text) <= embedder.max_tokens
        assert len(str(p["text"])) <= embedder.max_tokens * CHARS_PER_TOKEN


def test_an_alias_bomb_front_matter_is_ignored_with_a_warning_and_the_body_indexed(
    edge_index, git_repo, embedder
):
    text = alias_bomb()
    assert len(text.split("---")[1]) < 500
    summary = ingest_one(edge_index, git_repo(), embedder, "runbooks/disk.md", text)
    payloads = stored(edge_index, "ops")
    assert {p["title"] for p in payloads} == {"Disk full"}, "the title falls back to the H1"
    assert len(payloads) == 2
    assert [(w.path, w.reason) for w in summary.warnings] == [
        ("runbooks/disk.md", "front matter ignored: YAML aliases are not allowed in front matter")
    ]


def test_a_title_longer_than_the_window_keeps_chunks_window_sized(edge_index, git_repo, embedder):
    title = " ".join(f"t{i}" for i in range(2000))
    sections = "".join(
        f"## Part {i}\n\n" + " ".join(f"w{i}_{k}" for k in range(60)) + "\n\n" for i in range(40)
    )
    text = f"---\ntitle: {title}\n---\n\n{sections}"
    ingest_one(edge_index, git_repo(), embedder, "guide.md", text)
    payloads = stored(edge_index, "ops")
    assert len(payloads) == 40, "one chunk per section, as with a short title"
    assert all(embedder.count_tokens(str(p["title"])) <= embedder.max_tokens // 4 for p in payloads)
    assert_fits(payloads, embedder)


def test_ten_thousand_headings_are_cut_at_the_chunk_limit_and_named(edge_index, git_repo, embedder):
    text = "".join(f"## Heading {i}\n\nline {i}\n\n" for i in range(10_000))
    summary = ingest_one(edge_index, git_repo(), embedder, "many.md", text, max_file_chunks=2000)
    assert edge_index.count("ops") == 2000
    [warning] = summary.warnings
    assert warning.path == "many.md"
    assert warning.reason.startswith(
        "cut at the 2000-chunk limit: 10000 chunks, lines after 7999 not indexed"
    )


def test_a_five_megabyte_single_line_is_cut_by_length(edge_index, git_repo, embedder):
    line = "".join(f"{i:07d}" for i in range(5_000_000 // 7))  # no whitespace: one 5 MB word
    summary = ingest_one(
        edge_index,
        git_repo(),
        embedder,
        "one-line.txt",
        line,
        max_file_bytes=10_000_000,
        max_file_chunks=10**6,
    )
    payloads = stored(edge_index, "ops")
    assert summary.skipped == []
    assert_fits(payloads, embedder)
    window = embedder.max_tokens * CHARS_PER_TOKEN
    assert len(line) // window <= len(payloads) <= 2 * len(line) // window + 2
    assert sum(len(str(p["text"])) for p in payloads) >= len(line), "every character is in some chunk"


def test_a_flat_yaml_map_of_three_thousand_keys_is_grouped(embedder):
    text = "".join(f"key_{i}: value {i}\n" for i in range(3000))
    parsed = parse_file("config/flat.yaml", text, embedder.max_tokens, embedder.count_tokens)
    assert 3000 * 3 // embedder.max_tokens <= len(parsed.drafts) <= 200
    assert parsed.drafts[0].symbol is not None and parsed.drafts[0].symbol.startswith("key_0 … key_")


def test_a_nul_byte_anywhere_makes_a_file_binary():
    with pytest.raises(ValueError, match="binary content"):
        decode(b"# Title\n" + b"text " * 4000 + b"\0")


@pytest.mark.model
def test_the_real_tokenizer_keeps_every_hostile_chunk_within_the_window():
    from devrag.retrieval.models import SentenceTransformerEmbedder

    model = SentenceTransformerEmbedder(device="cpu")
    title = "ops " * 5000
    cases = {
        "bomb.md": alias_bomb(),
        "title.md": f"---\ntitle: {title}\n---\n\n## A\n\n{'restart the pod ' * 300}\n",
        "heading.md": f"# {title}\n\n## {title}\n\n### {title}\n\n{'restart the pod ' * 300}\n",
        "line.md": "kubectl " * 200_000,
        "word.txt": "x" * 400_000,
    }
    for path, text in cases.items():
        with timed(f"parse {path} with the real tokenizer"):
            parsed = parse_file(path, text, model.max_tokens, model.count_tokens)
        assert parsed.drafts, path
        for d in parsed.drafts:
            assert model.count_tokens(embed_text_for(parsed.title, d.headings, d.text)) <= model.max_tokens, (
                path
            )
            assert len(d.text) <= model.max_tokens * CHARS_PER_TOKEN
