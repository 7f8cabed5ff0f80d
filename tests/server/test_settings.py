"""Configuration: a TOML file, environment variables over it, flags over both; blanks mean the default."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from devrag.retrieval.search_config import SearchConfig
from devrag.server.settings import (
    ConfigError,
    Settings,
    config_path,
    load_settings,
    origins,
    search_config,
    set_config_value,
)


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


def _config(monkeypatch, tmp_path, text: str) -> Path:
    path = tmp_path / "devrag.toml"
    path.write_text(text)
    monkeypatch.setenv("DEVRAG_CONFIG", str(path))
    return path


def test_the_config_file_configures_and_the_environment_and_flags_override_it(monkeypatch, tmp_path):
    path = _config(monkeypatch, tmp_path, 'device = "cuda"\nembed_model = "file/model"\nmax_file_bytes = 7\n')
    monkeypatch.setenv("DEVRAG_DEVICE", "cpu")
    settings = load_settings({"max_file_bytes": 9})
    assert (settings.embed_model, settings.device, settings.max_file_bytes) == ("file/model", "cpu", 9)
    where = origins({"max_file_bytes": 9})
    assert where["embed_model"] == f"config file {path}" and where["device"] == "environment DEVRAG_DEVICE"
    assert where["max_file_bytes"] == "flag --max-file-bytes" and where["collection"] == "default"


def test_the_file_is_found_under_xdg_config_home_unless_devrag_config_names_one(monkeypatch, tmp_path):
    monkeypatch.delenv("DEVRAG_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    (tmp_path / "xdg" / "devrag").mkdir(parents=True)
    (tmp_path / "xdg" / "devrag" / "config.toml").write_text('collection = "from-xdg"\nindex_dir = "~/idx"\n')
    assert config_path() == tmp_path / "xdg" / "devrag" / "config.toml"
    assert Settings().collection == "from-xdg" and Settings().index_dir == Path.home() / "idx"
    monkeypatch.setenv("DEVRAG_CONFIG", str(tmp_path / "elsewhere.toml"))
    assert Settings().collection == "devrag"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("device = \n", "not valid TOML"),
        ('rerank-model = "x"\n', "unknown key 'rerank-model'; did you mean 'rerank_model'?"),
        ('max_file_bytes = "lots"\n', "key 'max_file_bytes': Input should be a valid integer"),
        ("max_file_bytes = -1\n", "key 'max_file_bytes': Input should be greater than 0"),
    ],
)
def test_a_bad_config_file_is_one_error_naming_the_file_and_the_key(monkeypatch, tmp_path, text, expected):
    path = _config(monkeypatch, tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load_settings({})
    assert str(error.value).startswith(str(path)) and expected in str(error.value)
    assert "\n" not in str(error.value)


def test_a_bad_environment_variable_is_named(monkeypatch):
    monkeypatch.setenv("DEVRAG_MAX_FILE_BYTES", "big")
    with pytest.raises(ConfigError, match="environment DEVRAG_MAX_FILE_BYTES: Input should be a valid int"):
        load_settings({})


def test_setting_a_key_keeps_the_other_keys_and_comments(tmp_path):
    path = tmp_path / "new" / "config.toml"
    set_config_value(path, "rerank_model", "/models/ré ranker")
    assert tomllib.loads(path.read_text()) == {"rerank_model": "/models/ré ranker"}
    path.write_text('# mine\ndevice = "cpu"  # this box has no GPU\nrerank_model = "old"\n[tool]\n')
    with pytest.raises(ConfigError, match="unknown key 'tool'"):
        set_config_value(path, "rerank_model", "/new")
    path.write_text('# mine\ndevice = "cpu"  # this box has no GPU\nrerank_model = "old"\n')
    set_config_value(path, "rerank_model", "/new")
    set_config_value(path, "max_file_bytes", "5000")
    assert path.read_text() == (
        '# mine\ndevice = "cpu"  # this box has no GPU\nrerank_model = "/new"\nmax_file_bytes = 5000\n'
    )
    with pytest.raises(ConfigError, match="max_file_bytes: Input should be a valid integer"):
        set_config_value(path, "max_file_bytes", "a lot")


def test_the_settings_choose_the_stale_age_and_the_recency_weight(monkeypatch):
    monkeypatch.setenv("DEVRAG_STALE_AFTER_DAYS", "90")
    monkeypatch.setenv("DEVRAG_RECENCY_WEIGHT", "0.5")
    config = search_config(Settings())
    assert (config.stale_after_days, config.recency_weight) == (90, 0.5)
    assert (search_config(Settings(stale_after_days=30)).stale_after_days, SearchConfig().recency_weight) == (
        30,
        0.0,
    )
