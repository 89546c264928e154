"""Dense encoding and search as Ray Data jobs (see :mod:`syneg.engine`).

Encoding: the texts the cache lacks, longest first (as the local path orders them, so batches pad
little), become a Ray Dataset of ``(position, text)`` rows; ``map_batches`` runs them through a pool of
:class:`EncoderActor`, each holding one :class:`DenseEncoder` (the model is loaded once per actor) that
encodes its batch and writes it to the shared embedding cache as one shard, exactly as the local path
writes a chunk. A job stopped part way keeps every finished batch, and the next run, local or Ray,
encodes only what is missing. On a machine with GPUs each actor takes one (``num_gpus=1``).

Search: the corpus embeddings go into Ray's object store once; blocks of queries are ranked against
them by :func:`syneg.retrieval.search.top_k`, the local path's function, in parallel tasks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from syneg.engine import ACTOR_CPUS, RayEngine

if TYPE_CHECKING:
    from syneg.retrieval.encoder import DenseEncoder

QUERY_BLOCK = 256  # queries ranked per task: the local path's chunk of queries


class EncoderActor:
    """One model in one Ray actor: encodes batches of rows and stores them in the embedding cache."""

    def __init__(self, model: str, backend: str, batch_size: int, max_seq_length: int | None, cache_dir: str | None,
                 use_cache: bool) -> None:
        from syneg.retrieval.encoder import DenseEncoder

        self.encoder = DenseEncoder(model, backend=backend, batch_size=batch_size, max_seq_length=max_seq_length,
                                    cache_dir=cache_dir, use_cache=use_cache, show_progress=False)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        texts = [str(text) for text in batch["text"]]
        return {"position": batch["position"], "vector": self.encoder.encode(texts)}


def encode_on_ray(engine: RayEngine, encoder: DenseEncoder, texts: list[str]) -> np.ndarray:
    """``texts`` (distinct, none in the cache) encoded by an actor pool; rows in the order of ``texts``."""
    ray = engine.connect()
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    rows = [{"position": i, "text": texts[i]} for i in order]
    gpus = 1 if encoder.choice.device == "cuda" else 0
    dataset = ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows) // encoder.batch_size, 64))).map_batches(
        EncoderActor,
        fn_constructor_kwargs={
            "model": encoder.model_path, "backend": encoder.backend, "batch_size": encoder.batch_size,
            "max_seq_length": encoder.max_seq_length, "cache_dir": str(encoder.cache_dir), "use_cache": encoder.use_cache,
        },
        batch_size=encoder.batch_size,
        compute=ray.data.ActorPoolStrategy(size=engine.actors),
        num_cpus=0 if gpus else ACTOR_CPUS,
        num_gpus=gpus,
    )
    output: np.ndarray | None = None
    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
        vectors = np.stack(batch["vector"]).astype(np.float32)
        if output is None:
            output = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
        output[batch["position"]] = vectors
    assert output is not None
    return output


def _rank(batch: dict[str, np.ndarray], documents: list[Any], k: int, backend: str) -> dict[str, np.ndarray]:
    import ray

    from syneg.retrieval.search import top_k

    indices, scores = top_k(np.stack(batch["query"]), ray.get(documents[0]), k, backend=backend)
    return {"position": batch["position"], "indices": list(indices), "scores": list(scores)}


def top_k_on_ray(engine: RayEngine, queries: np.ndarray, documents: np.ndarray, k: int, backend: str) -> tuple[np.ndarray, np.ndarray]:
    """:func:`syneg.retrieval.search.top_k` of ``queries`` against ``documents``, query blocks in parallel tasks."""
    ray = engine.connect()
    # In a list: Ray Data hands the reference itself to the tasks, which fetch the array once each.
    documents_ref = [ray.put(np.ascontiguousarray(documents, dtype=np.float32))]
    rows = [{"position": i, "query": queries[i]} for i in range(len(queries))]
    dataset = ray.data.from_items(rows, override_num_blocks=max(1, -(-len(rows) // QUERY_BLOCK))).map_batches(
        _rank, fn_kwargs={"documents": documents_ref, "k": k, "backend": backend}, batch_size=QUERY_BLOCK, num_cpus=ACTOR_CPUS,
    )
    width = min(k, len(documents))
    indices = np.empty((len(queries), width), dtype=np.int64)
    scores = np.empty((len(queries), width), dtype=np.float32)
    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
        indices[batch["position"]] = np.stack(batch["indices"])
        scores[batch["position"]] = np.stack(batch["scores"])
    return indices, scores
