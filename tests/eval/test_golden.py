from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from devrag.eval.golden import (
    GoldenQuery,
    beir_doc_path,
    beir_markdown,
    beir_queries,
    load_beir,
    load_golden,
    materialise_beir,
)

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
GOLDEN_DIR = SHARED_DATA / "golden"
SCIFACT = SHARED_DATA / "beir" / "scifact"


def _write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _good(**overrides: object) -> str:
    record: dict[str, object] = {"id": "q1", "query": "disk full", "relevant": ["a.md"]}
    record.update(overrides)
    return json.dumps(record)


def test_load_golden_reads_queries_and_optional_fields(tmp_path: Path) -> None:
    path = _write_lines(
        tmp_path / "set.jsonl",
        [
            _good(verbatim_in_relevant=True, query_kind="summary", extra="ignored"),
            "",
            "   ",
            _good(id="q2", relevant=["b.md", "c.md"]),
        ],
    )
    assert load_golden(path) == [
        GoldenQuery(id="q1", query="disk full", relevant=["a.md"], verbatim=True, kind="summary"),
        GoldenQuery(id="q2", query="disk full", relevant=["b.md", "c.md"]),
    ]


def test_load_golden_defaults_verbatim_to_false_and_kind_to_none(tmp_path: Path) -> None:
    (query,) = load_golden(_write_lines(tmp_path / "set.jsonl", [_good()]))
    assert query.verbatim is False
    assert query.kind is None


@pytest.mark.parametrize(
    ("bad_line", "problem"),
    [
        ("{not json", "invalid JSON"),
        ("[1, 2]", "expected a JSON object"),
        (json.dumps({"query": "q", "relevant": ["a.md"]}), "missing field 'id'"),
        (json.dumps({"id": "q2", "relevant": ["a.md"]}), "missing field 'query'"),
        (json.dumps({"id": "q2", "query": "q"}), "missing field 'relevant'"),
        (_good(id="q2", relevant=[]), "'relevant' is an empty list"),
        (_good(id="q2", relevant="a.md"), "'relevant' must be a list"),
        (_good(id="q2", verbatim_in_relevant="yes"), "'verbatim_in_relevant' must be a boolean"),
        (_good(), "duplicate id 'q1' (first on line 1)"),
    ],
)
def test_load_golden_error_names_the_file_line_and_problem(
    tmp_path: Path, bad_line: str, problem: str
) -> None:
    path = _write_lines(tmp_path / "broken.jsonl", [_good(), "", bad_line])
    with pytest.raises(ValueError) as excinfo:
        load_golden(path)
    message = str(excinfo.value)
    assert f"{path}:3:" in message
    assert problem in message


@pytest.mark.skipif(not GOLDEN_DIR.is_dir(), reason=f"shared golden sets not present at {GOLDEN_DIR}")
def test_load_golden_reads_all_215_prometheus_operator_alert_queries() -> None:
    queries = load_golden(GOLDEN_DIR / "alerts-to-runbooks.jsonl")
    assert len(queries) == 215
    assert {q.kind for q in queries} == {"summary", "description"}
    assert sum(q.kind == "summary" for q in queries) == 105
    assert any(q.verbatim for q in queries)
    assert all(q.relevant[0].endswith(".md") for q in queries)


def _write_tiny_beir(folder: Path) -> Path:
    (folder / "qrels").mkdir(parents=True)
    _write_lines(
        folder / "corpus.jsonl",
        [
            json.dumps({"_id": "d1", "title": "Disk pressure", "text": "Free space on /var."}),
            json.dumps({"_id": "d/2", "title": "", "text": "Untitled body."}),
            json.dumps({"_id": "d3", "title": "Unjudged", "text": "Nobody asks."}),
        ],
    )
    _write_lines(
        folder / "queries.jsonl",
        [
            json.dumps({"_id": "q1", "text": "disk is full"}),
            json.dumps({"_id": "q2", "text": "no judgements"}),
            json.dumps({"_id": "q3", "text": "untitled"}),
        ],
    )
    _write_lines(
        folder / "qrels" / "test.tsv",
        ["query-id\tcorpus-id\tscore", "q1\td1\t1", "q1\td3\t0", "q2\td3\t0", "q3\td/2\t2"],
    )
    return folder


def test_load_beir_keeps_only_positive_qrels(tmp_path: Path) -> None:
    beir = load_beir(_write_tiny_beir(tmp_path / "tiny"))
    assert beir.documents["d1"] == ("Disk pressure", "Free space on /var.")
    assert beir.queries == {"q1": "disk is full", "q2": "no judgements", "q3": "untitled"}
    assert beir.qrels == {"q1": {"d1": 1}, "q3": {"d/2": 2}}


def test_beir_queries_only_include_judged_queries_with_document_paths(tmp_path: Path) -> None:
    beir = load_beir(_write_tiny_beir(tmp_path / "tiny"))
    assert beir_queries(beir) == [
        GoldenQuery(id="q1", query="disk is full", relevant=["docs/d1.md"]),
        GoldenQuery(id="q3", query="untitled", relevant=[beir_doc_path("d/2")]),
    ]


def test_materialise_beir_writes_each_document_at_its_path(tmp_path: Path) -> None:
    beir = load_beir(_write_tiny_beir(tmp_path / "tiny"))
    dest = tmp_path / "corpus"
    materialise_beir(beir, dest)
    written = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert written == sorted(beir_doc_path(d) for d in ("d1", "d/2", "d3"))
    assert (dest / "docs/d1.md").read_text() == "# Disk pressure\n\nFree space on /var.\n"
    assert (dest / beir_doc_path("d/2")).read_text() == "# d/2\n\nUntitled body.\n"


def test_beir_markdown_puts_the_title_as_a_single_h1() -> None:
    assert beir_markdown("A\ntwo-line  title", "Body.", "id") == "# A two-line title\n\nBody.\n"


def test_beir_markdown_falls_back_to_the_id_when_the_title_is_empty() -> None:
    assert beir_markdown("  ", "Body.", "123") == "# 123\n\nBody.\n"


@pytest.mark.parametrize("doc_id", ["../etc/passwd", "a/b", ".hidden", "", "x" * 300, "名前 1"])
def test_beir_doc_path_stays_a_visible_markdown_file_inside_docs(doc_id: str) -> None:
    path = beir_doc_path(doc_id)
    parts = path.split("/")
    assert len(parts) == 2 and parts[0] == "docs"
    assert parts[1].endswith(".md") and not parts[1].startswith(".")
    assert len(parts[1]) <= 120


def test_beir_doc_path_keeps_distinct_ids_apart() -> None:
    ids = ["a/b", "a_b", "a b", "a.b", "A_B", "a__b"]
    assert len({beir_doc_path(i) for i in ids}) == len(ids)


def test_load_beir_rejects_a_malformed_qrels_line_with_its_location(tmp_path: Path) -> None:
    folder = _write_tiny_beir(tmp_path / "tiny")
    qrels = folder / "qrels" / "test.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\nq1\td1\n", encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(f"{qrels}:2: expected 3 tab-separated columns")):
        load_beir(folder)


def test_load_beir_rejects_qrels_for_unknown_documents(tmp_path: Path) -> None:
    folder = _write_tiny_beir(tmp_path / "tiny")
    (folder / "qrels" / "test.tsv").write_text("q1\tnope\t1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="unknown doc ids"):
        load_beir(folder)


def test_load_beir_reports_a_corpus_line_without_an_id(tmp_path: Path) -> None:
    folder = _write_tiny_beir(tmp_path / "tiny")
    corpus = folder / "corpus.jsonl"
    corpus.write_text(json.dumps({"title": "t", "text": "x"}) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(f"{corpus}:1: missing field '_id'")):
        load_beir(folder)


@pytest.mark.skipif(not SCIFACT.is_dir(), reason=f"BEIR scifact not present at {SCIFACT}")
def test_load_beir_reads_scifact_with_300_judged_test_queries() -> None:
    beir = load_beir(SCIFACT)
    queries = beir_queries(beir)
    assert len(queries) == 300
    assert len(beir.documents) == 5183
    assert all(q.relevant and q.relevant[0].startswith("docs/") for q in queries)
