"""Configuration: DEVRAG_* environment variables, overridden by command-line flags."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from devrag.retrieval.models import DEFAULT_EMBED_MODEL, Embedder, SentenceTransformerEmbedder
from devrag.retrieval.rerank import DEFAULT_RERANK_MODEL, CrossEncoderReranker, Precision, Reranker


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
    rerank_model: str = DEFAULT_RERANK_MODEL
    device: str = "auto"
    rerank_precision: Precision = "auto"  # bfloat16 where the CPU computes it natively
    max_file_bytes: int = Field(default=1_000_000, gt=0)

    @field_validator("embed_model", "rerank_model", "qdrant_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object, info: ValidationInfo) -> object:
        """An exported but empty variable (DEVRAG_RERANK_MODEL=) means the default, not a model named ''."""
        if isinstance(value, str) and not value.strip():
            return cls.model_fields[str(info.field_name)].default
        return value

    @property
    def store_location(self) -> str:
        return self.qdrant_url or str(self.index_dir)


def embedder_for(settings: Settings) -> Embedder:
    return SentenceTransformerEmbedder(settings.embed_model, settings.device)


def reranker_for(settings: Settings) -> Reranker:
    return CrossEncoderReranker(settings.rerank_model, settings.device, precision=settings.rerank_precision)
