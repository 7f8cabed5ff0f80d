"""Both runtimes, torch and ONNX Runtime, through one contract: the same models give the same numbers.

The onnx side runs the exports `make install` writes; without them it is skipped, saying so.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from devrag.retrieval.errors import ModelLoadError
from devrag.retrieval.factory import open_embedder, open_reranker, resolve_runtime
from devrag.retrieval.models import Embedder
from devrag.retrieval.onnx_models import (
    INT8_MODEL_FILE,
    OneAtATime,
    OnnxEmbedder,
    OnnxReranker,
    cpu_workers,
    export_dir,
    resolve_onnx_precision,
)
from devrag.retrieval.rerank import DEFAULT_RERANK_MODEL, CachedReranker
from devrag.server.settings import ConfigError, Settings, embedder_for, load_settings, reranker_for
from tests.support import EMBED_MODEL, ETCD_PASSAGES, ETCD_QUERY, ONNX_DIR, RERANKER, onnx_export_missing

pytestmark = pytest.mark.model
RUNTIMES = ["torch", "onnx"]

QUERY = ETCD_QUERY
# A passage far beyond the 192 word pieces a pair is cut to: both runtimes cut it alike.
PASSAGES = [*ETCD_PASSAGES, ETCD_PASSAGES[-1] * 30]
TEXTS = [
    "Disk full on db1: run `journalctl --vacuum-size=500M` and check /var/log.",
    "pods stuck in CrashLoopBackOff after a deploy",
    "Wörter, café, naïve: accents and ünïcödé survive tokenising",
    "a long page " * 400,  # beyond what the model reads: both runtimes cut it at the same place
]


def _skip_without(model: str, runtime: str) -> None:
    reason = onnx_export_missing(model) if runtime == "onnx" else None
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def embedders() -> Callable[[str], Embedder]:
    loaded: dict[str, Embedder] = {}

    def get(runtime: str) -> Embedder:
        _skip_without(EMBED_MODEL, runtime)
        if runtime not in loaded:
            loaded[runtime] = open_embedder(EMBED_MODEL, runtime, "cpu", ONNX_DIR)  # type: ignore[arg-type]
        return loaded[runtime]

    return get


@pytest.fixture(scope="module")
def rerankers() -> Callable[[str], CachedReranker]:
    loaded: dict[str, CachedReranker] = {}

    def get(runtime: str) -> CachedReranker:
        if not RERANKER.exists():
            pytest.skip(f"reranker weights not found at {RERANKER}")
        _skip_without(str(RERANKER), runtime)
        if runtime not in loaded:
            reranker = open_reranker(str(RERANKER), runtime, "cpu", ONNX_DIR, "float32")  # type: ignore[arg-type]
            assert isinstance(reranker, CachedReranker)
            loaded[runtime] = reranker
        return loaded[runtime]

    return get


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_the_embedder_reads_what_its_tokenizer_says_and_gives_unit_vectors(embedders, runtime):
    embedder = embedders(runtime)
    assert embedder.name == EMBED_MODEL and embedder.dim == 384
    assert embedder.max_tokens == 256 - 2, "all-MiniLM-L6-v2 reads 256 word pieces, [CLS] and [SEP] included"
    assert embedder.count_tokens("disk full") == 2
    assert embedder.count_tokens(TEXTS[3]) == 1200, "counting never stops at the model's limit"
    vectors = np.array(embedder.embed(TEXTS))
    assert vectors.shape == (len(TEXTS), 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.embed([]) == []
    near, far = np.array(embedder.embed(["the disk of db1 is full", "rotate the TLS certificate"]))
    assert vectors[0] @ near > vectors[0] @ far


def test_both_runtimes_embed_alike_and_count_alike(embedders):
    torch_side, onnx_side = embedders("torch"), embedders("onnx")
    assert np.abs(np.array(torch_side.embed(TEXTS)) - np.array(onnx_side.embed(TEXTS))).max() < 1e-4
    assert [torch_side.count_tokens(t) for t in TEXTS] == [onnx_side.count_tokens(t) for t in TEXTS]
    assert torch_side.max_tokens == onnx_side.max_tokens


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_the_reranker_puts_the_right_passage_first_and_caches_its_scores(rerankers, runtime):
    reranker = rerankers(runtime)
    scores = reranker.score(QUERY, PASSAGES)
    assert max(range(len(PASSAGES)), key=lambda i: scores[i]) == 0
    assert reranker.predict([]) == []
    calls: list[int] = []
    original = reranker.predict
    reranker.predict = lambda pairs: calls.append(len(pairs)) or original(pairs)  # type: ignore[method-assign]
    try:
        assert reranker.score(QUERY, PASSAGES[::-1]) == scores[::-1]
        assert reranker.score(QUERY, [*PASSAGES[:2], "a passage not seen before"])[:2] == scores[:2]
    finally:
        del reranker.predict
    assert calls == [1], "only the new pair is scored"


def test_both_runtimes_score_pairs_alike(rerankers):
    pairs = [(QUERY, p) for p in PASSAGES]
    exact, onnx = rerankers("torch").predict(pairs), rerankers("onnx").predict(pairs)
    assert max(abs(a - b) for a, b in zip(exact, onnx, strict=True)) < 1e-3


def test_the_runtime_is_a_setting_and_onnx_is_the_default(monkeypatch):
    if onnx_export_missing(EMBED_MODEL) or onnx_export_missing(str(RERANKER)) or not RERANKER.exists():
        pytest.skip(onnx_export_missing(EMBED_MODEL) or f"no ONNX export of {RERANKER} in {ONNX_DIR}")
    monkeypatch.setenv("DEVRAG_ONNX_DIR", str(ONNX_DIR))
    monkeypatch.setenv("DEVRAG_RERANK_MODEL", str(RERANKER))
    assert Settings().runtime == "onnx"
    assert isinstance(embedder_for(Settings()), OnnxEmbedder)
    assert isinstance(reranker_for(Settings()), OnnxReranker)
    monkeypatch.setenv("DEVRAG_RUNTIME", "torch")
    assert not isinstance(embedder_for(Settings()), OnnxEmbedder)


def test_auto_picks_torch_only_where_cuda_is(monkeypatch):
    import torch

    assert resolve_runtime("auto") == ("torch" if torch.cuda.is_available() else "onnx")
    assert resolve_runtime("torch") == "torch" and resolve_runtime("onnx") == "onnx"


def test_a_bad_runtime_or_bfloat16_on_onnx_is_one_line_naming_the_setting(monkeypatch):
    monkeypatch.setenv("DEVRAG_RUNTIME", "tensorflow")
    with pytest.raises(ConfigError, match="environment DEVRAG_RUNTIME: .*'onnx', 'torch' or 'auto'"):
        load_settings({})
    monkeypatch.setenv("DEVRAG_RUNTIME", "onnx")
    monkeypatch.setenv("DEVRAG_RERANK_PRECISION", "bfloat16")
    with pytest.raises(ConfigError, match="bfloat16 needs runtime torch"):
        load_settings({})


def test_a_model_with_no_export_that_fastembed_does_not_carry_says_how_to_export_it(tmp_path):
    (tmp_path / "my-reranker").mkdir()
    with pytest.raises(ModelLoadError) as error:
        OnnxReranker(str(tmp_path / "my-reranker"), onnx_dir=tmp_path / "onnx")
    message = str(error.value)
    assert "holds no ONNX export of it" in message and "\n" not in message
    assert f"--rerank-model {tmp_path / 'my-reranker'}" in message and "DEVRAG_RUNTIME=torch" in message
    assert "DEVRAG_RERANK_MODEL" in message and "--no-rerank" in message
    with pytest.raises(ModelLoadError, match="there is no folder /nonexistent/reranker.*--no-rerank"):
        OnnxReranker("/nonexistent/reranker", onnx_dir=tmp_path / "onnx")
    with pytest.raises(ModelLoadError, match="--embed-model devrag-tests/no-such-embedder"):
        OnnxEmbedder("devrag-tests/no-such-embedder", onnx_dir=tmp_path / "onnx")


def test_the_int8_reranker_ranks_as_float32_and_scores_a_pair_alike_in_any_company(rerankers):
    if not (export_dir(ONNX_DIR, str(RERANKER)) / INT8_MODEL_FILE).exists():
        pytest.skip(f"no int8 export of {RERANKER} in {ONNX_DIR}: run `make onnx-models`")
    int8 = open_reranker(str(RERANKER), "onnx", "cpu", ONNX_DIR, "int8")
    assert isinstance(int8, OnnxReranker) and int8.precision == "int8"
    pairs = [(QUERY, p) for p in PASSAGES]
    together = int8.predict(pairs)
    exact = rerankers("onnx").predict(pairs)
    assert sorted(range(len(pairs)), key=lambda i: -together[i])[0] == 0
    assert together != exact, "the int8 graph is not the float32 one"
    assert max(abs(a - b) for a, b in zip(exact, together, strict=True)) < 2.5
    # int8 quantises activations per call: scored one by one, a pair's score never depends on the others
    assert [int8.predict([pair])[0] for pair in pairs] == together


def test_calls_keep_their_order_and_run_side_by_side_on_single_threaded_sessions(embedders, rerankers):
    if cpu_workers() < 2:
        pytest.skip("this process may run on one CPU only: no second worker to run beside the first")
    both_running = threading.Barrier(2, timeout=30)  # broken unless two calls are in flight at once

    def call(item: int) -> tuple[int, str]:
        both_running.wait()
        return item, threading.current_thread().name

    done = OneAtATime("test").map(call, [0, 1])
    assert [item for item, _ in done] == [0, 1]
    assert len({thread for _, thread in done}) == 2
    # Each model runs on one thread per call; the workers are what use the other CPUs.
    for model in (embedders("onnx"), rerankers("onnx")):
        assert isinstance(model, OnnxEmbedder | OnnxReranker)
        assert model.model.model.model.get_session_options().intra_op_num_threads == 1
    embedder = embedders("onnx")
    assert embedder.embed(TEXTS) == [embedder.embed([text])[0] for text in TEXTS]


def test_a_precision_of_the_other_runtime_is_refused_naming_both(monkeypatch):
    monkeypatch.setenv("DEVRAG_RUNTIME", "torch")
    monkeypatch.setenv("DEVRAG_RERANK_PRECISION", "int8")
    with pytest.raises(ConfigError) as error:
        load_settings({})
    assert str(error.value) == "rerank_precision int8 needs runtime onnx; torch runs float32 or bfloat16."
    with pytest.raises(ModelLoadError, match="rerank_precision int8 is not the torch runtime's"):
        open_reranker(str(RERANKER), "torch", "cpu", ONNX_DIR, "int8")
    with pytest.raises(ModelLoadError, match="rerank_precision bfloat16 is not the onnx runtime's"):
        open_reranker(str(RERANKER), "onnx", "cpu", ONNX_DIR, "bfloat16")


def test_auto_runs_the_int8_graph_where_the_export_has_one_and_float32_where_it_has_not(tmp_path):
    export = export_dir(ONNX_DIR, str(RERANKER))
    if not (export / INT8_MODEL_FILE).exists():
        pytest.skip(f"no int8 export of {RERANKER} in {ONNX_DIR}: run `make onnx-models`")
    assert OnnxReranker(str(RERANKER), onnx_dir=ONNX_DIR).precision == "int8"
    assert open_reranker(str(RERANKER), "onnx", "cpu", ONNX_DIR, "float32").precision == "float32"  # type: ignore[attr-defined]
    # An export made before int8 (its float32 graph only) still answers, in float32.
    older = export_dir(tmp_path / "onnx", str(RERANKER))
    older.mkdir(parents=True)
    for file in export.iterdir():
        if file.name != INT8_MODEL_FILE:
            (older / file.name).symlink_to(file)
    reranker = OnnxReranker(str(RERANKER), onnx_dir=tmp_path / "onnx")
    assert reranker.precision == "float32" and reranker.predict([(QUERY, PASSAGES[0])])
    # fastembed's own downloads carry no int8 graph: auto runs them in float32.
    assert resolve_onnx_precision(DEFAULT_RERANK_MODEL, tmp_path / "empty", "auto") == "float32"
    assert resolve_onnx_precision(DEFAULT_RERANK_MODEL, tmp_path / "empty", "int8") == "int8"


def test_int8_without_an_export_says_how_to_make_one(tmp_path):
    with pytest.raises(ModelLoadError, match="int8 runs only from an export.*onnx_export"):
        OnnxReranker(DEFAULT_RERANK_MODEL, onnx_dir=tmp_path / "onnx", precision="int8")


def test_exports_are_named_by_folder_or_hub_name(tmp_path: Path):
    from devrag.retrieval.onnx_models import export_name

    assert export_name(EMBED_MODEL) == "sentence-transformers--all-MiniLM-L6-v2"
    assert export_name(str(tmp_path / "models" / "my-reranker")) == "my-reranker"
