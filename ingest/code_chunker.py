"""Chunk code and config files at top-level definitions, so a hit names the function it is in.

Each definition (function, class, Terraform block, top-level YAML key) becomes its own chunk
with a symbol; the statements between definitions are grouped. Every line of the file lands in
exactly one chunk, so nothing is lost to retrieval. Files without a grammar get line windows.
A file with very many definitions (a flat YAML map of thousands of keys) has its small ones
packed together instead, so the chunk count follows the file's size, not its key count.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import PurePosixPath

from tree_sitter import Language, Node, Parser

from devrag.ingest.windows import TokenCounter, clip, cost, split_lines
from devrag.retrieval.schema import ChunkDraft

Namer = Callable[[Node], str | None]

_EXTENSIONS = {
    ".py": "python",
    ".sh": "bash",
    ".bash": "bash",
    ".go": "go",
    ".tf": "hcl",
    ".hcl": "hcl",
    ".tfvars": "hcl",
    ".yaml": "yaml",
    ".yml": "yaml",
}
_NAMES = {".bashrc": "bash", ".bash_profile": "bash"}
_MODULES = {
    "python": "tree_sitter_python",
    "bash": "tree_sitter_bash",
    "go": "tree_sitter_go",
    "hcl": "tree_sitter_hcl",
    "yaml": "tree_sitter_yaml",
}
# Above this many top-level spans, small neighbours share a chunk. Real files rarely have half as
# many (corpus-sample's Helm values: 17 keys); generated maps and the reliability probe's 3,000.
MANY_DEFINITIONS = 200
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_SHEBANG = re.compile(r"#!\s*\S*/(?:env\s+(?:-\S+\s+)*)?(?:ba)?sh(?:\s|$)")


def _text(node: Node | None) -> str:
    return node.text.decode("utf-8", "replace") if node is not None and node.text else ""


def _field(prefix: str, field: str = "name") -> Namer:
    """A namer that reads one field of the node: `def drain_node`, `function cleanup`."""
    return lambda node: f"{prefix} {_text(node.child_by_field_name(field))}".strip() or None


def _decorated(node: Node) -> str | None:
    inner = node.child_by_field_name("definition")
    return _DEFINITIONS["python"][inner.type](inner) if inner is not None else None


def _go_method(node: Node) -> str | None:
    """`func (r *Cache[K]) Get` -> `func Cache.Get`: receiver type without pointer or generics."""
    receiver = node.child_by_field_name("receiver")
    params = receiver.named_children if receiver is not None else []
    kind = _text(params[0].child_by_field_name("type")) if params else ""
    kind = kind.lstrip("*").split("[")[0].strip()
    name = _text(node.child_by_field_name("name"))
    return f"func {kind}.{name}" if kind else f"func {name}"


def _go_type(node: Node) -> str | None:
    names = [_text(spec.child_by_field_name("name")) for spec in node.named_children]
    return "type " + ", ".join(name for name in names if name)


def _hcl_block(node: Node) -> str | None:
    """`resource "aws_instance" "web"` -> `resource.aws_instance.web`."""
    parts: list[str] = []
    for child in node.named_children:
        if child.type == "block_start":
            break
        if child.type in ("identifier", "string_lit"):
            parts.append(_text(child).strip('"'))
    return ".".join(parts) or None


def _yaml_key(node: Node) -> str | None:
    return _text(node.child_by_field_name("key")).strip("\"'") or None


# Per language: top-level node types that are definitions, and how each is named.
_DEFINITIONS: dict[str, dict[str, Namer]] = {
    "python": {
        "function_definition": _field("def"),
        "class_definition": _field("class"),
        "decorated_definition": _decorated,
    },
    "go": {
        "function_declaration": _field("func"),
        "method_declaration": _go_method,
        "type_declaration": _go_type,
    },
    "bash": {"function_definition": _field("function")},
    "hcl": {"block": _hcl_block},
    "yaml": {"block_mapping_pair": _yaml_key},
}
# Wrapper nodes whose children are the real top level (HCL body, YAML documents and mappings).
_CONTAINERS = {"hcl": {"body"}, "yaml": {"document", "block_node", "block_mapping"}}


@dataclass
class _Span:
    """Rows (0-based, inclusive) of one chunk-to-be; `comment` marks a lone comment node."""

    start: int
    end: int
    symbol: str | None
    comment: bool = False


def language_for(path: str) -> str | None:
    """Grammar name ('python', 'bash', 'go', 'hcl', 'yaml') for a path by extension/name."""
    name = PurePosixPath(path).name
    return _NAMES.get(name) or _EXTENSIONS.get(PurePosixPath(name.lower()).suffix)


@cache
def _parser(language: str) -> Parser | None:
    """A parser for the grammar, or None if its package is missing or incompatible."""
    try:
        module = importlib.import_module(_MODULES[language])
        return Parser(Language(module.language()))
    except Exception:  # any loading failure means "no grammar": use line windows
        return None


def _end_row(node: Node) -> int:
    """Last row holding the node's text (a node ending at column 0 ends on the row before)."""
    end = node.end_point
    return end.row - 1 if end.column == 0 and end.row > node.start_point.row else end.row


def _top_nodes(node: Node, language: str) -> list[Node]:
    containers = _CONTAINERS.get(language, set())
    nodes: list[Node] = []
    for child in node.named_children:
        nodes.extend(_top_nodes(child, language) if child.type in containers else [child])
    return sorted(nodes, key=lambda n: n.start_byte)


def _pieces(root: Node, language: str) -> list[_Span]:
    """Top-level nodes as spans; comments directly above a definition join that definition."""
    namers = _DEFINITIONS[language]
    out: list[_Span] = []
    for node in _top_nodes(root, language):
        namer = namers.get(node.type)
        symbol = namer(node) if namer else None
        span = _Span(node.start_point.row, _end_row(node), symbol, node.type == "comment")
        while span.symbol and out and out[-1].comment and out[-1].end == span.start - 1:
            if len(out) > 1 and out[-2].end >= out[-1].start:
                break  # a comment trailing code on its line belongs to that code
            span.start = out.pop().start
        out.append(span)
    return out


def _merge(pieces: list[_Span]) -> list[_Span]:
    """Group runs of non-definitions; a node starting on a row already taken joins that chunk."""
    spans: list[_Span] = []
    for piece in pieces:
        last = spans[-1] if spans else None
        if last and (piece.start <= last.end or not (last.symbol or piece.symbol)):
            last.end = max(last.end, piece.end)
        else:
            spans.append(_Span(piece.start, piece.end, piece.symbol))
    return spans


def _cover(spans: list[_Span], lines: list[str]) -> list[_Span]:
    """Give lines no node holds (`---`, stray tokens) to the next chunk; trim blank edges."""
    covered: list[_Span] = []
    for i, span in enumerate(spans):
        start = covered[-1].end + 1 if covered else 0
        end = span.end if i + 1 < len(spans) else len(lines) - 1
        while start <= end and not lines[start].strip():
            start += 1
        while end >= start and not lines[end].strip():
            end -= 1
        if start <= end:
            covered.append(_Span(start, end, span.symbol))
    return covered


def _group(spans: list[_Span], lines: list[str], budget: int, count: TokenCounter) -> list[_Span]:
    """Neighbouring spans packed up to the budget, named by their first and last symbols."""
    groups: list[list[_Span]] = []
    used = budget + 1  # nothing to join yet
    for span in spans:
        size = cost("\n".join(lines[span.start : span.end + 1]), count) + 1
        if used + size <= budget:
            groups[-1].append(span)
            used += size
        else:
            groups.append([span])
            used = size
    return [_Span(g[0].start, g[-1].end, _group_symbol(g)) for g in groups]


def _group_symbol(group: list[_Span]) -> str | None:
    symbols = [s.symbol for s in group if s.symbol]
    if len(symbols) < 2:
        return symbols[0] if symbols else None
    return f"{symbols[0]} … {symbols[-1]}"


def _drafts(
    span: _Span, lines: list[str], budget: int, count: TokenCounter, overlap: int
) -> list[ChunkDraft]:
    """One chunk for the span, or budget-sized windows of it that all keep its symbol; never a blank one."""
    body = lines[span.start : span.end + 1]
    text = "\n".join(body)
    if cost(text, count) <= budget:
        pieces = [(text, span.start + 1, span.end + 1)]
    else:
        windows = split_lines(body, span.start + 1, budget, count, overlap)
        pieces = [(w.text, w.start_line, w.end_line) for w in windows]
    return [
        ChunkDraft(
            text=piece,
            headings=[span.symbol] if span.symbol else [],
            start_line=start,
            end_line=end,
            symbol=span.symbol,
        )
        for piece, start, end in pieces
        if piece.strip()
    ]


def _ascii_only(text: str) -> bytes:
    """`text` with each non-ASCII character as `_` of its UTF-8 length: the same bytes, rows and columns.

    Why: tree-sitter-bash's scanner hands code points to the C library's `isalpha`, whose table ends
    at 255; a `{` before a character of the higher Unicode planes read far past it and crashed the
    process (tree-sitter-bash 0.25.1). Chunk text comes from the file's own lines, so only a symbol
    name spelled outside ASCII shows `_` in its place.
    """
    return _NON_ASCII.sub(lambda m: "_" * len(m.group().encode("utf-8")), text).encode("ascii")


def chunk_code(
    path: str,
    text: str,
    budget: int,
    count: TokenCounter,
    overlap: int = 50,
    symbol_tokens: int | None = None,
) -> list[ChunkDraft]:
    """Chunks of one code or config file at top-level definitions; symbols clipped to `symbol_tokens`."""
    if not text.strip():
        return []
    lines = text.split("\n")  # tree-sitter counts rows by "\n" only, so split the same way
    language = language_for(path) or ("bash" if _SHEBANG.match(lines[0]) else None)
    parser = _parser(language) if language else None
    spans: list[_Span] = []
    if parser is not None and language is not None:
        root = parser.parse(_ascii_only(text) if language == "bash" else text.encode("utf-8")).root_node
        pieces = _pieces(root, language)
        if not (root.has_error and not any(p.symbol for p in pieces)):
            spans = _cover(_merge(pieces), lines)
    if not spans:  # no grammar, or a parse with nothing recognisable: plain line windows
        spans = _cover([_Span(0, len(lines) - 1, None)], lines)
    if len(spans) > MANY_DEFINITIONS:
        spans = _group(spans, lines, budget, count)
    if symbol_tokens is not None:
        for span in spans:
            span.symbol = clip(span.symbol, symbol_tokens, count) or None if span.symbol else None
    return [draft for span in spans for draft in _drafts(span, lines, budget, count, overlap)]
