from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devrag.ingest import code_chunker
from devrag.ingest.code_chunker import chunk_code, language_for
from devrag.retrieval.schema import ChunkDraft


def words(text: str) -> int:
    return len(text.split())


def spans(chunks: list[ChunkDraft]) -> list[tuple[int, int, str | None]]:
    return [(c.start_line, c.end_line, c.symbol) for c in chunks]


def assert_covers_exactly(source: str, chunks: list[ChunkDraft]) -> None:
    """Every non-blank line sits in a chunk, and each chunk's text is its lines verbatim."""
    lines = source.split("\n")
    covered = {n for c in chunks for n in range(c.start_line, c.end_line + 1)}
    missing = [n for n, line in enumerate(lines, 1) if line.strip() and n not in covered]
    assert missing == []
    for c in chunks:
        assert c.text == "\n".join(lines[c.start_line - 1 : c.end_line])


PYTHON = '''"""Drain helpers."""
import os

TIMEOUT = 30


# Drain one node before maintenance.
def drain_node(name):
    return os.system(name)


class NodeDrainer:
    def run(self):
        pass
@cache
def lookup(key):
    return key

if __name__ == "__main__":
    drain_node("a")
'''


@pytest.mark.parametrize(
    ("path", "language"),
    [
        ("ops/drain.py", "python"),
        ("bin/restart.sh", "bash"),
        ("bin/restart.bash", "bash"),
        ("cmd/main.go", "go"),
        ("infra/main.tf", "hcl"),
        ("infra/prod.tfvars", "hcl"),
        ("infra/config.hcl", "hcl"),
        ("k8s/deploy.yaml", "yaml"),
        ("k8s/Deploy.YML", "yaml"),
        ("docs/runbook.md", None),
        ("Makefile", None),
    ],
)
def test_language_for_picks_the_grammar_by_extension(path: str, language: str | None) -> None:
    assert language_for(path) == language


def test_python_functions_become_one_chunk_each_with_their_symbol() -> None:
    chunks = chunk_code("drain.py", PYTHON, 500, words)
    assert spans(chunks) == [
        (1, 4, None),
        (7, 9, "def drain_node"),
        (12, 14, "class NodeDrainer"),
        (15, 17, "def lookup"),
        (19, 20, None),
    ]
    assert chunks[1].text.startswith("# Drain one node")
    assert [c.headings for c in chunks] == [
        [],
        ["def drain_node"],
        ["class NodeDrainer"],
        ["def lookup"],
        [],
    ]
    assert_covers_exactly(PYTHON, chunks)


def test_adjacent_small_definitions_are_not_merged() -> None:
    source = "def a():\n    pass\ndef b():\n    pass\ndef c():\n    pass\n"
    chunks = chunk_code("x.py", source, 500, words)
    assert spans(chunks) == [(1, 2, "def a"), (3, 4, "def b"), (5, 6, "def c")]


def test_windows_line_endings_keep_line_numbers_and_verbatim_text() -> None:
    source = "import os\r\n\r\ndef a():\r\n    pass\r\n\x0c\r\ndef b():\r\n    pass\r\n"
    chunks = chunk_code("crlf.py", source, 500, words)
    assert spans(chunks) == [(1, 1, None), (3, 4, "def a"), (6, 7, "def b")]
    assert_covers_exactly(source, chunks)


def test_a_comment_separated_by_a_blank_line_stays_out_of_the_next_definition() -> None:
    source = "import os\n# section: helpers\n\ndef helper():\n    pass\n"
    chunks = chunk_code("x.py", source, 500, words)
    assert spans(chunks) == [(1, 2, None), (4, 5, "def helper")]


def test_go_functions_methods_and_types_get_symbols() -> None:
    source = (
        "package main\n"
        "\n"
        'import "fmt"\n'
        "\n"
        "// Cache holds sessions.\n"
        "type Cache[K comparable] struct{ items map[K]int }\n"
        "\n"
        "func (c *Cache[K]) Get(k K) int {\n"
        "\treturn c.items[k]\n"
        "}\n"
        "func main() { fmt.Println() }\n"
    )
    chunks = chunk_code("main.go", source, 500, words)
    assert spans(chunks) == [
        (1, 3, None),
        (5, 6, "type Cache"),
        (8, 10, "func Cache.Get"),
        (11, 11, "func main"),
    ]
    assert_covers_exactly(source, chunks)


BASH = """#!/bin/bash
set -euo pipefail

# Restart the worker.
restart() {
  systemctl restart worker
}
function status {
  systemctl status worker
}
restart
"""


def test_bash_functions_get_symbols_in_both_syntaxes() -> None:
    chunks = chunk_code("restart.sh", BASH, 500, words)
    assert spans(chunks) == [
        (1, 2, None),
        (4, 7, "function restart"),
        (8, 10, "function status"),
        (11, 11, None),
    ]


def test_a_shell_script_with_characters_of_the_high_planes_chunks_without_crashing_the_process() -> None:
    # tree-sitter-bash reads past the C library's ctype table on `{` before such a character, and the
    # crash came one run in a few: 60 parses of each, in a process of their own, so a crash is a failure.
    script = (
        "from devrag.ingest.code_chunker import chunk_code\n"
        "for n in range(60):\n"
        "    for c in (0xC33F0, 0xE0100, 0xF0000, 0x10FFFD):\n"
        "        chunk_code('run.sh', 'a {' + chr(c) + ' x\\necho \\u00e9t\\u00e9', 500, len)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    source = BASH.replace("echo", "echo d\u00e9j\u00e0 \U0001f680")
    chunks = chunk_code("restart.sh", source, 500, words)
    assert spans(chunks) == spans(chunk_code("restart.sh", BASH, 500, words))
    assert_covers_exactly(source, chunks)


def test_a_bash_shebang_makes_an_extensionless_script_bash() -> None:
    chunks = chunk_code("bin/restart-worker", BASH, 500, words)
    assert "function restart" in [c.symbol for c in chunks]
    env_shebang = BASH.replace("#!/bin/bash", "#!/usr/bin/env sh")
    assert "function status" in [c.symbol for c in chunk_code("bin/x", env_shebang, 500, words)]


def test_a_non_shell_shebang_does_not_make_a_file_bash() -> None:
    source = BASH.replace("#!/bin/bash", "#!/usr/bin/env python3")
    chunks = chunk_code("bin/tool", source, 500, words)
    assert spans(chunks) == [(1, 11, None)]


def test_terraform_blocks_are_named_by_type_and_labels() -> None:
    source = (
        "# Session cache.\n"
        'resource "aws_elasticache_cluster" "sessions" {\n'
        '  engine = "redis"\n'
        "}\n"
        "\n"
        'variable "region" {}\n'
        "locals {\n"
        "  env = var.region\n"
        "}\n"
        'project = "ops"\n'
    )
    chunks = chunk_code("infra/main.tf", source, 500, words)
    assert spans(chunks) == [
        (1, 4, "resource.aws_elasticache_cluster.sessions"),
        (6, 6, "variable.region"),
        (7, 9, "locals"),
        (10, 10, None),
    ]


def test_yaml_top_level_keys_become_chunks_with_their_whole_values() -> None:
    source = (
        "image: nginx:1.27\n"
        "# limits for the web tier\n"
        "resources:\n"
        "  limits:\n"
        "    cpu: 500m\n"
        "    memory: 256Mi\n"
        "replicas: 3\n"
    )
    chunks = chunk_code("values.yaml", source, 500, words)
    assert spans(chunks) == [(1, 1, "image"), (2, 6, "resources"), (7, 7, "replicas")]
    assert "memory: 256Mi" in chunks[1].text


def test_yaml_document_separators_are_not_lost() -> None:
    source = "kind: Service\n---\nkind: Deployment\nspec:\n  replicas: 2\n"
    chunks = chunk_code("k8s.yml", source, 500, words)
    assert [c.symbol for c in chunks] == ["kind", "kind", "spec"]
    assert_covers_exactly(source, chunks)


def test_a_long_function_is_split_into_pieces_that_keep_its_symbol_and_fit_the_budget() -> None:
    body = "".join(f"    step_{i} = run('kubectl drain node-{i} --force')\n" for i in range(60))
    source = f"import os\n\ndef drain_all():\n{body}    return True\n\nX = 1\n"
    chunks = chunk_code("drain.py", source, 40, words, overlap=8)
    pieces = [c for c in chunks if c.symbol == "def drain_all"]
    assert len(pieces) > 3
    assert all(words(c.text) <= 40 for c in chunks)
    assert all(c.headings == ["def drain_all"] for c in pieces)
    assert pieces[0].start_line == 3 and pieces[-1].end_line == 64
    assert spans(chunks)[0] == (1, 1, None) and spans(chunks)[-1] == (66, 66, None)
    assert_covers_exactly(source, chunks)


def test_a_file_without_grammar_falls_back_to_line_windows() -> None:
    source = "\n".join(f"line {i} of the notes" for i in range(1, 41)) + "\n"
    chunks = chunk_code("notes.txt", source, 30, words, overlap=5)
    assert len(chunks) > 1
    assert all(c.symbol is None and c.headings == [] for c in chunks)
    assert all(words(c.text) <= 30 for c in chunks)
    assert chunks[0].start_line == 1 and chunks[-1].end_line == 40
    assert_covers_exactly(source, chunks)


def test_a_grammar_that_fails_to_load_falls_back_to_line_windows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(code_chunker._MODULES, "python", "no_such_grammar_module")
    code_chunker._parser.cache_clear()
    try:
        chunks = chunk_code("drain.py", PYTHON, 500, words)
    finally:
        code_chunker._parser.cache_clear()
    assert spans(chunks) == [(1, 20, None)]


def test_empty_or_whitespace_only_text_gives_no_chunks() -> None:
    assert chunk_code("a.py", "", 100, words) == []
    assert chunk_code("a.yaml", "  \n\n\t\n", 100, words) == []


@pytest.mark.parametrize(
    ("path", "source"),
    [
        ("broken.py", "def f(:\n    return\nclass X\n   x = \ndef g(): pass\n"),
        ("broken.py", ")))((( ]]]\n\n%%% !!!\n"),
        ("broken.go", "func (x {\n}}}\ntype\n"),
        ("broken.tf", 'resource "a" {\n  x = \n'),
        ("broken.yaml", "a: [1, 2\nb: : :\n  - c\n"),
        ("broken.sh", "foo() {\n  if then fi\n"),
    ],
)
def test_broken_code_does_not_raise_and_keeps_every_line(path: str, source: str) -> None:
    chunks = chunk_code(path, source, 500, words)
    assert chunks
    assert_covers_exactly(source, chunks)


def test_every_non_blank_line_is_in_exactly_one_chunk_across_languages() -> None:
    for path, source in [("d.py", PYTHON), ("r.sh", BASH)]:
        chunks = chunk_code(path, source, 500, words)
        assert_covers_exactly(source, chunks)
        ranges = sorted((c.start_line, c.end_line) for c in chunks)
        assert all(a[1] < b[0] for a, b in zip(ranges, ranges[1:], strict=False))


_statement = st.sampled_from(
    ["import os", "TIMEOUT = 30", "# a note", "print('hi')", "if DEBUG:\n    print(1)"]
)


@st.composite
def python_module(draw: st.DrawFn) -> tuple[str, set[str]]:
    """Source of random small functions and statements, and the function names it defines."""
    parts: list[str] = []
    names: set[str] = set()
    for i in range(draw(st.integers(1, 12))):
        if draw(st.booleans()):
            names.add(f"def f{i}")
            comment = draw(st.sampled_from(["", "# helper\n", "@cache\n"]))
            body = "\n".join(f"    y = x + {n}" for n in range(draw(st.integers(0, 6))))
            parts.append(f"{comment}def f{i}(x):\n{body}\n    return x")
        else:
            parts.append(draw(_statement))
        parts.append("\n" * draw(st.integers(0, 2)))
    return "\n".join(parts) + "\n", names


@settings(max_examples=150, deadline=None)
@given(python_module(), st.integers(15, 300))
def test_chunks_of_random_python_cover_every_line_with_verbatim_text(
    module: tuple[str, set[str]], budget: int
) -> None:
    source, names = module
    chunks = chunk_code("gen.py", source, budget, words, overlap=6)
    assert_covers_exactly(source, chunks)
    assert {c.symbol for c in chunks if c.symbol} == names
    assert all(words(c.text) <= budget for c in chunks)
