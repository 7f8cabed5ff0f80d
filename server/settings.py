"""Configuration: a TOML file, then DEVRAG_* environment variables, then command-line flags.

Later sources win. The file is `$DEVRAG_CONFIG`, else `$XDG_CONFIG_HOME/devrag/config.toml`, else
`~/.config/devrag/config.toml`; its keys are the field names of `Settings` (`rerank_model = "..."`).
"""

from __future__ import annotations

import difflib
import json
import os
import tomllib
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field, TypeAdapter, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from devrag.retrieval.errors import DevragError
from devrag.retrieval.factory import Runtime, open_embedder, open_reranker
from devrag.retrieval.models import DEFAULT_EMBED_MODEL, Embedder
from devrag.retrieval.onnx_models import default_onnx_dir
from devrag.retrieval.rerank import DEFAULT_RERANK_MODEL, Precision, Reranker
from devrag.retrieval.search_config import SearchConfig
from devrag.retrieval.warm_search import ModelChoice

CONFIG_ENV = "DEVRAG_CONFIG"
MAX_SEARCHES_HELD = 30
ENV_PREFIX = "DEVRAG_"


class ConfigError(DevragError):
    """The configuration file or a setting is invalid; the message names the file, key or variable."""


def config_path() -> Path:
    """Where the configuration file is read from and written to, as the environment says now."""
    explicit = os.environ.get(CONFIG_ENV, "").strip()
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME", "").strip() or Path.home() / ".config"
    return Path(base) / "devrag" / "config.toml"


def _default_index_dir() -> Path:
    return Path.home() / ".local" / "share" / "devrag" / "index"


class ConfigFile(TomlConfigSettingsSource):
    """The TOML source, strict: a typo in a key is an error rather than a setting silently ignored."""

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        try:
            data = super()._read_file(file_path)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file_path}: not valid TOML: {exc}.") from exc
        for key in data:
            _check_key(file_path, key)
        return data


def _check_key(path: Path, key: str) -> None:
    known = list(Settings.model_fields)
    if key in known:
        return
    close = difflib.get_close_matches(key.replace("-", "_"), known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ConfigError(f"{path}: unknown key {key!r}; {hint}known keys: {', '.join(known)}.")


class Settings(BaseSettings):
    """Everything a devrag process needs to find its index and models."""

    # An exported but empty variable (DEVRAG_RERANK_MODEL=) is unset: the file or default applies.
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", env_ignore_empty=True)

    index_dir: Path = Field(default_factory=_default_index_dir)
    qdrant_url: str | None = None
    qdrant_api_key: str | None = None
    collection: str = "devrag"
    embed_model: str = DEFAULT_EMBED_MODEL
    rerank_model: str = DEFAULT_RERANK_MODEL
    device: str = "auto"
    runtime: Runtime = "onnx"  # auto: torch where a CUDA GPU is present, else onnx
    onnx_dir: Path = Field(default_factory=default_onnx_dir)  # exports of local models, one folder each
    # auto: torch runs bfloat16 where the CPU computes it natively; onnx int8 where its export has
    # the int8 graph, else float32.
    rerank_precision: Precision = "auto"
    max_file_bytes: int = Field(default=1_000_000, gt=0)
    # Admission control of a server's searches (devrag.server.admission says why these numbers).
    search_in_flight: int = Field(default=1, ge=1)  # the models already use every core
    search_queue: int = Field(default=24, ge=0)
    search_queue_seconds: float = Field(default=15.0, gt=0)
    search_when_busy: Literal["refuse", "hybrid"] = "refuse"  # hybrid: answer without the rerank stage
    # Search spans carry the query text only when the operator asks (queries may hold secrets or names).
    trace_queries: bool = False
    # The local query log (devrag.retrieval.query_log), off for the same reason; feedback needs it.
    query_log: bool = False
    query_log_max_bytes: int = Field(default=10_000_000, gt=0)  # rotate past this size
    query_log_backups: int = Field(default=5, ge=1)  # rotated files kept: query-log.jsonl.1 ... .N
    # Review age of results (devrag.retrieval.review_age): stale past this many days, and an
    # optional recency vote in the ranking, off unless set.
    stale_after_days: int = Field(default=180, gt=0)
    recency_weight: float = Field(default=0.0, ge=0)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Flags (init keywords) over the environment over the file; the path is read per instance."""
        return init_settings, env_settings, ConfigFile(settings_cls, toml_file=config_path())

    @field_validator("embed_model", "rerank_model", "qdrant_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object, info: ValidationInfo) -> object:
        """A blank value (a variable of spaces, `rerank_model = ""`) means the default, not a model ''."""
        if isinstance(value, str) and not value.strip():
            return cls.model_fields[str(info.field_name)].default
        return value

    @field_validator("index_dir", "onnx_dir", mode="after")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        """`~/...` in the config file means the home folder, as it would in a shell."""
        return value.expanduser()

    @model_validator(mode="after")
    def _searches_fit_the_threads(self) -> Self:
        """Each running or waiting search holds one of the server's 40 worker threads (anyio's pool),
        which every tool call shares; the fallback lane of `search_when_busy = "hybrid"` holds 9 more."""
        if self.search_in_flight + self.search_queue > MAX_SEARCHES_HELD:
            raise ValueError(
                f"search_in_flight + search_queue is {self.search_in_flight + self.search_queue}; at most "
                f"{MAX_SEARCHES_HELD} searches can run or wait at once, so other tool calls keep threads."
            )
        return self

    @model_validator(mode="after")
    def _precision_fits_the_runtime(self) -> Self:
        """ONNX Runtime has no bfloat16 kernels for this model on a CPU, and int8 is an ONNX graph."""
        if self.runtime == "onnx" and self.rerank_precision == "bfloat16":
            raise ValueError("rerank_precision bfloat16 needs runtime torch; onnx runs float32 or int8.")
        if self.runtime == "torch" and self.rerank_precision == "int8":
            raise ValueError("rerank_precision int8 needs runtime onnx; torch runs float32 or bfloat16.")
        return self

    @property
    def store_location(self) -> str:
        return self.qdrant_url or str(self.index_dir)


def origins(flags: dict[str, Any]) -> dict[str, str]:
    """Where each setting's value comes from: `flag --x`, `environment DEVRAG_X`, the file, or `default`.

    Asks the same sources Settings reads, so the answer cannot drift from what it does.
    """
    from_env = EnvSettingsSource(Settings)()
    path = config_path()
    from_file = ConfigFile(Settings, toml_file=path).toml_data
    where: dict[str, str] = {}
    for name in Settings.model_fields:
        if flags.get(name) is not None:
            where[name] = f"flag --{name.replace('_', '-')}"
        elif name in from_env:
            where[name] = f"environment {ENV_PREFIX}{name.upper()}"
        elif name in from_file:
            where[name] = f"config file {path}"
        else:
            where[name] = "default"
    return where


def load_settings(flags: dict[str, Any]) -> Settings:
    """Settings from every source, or one ConfigError naming where each bad value came from.

    Raises:
        ConfigError: the file is not valid TOML, has an unknown key, or a value has the wrong type.
    """
    flags = {k: v for k, v in flags.items() if v is not None}
    try:
        return Settings(**flags)
    except ValidationError as exc:
        where = origins(flags)
        problems = [_problem(where, error) for error in exc.errors()]
        raise ConfigError("; ".join(problems)) from exc


def _problem(where: dict[str, str], error: Any) -> str:
    if not error["loc"]:  # a check across settings: its message names them, the input is all of them
        return str(error["msg"]).removeprefix("Value error, ")
    name = str(error["loc"][0])
    origin = where.get(name, "default")
    if origin.startswith("config file "):
        origin = f"{origin.removeprefix('config file ')}: key {name!r}"
    return f"{origin}: {error['msg']} (got {error['input']!r})"


def set_config_value(path: Path, key: str, value: str) -> None:
    """Set one key in the config file, keeping every other line (keys, comments) as it was.

    Raises:
        ConfigError: the key is unknown, the value has the wrong type, or the file is invalid.
    """
    _check_key(path, key)
    field = Settings.model_fields[key]
    try:
        typed = TypeAdapter(field.annotation).validate_python(value)
    except ValidationError as exc:
        raise ConfigError(f"{key}: {exc.errors()[0]['msg']} (got {value!r})") from exc
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    before = ConfigFile(Settings, toml_file=path).toml_data
    line = f"{key} = {_toml_value(typed)}"
    lines = text.splitlines()
    at = [i for i, old in enumerate(lines) if old.split("=", 1)[0].strip() == key]
    if at:
        lines[at[0]] = line
    else:
        lines.append(line)
    updated = "\n".join(lines) + "\n"
    if tomllib.loads(updated) != {**before, key: tomllib.loads(line)[key]}:
        raise ConfigError(f"{path}: could not set {key!r} without changing other lines; edit it by hand.")
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(path.name + ".tmp")
    scratch.write_text(updated, encoding="utf-8")
    scratch.replace(path)


def _toml_value(value: object) -> str:
    """A TOML literal for a flat setting: a JSON string without ASCII escapes is a TOML string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)


def embedder_for(settings: Settings) -> Embedder:
    return open_embedder(settings.embed_model, settings.runtime, settings.device, settings.onnx_dir)


def reranker_for(settings: Settings) -> Reranker:
    return open_reranker(
        settings.rerank_model, settings.runtime, settings.device, settings.onnx_dir, settings.rerank_precision
    )


def models_for(settings: Settings, rerank: bool) -> ModelChoice:
    """The models a search runs, for a process that hands the search to the index's owner."""
    return ModelChoice(
        embed_model=settings.embed_model,
        rerank_model=settings.rerank_model if rerank else None,
        runtime=settings.runtime,
        device=settings.device,
        onnx_dir=settings.onnx_dir,
        precision=settings.rerank_precision,
    )


def search_config(settings: Settings) -> SearchConfig:
    """The search constants the settings choose; the others keep their measured defaults."""
    return SearchConfig(stale_after_days=settings.stale_after_days, recency_weight=settings.recency_weight)
