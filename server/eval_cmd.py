"""`devrag eval`: score a golden set; or, from a query log, write one or replay it through a second config.

Three shapes, one command, because all three answer "how good is retrieval":
  devrag eval GOLDEN --repo CORPUS            score every mode on a golden set
  devrag eval --from-log LOG -o OUT.jsonl     write a golden set from helpful feedback in the log
  devrag eval --from-log LOG --shadow CONFIG  replay the logged queries through CONFIG beside the live one
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

from devrag.eval.from_log import FromLogSummary, golden_from_log
from devrag.eval.harness import DEFAULT_MODES, evaluate
from devrag.eval.runner import prepare
from devrag.eval.shadow import Arm, ShadowConfig, ShadowReport, load_shadow_config, replay
from devrag.retrieval.errors import DevragError
from devrag.retrieval.query_log import read_log
from devrag.retrieval.search import HybridIndex
from devrag.retrieval.search_config import SearchConfig

if TYPE_CHECKING:
    from devrag.retrieval.rerank import Reranker
    from devrag.server.cli import Context
    from devrag.server.settings import Settings

T = TypeVar("T")
LIVE_MODE = "hybrid+rerank"  # what a server answers with when its reranker loads


@click.command("eval")
@click.argument("golden", required=False, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--repo", "corpus", type=click.Path(exists=True, path_type=Path), help="Corpus: a Git repo or folder."
)
@click.option(
    "--modes", default=",".join(DEFAULT_MODES), show_default=True, help="Comma-separated modes to compare."
)
@click.option("-k", "k", type=click.IntRange(1, 100), default=10, show_default=True)
@click.option(
    "--workdir",
    type=click.Path(path_type=Path),
    default=Path.home() / ".cache" / "devrag" / "eval",
    show_default=True,
    help="Where corpus snapshots and the evaluation index are kept between runs.",
)
@click.option(
    "--from-log",
    "log",
    type=click.Path(path_type=Path),
    help="A query log (<index_dir>/query-log.jsonl; its rotated files are read too), with -o or --shadow.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --from-log: the golden JSONL file to write.",
)
@click.option("--only-repo", help="With -o: only helpful documents of this indexed repository.")
@click.option(
    "--shadow",
    "shadow_path",
    type=click.Path(path_type=Path),
    help="With --from-log: a TOML/JSON/YAML configuration to replay the logged queries through.",
)
@click.option(
    "--max-queries", type=click.IntRange(1), help="With --shadow: only the latest N logged searches."
)
@click.option(
    "--as-alert",
    is_flag=True,
    help="Put each query's `alert` name before its text, as an agent pastes an alert (alert sets).",
)
@click.option(
    "--search-config",
    type=click.Path(path_type=Path),
    help="A TOML/JSON/YAML file of SearchConfig keys (e.g. alert_routing = false) to score with.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@click.pass_obj
def eval_cmd(
    obj: Context,
    golden: Path | None,
    corpus: Path | None,
    modes: str,
    k: int,
    workdir: Path,
    log: Path | None,
    output: Path | None,
    only_repo: str | None,
    shadow_path: Path | None,
    max_queries: int | None,
    as_alert: bool,
    search_config: Path | None,
    as_json: bool,
) -> None:
    """Score retrieval on GOLDEN (JSONL with --repo, or a BEIR folder), every mode beside vanilla.

    With --from-log LOG instead: `-o OUT.jsonl` writes the logged searches whose feedback named a
    helpful document as a golden set (read it back with `devrag eval OUT.jsonl --repo CORPUS`);
    `--shadow CONFIG` replays the logged searches on the configured index through CONFIG (keys:
    mode, rerank_model and SearchConfig's candidate counts) beside the live configuration.
    """
    if log is None:
        if golden is None:
            raise click.UsageError(
                "Pass GOLDEN (with --repo), or --from-log LOG with -o OUT or --shadow CONFIG."
            )
        if output or shadow_path or only_repo or max_queries:
            raise click.UsageError("-o, --only-repo, --shadow and --max-queries go with --from-log LOG.")
        config = _search_config(search_config)
        _score(obj, golden, corpus, modes, k, workdir, as_json, as_alert, config)
        return
    if as_alert or search_config:
        raise click.UsageError("--as-alert and --search-config go with GOLDEN, not --from-log.")
    if golden is not None or (output is None) == (shadow_path is None):
        raise click.UsageError("--from-log LOG takes either -o OUT.jsonl or --shadow CONFIG, and no GOLDEN.")
    if (only_repo and output is None) or (max_queries and shadow_path is None):
        raise click.UsageError("--only-repo goes with -o, --max-queries with --shadow.")
    from devrag.server.cli import emit

    if output is not None:
        summary = _checked(lambda: golden_from_log(log, output, only_repo))
        emit(as_json, summary, lambda: _from_log_summary(summary))
        return
    assert shadow_path is not None
    report = _shadow(obj, log, shadow_path, max_queries, as_json)
    emit(as_json, report, lambda: _shadow_report(report))


def _checked(call: Callable[[], T]) -> T:
    """Bad input files (a missing log, a malformed line, a bad key) as one-line CLI errors."""
    try:
        return call()
    except (DevragError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc


def _search_config(path: Path | None) -> SearchConfig | None:
    """The SearchConfig a --search-config file sets (its keys only; mode and model come from flags)."""
    if path is None:
        return None
    config = _checked(lambda: load_shadow_config(path))
    if config.mode is not None or config.rerank_model is not None:
        raise click.UsageError(f"{path}: 'mode' and 'rerank_model' are not scored here; use --modes.")
    return config.search_config()


def _score(
    obj: Context,
    golden: Path,
    corpus: Path | None,
    modes: str,
    k: int,
    workdir: Path,
    as_json: bool,
    as_alert: bool = False,
    config: SearchConfig | None = None,
) -> None:
    from devrag.server import render
    from devrag.server.cli import emit, load_embedder, opened_index, reranker_for, run_or_exit

    wanted = [m.strip() for m in modes.split(",") if m.strip()]
    unknown = sorted(set(wanted) - set(DEFAULT_MODES))
    if unknown:
        raise click.BadParameter(
            f"unknown modes {unknown}; choose from {list(DEFAULT_MODES)}", param_hint="--modes"
        )
    eval_set = _checked(lambda: prepare(golden, corpus, workdir))
    queries = eval_set.queries
    if as_alert:
        if not any(q.alert for q in queries):
            raise click.UsageError(f"--as-alert: {golden} has no 'alert' field to put before the text.")
        queries = [replace(q, query=f"{q.alert} {q.query}") if q.alert else q for q in queries]
    # One index per corpus: BM25's statistics cover the whole index, so sharing it with another
    # corpus would make one set's scores depend on which others were evaluated before.
    settings = obj.settings(index_dir=workdir / "index" / eval_set.repo.name)
    embedder = load_embedder(settings)
    reranker = run_or_exit(lambda: reranker_for(settings)) if "hybrid+rerank" in wanted else None
    with opened_index(settings, embedder) as index:
        searcher = HybridIndex(index, embedder, reranker, config)
        result = evaluate(queries, eval_set.repo, index, embedder, searcher, wanted, k)
    emit(as_json, result, lambda: render.eval_report(eval_set.name, result))


def _shadow(obj: Context, log: Path, config_path: Path, max_queries: int | None, quiet: bool) -> ShadowReport:
    """Both arms over the configured index: the live one as a server searches, and CONFIG's."""
    from devrag.server.cli import bind_model, load_embedder, opened_index, reranker_for, run_or_exit
    from devrag.server.render import progress

    config = _checked(lambda: load_shadow_config(config_path))
    logged = _checked(lambda: read_log(log))
    if not logged.searches:
        raise click.ClickException(f"{log}: no search is logged, so there is nothing to replay.")
    settings = obj.settings()
    shadow_mode = config.mode or LIVE_MODE
    with opened_index(settings) as index:
        embedder = bind_model(index, load_embedder(settings))
        index.check_compatible()
        live_reranker = run_or_exit(lambda: reranker_for(settings))
        shadow_reranker = _shadow_reranker(settings, config, live_reranker)
        live = Arm(HybridIndex(index, embedder, live_reranker), LIVE_MODE)
        shadow = Arm(HybridIndex(index, embedder, shadow_reranker, config.search_config()), shadow_mode)
        try:
            with progress("Replaying logged searches", quiet) as bar:
                return replay(logged, live, shadow, config, max_queries, bar)
        finally:
            live.searcher.close()
            shadow.searcher.close()


def _shadow_reranker(settings: Settings, config: ShadowConfig, live: Reranker) -> Reranker | None:
    from devrag.server.cli import reranker_for, run_or_exit

    if config.mode not in (None, LIVE_MODE):
        return None
    if config.rerank_model in (None, settings.rerank_model):
        return live
    chosen = settings.model_copy(update={"rerank_model": config.rerank_model})
    return run_or_exit(lambda: reranker_for(chosen))


def _from_log_summary(s: FromLogSummary) -> None:
    click.echo(
        f"Wrote {s.written} golden queries to {s.output}, from {s.searches} logged searches "
        f"({s.with_feedback} with feedback)."
    )
    click.echo(
        f"Skipped: {s.skipped_negative_only} with negative feedback only, {s.skipped_no_document} helpful "
        f"without a document named, {s.skipped_other_repo} helpful in other repositories; "
        f"{s.merged} folded into an earlier search with the same query; {s.feedback_without_search} "
        "feedback on searches no longer in the log."
    )
    click.echo(f"Score it: devrag eval {s.output} --repo CORPUS")


def _shadow_report(r: ShadowReport) -> None:
    for n, c in enumerate(r.comparisons, start=1):
        changed = "top-1 changed" if c.top1_changed else "same top-1"
        click.echo(f"[{n}] {c.query[:100]}")
        click.echo(f"    live:   {', '.join(c.live) or '-'}")
        click.echo(f"    shadow: {', '.join(c.shadow) or '-'}")
        verdict = ""
        if c.higher is not None:
            at = f"{c.live_rank or 'absent'} live, {c.shadow_rank or 'absent'} shadow"
            verdict = f"; helpful {', '.join(c.helpful)} at {at}: {c.higher}"
        click.echo(f"    {changed}, overlap {c.overlap:.2f}{verdict}")
    config = ", ".join(f"{key}={value!r}" for key, value in r.shadow_config.items()) or "no overrides"
    click.echo(
        f"live {r.live_mode} vs shadow {r.shadow_mode} ({config}): {r.queries} searches, top-1 changed in "
        f"{r.top1_changed}, mean overlap {r.mean_overlap:.2f}; where a helpful document was named "
        f"({r.judged}): live higher {r.live_higher}, shadow higher {r.shadow_higher}, same {r.same}."
    )
