"""Concurrent MCP clients against one `devrag serve --transport http`: latency, errors, shed load, memory.

Run: `python -m devrag.eval.load_bench [--clients 1,8,32] [--seconds 120] [--index-dir DIR]`.

The server runs on 127.0.0.1 only, over an index of the prometheus-operator runbooks that this
script builds (about a minute) unless `--index-dir` names one. Each client is an MCP session over
the SDK's streamable HTTP client, searching in a closed loop with the golden sets' queries (each
client starts at a different one). A search the server sheds ("busy") is counted apart from
errors, and its client waits a second before the next, as an agent told to retry would. p50/p95
are of the searches answered; RSS is the server's and its child processes', from /proc (Linux),
at the start, halfway through and at the end of each level.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import httpx2
import numpy as np
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import TextContent
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from devrag.eval.bench_index import build_index
from devrag.eval.golden import load_golden
from devrag.eval.model_args import add_runtime_args, embedder_from, runtime_env

_SHARED = Path(os.environ.get("DEVRAG_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared"))
CORPUS = _SHARED / "data" / "runbooks-corpus" / "prometheus-operator"
# Every query set over that corpus: more distinct queries than the reranker's score cache holds
# (see `CrossEncoderReranker`), so clients cycling through them pay for every search in full.
GOLDEN = [
    _SHARED / "data" / "golden" / "alerts-to-runbooks.jsonl",
    _SHARED / "data" / "golden" / "alerts-to-runbooks-historical.jsonl",
    Path(__file__).resolve().parent / "questions" / "prometheus-operator-oncall.jsonl",
]
HOST = "127.0.0.1"  # loopback only: the bench opens no port beyond this machine
BUSY = "server is busy"
RETRY_AFTER_BUSY_S = 1.0


class Level(BaseModel):
    """One concurrency level's measurements."""

    clients: int
    seconds: float
    requests: int
    answered: int
    p50_s: float
    p95_s: float
    errors: int
    shed: int
    rss_start_mb: float
    rss_mid_mb: float  # halfway through: memory that only warms up is flat from here to the end
    rss_end_mb: float
    error_examples: list[str]


class Outcome(BaseModel):
    seconds: float
    kind: str  # "ok", "busy" or "error"
    detail: str = ""


def rss_mb(pid: int) -> float:
    """Resident memory of `pid` and its descendants (the index's owner process), in MiB."""
    total = 0
    for proc in _tree(pid):
        try:
            status = Path(f"/proc/{proc}/status").read_text()
        except OSError:
            continue
        total += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return total / 1024


def _tree(pid: int) -> Iterator[int]:
    yield pid
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return
    for child in children:
        yield from _tree(int(child))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(
    index_dir: Path, log: Path, settings: dict[str, str]
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`devrag serve --transport http` on loopback over `index_dir` with these settings' variables;
    yields its /mcp URL and process."""
    port = _free_port()
    env = {**os.environ, **settings, "DEVRAG_INDEX_DIR": str(index_dir)}
    command = [sys.executable, "-m", "devrag.server.cli", "serve", "--transport", "http"]
    with log.open("wb") as err:
        process = subprocess.Popen(
            [*command, "--host", HOST, "--port", str(port)], env=env, stdin=subprocess.DEVNULL, stderr=err
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start: {log.read_text()}")
            try:
                socket.create_connection((HOST, port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        yield f"http://{HOST}:{port}/mcp", process
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def search_once(client: Client, query: str) -> Outcome:
    started = time.perf_counter()
    try:
        result = await client.call_tool("search", {"query": query, "k": 5})
    except Exception as exc:  # a benchmark counts failures; it does not stop at the first
        return Outcome(seconds=time.perf_counter() - started, kind="error", detail=repr(exc))
    seconds = time.perf_counter() - started
    if not result.is_error:
        return Outcome(seconds=seconds, kind="ok")
    text = " ".join(b.text for b in result.content if isinstance(b, TextContent))
    return Outcome(seconds=seconds, kind="busy" if BUSY in text else "error", detail=text[:200])


async def client_loop(url: str, queries: list[str], first: int, until: float, out: list[Outcome]) -> None:
    """One agent session: search, one query after another, until the level's time is up (once at least)."""
    async with httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=180)) as http:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            turn = first
            while True:
                outcome = await search_once(client, queries[turn % len(queries)])
                out.append(outcome)
                turn += 1
                if time.monotonic() >= until:
                    return
                if outcome.kind == "busy":
                    await anyio.sleep(RETRY_AFTER_BUSY_S)


async def run_level(url: str, pid: int, queries: list[str], clients: int, seconds: float) -> Level:
    outcomes: list[Outcome] = []
    rss_start = rss_mb(pid)
    started = time.monotonic()
    rss_mid: list[float] = []
    async with anyio.create_task_group() as tg:
        for n in range(clients):
            first = n * len(queries) // clients
            tg.start_soon(client_loop, url, queries, first, started + seconds, outcomes)
        await anyio.sleep(seconds / 2)
        rss_mid.append(rss_mb(pid))
    answered = [o.seconds for o in outcomes if o.kind == "ok"]
    p50, p95 = np.percentile(answered, [50, 95]) if answered else (float("nan"), float("nan"))
    errors = [o.detail for o in outcomes if o.kind == "error"]
    return Level(
        clients=clients,
        seconds=time.monotonic() - started,
        requests=len(outcomes),
        answered=len(answered),
        p50_s=float(p50),
        p95_s=float(p95),
        errors=len(errors),
        shed=sum(o.kind == "busy" for o in outcomes),
        rss_start_mb=rss_start,
        rss_mid_mb=rss_mid[0],
        rss_end_mb=rss_mb(pid),
        error_examples=list(dict.fromkeys(errors))[:3],
    )


async def run(
    index_dir: Path,
    levels: list[int],
    seconds: float,
    queries: list[str],
    log: Path,
    settings: dict[str, str],
) -> list[Level]:
    with serving(index_dir, log, settings) as (url, process):
        warm = await run_level(url, process.pid, queries, 1, 0)  # loads the models, opens the index
        if warm.errors:
            raise RuntimeError(f"the first search failed: {warm.error_examples}; see {log}")
        return [await run_level(url, process.pid, queries, n, seconds) for n in levels]


def table(levels: list[Level], title: str) -> Table:
    out = Table(title=title)
    for column in (
        "clients",
        "requests",
        "p50 s",
        "p95 s",
        "errors",
        "shed (busy)",
        "RSS start MiB",
        "RSS mid MiB",
        "RSS end MiB",
    ):
        out.add_column(column, justify="right")
    for level in levels:
        out.add_row(
            str(level.clients),
            str(level.requests),
            f"{level.p50_s:.2f}",
            f"{level.p95_s:.2f}",
            str(level.errors),
            str(level.shed),
            f"{level.rss_start_mb:,.0f}",
            f"{level.rss_mid_mb:,.0f}",
            f"{level.rss_end_mb:,.0f}",
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1,8,32", help="Comma-separated concurrency levels.")
    parser.add_argument("--seconds", type=float, default=120.0, help="Seconds per level.")
    parser.add_argument("--index-dir", type=Path, help="An existing index (default: build one of --corpus).")
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="Folder of documents to index.")
    parser.add_argument(
        "--golden", type=Path, action="append", help="Golden JSONL whose queries to send (repeatable)."
    )
    parser.add_argument("--json", action="store_true", help="Print the levels as JSON lines.")
    add_runtime_args(parser)
    args = parser.parse_args(argv)
    levels = [int(n) for n in args.clients.split(",") if n.strip()]
    queries = list(dict.fromkeys(q.query for golden in args.golden or GOLDEN for q in load_golden(golden)))
    with tempfile.TemporaryDirectory(prefix="devrag-load-") as tmp:
        workdir = Path(tmp)
        index_dir = args.index_dir
        if index_dir is None:
            index, built = build_index(args.corpus, workdir, embedder_from(args), copies=1)
            index.store.close()  # the embedded index admits one process: the server's
            index_dir = workdir / "index-x1"
            Console(stderr=True).print(f"indexed {built.files} files in {built.ingest_seconds:.0f} s")
        log = workdir / "server.log"
        results = anyio.run(run, index_dir, levels, args.seconds, queries, log, runtime_env(args))
        if any(level.errors for level in results):  # the log goes with the temporary folder
            sys.stderr.write(f"server log:\n{log.read_text(errors='replace')[-6000:]}")
    if args.json:
        for level in results:
            print(level.model_dump_json())
    else:
        console = Console(width=None if sys.stdout.isatty() else 120)  # rich assumes 80 columns when piped
        console.print(table(results, f"{len(queries)} golden queries, {args.seconds:.0f} s per level"))
        for level in results:
            for example in level.error_examples:
                Console(stderr=True).print(f"error at {level.clients} clients: {example}", markup=False)
    return 0 if all(level.errors == 0 for level in results) else 1


if __name__ == "__main__":
    sys.exit(main())
