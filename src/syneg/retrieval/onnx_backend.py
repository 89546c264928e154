"""Sentence-transformers models run by ONNX Runtime, in fp32 or with int8 dynamic quantization.

sentence-transformers' own ONNX backend needs ``optimum-onnx``, which does not install beside
transformers 5, so the export is done here: the whole model (transformer, pooling, normalization)
becomes one ONNX graph through ``torch.onnx.export``, quantized with
``onnxruntime.quantization.quantize_dynamic`` (per-channel weights with ``reduce_range``, which keeps
int8 accurate on CPUs without VNNI). Exports are stored in the syneg cache, keyed by the model's
fingerprint, so each model is exported once. Tokenization is the model's own, so truncation and
special tokens are exactly those of sentence-transformers.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

# The exports' folder under the syneg cache root, one subfolder per model fingerprint.
EXPORTS_FOLDER = "onnx"
# The int8 graph's file in a model's export folder, beside the fp32 ``model.onnx``.
QUANTIZED_FILE = "model_qint8.onnx"


class OnnxSentenceEncoder:
    """An ONNX Runtime twin of a sentence-transformers model, with an ``encode`` like its own.

    Args:
        model_path: A sentence-transformers model folder.
        folder: Where the exported graphs are stored (created if needed).
        quantize: Run the int8 dynamically quantized graph instead of the fp32 one.
        max_seq_length: Truncation length; None keeps the model's.
    """

    def __init__(self, model_path: str, folder: str | Path, quantize: bool = False, max_seq_length: int | None = None) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise ImportError("The onnx backends need onnxruntime and onnx: pip install onnxruntime onnx") from None
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(model_path, device="cpu")
        if max_seq_length is not None:
            self.model.max_seq_length = max_seq_length
        probe = self.model.preprocess(["probe"])
        # Tensors become graph inputs; the rest (e.g. ``modality``) are constants of the graph.
        self.input_names = sorted(k for k, v in probe.items() if hasattr(v, "numpy"))
        self._constants = {k: v for k, v in probe.items() if k not in self.input_names}
        folder = Path(folder)
        fp32_path = folder / "model.onnx"
        if not fp32_path.exists():
            self._export(fp32_path)
        os.utime(folder)  # marks the last use, which `syneg cache prune --older-than` reads
        path = fp32_path
        if quantize:
            path = folder / QUANTIZED_FILE
            if not path.exists():
                _quantize(fp32_path, path)
        import torch

        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        # torch's thread count (OMP_NUM_THREADS, torch.set_num_threads) governs every backend alike.
        options.intra_op_num_threads = torch.get_num_threads()
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.path = path

    def _export(self, path: Path) -> None:
        import torch

        for parameter in self.model.parameters():  # tracing refuses weights that require grad
            parameter.requires_grad_(False)
        names, constants = self.input_names, self._constants

        class _Graph(torch.nn.Module):
            def __init__(self, model: torch.nn.Module) -> None:
                super().__init__()
                self.model = model  # a submodule, so its weights export as initializers that can be quantized

            def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
                return self.model({**dict(zip(names, inputs, strict=True)), **constants})["sentence_embedding"]

        sample = self.model.preprocess(["a first example sentence", "a second, longer example sentence for export"])
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp.onnx")
        logger.info("Exporting %s to ONNX (once per model) at %s", self.model.model_card_data.base_model or "the model", path)
        with torch.no_grad():
            torch.onnx.export(
                _Graph(self.model).eval(),
                tuple(sample[n] for n in names),
                str(temporary),
                input_names=names,
                output_names=["sentence_embedding"],
                dynamic_axes={**{n: {0: "batch", 1: "tokens"} for n in names}, "sentence_embedding": {0: "batch"}},
                opset_version=17,
                dynamo=False,
            )
        temporary.replace(path)

    def encode(self, sentences: list[str], batch_size: int = 64, **_: object) -> np.ndarray:
        """Embed texts in order; callers sort by length beforehand to keep padding low."""
        outputs = []
        for start in range(0, len(sentences), batch_size):
            features = self.model.preprocess(sentences[start : start + batch_size])
            feeds = {name: features[name].numpy().astype(np.int64) for name in self.input_names}
            outputs.append(self.session.run(None, feeds)[0])
        embeddings = np.vstack(outputs).astype(np.float32) if outputs else np.zeros((0, 0), np.float32)
        norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
        return embeddings / np.maximum(norms, 1e-12)


def _quantize(source: Path, target: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    temporary = target.with_suffix(".tmp.onnx")
    quantize_dynamic(
        str(source),
        str(temporary),
        weight_type=QuantType.QInt8,
        per_channel=True,
        reduce_range=True,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    temporary.replace(target)
