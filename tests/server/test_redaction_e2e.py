"""Secrets in a committed runbook never reach the agent: not through search, nor get_document."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from typing import Any

import pytest
from mcp import Client

from devrag.ingest.pipeline import IngestSummary, ingest
from devrag.retrieval.edge_store import EdgeStore
from devrag.retrieval.index import Index
from devrag.server.mcp_app import create_server
from devrag.server.settings import Settings
from devrag.server.state import Models
from tests.server.mcp_support import call
from tests.support import GitRepo, HashEmbedder

AWS_KEY_ID = "AKIAQ4TZ7MWRB2KXN5PD"
DB_PASSWORD = "Tr0ub4dor-n9Qx7"
KEY_LINE = "MIIEowIBAAKCAQEA0Zq8Rt3Lm9Vx2Kp7Wc4Nb6Hs1Yd5Gf0Ja2Ue9Io3Pk7"
SECRETS = (AWS_KEY_ID, DB_PASSWORD, KEY_LINE)
RUNBOOK = f"""# Ledger database failover

## Promote the replica

Connect as the app and check replication lag:

```sh
psql "postgres://ledger:{DB_PASSWORD}@ledger-db-replica.internal:5432/ledger"
```

## Restore the backup credentials

```sh
export AWS_ACCESS_KEY_ID={AWS_KEY_ID}
aws s3 cp s3://ledger-backups/latest.dump .
```

The restore host needs its deploy key:

```
-----BEGIN OPENSSH PRIVATE KEY-----
{KEY_LINE}
-----END OPENSSH PRIVATE KEY-----
```
"""
FILES = {
    "runbooks/ledger/failover.md": RUNBOOK,
    "runbooks/ledger/lag.md": "# Ledger lag\n\n## Check\n\nRun `kubectl get pods -n ledger` and read the "
    "replication lag panel.\n",
    "guides/backups.md": "# Backups\n\n## Where\n\nNightly dumps of ledger go to the backups bucket.\n",
}
PATH = "runbooks/ledger/failover.md"


def redacted_source() -> list[str]:
    """The runbook as an agent may see it: every line in place, the secrets replaced."""
    return (
        RUNBOOK.replace(DB_PASSWORD, "[REDACTED:basic-auth-credentials]")
        .replace(AWS_KEY_ID, "[REDACTED:aws-access-key]")
        .replace(KEY_LINE, "[REDACTED:private-key]")
        .rstrip("\n")
        .split("\n")
    )


def assert_no_secret(value: Any) -> None:
    text = json.dumps(value)
    assert not [s for s in SECRETS if s in text]


@pytest.fixture
def ingested(tmp_path) -> tuple[GitRepo, IngestSummary]:
    embedder = HashEmbedder()
    repo = GitRepo(tmp_path / "ledger")
    repo.commit(FILES)
    store = EdgeStore(tmp_path / "index")
    try:
        summary = ingest(Index(store, embedder.name, embedder.dim), embedder, repo.path, "ledger")
    finally:
        store.close()
    return repo, summary


def test_the_ingest_summary_counts_redactions_per_file(ingested):
    _repo, summary = ingested
    (redacted,) = summary.redacted
    assert redacted.path == PATH
    assert redacted.kinds == {"aws-access-key": 1, "basic-auth-credentials": 1, "private-key": 1}
    assert redacted.count == 3


@pytest.mark.anyio
async def test_search_and_get_document_hold_markers_on_the_lines_the_secrets_were(ingested, tmp_path):
    repo, _summary = ingested
    server = create_server(Settings(index_dir=tmp_path / "index"), Models.loaded(HashEmbedder(), None))
    expected = redacted_source()
    async with Client(server) as client:
        answer = await call(client, "search", query="ledger replica psql aws s3 restore deploy key", k=3)
        assert_no_secret(answer)
        (result,) = [r for r in answer["results"] if r["path"] == PATH]
        for passage in result["passages"]:
            lines = expected[passage["start_line"] - 1 : passage["end_line"]]
            assert passage["text"] == "\n".join(lines), "citations point at the same lines"
        assert "[REDACTED:" in answer["_text"]

        from_git = await call(client, "get_document", repo="ledger", path=PATH)
        assert from_git["source"] == "repository"
        assert_no_secret(from_git)
        assert from_git["text"].split("\n") == expected

        shutil.rmtree(repo.path)  # the repository is gone: the document is rebuilt from its chunks
        from_index = await call(client, "get_document", repo="ledger", path=PATH)
        assert from_index["source"] == "chunks"
        assert_no_secret(from_index)
        assert [line for line in from_index["text"].split("\n") if line] == [
            line for line in expected if line
        ]


def test_the_cli_prints_redactions_and_searches_hold_no_secret(cli, git_repo):
    repo = git_repo("ledger")
    repo.commit(FILES)
    summary = json.loads(cli("ingest", str(repo.path), "--json"))
    assert summary["redacted"] == [
        {
            "path": PATH,
            "count": 3,
            "kinds": {"aws-access-key": 1, "basic-auth-credentials": 1, "private-key": 1},
        }
    ]
    repo.commit({"runbooks/ledger/failover.md": RUNBOOK + "\nAsk #ledger-oncall first.\n"})
    human = cli("ingest", str(repo.path))
    assert "redacted: 3 secrets in 1 files" in human
    assert f"redacted {PATH}: 3 (aws-access-key 1, basic-auth-credentials 1, private-key 1)" in human
    answer = cli("search", "ledger replica aws s3 restore", "--no-rerank", "--json")
    assert PATH in answer and "[REDACTED:aws-access-key]" in answer
    assert_no_secret(answer)
    today = dt.datetime.now(dt.UTC).date().isoformat()
    for result in json.loads(answer)["results"]:
        assert result["review"]["last_commit_date"] == today and not result["review"]["stale"]
    assert f"changed {today}" in cli("search", "ledger replica aws s3 restore", "--no-rerank")
