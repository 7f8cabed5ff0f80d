"""A command imports only the libraries it uses: `--help` and `status` load no model, a search no torch.

A CLI search hands the query to the index's owner, which loads the models: the command itself loads
no model library, and the owner loads ONNX Runtime and never torch.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from devrag.retrieval.owned_store import OwnedStore
from tests.server.mcp_support import server_env
from tests.support import EMBED_MODEL, SAMPLE, GitRepo, onnx_export_missing

MODEL_LIBRARIES = ("torch", "sentence_transformers", "transformers", "onnxruntime", "fastembed", "tokenizers")
# What only writing the index needs: Git, the secret scanner, the Markdown chunker's YAML front matter.
INGEST_LIBRARIES = ("git", "detect_secrets", "yaml", "devrag.ingest.pipeline")
WATCHED = MODEL_LIBRARIES + INGEST_LIBRARIES
# Runs one CLI command in a fresh interpreter, then reports which of those libraries it imported.
DRIVER = f"""
import json, sys
from devrag.server.cli import main
code = None
try:
    main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
print(json.dumps({{"code": code, "loaded": sorted(m for m in {WATCHED!r} if m in sys.modules)}}))
"""


def _imports(index_dir: Path, *args: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, *args], env=server_env(index_dir), capture_output=True, text=True
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["code"] in (0, None), done.stderr
    return list(report["loaded"])


def test_help_and_status_import_no_model_library(tmp_path):
    assert not set(_imports(tmp_path / "index", "--help")).intersection(MODEL_LIBRARIES)
    assert not set(_imports(tmp_path / "index", "status")).intersection(MODEL_LIBRARIES)


@pytest.mark.model
def test_a_search_on_the_default_runtime_loads_onnx_runtime_in_the_owner_and_never_torch(tmp_path):
    if reason := onnx_export_missing(EMBED_MODEL):
        pytest.skip(reason)
    repo = GitRepo(tmp_path / "repo")
    repo.commit({p.relative_to(SAMPLE).as_posix(): p.read_text() for p in SAMPLE.rglob("*.md")})
    assert "torch" not in _imports(tmp_path / "index", "ingest", str(repo.path), "--name", "ops")
    # No model library and nothing of ingest in the command: the owner searches.
    assert _imports(tmp_path / "index", "search", "disk full on a database host", "--no-rerank") == []
    store = OwnedStore(tmp_path / "index")  # the owner that answered, still up for its idle timeout
    owner_pid = store.owner_pid()
    store.close()
    libraries = {Path(line.split()[-1]).name for line in _maps(owner_pid) if ".so" in line}
    assert any(name.startswith("libonnxruntime") or "onnxruntime_pybind" in name for name in libraries)
    assert not any("torch" in name for name in libraries)


def _maps(pid: int) -> list[str]:
    """The shared objects a process has mapped: its native imports, seen from outside."""
    return Path(f"/proc/{pid}/maps").read_text().splitlines()
