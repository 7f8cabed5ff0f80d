"""The `devrag` command line: each command parses its flags, builds Settings and calls one function."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO, TypeVar

import click
from pydantic import BaseModel

from devrag.retrieval.alert_input import AlertInput, parse_alerts, query_of
from devrag.retrieval.errors import DevragError
from devrag.retrieval.factory import open_store
from devrag.retrieval.index import Index
from devrag.retrieval.models import Embedder
from devrag.retrieval.query_records import new_query_id, search_record
from devrag.retrieval.rerank import Reranker
from devrag.retrieval.search import MODES, Filters, HybridIndex, Mode
from devrag.retrieval.search_input import MAX_K, check_query_length, check_repo, check_search
from devrag.retrieval.search_results import SearchResponse
from devrag.retrieval.warm_search import SearchCall, owner_search
from devrag.server import global_options, render
from devrag.server import settings as config
from devrag.server.lazy_group import LazyGroup
from devrag.server.outputs import SearchAnswer
from devrag.server.query_log import log_search, open_query_log
from devrag.server.settings import Settings, models_for, search_config
from devrag.server.tracing import configure_tracing, exporting

T = TypeVar("T")


class Context:
    """Settings from the config file, the environment and the flags, shared by every command."""

    def __init__(self, flags: dict[str, Any]) -> None:
        # The same dict the global options fill in, also when given after the subcommand.
        self.flags = flags

    def settings(self, **more: Any) -> Settings:
        try:
            return config.load_settings({**self.flags, **more})
        except DevragError as exc:
            raise click.ClickException(str(exc)) from exc


@contextmanager
def opened_index(settings: Settings, embedder: Embedder | None = None) -> Iterator[Index]:
    """The configured index, closed on the way out, with library errors shown as CLI errors."""
    try:
        store = open_store(
            settings.index_dir, settings.qdrant_url, settings.collection, settings.qdrant_api_key
        )
    except DevragError as exc:
        raise click.ClickException(str(exc)) from exc
    name = embedder.name if embedder else settings.embed_model
    index = Index(store, name, embedder.dim if embedder else 0)
    try:
        yield index
    except DevragError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        store.close()


def emit(as_json: bool, value: BaseModel | list[Any], human: Callable[[], None]) -> None:
    """One JSON document on stdout for scripts, or the human rendering."""
    if as_json:
        data = (
            value.model_dump()
            if isinstance(value, BaseModel)
            else [v.model_dump() if isinstance(v, BaseModel) else v for v in value]
        )
        click.echo(json.dumps(data, indent=2))
    else:
        human()


# Each command's module is imported when the command runs (see `lazy_group`).
_COMMANDS = {
    "ingest": "devrag.server.index_cmds:ingest_cmd",
    "status": "devrag.server.index_cmds:status_cmd",
    "reconcile": "devrag.server.index_cmds:reconcile_cmd",
    "forget": "devrag.server.index_cmds:forget_cmd",
    "rebuild": "devrag.server.index_cmds:rebuild_cmd",
    "bench": "devrag.server.bench_cmd:bench_cmd",
    "eval": "devrag.server.eval_cmd:eval_cmd",
    "serve": "devrag.server.serve:serve_cmd",
    "config": "devrag.server.config_cmd:config_cmd",
    "doctor": "devrag.server.doctor:doctor_cmd",
}


@click.group(
    cls=LazyGroup, lazy=_COMMANDS, extra_params=global_options.params, params=global_options.params()
)
@click.version_option(package_name="devrag", prog_name="devrag")
@click.pass_context
def main(ctx: click.Context) -> None:
    """devrag: hybrid retrieval over Git repositories of runbooks, postmortems and guides.

    Settings come from ~/.config/devrag/config.toml (or $DEVRAG_CONFIG), then DEVRAG_* variables,
    then flags; `devrag config` shows them and where each came from.
    """
    ctx.obj = Context(global_options.given_flags(ctx))
    configure_tracing()


def bind_model(index: Index, embedder: Embedder) -> Embedder:
    """Give an index opened without a model the model a repair needs."""
    index.model, index.dim = embedder.name, embedder.dim
    return embedder


def embedder_for(settings: Settings) -> Embedder:
    """The configured embedding model, announced: loading it takes seconds."""
    render.loading("embedding model", settings.embed_model)
    return config.embedder_for(settings)


def reranker_for(settings: Settings) -> Reranker:
    """The configured reranker, announced: loading it takes seconds."""
    render.loading("reranker", settings.rerank_model)
    return config.reranker_for(settings)


def load_embedder(settings: Settings) -> Embedder:
    return run_or_exit(lambda: embedder_for(settings))


def run_or_exit(factory: Callable[[], T]) -> T:
    """`factory()`, or its DevragError as click's one-line error and exit status 1 (no traceback)."""
    try:
        return factory()
    except DevragError as exc:
        raise click.ClickException(str(exc)) from exc


@main.command("search")
@click.argument("query")
@click.option("-k", "k", type=int, default=5, show_default=True, help=f"Documents to return (1-{MAX_K}).")
@click.option("--mode", type=click.Choice(MODES), help="Retrieval mode [default: hybrid+rerank].")
@click.option("--no-rerank", is_flag=True, help="Skip the cross-encoder (mode hybrid unless given).")
@click.option("--repo", help="Only this indexed repository.")
@click.option("--path", "path_glob", help="Only paths matching this glob (`*` crosses folders).")
@click.option("--type", "doc_type", help="Only this document type (runbook, postmortem, guide, code, other).")
@click.option("--service", help="Only documents about this service (front matter or path).")
@click.option("--team", help="Only documents owned by this team (front matter team or owner).")
@click.option("--severity", help="Only documents of this severity.")
@click.option("--environment", help="Only documents for this environment.")
@click.option("--tag", help="Only documents with this tag.")
@click.option("--alert", help="Only documents that list this alert name (case-sensitive).")
@click.option(
    "--json", "as_json", is_flag=True, help="Print the answer as one JSON object: query_id, mode, results."
)
@click.pass_obj
def search_cmd(
    obj: Context,
    query: str,
    k: int,
    mode: str | None,
    no_rerank: bool,
    repo: str | None,
    path_glob: str | None,
    doc_type: str | None,
    as_json: bool,
    **metadata: str | None,
) -> None:
    """Search the index: dense + BM25, fused with RRF, reranked by a cross-encoder."""
    if no_rerank and mode == "hybrid+rerank":
        raise click.BadParameter("--no-rerank contradicts --mode hybrid+rerank", param_hint="--mode")
    raw = {"query": query, "k": k, "repo": repo, "path": path_glob, "doc_type": doc_type, **metadata}
    _answer_search(obj, raw, mode or ("hybrid" if no_rerank else "hybrid+rerank"), as_json)


@main.command("alert")
@click.argument("alert", required=False)
@click.option(
    "--file",
    "alert_file",
    type=click.File("r", encoding="utf-8"),
    help="Read the alert from this file ('-': standard input) instead of the argument.",
)
@click.option("-k", "k", type=int, default=5, show_default=True, help=f"Documents to return (1-{MAX_K}).")
@click.option("--no-rerank", is_flag=True, help="Skip the cross-encoder (mode hybrid).")
@click.option("--repo", help="Only this indexed repository.")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as one JSON object.")
@click.pass_obj
def alert_cmd(
    obj: Context,
    alert: str | None,
    alert_file: TextIO | None,
    k: int,
    no_rerank: bool,
    repo: str | None,
    as_json: bool,
) -> None:
    """The runbooks for an alert as pasted: Alertmanager or Prometheus JSON, or `alertname: X` text.

    Its runbook_url and the alert catalogue name documents first, then search ranks the rest; each
    result says which route found it.
    """
    if (alert is None) == (alert_file is None):
        raise click.UsageError("Pass the alert as an argument or with --file PATH (--file - reads stdin).")
    text = alert if alert is not None else alert_file.read()  # type: ignore[union-attr]
    alerts = run_or_exit(lambda: parse_alerts(text))
    raw = {"query": query_of(alerts), "k": k, "repo": repo}
    _answer_search(obj, raw, "hybrid" if no_rerank else "hybrid+rerank", as_json, alerts)


def _answer_search(
    obj: Context, raw: dict[str, Any], mode: str, as_json: bool, alerts: list[AlertInput] | None = None
) -> None:
    """Check the arguments, search (alerts routed first) and print the answer, logged under its id."""
    args = run_or_exit(lambda: check_search(raw))
    settings = obj.settings()
    filters = Filters(repo=args.repo, path=args.path, doc_type=args.doc_type, **args.metadata)
    chosen: Mode = mode  # type: ignore[assignment]  # one of MODES, as click checked
    models = models_for(settings, rerank=chosen == "hybrid+rerank")
    call = SearchCall(
        models, args.query, args.k, chosen, filters, tuple(alerts or ()), search_config(settings)
    )
    with opened_index(settings) as index:
        # Checked before the models load: a wrong --repo or an empty index answers at once.
        check_repo(args.repo, [state.name for state in index.repos()], settings.store_location)
        # An embedded index's owner answers with the models it keeps loaded; a server's, here, and
        # a traced one too, so that its spans leave from this process, which exports them.
        warm = None if exporting() else owner_search(index.store, call)
        response = warm or _search_here(index, settings, call)
    query_id = new_query_id()
    log_search(open_query_log(settings), search_record(query_id, args.query, args.k, mode, filters, response))
    answer = SearchAnswer(query_id=query_id, **response.model_dump())
    emit(as_json, answer, lambda: render.search_results(answer))


def _search_here(index: Index, settings: Settings, call: SearchCall) -> SearchResponse:
    """The search in this process, with models loaded for it."""
    embedder = bind_model(index, load_embedder(settings))
    check_query_length(call.query, embedder.count_tokens)
    reranker = run_or_exit(lambda: reranker_for(settings)) if call.models.rerank_model else None
    index.check_compatible()
    searcher = HybridIndex(index, embedder, reranker, call.config)
    return searcher.search(call.query, call.k, call.mode, call.filters, call.alerts)


if __name__ == "__main__":
    main()
