"""Export a local sentence-transformers model's transformer to ONNX and quantize it to int8.

Runs once per model and package versions (see model_cache): torch traces the transformer
(token ids -> last hidden states (batch, seq, hidden)) with dynamic batch and length, then ONNX
Runtime quantizes its weights dynamically to int8. Pooling and normalisation stay outside the
graph, in numpy, exactly as sentence-transformers does them.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agent.embed.source import SourceModel

ONNX_FILE = "model.onnx"
OPSET = 17
# Per-channel int8 weights of the MatMuls only: measured here, quantizing the embedding table
# (Gather) too or per-tensor scales cut the lowest cosine to the fp32 model from 0.985 to 0.94.
QUANT_OPS = ["MatMul"]


def export_int8(source: SourceModel, folder: Path) -> None:
    """Write `folder/model.onnx`: the int8 transformer of `source` (fp32 export deleted)."""
    fp32 = folder / "fp32.onnx"
    _export_fp32(source, fp32)
    _quantize(fp32, folder / ONNX_FILE)
    fp32.unlink()


def _export_fp32(source: SourceModel, out: Path) -> None:
    """Trace the transformer with the TorchScript exporter (no onnxscript needed)."""
    import torch
    from transformers import AutoModel

    from agent.embed.transformer import quiet_weight_loading

    with _quiet(), quiet_weight_loading():
        model = AutoModel.from_pretrained(str(source.path), local_files_only=True).eval()
    names = ["input_ids", "attention_mask"]
    if getattr(model.config, "type_vocab_size", 0):
        names.append("token_type_ids")
    example = tuple(torch.ones((2, 8), dtype=torch.long) for _ in names)
    axes = {name: {0: "batch", 1: "sequence"} for name in [*names, "hidden"]}
    with _quiet(), torch.no_grad():
        torch.onnx.export(
            _hidden_states_module(model, names),
            example,
            str(out),
            input_names=names,
            output_names=["hidden"],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )


def _quantize(fp32: Path, out: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet():
        quantize_dynamic(
            str(fp32), str(out), weight_type=QuantType.QInt8,
            op_types_to_quantize=QUANT_OPS, per_channel=True,
        )


def _hidden_states_module(model: Any, names: list[str]) -> Any:
    import torch

    class HiddenStates(torch.nn.Module):
        """Positional inputs -> last_hidden_state, so the trace has one plain output."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: Any) -> Any:
            return self.model(**dict(zip(names, inputs))).last_hidden_state

    return HiddenStates()



@contextmanager
def _quiet() -> Iterator[None]:
    """Hide tracer warnings and the quantizer's advice to pre-process; errors still raise."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)
