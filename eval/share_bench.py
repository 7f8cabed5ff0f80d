"""Many agent sessions on one index while a writer commits and ingests: errors, staleness, latency.

Run: `python -m devrag.eval.share_bench [--sessions 8] [--seconds 120] [--interval 3] [--corpus DIR]`.

Each session is a stdio `devrag serve`, started the way an MCP client starts one, searching in a
loop: a question about the corpus, then a probe for the newest canary page (filtered to its path,
so finding it depends on freshness alone, not on ranking). Meanwhile a writer
(this process, so it loads the embedding model once) commits every few seconds (a new canary
page, the previous one deleted, one runbook edited) and runs the same verified incremental ingest
as `devrag ingest`. Afterwards every answer is checked against Git (`share_report`).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

from devrag.eval.harness import git_snapshot
from devrag.eval.model_args import add_runtime_args, embedder_from, runtime_env
from devrag.eval.share_report import Ingested, Probe, ShareReport, analyse, print_report
from devrag.ingest.git_source import GitSource
from devrag.ingest.pipeline import ingest
from devrag.retrieval.factory import open_store
from devrag.retrieval.index import Index
from devrag.retrieval.models import Embedder

REPO_NAME = "shared"
_SAMPLE = Path(__file__).resolve().parents[1] / "corpus-sample"


def canary_page(token: str, round_no: int) -> str:
    return f"# Canary {token}\n\n## Check\n\nThe {token} probe page of round {round_no}.\n"


def questions_of(repo: Path) -> list[str]:
    """One question per section: its page's H1 and the section's H2, as an engineer might type them.

    Distinct questions, so no session answers from its caches what it would otherwise compute.
    """
    out = []
    for page in sorted(repo.rglob("*.md")):
        title = page.stem.replace("-", " ")
        for line in page.read_text(encoding="utf-8").splitlines():
            if line.startswith("# "):
                title = line[2:].strip()
            elif line.startswith("## "):
                out.append(f"{title}: {line[3:].strip()}")
    return out


class Writer:
    """Commits and ingests on a thread; records when each ingest finished and what it removed."""

    def __init__(self, repo: Path, index: Index, embedder: Embedder, interval: float) -> None:
        self.repo, self.index, self.embedder, self.interval = repo, index, embedder, interval
        self.ingests: list[Ingested] = []
        self.canary: tuple[str, str] | None = None  # (token, path) of the newest ingested canary
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        round_no = 0
        while not self._stop.wait(self.interval):
            round_no += 1
            token = f"canary{secrets.token_hex(4)}"
            path = f"runbooks/canary-{round_no}.md"
            removed = [self.canary[1]] if self.canary else []
            began = time.monotonic()
            self._commit({path: canary_page(token, round_no)}, removed, round_no)
            commit = ingest(self.index, self.embedder, self.repo, REPO_NAME).commit
            self.ingests.append(Ingested(began, time.monotonic(), commit, token, path, tuple(removed)))
            self.canary = (token, path)

    def _commit(self, added: dict[str, str], removed: list[str], round_no: int) -> None:
        for rel, text in added.items():
            (self.repo / rel).parent.mkdir(parents=True, exist_ok=True)
            (self.repo / rel).write_text(text, encoding="utf-8")
        for rel in removed:
            (self.repo / rel).unlink()
        edited = max(self.repo.rglob("*.md"), key=lambda p: p.stat().st_size)
        with edited.open("a", encoding="utf-8") as f:
            f.write(f"\nRevision note {round_no}.\n")
        git = GitSource(self.repo).repo.git
        git.add("-A")
        git.commit("-qm", f"round {round_no}", author="bench <bench@localhost>")


async def session(
    number: int,
    params: StdioServerParameters,
    questions: list[str],
    writer: Writer,
    done: anyio.Event,
    probes: list[Probe],
    errlog: Any,
) -> None:
    """One agent session: alternate a corpus question and a probe for the newest canary."""
    async with Client(stdio_client(params, errlog=errlog), mode="legacy") as client:
        await client.call_tool("search", {"query": questions[0]})  # waits for the models
        turn = number * len(questions) // 8  # sessions start at different questions
        while not done.is_set():
            canary = writer.canary
            args: dict[str, Any] = {
                "query": questions[turn // 2 % len(questions)],
                "k": 3,
                "max_tokens": 8000,
            }
            if turn % 2 and canary is not None:
                # Filtered to the canary's own path: found means the session's index has it,
                # whatever the ranking thinks of a page named by a random token.
                args |= {"query": canary[0], "path": canary[1]}
            turn += 1
            query = args["query"]
            started = time.monotonic()
            try:
                result = await client.call_tool("search", args)
                error = "tool error" if result.is_error else None
                hits = list((result.structured_content or {}).get("results", []))
            except Exception as exc:  # a benchmark counts failures, it does not stop at the first
                error, hits = repr(exc), []
            probes.append(Probe(number, query, started, time.monotonic(), hits, error))


async def run(
    sessions: int, seconds: float, interval: float, corpus: Path, workdir: Path, models: argparse.Namespace
) -> ShareReport:
    repo = git_snapshot(corpus, workdir / "repo")
    index_dir = workdir / "index"
    embedder = embedder_from(models)
    store = open_store(index_dir)
    index = Index(store, embedder.name, embedder.dim)
    ingest(index, embedder, repo, REPO_NAME)
    questions = questions_of(repo)
    env = {**os.environ, **runtime_env(models), "DEVRAG_INDEX_DIR": str(index_dir)}
    params = StdioServerParameters(command=sys.executable, args=["-m", "devrag.server.cli", "serve"], env=env)
    probes: list[Probe] = []
    writer = Writer(repo, index, embedder, interval)
    done = anyio.Event()
    with (workdir / "sessions.log").open("w") as errlog:
        async with anyio.create_task_group() as tg:
            for number in range(sessions):
                tg.start_soon(session, number, params, questions, writer, done, probes, errlog)
            await _measure(probes, sessions, writer, seconds, done)
    store.close()
    return analyse(repo, probes, writer.ingests, sessions, seconds)


async def _measure(
    probes: list[Probe], sessions: int, writer: Writer, seconds: float, done: anyio.Event
) -> None:
    """Start writing once every session has answered, and stop everything `seconds` later."""
    while len({p.session for p in probes}) < sessions:
        await anyio.sleep(0.2)
    probes.clear()
    writer.start()
    await anyio.sleep(seconds)
    await anyio.to_thread.run_sync(writer.stop)
    done.set()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--interval", type=float, default=3.0, help="Seconds between a writer's rounds.")
    parser.add_argument(
        "--corpus", type=Path, default=_SAMPLE, help="A folder of documents (default: corpus-sample)."
    )
    parser.add_argument("--json", action="store_true", help="Print the report as one JSON object.")
    add_runtime_args(parser)
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="devrag-share-"))
    try:
        report = anyio.run(run, args.sessions, args.seconds, args.interval, args.corpus, workdir, args)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print_report(report, args.json)
    return 0 if report.errors == 0 and report.stale == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
