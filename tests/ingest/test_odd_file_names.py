"""File names that git treats specially (pathspec magic, globs, newlines) get their true last commit."""

from __future__ import annotations

from devrag.ingest.git_source import GitSource
from devrag.ingest.pipeline import ingest
from devrag.retrieval.store import PointFilter

ODD = ["a\nb.md", "\nlead.md", ":colon.md", "-dash.md", "*star.md", "with space.md", "xstar.md"]


def doc(name: str, version: int) -> str:
    return f"# Runbook {version}\n\nSteps for {name!r}, revision {version}.\n"


def last_commits(index, repo: str) -> dict[str, set[str]]:
    """path -> the last_commit values its chunks hold (one each, when they agree)."""
    out: dict[str, set[str]] = {}
    for p in index.store.scroll(PointFilter(repo=repo), fields=["path", "last_commit"]):
        out.setdefault(p.payload["path"], set()).add(p.payload["last_commit"])
    return out


def test_each_chunk_of_an_oddly_named_file_records_the_commit_that_last_touched_it(index, git_repo, embedder):
    repo = git_repo()
    first = repo.commit({name: doc(name, 1) for name in ODD}, "add all")
    second = repo.commit({"a\nb.md": doc("a\nb.md", 2), ":colon.md": doc(":colon.md", 2)}, "two")
    third = repo.commit({"*star.md": doc("*star.md", 3), "\nlead.md": doc("\nlead.md", 3)}, "three")
    # A later edit of a file the glob `*star.md` would match must not count for `*star.md` itself.
    fourth = repo.commit({"xstar.md": doc("xstar.md", 4), "-dash.md": doc("-dash.md", 4)}, "four")
    ingest(index, embedder, repo.path, "ops")
    assert last_commits(index, "ops") == {
        "a\nb.md": {second},
        "\nlead.md": {third},
        ":colon.md": {second},
        "-dash.md": {fourth},
        "*star.md": {third},
        "with space.md": {first},
        "xstar.md": {fourth},
    }

    fifth = repo.commit({":colon.md": doc(":colon.md", 5), "a\nb.md": doc("a\nb.md", 5)}, "five")
    summary = ingest(index, embedder, repo.path, "ops")
    assert summary.mode == "diff"
    held = last_commits(index, "ops")
    assert held[":colon.md"] == held["a\nb.md"] == {fifth}, "an incremental run reads them the same way"
    assert held["*star.md"] == {third} and held["with space.md"] == {first}


def test_last_commits_reads_past_merges_and_empty_commits_with_or_without_pathspecs(git_repo):
    repo = git_repo()
    base = repo.commit({"\nlead.md": "x\n", "a.md": "a\n"})
    repo.git("checkout", "-q", "-b", "side")
    side = repo.commit({"\nside.md": "s\n"})
    repo.git("checkout", "-q", "main")
    repo.commit({}, "empty")
    repo.git("merge", "-q", "--no-edit", "--no-ff", "side")
    many = {f"bulk/{i}.md": f"{i}\n" for i in range(201)}  # past 200 names, the walk takes no pathspec
    bulk = repo.commit(many)
    source = GitSource(repo.path)
    wanted = {"\nlead.md": base, "a.md": base, "\nside.md": side}
    assert source.last_commits(repo.head(), list(wanted)) == wanted
    everything = source.last_commits(repo.head(), [*wanted, *many])
    assert everything == {**wanted, **dict.fromkeys(many, bulk)}


def test_entries_of_named_paths_match_the_whole_tree_listing_for_odd_names_and_long_lists(git_repo):
    repo = git_repo()
    many = {f"bulk/{i}.md": f"{i}\n" for i in range(600)}  # past one command line's 500 names
    repo.commit({**{name: doc(name, 1) for name in ODD}, **many})
    source = GitSource(repo.path)
    whole = source.tree(repo.head())
    wanted = [*ODD, *many, "missing.md", "bulk"]  # a folder's name is no file of its own
    assert source.entries(repo.head(), wanted) == {p: whole[p] for p in [*ODD, *many]}
    assert sorted(source.paths(repo.head())) == sorted(whole)


def test_a_walk_from_the_last_indexed_commit_finds_what_the_whole_history_walk_finds(git_repo):
    repo = git_repo()
    base = repo.commit({"old.md": "o\n", "a.md": "a\n", ":colon.md": "c\n"})
    indexed = repo.commit({"b.md": "b\n"})
    repo.git("checkout", "-q", "-b", "dropped")  # a branch that a force push leaves behind
    dropped = repo.commit({"a.md": "a on a dropped branch\n"})
    repo.git("checkout", "-q", "main")
    edited = repo.commit({"b.md": "b2\n", ":colon.md": "c2\n"})
    source = GitSource(repo.path)
    everything = ["old.md", "a.md", "b.md", ":colon.md"]
    whole = source.last_commits(repo.head(), everything)
    assert whole == {"old.md": base, "a.md": base, "b.md": edited, ":colon.md": edited}
    assert source.last_commits(repo.head(), everything, since=indexed) == whole
    # From a commit that is no ancestor, a path it changed is found further back in the history.
    assert source.last_commits(repo.head(), everything, since=dropped) == whole
    assert source.last_commits(repo.head(), [], since=indexed) == {}
