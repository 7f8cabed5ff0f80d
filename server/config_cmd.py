"""`devrag config`: the effective settings and where each came from; `devrag config set` edits the file."""

from __future__ import annotations

import json

import click
from pydantic import BaseModel

from devrag.server import render
from devrag.server.global_options import given_flags
from devrag.server.settings import ConfigError, config_path, load_settings, origins, set_config_value

_SECRETS = {"qdrant_api_key"}


class Setting(BaseModel):
    value: str | int | None
    source: str


class ConfigReport(BaseModel):
    """What `devrag config --json` prints: the file consulted and every setting with its source."""

    file: str
    file_exists: bool
    settings: dict[str, Setting]


def config_report(flags: dict[str, object]) -> ConfigReport:
    """The settings a command given `flags` would run with; secrets are shown only as set or not."""
    settings = load_settings(flags)
    where = origins(flags)
    rows = {}
    for name, value in settings.model_dump().items():
        if name in _SECRETS and value is not None:
            value = "(set)"
        shown = value if value is None or isinstance(value, int) else str(value)
        rows[name] = Setting(value=shown, source=where[name])
    path = config_path()
    return ConfigReport(file=str(path), file_exists=path.is_file(), settings=rows)


@click.group("config", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print the settings as one JSON object.")
@click.pass_context
def config_cmd(ctx: click.Context, as_json: bool) -> None:
    """Show the effective settings and where each came from: default, config file, environment, flag.

    The file is $DEVRAG_CONFIG, else $XDG_CONFIG_HOME/devrag/config.toml, else
    ~/.config/devrag/config.toml; its keys are the names shown here.
    """
    if ctx.invoked_subcommand:
        return
    try:
        report = config_report(given_flags(ctx))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(report.model_dump(), indent=2))
    else:
        render.config_report(report.file, report.file_exists, report.settings)


@config_cmd.command("set")
@click.argument("key")
@click.argument("value")
def set_cmd(key: str, value: str) -> None:
    """Set KEY to VALUE in the config file, leaving its other keys and comments as they are."""
    path = config_path()
    try:
        set_config_value(path, key, value)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{path}: {key} = {value}", err=True)
