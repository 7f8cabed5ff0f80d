"""Push webhooks: GitHub and GitLab tell the HTTP server about a new commit, and it re-indexes.

`POST /hooks/github` and `POST /hooks/gitlab` answer at once (a forge gives up after ten seconds)
and leave the work to one background thread: `git fetch` in the indexed clone, then the same
verified `reindex` as `--watch`, at the pushed commit. One thread means one ingest at a time, so
two pushes to one repository never ingest it at once. The forge authenticates by the shared
secret (not the MCP bearer token), checked before the body is parsed.
"""

from __future__ import annotations

import logging
import os
import queue
import subprocess
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from devrag.ingest.git_source import GitSource, SourceError, normalize_remote
from devrag.retrieval.errors import DevragError
from devrag.retrieval.index import RepoState
from devrag.server.push_events import GITHUB, GITLAB, Forge, Headers, Push
from devrag.server.state import App
from devrag.server.watch import reindex

log = logging.getLogger(__name__)

HOOKS_PATH = "/hooks"
# GitHub caps payloads at 25 MB; a body beyond that is not a forge's.
_MAX_BODY = 25 * 1024 * 1024
_SEEN_DELIVERIES = 4096
_FETCH_TIMEOUT_S = 300


class FetchError(DevragError):
    """The indexed clone could not fetch from its origin."""


class Reply(Exception):
    """Ends a delivery early with this answer (an error, or a reason to do nothing)."""

    def __init__(self, status_code: int, status: str, detail: str) -> None:
        super().__init__(detail)
        self.status_code, self.status, self.detail = status_code, status, detail

    def response(self) -> JSONResponse:
        return JSONResponse({"status": self.status, "detail": self.detail}, status_code=self.status_code)


@dataclass(frozen=True)
class _Job:
    state: RepoState
    ref: str
    commit: str
    delivery: str | None


class Webhooks:
    """Receives push deliveries and keeps the matching indexed repositories at the pushed commit.

    Lives as long as the MCP server's `App`: `start(app)` in its lifespan, `stop()` before the
    index closes.
    """

    def __init__(self, secret: str) -> None:
        self._secret = secret
        self._app: App | None = None
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="devrag-webhooks", daemon=True)
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._seen_lock = threading.Lock()

    def start(self, app: App) -> None:
        self._app = app
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._jobs.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._app = None

    def asgi(self) -> Starlette:
        """The `/hooks/github` and `/hooks/gitlab` endpoints."""
        routes = [
            Route(f"{HOOKS_PATH}/{forge.name}", self._endpoint(forge), methods=["POST"])
            for forge in (GITHUB, GITLAB)
        ]
        return Starlette(routes=routes)

    def _endpoint(self, forge: Forge) -> Callable[[Request], Awaitable[Response]]:
        async def receive(request: Request) -> JSONResponse:
            try:
                body = await _body(request)
                reply = await anyio.to_thread.run_sync(self._deliver, forge, request.headers, body)
            except Reply as reply_early:
                reply = reply_early
            return reply.response()

        return receive

    def _deliver(self, forge: Forge, headers: Headers, body: bytes) -> Reply:
        """Decide what one delivery means; queue the work if there is any. Runs on a worker thread."""
        delivery = forge.delivery_id(headers)
        where = f"{forge.name} delivery {delivery or '(no id)'}"
        try:
            reply = self._decide(forge, headers, body, delivery)
        except Reply as reply_early:
            reply = reply_early
        level = logging.WARNING if reply.status_code >= 400 else logging.INFO
        log.log(level, "%s: %s %s", where, reply.status, reply.detail)
        return reply

    def _decide(self, forge: Forge, headers: Headers, body: bytes, delivery: str | None) -> Reply:
        if not forge.authentic(headers, body, self._secret):
            raise Reply(401, "unauthorized", f"Bad or missing {forge.name} signature or token.")
        event = forge.event(headers)
        if event != forge.push_event:
            return Reply(200, "ignored", f"Event {event or '(none)'!r} is not a push.")
        push = _parse(forge, body)
        states = self._indexed_clones_of(push)
        _check_branch(push)
        key = f"{forge.name}:{delivery}" if delivery else None
        if key is not None and not self._claim(key):
            return Reply(
                200,
                "duplicate",
                f"Delivery {delivery} ({push.full_name} at {push.after[:12]}) was handled before.",
            )
        stale = [s for s in states if s.commit != push.after or s.in_progress]
        if not stale:
            names = ", ".join(s.name for s in states)
            return Reply(200, "up to date", f"{names} is already indexed at {push.after[:12]}.")
        for state in stale:
            self._jobs.put(_Job(state, push.ref, push.after, key))
        queued = ", ".join(s.name for s in stale)
        return Reply(202, "accepted", f"Fetching and re-indexing {queued} at {push.after[:12]}.")

    def _indexed_clones_of(self, push: Push) -> list[RepoState]:
        """The indexed repositories whose clone's `origin` is one of the push's URLs."""
        if self._app is None:
            raise Reply(503, "starting", "The server is starting; deliver again in a moment.")
        try:
            states = self._app.index().repos()
        except DevragError as exc:
            raise Reply(503, "unavailable", str(exc)) from exc
        wanted = {normalize_remote(url) for url in push.urls}
        found = [s for s in states if _origin(s) in wanted]
        if not found:
            indexed = ", ".join(sorted(s.name for s in states)) or "none"
            raise Reply(
                404,
                "unknown repository",
                f"No indexed clone has {push.full_name} ({', '.join(push.urls)}) as its origin "
                f"(indexed: {indexed}). "
                "Clone it and run `devrag ingest <clone>` on this machine first.",
            )
        return found

    def _claim(self, key: str) -> bool:
        """Whether this delivery is new; remembers the last few thousand."""
        with self._seen_lock:
            if key in self._seen:
                return False
            self._seen[key] = None
            if len(self._seen) > _SEEN_DELIVERIES:
                self._seen.popitem(last=False)
            return True

    def _forget(self, key: str | None) -> None:
        """A failed delivery may be redelivered (from the forge's UI) to retry it."""
        if key is not None:
            with self._seen_lock:
                self._seen.pop(key, None)

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                self._run(job)
            except DevragError as exc:
                log.error("re-indexing %s at %s failed: %s", job.state.name, job.commit[:12], exc)
                self._forget(job.delivery)
            except Exception:  # a thread boundary: log, keep serving later deliveries
                log.exception("re-indexing %s at %s failed", job.state.name, job.commit[:12])
                self._forget(job.delivery)

    def _run(self, job: _Job) -> None:
        app = self._app
        if app is None:
            return
        with app.metrics.ingest_run("webhook") as run:
            _fetch(job.state)
            _fast_forward(job)
            summary = reindex(app, job.state, rev=job.commit)
            if summary is None:
                run.outcome = "unchanged"
        outcome = "already indexed" if summary is None else f"indexed, chunks {summary.chunks}"
        log.info("webhook: %s at %s %s", job.state.name, job.commit[:12], outcome)


async def _body(request: Request) -> bytes:
    """The raw body (the signature covers these exact bytes), refused past the size a forge sends."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > _MAX_BODY:
            raise Reply(413, "too large", f"Payloads over {_MAX_BODY} bytes are not push events.")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(forge: Forge, body: bytes) -> Push:
    try:
        push = forge.parse(body)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"]) or "body"
        raise Reply(400, "bad request", f"Not a {forge.name} push payload: {where}: {error['msg']}.") from exc
    return push


def _check_branch(push: Push) -> None:
    if push.deletes_branch:
        raise Reply(200, "ignored", f"{push.ref} was deleted; the index keeps its last commit.")
    if not push.to_default_branch:
        branch = push.default_branch or "(not in the payload)"
        raise Reply(200, "ignored", f"{push.ref} is not the default branch {branch}; only it is indexed.")


def _origin(state: RepoState) -> str | None:
    """The clone's normalized `origin`, as every ingest records it; None when none is known.

    An index written before origins were recorded gets it from the clone itself.
    """
    if state.origin:
        return state.origin
    try:
        source = GitSource(Path(state.path))
    except SourceError:
        return None
    try:
        return source.origin()
    finally:
        source.repo.close()


def _fetch(state: RepoState) -> None:
    done = _git(state.path, "fetch", "--quiet", "origin", timeout=_FETCH_TIMEOUT_S)
    if done.returncode != 0:
        raise FetchError(f"`git fetch origin` in {state.path} failed: {done.stderr.strip()}")


def _fast_forward(job: _Job) -> None:
    """Move the clone's checked-out default branch to the pushed commit, when that is a fast-forward.

    Then its HEAD, which freshness and `--watch` compare with the index, agrees with what is
    indexed. A clone on another branch, or with commits of its own, is left as it is.
    """
    path = job.state.path
    on = _git(path, "symbolic-ref", "-q", "HEAD", timeout=10).stdout.strip()
    moved = on == job.ref and _git(path, "merge", "-q", "--ff-only", job.commit, timeout=60).returncode == 0
    if not moved:
        log.info(
            "webhook: left %s's HEAD as it is (%s, not a fast-forward to %s)",
            job.state.name,
            on or "detached",
            job.commit[:12],
        )


def _git(path: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}  # never wait for a password nobody types
    try:
        return subprocess.run(
            ["git", "-C", path, *args], env=env, capture_output=True, text=True, timeout=timeout
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return subprocess.CompletedProcess(["git", *args], returncode=1, stdout="", stderr=str(exc))
