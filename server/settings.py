"""Configuration: DEVRAG_* environment variables, overridden by command-line flags."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from devrag.retrieval.models import DEFAULT_EMBED_MODEL


def _default_index_dir() -> Path:
    return Path.home() / ".local" / "share" / "devrag" / "index"


class Settings(BaseSettings):
    """Everything a devrag process needs to find its index and models."""

    model_config = SettingsConfigDict(env_prefix="DEVRAG_", extra="ignore")

    index_dir: Path = Field(default_factory=_default_index_dir)
    qdrant_url: str | None = None
    qdrant_api_key: str | None = None
    collection: str = "devrag"
    embed_model: str = DEFAULT_EMBED_MODEL
    rerank_model: str = "cross-encoder/ms-marco-MiniLM-L6-v2"
    device: str = "auto"
    max_file_bytes: int = Field(default=1_000_000, gt=0)

    @property
    def store_location(self) -> str:
        return self.qdrant_url or str(self.index_dir)
