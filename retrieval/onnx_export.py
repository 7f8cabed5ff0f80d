"""Export local torch models to ONNX, where the onnx runtime (`devrag.retrieval.onnx_models`) finds them.

Why: fastembed downloads its own ONNX copies of the hub models, but a machine without the hub
(CI, an air-gapped laptop) has only the torch weights: the bundled all-MiniLM-L6-v2 and a local
cross-encoder folder. This writes each as `<onnx_dir>/<export_name(model)>/model.onnx` beside its
tokenizer files, in float32, as `torch.onnx.export` traces it (seconds per model). It needs torch,
transformers and onnx (`pip install 'devrag[torch]'`); devrag itself runs the result without them.

    python -m devrag.retrieval.onnx_export --onnx-dir ~/.cache/devrag/onnx \
        --embed-model sentence-transformers/all-MiniLM-L6-v2 --rerank-model ../shared/models/<folder>
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any

from devrag.retrieval.errors import DevragError
from devrag.retrieval.models import quiet_model_loading, resolve_model_path
from devrag.retrieval.onnx_models import EXPORT_MANIFEST, INT8_MODEL_FILE, MODEL_FILE, export_dir

EXPORT_VERSION = 2  # bump when the exported graphs change, so existing exports are redone (2: int8 reranker)
OPSET = 17
HIDDEN_STATES = "last_hidden_state"  # (batch, sequence, hidden): fastembed pools it
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


class ExportError(DevragError):
    """A model cannot be exported as asked; the message names the model and why."""


def export_embedder(name: str, onnx_dir: Path, force: bool = False) -> Path:
    """The bare transformer of a mean-pooled sentence-transformers model; fastembed pools and normalises.

    Its tokenizer config gets the model's `max_seq_length` as `model_max_length`, because that, not
    the tokenizer's 512, is where sentence-transformers cuts a text, and fastembed cuts where it says.

    Raises:
        ExportError: the model does not pool by mean (the onnx runtime's only pooling).
    """
    folder = _local_folder(name)
    out = export_dir(onnx_dir, name)
    if not force and _is_current(out, folder, "embedder"):
        return out
    pooling = _json(folder / "1_Pooling" / "config.json")
    if not pooling.get("pooling_mode_mean_tokens"):
        raise ExportError(f"{name}: only mean-pooled sentence-transformers models can be exported.")
    from transformers import AutoModel

    model = AutoModel.from_pretrained(folder, attn_implementation="eager")
    max_length = int(_json(folder / "sentence_bert_config.json").get("max_seq_length", 512))
    _export(model, folder, out, HIDDEN_STATES, {"model_max_length": max_length})
    _write_manifest(out, name, folder, "embedder")
    return out


def export_reranker(name: str, onnx_dir: Path, force: bool = False) -> Path:
    """A sequence-classification cross-encoder whose one logit is its score (as its CrossEncoder's).

    The shared MS MARCO L12 copy holds float32 weights dequantised from an int8 ONNX file: its
    export is a plain float32 graph of exactly the weights torch runs. Beside it goes the same graph
    with dynamic int8 weights (`precision="int8"` of `OnnxReranker`).

    Raises:
        ExportError: the model has more than one label.
    """
    folder = _local_folder(name)
    out = export_dir(onnx_dir, name)
    if not force and _is_current(out, folder, "reranker"):
        return out
    if len(_json(folder / "config.json").get("id2label", {"0": "score"})) != 1:
        raise ExportError(f"{name}: a reranker must have one output label.")
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(folder, attn_implementation="eager")
    _export(model, folder, out, "logits", {})
    _quantize(out)
    _write_manifest(out, name, folder, "reranker")
    return out


def _local_folder(name: str) -> Path:
    """The model's folder: itself, the bundled all-MiniLM-L6-v2, or its copy in the hub cache."""
    path = resolve_model_path(name)
    if Path(path).expanduser().is_dir():
        return Path(path).expanduser().resolve()
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(path))
    except Exception as exc:  # any hub or cache failure: the model is simply not here
        raise ExportError(f"{name}: not a local folder and not in the Hugging Face cache ({exc}).") from exc


def _export(model: Any, folder: Path, out: Path, output: str, tokenizer_overrides: dict[str, Any]) -> None:
    """Trace `model` into `out` (written beside it, then moved in: a failed export leaves no half)."""
    import torch

    class OneOutput(torch.nn.Module):
        """The traced graph returns one named tensor, not a transformers ModelOutput."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            kwargs = {"attention_mask": attention_mask, "token_type_ids": token_type_ids}
            return getattr(self.model(input_ids=input_ids, **kwargs), output)

    scratch = out.with_name(out.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    inputs = ("input_ids", "attention_mask", "token_type_ids")
    sample = (torch.ones((2, 16), dtype=torch.long),) * 2 + (torch.zeros((2, 16), dtype=torch.long),)
    axes = {name: {0: "batch", 1: "sequence"} for name in inputs}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on shapes concern other models' branches
        torch.onnx.export(
            OneOutput().eval(),
            sample,
            str(scratch / MODEL_FILE),
            input_names=list(inputs),
            output_names=[output],
            dynamic_axes={**axes, output: axes["input_ids"] if output == HIDDEN_STATES else {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
    for file in (*TOKENIZER_FILES, "config.json"):
        if (folder / file).exists():
            shutil.copyfile(folder / file, scratch / file)
    config = {**_json(folder / "tokenizer_config.json"), **tokenizer_overrides}
    (scratch / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    shutil.rmtree(out, ignore_errors=True)
    scratch.replace(out)


def _quantize(out: Path) -> None:
    """The float32 graph with int8 weights, activations quantised per call (ONNX Runtime's dynamic
    quantisation: per-tensor signed weights, the scheme the shared L12 copy's weights came from)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    scratch = out / (INT8_MODEL_FILE + ".partial")
    logging.disable(logging.WARNING)  # its advice to pre-process concerns convolutional image models
    try:
        quantize_dynamic(out / MODEL_FILE, scratch, weight_type=QuantType.QInt8)
    finally:
        logging.disable(logging.NOTSET)
    scratch.replace(out / INT8_MODEL_FILE)


def _stamp(folder: Path, kind: str) -> dict[str, Any]:
    """What an export was made from: a changed weights file or exporter means a new export."""
    weights = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    return {
        "kind": kind,
        "export_version": EXPORT_VERSION,
        "source": str(folder),
        "weights": {w.name: w.stat().st_size for w in weights},
    }


def _is_current(out: Path, folder: Path, kind: str) -> bool:
    manifest = out / EXPORT_MANIFEST
    if not (out / MODEL_FILE).exists() or not manifest.exists():
        return False
    stamp = _stamp(folder, kind)
    recorded = _json(manifest)
    return {key: recorded.get(key) for key in stamp} == stamp


def _write_manifest(out: Path, name: str, folder: Path, kind: str) -> None:
    manifest = {"model": name, **_stamp(folder, kind)}
    (out / EXPORT_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def _json(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--onnx-dir", type=Path, required=True, help="Where exports are written.")
    parser.add_argument("--embed-model", action="append", default=[], help="Embedding model to export.")
    parser.add_argument("--rerank-model", action="append", default=[], help="Cross-encoder to export.")
    parser.add_argument("--force", action="store_true", help="Export again even when an export is current.")
    args = parser.parse_args(argv)
    if any(importlib.util.find_spec(needed) is None for needed in ("torch", "transformers", "onnx")):
        sys.exit("onnx_export needs torch, transformers and onnx: pip install 'devrag[torch]'")
    quiet_model_loading()
    jobs = [(export_embedder, m) for m in args.embed_model]
    jobs += [(export_reranker, m) for m in args.rerank_model]
    for export, model in jobs:
        try:
            out = export(model, args.onnx_dir.expanduser(), args.force)
        except DevragError as exc:
            sys.exit(str(exc))
        print(f"{model}: {out}")


if __name__ == "__main__":
    main()
