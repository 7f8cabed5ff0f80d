"""A click group that imports a subcommand's module only when that subcommand is asked for.

`devrag search` runs again and again from agents, and most of its wall time was the command
line's own imports: the ingest pipeline (Git, Markdown parsing, the secret scanner), the MCP
server, the benchmarks. Each command now lives in a module imported when it is run or listed.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import click


class LazyGroup(click.Group):
    """Subcommands named by "module:attribute", imported on first use.

    `extra_params` makes the options each loaded command takes besides its own (devrag's global
    options, which may be given after the command's name).
    """

    def __init__(
        self,
        *args: object,
        lazy: dict[str, str],
        extra_params: Callable[[], list[click.Parameter]],
        **kwargs: object,
    ) -> None:
        self.lazy = dict(lazy)
        self.extra_params = extra_params
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        super().add_command(cmd, name)
        cmd.params.extend(self.extra_params())

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = self.lazy.pop(cmd_name, None)
        if target is not None:
            module, attribute = target.split(":")
            command = getattr(importlib.import_module(module), attribute)
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)
