"""The MCP layer: a server whose typed lifespan owns the index and models, and five thin tools."""

from __future__ import annotations

import importlib.metadata
import inspect
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any, Protocol

import anyio.to_thread
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from devrag.retrieval.errors import DevragError
from devrag.retrieval.schema import DocType
from devrag.retrieval.search_input import (
    MAX_ALERT_CHARS,
    MAX_BUDGET,
    MAX_FEEDBACK_DOCUMENT,
    MAX_FEEDBACK_NOTE,
    MAX_K,
    MAX_QUERY_ID,
    MIN_BUDGET,
    MIN_SEARCH_BUDGET,
    InputError,
    check_alert,
    check_document,
    check_feedback,
    check_search,
)
from devrag.server import tools
from devrag.server.metrics import ServerMetrics
from devrag.server.outputs import DocumentPage, FeedbackOutput, SearchOutput, SourcesOutput
from devrag.server.settings import Settings, embedder_for, reranker_for
from devrag.server.state import App, Models
from devrag.server.watch import RefWatcher

INSTRUCTIONS = (
    "devrag searches the team's runbooks, postmortems, deployment guides and ops code, as committed "
    "in Git. Use `search` first with the exact strings you have (alert name, error message, service "
    "or command name), then `get_document` to read a cited file or section in full. Every passage "
    "cites repo, path, lines and commit; `freshness` says whether the repository has moved on since. "
    "For an alert that fired, pass it whole (the notification JSON or its text) to `search_alert`."
)
FEEDBACK_HINT = (
    " Once you know whether an answer helped (the runbook that fixed it, or none did), call `feedback` "
    "with its query_id and the repo:path that helped: the team builds its evaluation sets from it."
)
_READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=False)
# feedback appends to the server's local query log: a write, but it changes no answer.
_APPENDS = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
)
# Loading models competes with the handshake for the interpreter: start after it, or after this long.
_MODELS_START_S = 3.0
_HANDSHAKE = frozenset({"initialize", "notifications/initialized", "server/discover"})


class Companion(Protocol):
    """A part of the server that lives as long as its App (the push webhooks).

    Started once the index is open, stopped before it closes, so it can share the one open index.
    """

    def start(self, app: App) -> None: ...

    def stop(self) -> None: ...


def default_models(settings: Settings) -> Models:
    return Models(
        lambda: embedder_for(settings),
        lambda: reranker_for(settings),
    )


def create_server(
    settings: Settings,
    models: Models | None = None,
    watch: bool = False,
    companions: Sequence[Companion] = (),
    local: bool = True,
    metrics: ServerMetrics | None = None,
) -> MCPServer[App]:
    """The devrag MCP server; models load in the background once it starts, so it answers at once.

    `local` (stdio: the client started the server as its own user) lets answers name the server's
    folders; over HTTP they name repositories and commits only. `metrics` receives what its
    searches and ingests do (the HTTP server exports them at /metrics).
    """

    @asynccontextmanager
    async def lifespan(_server: MCPServer[App]) -> AsyncIterator[App]:
        app = App(settings, models or default_models(settings), watching=watch, local=local, metrics=metrics)
        app.models.start_later(_MODELS_START_S)
        # Reaching the index may start its owner process: let the handshake answer meanwhile.
        threading.Thread(target=app.open, name="devrag-open", daemon=True).start()
        watcher = RefWatcher(app) if watch else None
        if watcher is not None:
            watcher.start()
        for companion in companions:
            companion.start(app)
        try:
            yield app
        finally:
            for companion in companions:
                await anyio.to_thread.run_sync(companion.stop)
            if watcher is not None:
                await anyio.to_thread.run_sync(watcher.stop)
            app.models.cancel()
            await anyio.to_thread.run_sync(app.close)

    # Asked for only where it is kept: with the query log off, feedback would be refused.
    instructions = INSTRUCTIONS + (FEEDBACK_HINT if settings.query_log else "")
    server: MCPServer[App] = MCPServer(
        "devrag", version=importlib.metadata.version("devrag"), instructions=instructions, lifespan=lifespan
    )
    server.middleware.append(_load_models_after_handshake)
    server.middleware.append(_arguments_in_words)
    for fn in (search, search_alert, get_document, list_sources):
        server.add_tool(fn, description=inspect.cleandoc(fn.__doc__ or ""), annotations=_READ_ONLY)
    server.add_tool(feedback, description=inspect.cleandoc(feedback.__doc__ or ""), annotations=_APPENDS)
    return server


async def _load_models_after_handshake(
    ctx: ServerRequestContext[App, Any], call_next: CallNext
) -> HandlerResult:
    """Start loading the models once the client has connected and asked for something."""
    result = await call_next(ctx)
    if ctx.method not in _HANDSHAKE:
        ctx.lifespan_context.models.start()
    return result


_ARGUMENT_CHECKS: dict[str, Callable[[Mapping[str, object]], object]] = {
    "search": check_search,
    "search_alert": check_alert,
    "get_document": check_document,
    "feedback": check_feedback,
}


async def _arguments_in_words(ctx: ServerRequestContext[App, Any], call_next: CallNext) -> HandlerResult:
    """Refuse bad tool arguments with the sentence the CLI gives, before the SDK's schema check would.

    The schema still tells the model the limits; this makes a call that breaks them come back
    as one line saying what to send, not a pydantic report.
    """
    if ctx.method == "tools/call" and ctx.params:
        check = _ARGUMENT_CHECKS.get(str(ctx.params.get("name")))
        arguments = ctx.params.get("arguments") or {}
        if check is not None and isinstance(arguments, Mapping):
            try:
                check(arguments)
            except InputError as exc:
                return CallToolResult(content=[TextContent(type="text", text=str(exc))], is_error=True)
    return await call_next(ctx)


def _answer(call: Callable[[], tools.Answer[Any]]) -> CallToolResult:
    """A tool result carrying both renderings; library errors become tool errors the model reads."""
    try:
        answer = call()
    except DevragError as exc:
        raise ToolError(str(exc)) from exc
    output: BaseModel = answer.output
    return CallToolResult(
        content=[TextContent(type="text", text=answer.text)],
        structured_content=output.model_dump(mode="json"),
    )


# Arguments search and search_alert share.
DocumentCount = Annotated[
    int, Field(ge=1, le=MAX_K, description="How many documents to return (each with its best sections).")
]
RepoName = Annotated[str | None, Field(description="Only this indexed repository (names: list_sources).")]
SearchBudget = Annotated[
    int, Field(ge=MIN_SEARCH_BUDGET, le=MAX_BUDGET, description="Token budget for the whole answer.")
]


def _app(ctx: Context[App, Any]) -> App:
    return ctx.request_context.lifespan_context


def search(
    query: Annotated[
        str,
        Field(
            description="What to look for. Best: the exact strings you have, verbatim: an alert name "
            "(KubePodCrashLooping), an error message, a metric, a service or command name. A pasted "
            "alert with its log lines works (up to 8,000 tokens; put the alert first). Short "
            "natural-language questions work too."
        ),
    ],
    ctx: Context[App, Any],
    k: DocumentCount = 5,
    repo: RepoName = None,
    path: Annotated[
        str | None,
        Field(
            description="Only files whose path matches this glob, e.g. 'runbooks/*' ('*' crosses folders)."
        ),
    ] = None,
    doc_type: Annotated[DocType | None, Field(description="Only this kind of document.")] = None,
    max_tokens: SearchBudget = 2000,
    service: Annotated[
        str | None,
        Field(
            description="Only documents about this service (front matter, or `runbooks/<service>/` paths)."
        ),
    ] = None,
    team: Annotated[str | None, Field(description="Only documents owned by this team.")] = None,
    severity: Annotated[str | None, Field(description="Only documents of this severity, e.g. 'p1'.")] = None,
    environment: Annotated[str | None, Field(description="Only documents for this environment.")] = None,
    tag: Annotated[str | None, Field(description="Only documents with this tag.")] = None,
    alert: Annotated[
        str | None, Field(description="Only documents that list this alert name (exact, case-sensitive).")
    ] = None,
) -> Annotated[CallToolResult, SearchOutput]:
    """Search the indexed runbooks, postmortems, deployment guides and ops code.

    Use this first for any operational question: an alert that fired, an error you see, how to
    deploy, roll back or fix a service, what happened in a past incident. Good queries carry the
    exact strings you have, verbatim: the alert name, the error message, the service, metric or
    command name (`KubePodCrashLooping payments-api`). Results are documents, best first, one
    per slot (`k` counts documents); each cites repo, path and the indexed commit, and carries its
    best matching passages, each with its heading path, line range and text. `freshness` says, per
    cited repository, the commit it was indexed at and whether its HEAD has moved on since (then
    the passage may be out of date). The answer fits in max_tokens: every document's best passage
    is kept before any further passage, lower-ranked passages are cut first (marked, with
    `tokens_cut`), and `left_out` counts documents dropped entirely. Read a whole file or section
    with get_document. service, team, severity, environment, tag and alert filter on what documents
    say about themselves (list_sources lists the values present; matching ignores case, except
    alert names). Each result carries that metadata; each passage lists the commands it quotes,
    classed read-only, mutating or destructive, and a line starting `! destructive:` precedes a
    passage with a destructive one: confirm with the user before running it. A query that holds an
    alert name the index catalogues (see search_alert) puts that alert's runbook first, `route`
    "catalogue" with `alert_match` saying why; a query that calls something a known service ("the
    kube service") prefers that service's documents.
    """
    metadata = {
        "service": service,
        "team": team,
        "severity": severity,
        "environment": environment,
        "tag": tag,
        "alert": alert,
    }
    return _answer(lambda: tools.search_tool(_app(ctx), query, k, repo, path, doc_type, max_tokens, metadata))


def search_alert(
    alert: Annotated[
        str,
        Field(
            max_length=MAX_ALERT_CHARS,
            description="The alert as you have it, pasted whole: an Alertmanager notification or "
            "webhook body (JSON), a Prometheus alert (JSON, e.g. from /api/v1/alerts), or text lines "
            "such as 'alertname: KubePodCrashLooping', 'summary: ...', 'description: ...', "
            "'runbook_url: ...'.",
        ),
    ],
    ctx: Context[App, Any],
    k: DocumentCount = 5,
    repo: RepoName = None,
    max_tokens: SearchBudget = 2000,
) -> Annotated[CallToolResult, SearchOutput]:
    """Find the runbook for an alert that fired: paste the alert, not a summary of it.

    The alert's `runbook_url` annotation, when it names an indexed document, comes first; then the
    documents the index's alert catalogue maps the alert name to (front matter `alerts`, a runbook
    titled with the alert's name, or an indexed Prometheus rule file whose runbook_url names it);
    then what search finds for the alert's name, summary and description. Each result's `route`
    says which of these found it (`runbook_url`, `catalogue`, `search`), and `alert_match` why.
    The answer has the same shape as search's.
    """
    return _answer(lambda: tools.search_alert_tool(_app(ctx), alert, k, repo, max_tokens))


def get_document(
    repo: Annotated[str, Field(description="Repository name, as in search results.")],
    path: Annotated[str, Field(description="File path inside the repository, as in search results.")],
    ctx: Context[App, Any],
    section: Annotated[
        str | None,
        Field(
            description="Only this section: a heading ('Mitigation') or heading path "
            "('Disk full > Mitigation'), case-insensitive. Omit for the whole document."
        ),
    ] = None,
    max_tokens: Annotated[
        int, Field(ge=MIN_BUDGET, le=MAX_BUDGET, description="Token budget for this page.")
    ] = 4000,
    offset: Annotated[
        int, Field(ge=0, description="Lines to skip: pass the previous page's next_offset.")
    ] = 0,
) -> Annotated[CallToolResult, DocumentPage]:
    """Read an indexed document, or one section of it, exactly as it was at the indexed commit.

    Use after search, to read the whole runbook or the full section around a cited passage. Long
    documents come in pages: when `next_offset` is set, call again with offset=next_offset. Line
    numbers are the file's own at `commit`.
    """
    return _answer(lambda: tools.get_document_tool(_app(ctx), repo, path, section, max_tokens, offset))


def list_sources(ctx: Context[App, Any]) -> Annotated[CallToolResult, SourcesOutput]:
    """List the indexed repositories and how current each one is.

    For each: the indexed commit, the current HEAD when the repository is reachable, whether it is
    behind, file and chunk counts, chunks per document type (runbook, postmortem, guide, code,
    other), and the metadata values present (services, teams, severities, environments, tags,
    alerts, each with its number of documents). Also the embedding and rerank models. Use it to
    learn repository names and metadata values for search's filters, or to judge whether answers
    may be stale.
    """
    return _answer(lambda: tools.list_sources_tool(_app(ctx)))


def feedback(
    query_id: Annotated[
        str, Field(max_length=MAX_QUERY_ID, description="The query_id of the search answer this is about.")
    ],
    helpful: Annotated[bool, Field(description="Whether the answer (or `document`) helped with the task.")],
    ctx: Context[App, Any],
    document: Annotated[
        str | None,
        Field(
            max_length=MAX_FEEDBACK_DOCUMENT,
            description="One result of that answer, as repo:path (or its path); omit to judge the "
            "answer as a whole.",
        ),
    ] = None,
    note: Annotated[
        str | None,
        Field(max_length=MAX_FEEDBACK_NOTE, description="Optional: what was missing or wrong, briefly."),
    ] = None,
) -> Annotated[CallToolResult, FeedbackOutput]:
    """Say whether a search answer helped, once you know: the runbook that fixed it, or none did.

    Name the result that helped (or did not) with `document`, as repo:path from that answer. The
    server keeps this in its local query log, from which its operators build evaluation sets to
    improve retrieval; it needs the log on (DEVRAG_QUERY_LOG=1), and says so when it is off.
    """
    return _answer(lambda: tools.feedback_tool(_app(ctx), query_id, helpful, document, note))
