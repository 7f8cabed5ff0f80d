"""Ingestion against an independent oracle: chunk the target tree from scratch and compare."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devrag.ingest.pipeline import ingest
from tests.support import RUNBOOK, assert_matches_oracle, expected, held


def test_first_ingest_holds_exactly_the_chunks_of_head(index, git_repo, embedder):
    repo = git_repo()
    repo.commit({"runbooks/disk.md": RUNBOOK.format(host="db1"), "scripts/run.py": "def main():\n    pass\n"})
    summary = ingest(index, embedder, repo.path, "ops")
    assert summary.files["added"] == 2 and summary.verified
    assert_matches_oracle(index, repo, "ops", embedder)


def test_edit_add_rename_delete_converge_to_the_target_tree(index, git_repo, embedder):
    repo = git_repo()
    repo.commit({"a.md": RUNBOOK.format(host="a"), "b.md": RUNBOOK.format(host="b"), "c.md": "# C\n\ntext\n"})
    ingest(index, embedder, repo.path, "ops")
    repo.commit({"a.md": RUNBOOK.format(host="a").replace("500M", "200M"), "d.md": "# D\n\n## One\n\nx\n"})
    repo.move("b.md", "moved/b.md")
    repo.commit({"c.md": None})
    summary = ingest(index, embedder, repo.path, "ops")
    assert summary.mode == "diff"
    assert summary.files == {
        "added": 1,
        "modified": 1,
        "deleted": 1,
        "renamed": 1,
        "skipped": 0,
        "unchanged": 0,
    }
    assert_matches_oracle(index, repo, "ops", embedder)


def test_editing_one_section_embeds_only_that_section(index, git_repo, embedder):
    repo = git_repo()
    repo.commit({"a.md": RUNBOOK.format(host="a"), "b.md": RUNBOOK.format(host="b")})
    ingest(index, embedder, repo.path, "ops")
    embedder.embedded = 0
    repo.commit({"a.md": RUNBOOK.format(host="a").replace("/var/log", "/var/lib/docker")})
    summary = ingest(index, embedder, repo.path, "ops")
    assert embedder.embedded == 1 and summary.chunks["embedded"] == 1
    assert_matches_oracle(index, repo, "ops", embedder)


def test_a_rename_moves_chunks_without_embedding(index, git_repo, embedder):
    repo = git_repo()
    repo.commit({"a.md": RUNBOOK.format(host="a")})
    ingest(index, embedder, repo.path, "ops")
    embedder.embedded = 0
    repo.move("a.md", "runbooks/a.md")
    repo.commit({})
    summary = ingest(index, embedder, repo.path, "ops")
    assert summary.files["renamed"] == 1 and embedder.embedded == 0
    assert summary.chunks["written"] == 3 and summary.chunks["deleted"] == 3
    assert_matches_oracle(index, repo, "ops", embedder)


def test_reingesting_the_same_commit_does_nothing(index, git_repo, embedder):
    repo = git_repo()
    repo.commit({"a.md": RUNBOOK.format(host="a")})
    ingest(index, embedder, repo.path, "ops")
    embedder.embedded = 0
    summary = ingest(index, embedder, repo.path, "ops")
    assert summary.mode == "noop" and embedder.embedded == 0 and summary.chunks["written"] == 0


def test_a_force_push_that_rewrites_history_is_compared_against_the_index(index, git_repo, embedder):
    repo = git_repo()
    base = repo.commit({"a.md": RUNBOOK.format(host="a")})
    repo.commit({"b.md": RUNBOOK.format(host="b")})
    ingest(index, embedder, repo.path, "ops")
    repo.git("reset", "-q", "--hard", base)
    repo.commit({"c.md": RUNBOOK.format(host="c")}, "rewritten")
    repo.git("reflog", "expire", "--expire=now", "--all")
    repo.git("gc", "-q", "--prune=now")
    summary = ingest(index, embedder, repo.path, "ops")
    assert summary.mode == "full"
    assert_matches_oracle(index, repo, "ops", embedder)


def test_several_repositories_live_in_one_index(index, git_repo, embedder):
    one, two = git_repo("one"), git_repo("two")
    one.commit({"a.md": RUNBOOK.format(host="a")})
    two.commit({"a.md": RUNBOOK.format(host="a")})
    ingest(index, embedder, one.path)
    ingest(index, embedder, two.path)
    two.commit({"a.md": None, "z.md": "# Z\n\nzz\n"})
    ingest(index, embedder, two.path)
    assert_matches_oracle(index, one, "one", embedder)
    assert_matches_oracle(index, two, "two", embedder)


def test_ingesting_an_older_rev_indexes_that_commit(index, git_repo, embedder):
    repo = git_repo()
    first = repo.commit({"a.md": RUNBOOK.format(host="a")})
    repo.commit({"a.md": RUNBOOK.format(host="new")})
    summary = ingest(index, embedder, repo.path, "ops", rev=first)
    assert summary.commit == first
    assert held(index, repo, "ops", first) == expected(repo.path, first, embedder)


FILES = st.sampled_from(["a.md", "docs/b.md", "ops/run.py", "deploy.yaml"])
SECTIONS = st.lists(st.sampled_from(["alpha", "bravo", "charlie", "delta", "echo"]), min_size=1, max_size=4)


def _content(path: str, words: list[str]) -> str:
    if path.endswith(".py"):
        return "".join(f"def {w}():\n    return '{w}'\n\n" for w in words)
    if path.endswith(".yaml"):
        return "".join(f"{w}:\n  value: {i}\n" for i, w in enumerate(words))
    return "# Doc\n\n" + "".join(f"## {w.title()}\n\n{w} " * 3 + "\n\n" for w in words)


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("write"), FILES, SECTIONS),
        st.tuples(st.just("write"), FILES, SECTIONS),
        st.tuples(st.just("delete"), FILES, st.just([])),
        st.tuples(st.just("rename"), FILES, FILES),
        st.tuples(st.just("rewind"), st.just(""), st.just([])),
    ).flatmap(lambda op: st.tuples(st.just(op), st.booleans())),
    min_size=1,
    max_size=12,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_any_sequence_of_commits_and_ingests_converges_to_the_oracle(
    tmp_path_factory, new_repo, new_edge_index, embedder, ops
):
    root = tmp_path_factory.mktemp("prop")
    repo, index = new_repo(root / "repo"), new_edge_index(root / "index")
    try:
        first = repo.commit({"seed.md": "# Seed\n\nseed text\n"})
        for (op, path, arg), then_ingest in ops:
            if op == "write":
                repo.commit({path: _content(path, arg)})
            elif op == "delete":
                repo.commit({path: None})
            elif op == "rename" and (repo.path / path).exists() and not (repo.path / arg).exists():
                repo.move(path, arg)
                repo.commit({})
            elif op == "rewind":
                repo.git("reset", "-q", "--hard", first)
            if then_ingest:
                ingest(index, embedder, repo.path, "ops")
        ingest(index, embedder, repo.path, "ops")
        assert_matches_oracle(index, repo, "ops", embedder)
    finally:
        index.store.close()
