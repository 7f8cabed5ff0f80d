"""The BM25 drift benchmark end to end on a small index: it measures a copy and leaves the index be."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from devrag.eval.bm25_drift import main, run_drift
from devrag.retrieval.edge_store import EdgeStore
from tests.support import lexical_point

WORDS = [f"term{n}" for n in range(60)]


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_drift_report_rewrites_shares_of_a_copy_and_vacuums_it(tmp_path):
    rng = np.random.default_rng(3)
    index_dir = tmp_path / "index"
    store = EdgeStore(index_dir)
    store.ensure_collection(16)
    vectors = rng.standard_normal((200, 16))
    store.upsert([lexical_point(i, vectors[i].tolist(), rng.choice(WORDS, 12)) for i in range(200)])
    store.close()
    queries = [" ".join(rng.choice(WORDS, 2)) for _ in range(15)]
    before = files(index_dir)

    report = run_drift(index_dir, [0.1, 0.5], queries)

    assert [(r.stage, r.rewritten) for r in report.rows] == [
        ("as built", 0),
        ("10% rewritten", 20),
        ("50% rewritten", 100),
        ("after a vacuum", 100),
    ]
    # One appendable segment: its text index drops a replaced chunk at once, so nothing drifts.
    assert all(r.top10_differs == 0 and r.ratio_min > 0.9999 and r.ratio_max < 1.0001 for r in report.rows)
    assert report.chunks == 200 and report.rows[-1].seconds is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"], "the copy is gone"
    assert files(index_dir) == before, "the index itself was written"


def test_drift_command_refuses_a_folder_without_an_embedded_index(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path)])
    assert exit_info.value.code == 2
    assert f"{tmp_path} holds no embedded index" in capsys.readouterr().err
