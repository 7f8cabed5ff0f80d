"""How the benchmark scripts print what they measured: one JSON object for scripts, tables for people."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pydantic import BaseModel

R = TypeVar("R", bound=BaseModel)


def print_report(report: R, as_json: bool, render: Callable[[R], None]) -> None:
    if as_json:
        print(report.model_dump_json(indent=2))
    else:
        render(report)
