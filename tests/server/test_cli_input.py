"""The CLI refuses what the MCP tools refuse, with the same sentence, on one line, exiting non-zero."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from devrag.server.cli import main
from tests.support import RUNBOOK


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.setenv("DEVRAG_INDEX_DIR", str(tmp_path / "index"))

    def invoke(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(main, list(args), catch_exceptions=False)
        return result.exit_code, result.output

    return invoke


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["search", ""], "The query is empty"),
        (
            ["search", "disk", "-k", "0"],
            "k=0 is out of range; k is how many documents to return, from 1 to 20",
        ),
        (["search", "disk", "--type", "playbook"], "doc_type='playbook' is not a document type"),
        (["search", "disk", "--path", "/runbooks/*"], "Invalid path glob '/runbooks/*'"),
        (["search", "disk"], "holds no repositories yet. Run `devrag ingest PATH/TO/REPO`"),
    ],
)
def test_bad_search_input_is_one_line_naming_the_argument_and_exits_1(run, args, message):
    code, out = run(*args)
    assert code == 1 and message in out
    assert len(out.strip().splitlines()) == 1 and "Traceback" not in out


def test_an_unknown_repository_is_refused_naming_the_indexed_ones(run, git_repo):
    repo = git_repo("ops")
    repo.commit({"runbooks/disk.md": RUNBOOK.format(host="db1")})
    assert run("ingest", str(repo.path))[0] == 0
    code, out = run("search", "disk full", "--repo", "infra", "--no-rerank")
    assert code == 1 and "Unknown repository 'infra'. Indexed repositories: ops." in out


def test_a_pasted_alert_longer_than_the_model_reads_is_answered_and_says_so(run, git_repo):
    repo = git_repo("ops")
    repo.commit({"runbooks/disk.md": RUNBOOK.format(host="db1")})
    assert run("ingest", str(repo.path))[0] == 0
    log = " ".join(f"level=info msg=served latency_ms={i}" for i in range(120))
    code, out = run("search", f"NodeFilesystemAlmostOutOfSpace db1 {log}", "--no-rerank")
    assert code == 0 and "runbooks/disk.md" in out
    assert "every stage read its first 64 word pieces" in out


def test_brackets_in_headings_and_paths_are_printed_as_text(run, git_repo):
    repo = git_repo("ops")
    page = "# Hosts [/etc/hosts]\n\n## Edit [bold]carefully[/bold]\n\nAdd the entry to /etc/hosts on db1.\n"
    repo.commit({"runbooks/[red]hosts.md": page, "logo [/x].md": b"\0\1\2"})
    code, out = run("ingest", str(repo.path))
    assert code == 0 and "skipped logo [/x].md" in out
    code, out = run("search", "etc hosts entry", "--no-rerank")
    assert code == 0 and "Hosts [/etc/hosts]" in out and "Edit [bold]carefully[/bold]" in out
    assert "runbooks/[red]hosts.md" in out
    repo.commit({"runbooks/[red]hosts.md": None})
    code, out = run("reconcile")
    assert code == 0 and "orphaned: runbooks/[red]hosts.md" in out


def test_rebuild_on_the_embedded_index_says_how_to_rebuild_it_instead(run):
    code, out = run("rebuild")
    assert code == 1 and "removing its directory and running `devrag ingest` again" in " ".join(out.split())
    assert "Loading" not in out, "no model is loaded for a rebuild that cannot run"
