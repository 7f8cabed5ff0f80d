"""`replay`: logged searches through two configurations, compared per query and on helpful documents."""

from __future__ import annotations

import pytest

from devrag.eval.shadow import Arm, ShadowConfig, load_shadow_config, replay
from devrag.retrieval.query_log import LOG_NAME, QueryLog, read_log
from devrag.retrieval.query_records import new_query_id, search_record
from devrag.retrieval.search import Filters, HybridIndex
from devrag.retrieval.search_config import SearchConfig

# (query, the document its caller marked helpful, or None)
LOGGED = [
    ("slow apiserver", "ops:runbooks/etcd.md"),
    ("bad deploy rollback", "ops:postmortems/2026-01-01-outage.md"),
    ("payments gateway crash", "ops:runbooks/gateway.md"),
    ("pods restart", None),
]


def test_replay_compares_each_logged_search_through_both_arms(tmp_path, two_repo_searcher):
    log = QueryLog(tmp_path / LOG_NAME, 1_000_000, 2)
    for query, helpful in LOGGED:
        filters = Filters(repo="ops")
        record = search_record(
            new_query_id(), query, 3, "hybrid", filters, two_repo_searcher.search(query, 3, "hybrid", filters)
        )
        log.append(record)
        if helpful is not None:
            log.record_feedback(record.query_id, True, helpful)
    config = ShadowConfig(mode="dense")
    shadow = HybridIndex(two_repo_searcher.index, two_repo_searcher.embedder, None, config.search_config())
    report = replay(
        read_log(tmp_path / LOG_NAME), Arm(two_repo_searcher, "bm25"), Arm(shadow, "dense"), config
    )
    shadow.close()

    assert (report.live_mode, report.shadow_mode, report.shadow_config) == (
        "bm25",
        "dense",
        {"mode": "dense"},
    )
    assert [c.query for c in report.comparisons] == [q for q, _ in LOGGED]
    for c in report.comparisons:
        for arm, mode in ((c.live, "bm25"), (c.shadow, "dense")):
            direct = two_repo_searcher.search(c.query, 3, mode, Filters(repo="ops")).results
            assert arm == [f"{r.repo}:{r.path}" for r in direct]
        assert c.top1_changed == (c.live[:1] != c.shadow[:1])
        assert c.overlap == round(len(set(c.live) & set(c.shadow)) / max(len(c.live), len(c.shadow)), 4)
        if c.helpful:
            ranks = [
                arm.index(c.helpful[0]) + 1 if c.helpful[0] in arm else None for arm in (c.live, c.shadow)
            ]
            assert [c.live_rank, c.shadow_rank] == ranks
    verdicts = [c.higher for c in report.comparisons]
    assert verdicts == ["live", "shadow", "same", None], "this corpus exercises every verdict"
    assert (report.judged, report.live_higher, report.shadow_higher, report.same) == (3, 1, 1, 1)
    assert report.top1_changed == sum(c.top1_changed for c in report.comparisons) >= 2
    assert 0 < report.mean_overlap < 1


def test_replay_of_the_latest_searches_only(tmp_path, two_repo_searcher):
    log = QueryLog(tmp_path / LOG_NAME, 1_000_000, 2)
    for query, _ in LOGGED:
        log.append(
            search_record(
                new_query_id(), query, 2, "bm25", Filters(), two_repo_searcher.search(query, 2, "bm25")
            )
        )
    arm = Arm(two_repo_searcher, "bm25")
    report = replay(read_log(tmp_path / LOG_NAME), arm, arm, ShadowConfig(), max_queries=2)
    assert [c.query for c in report.comparisons] == ["payments gateway crash", "pods restart"]
    assert report.top1_changed == 0 and report.mean_overlap == 1.0 and report.judged == 0


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("shadow.toml", 'mode = "hybrid"\nrerank_candidates = 40\nrerank_model = "/models/other"\n'),
        ("shadow.json", '{"mode": "hybrid", "rerank_candidates": 40, "rerank_model": "/models/other"}'),
        ("shadow.yaml", "mode: hybrid\nrerank_candidates: 40\nrerank_model: /models/other\n"),
    ],
)
def test_a_shadow_config_is_read_from_toml_json_or_yaml(tmp_path, name, text):
    (tmp_path / name).write_text(text)
    config = load_shadow_config(tmp_path / name)
    assert (config.mode, config.rerank_model) == ("hybrid", "/models/other")
    assert config.search_config() == SearchConfig(rerank_candidates=40)


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("a.toml", "rerank_candidatez = 5\n", "unknown key 'rerank_candidatez'; known keys: overfetch,"),
        (
            "a.toml",
            'mode = "fast"\n',
            "key 'mode': Input should be 'dense', 'bm25', 'hybrid' or 'hybrid+rerank'",
        ),
        (
            "a.toml",
            "rerank_candidates = 0\n",
            "key 'rerank_candidates': Input should be greater than or equal to 1",
        ),
        ("a.toml", "mode = \n", "not valid TOML"),
        ("a.json", "{", "not valid JSON"),
        ("a.ini", "mode = dense", "a shadow configuration is a .toml, .json or .yaml file"),
    ],
)
def test_a_bad_shadow_config_is_refused_naming_the_file_and_key(tmp_path, name, text, problem):
    (tmp_path / name).write_text(text)
    with pytest.raises(ValueError, match=f"^{tmp_path / name}: ") as raised:
        load_shadow_config(tmp_path / name)
    assert problem in str(raised.value)
    with pytest.raises(ValueError, match="cannot read the shadow configuration"):
        load_shadow_config(tmp_path / "missing.toml")
