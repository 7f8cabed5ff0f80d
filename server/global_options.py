"""Options every devrag command takes, before or after its name: `devrag search Q --index-dir X`.

People append a flag to the command they just ran; click would refuse a group option there. So
the same options sit on the group and on every subcommand, and each stores what it was given in
the context's `meta`, which every nested context shares: the last one given wins.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click

_FLAGS = "devrag.flags"
_VERBOSE = "devrag.verbose"
_LEVELS = [logging.WARNING, logging.INFO, logging.DEBUG]


def given_flags(ctx: click.Context) -> dict[str, Any]:
    """The settings flags given so far, by Settings field name; subcommand options add to it later."""
    flags: dict[str, Any] = ctx.meta.setdefault(_FLAGS, {})
    return flags


def params() -> list[click.Parameter]:
    """Fresh option objects, one set per command they are attached to."""

    def setting(flag: str, help_text: str, **kwargs: Any) -> click.Option:
        return click.Option([flag], help=help_text, expose_value=False, callback=_remember, **kwargs)

    return [
        setting("--index-dir", "Embedded index folder [DEVRAG_INDEX_DIR].", type=click.Path(path_type=Path)),
        setting("--qdrant-url", "Qdrant server URL; replaces the embedded index [DEVRAG_QDRANT_URL]."),
        setting("--embed-model", "Embedding model name or folder [DEVRAG_EMBED_MODEL]."),
        setting("--device", "cpu, cuda or auto [DEVRAG_DEVICE]."),
        click.Option(
            ["-v", "--verbose"],
            count=True,
            expose_value=False,
            callback=_verbosity,
            help="More log output on stderr (-vv for debug).",
        ),
    ]


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    if value is not None and param.name:
        given_flags(ctx)[param.name] = value


def _verbosity(ctx: click.Context, param: click.Parameter, value: int) -> None:
    """`-v` counts wherever it appears; logging follows the running total."""
    total = ctx.meta.get(_VERBOSE, 0) + value
    ctx.meta[_VERBOSE] = total
    configure_logging(total)


def configure_logging(verbose: int) -> None:
    """Logs on stderr only (stdout may carry JSON or the MCP protocol)."""
    logging.basicConfig(stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(_LEVELS[min(verbose, 2)])
    # huggingface_hub warns once per retry of each file ("Retrying in 8s [Retry 4/5]"); devrag
    # reports a model that cannot load once, in its own words. -vv shows them again.
    logging.getLogger("huggingface_hub").setLevel(logging.DEBUG if verbose >= 2 else logging.ERROR)
