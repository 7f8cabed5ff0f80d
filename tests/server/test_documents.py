"""Rebuilding a document from its chunks, for an index whose repository is not reachable."""

from __future__ import annotations

import random

import pytest

from devrag.ingest.documents import parse_file
from devrag.server.documents import _from_chunks, outline, section_range


def _words(text: str) -> int:
    return len(text.split())


def _random_doc(rng: random.Random, n: int) -> str:
    lines = ["# Title", ""]
    for s in range(rng.randint(1, 4)):
        lines += [f"## Section {s}", ""]
        for p in range(rng.randint(1, 12)):
            length = rng.choice([3, 8, 15, 40, 130])  # 130 words: longer than a chunk holds
            lines += [" ".join(f"w{n}_{s}_{p}_{i}" for i in range(length)), ""]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("path", ["doc.md", "notes.txt"])
def test_chunks_reassemble_into_the_file_with_each_overlap_once(path):
    rng = random.Random(7)
    for n in range(60):
        text = _random_doc(rng, n)
        drafts = parse_file(path, text, 100, _words).drafts
        chunks = sorted(
            ({"text": d.text, "start_line": d.start_line, "end_line": d.end_line} for d in drafts),
            key=lambda c: (c["start_line"], c["end_line"]),
        )
        rebuilt = _from_chunks(chunks)
        assert rebuilt == text.split("\n")[: len(rebuilt)]
        assert len(rebuilt) == len(text.rstrip("\n").split("\n"))


def test_a_section_is_found_by_heading_or_heading_path_in_any_case():
    chunks = [
        {"headings": ["Disk full", "Symptoms"], "start_line": 5, "end_line": 7},
        {"headings": ["Disk full", "Mitigation"], "start_line": 9, "end_line": 11},
        {"headings": ["Disk full", "Mitigation", "Logs"], "start_line": 13, "end_line": 20},
    ]
    sections = outline("disk.txt", [], chunks)  # not Markdown: the sections its chunks name
    assert section_range(sections, "mitigation") == (9, 20, "Disk full > Mitigation")
    assert section_range(sections, "Disk full > Mitigation > logs") == (
        13,
        20,
        "Disk full > Mitigation > Logs",
    )
    assert section_range(sections, "disk full") == (5, 20, "Disk full")
    assert section_range(sections, "symptom") == (5, 7, "Disk full > Symptoms"), "a unique partial heading"
    with pytest.raises(ValueError, match="Several sections match 'o': Disk full > Symptoms; Disk full > Mi"):
        section_range(sections, "o")
    with pytest.raises(
        ValueError,
        match="Its sections: Disk full; Disk full > Symptoms; Disk full > Mitigation; Disk full > Mi",
    ):
        section_range(sections, "Rollback")


MARKDOWN = """---
title: Disk full
---
# Disk full

## Mitigation

Free space first.

### Logs

```sh
# Rotate now
journalctl --vacuum-size=500M
```

#### Journald

Set SystemMaxUse.

### Images

Prune images.

## Follow-ups

File a ticket.
"""


def test_every_markdown_heading_is_a_section_up_to_the_next_one_of_its_level_or_higher():
    lines = MARKDOWN.split("\n")[:-1]
    chunks = [{"headings": ["Disk full", "Mitigation"], "start_line": 6, "end_line": 24}]
    sections = outline("runbooks/disk.md", lines, chunks)

    def text(section: str) -> list[str]:
        first, last, _label = section_range(sections, section)
        return lines[first - 1 : last]

    assert section_range(sections, "logs")[2] == "Disk full > Mitigation > Logs"
    assert text("logs")[0] == "### Logs" and text("logs")[-1] == "Set SystemMaxUse."
    assert text("journald") == ["#### Journald", "", "Set SystemMaxUse."]
    assert text("Mitigation > Images") == ["### Images", "", "Prune images."]
    assert text("mitigation")[-1] == "Prune images." and text("follow-ups") == [
        "## Follow-ups",
        "",
        "File a ticket.",
    ]
    with pytest.raises(ValueError, match="No section 'Rotate now'"):
        section_range(sections, "Rotate now")  # a comment in a code fence is not a heading
