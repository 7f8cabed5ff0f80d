"""Configuration: environment variables, flags over them, and blanks meaning the default."""

from __future__ import annotations

from pathlib import Path

from devrag.server.settings import Settings


def test_environment_variables_configure_and_flags_override_them(monkeypatch, tmp_path):
    monkeypatch.setenv("DEVRAG_INDEX_DIR", str(tmp_path / "from-env"))
    monkeypatch.setenv("DEVRAG_DEVICE", "cpu")
    assert Settings().index_dir == tmp_path / "from-env" and Settings().device == "cpu"
    assert Settings(index_dir=Path("/flag")).index_dir == Path("/flag")


def test_an_exported_but_empty_variable_means_the_default(monkeypatch):
    monkeypatch.setenv("DEVRAG_RERANK_MODEL", "")
    monkeypatch.setenv("DEVRAG_QDRANT_URL", " ")
    settings = Settings()
    assert settings.rerank_model == "cross-encoder/ms-marco-MiniLM-L6-v2"
    assert settings.qdrant_url is None and settings.store_location == str(settings.index_dir)
