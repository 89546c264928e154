"""Top-k search over embeddings: exact and chunked with numpy, or through a faiss index."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

SearchBackend = Literal["exact", "faiss-flat", "faiss-hnsw"]
DEFAULT_SEARCH: SearchBackend = "exact"


@dataclass
class SearchResult:
    """Ranked document ids and scores for a list of queries, best first.

    ``doc_ids[i]`` and ``scores[i]`` belong to the i-th query; a query can have fewer than k hits
    (BM25 finds nothing for a query with no known term).
    """

    doc_ids: list[list[str]]
    scores: list[np.ndarray]

    def as_run(self, query_ids: list[str]) -> dict[str, dict[str, float]]:
        """The result as a run: ``{query id: {doc id: score}}`` (the format of pytrec_eval and ranx)."""
        return {
            query_id: {doc_id: float(score) for doc_id, score in zip(ids, scores, strict=True)}
            for query_id, ids, scores in zip(query_ids, self.doc_ids, self.scores, strict=True)
        }


def exact_top_k(
    queries: np.ndarray,
    documents: np.ndarray,
    k: int,
    query_chunk_size: int = 256,
    document_chunk_size: int = 65536,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-k, never holding more than one chunk × chunk score block.

    Returns ``(indices, scores)`` of shape ``(len(queries), min(k, len(documents)))``, best first.

    Example::

        >>> q = np.array([[1.0, 0.0]], dtype=np.float32); d = np.array([[0.1, 0], [0.9, 0], [0.5, 0]], dtype=np.float32)
        >>> exact_top_k(q, d, k=2)[0].tolist()
        [[1, 2]]
    """
    k = min(k, len(documents))
    top_indices = np.empty((len(queries), k), dtype=np.int64)
    top_scores = np.empty((len(queries), k), dtype=np.float32)
    for q_start in range(0, len(queries), query_chunk_size):
        q_block = queries[q_start : q_start + query_chunk_size]
        best_scores = np.full((len(q_block), 0), -np.inf, dtype=np.float32)
        best_indices = np.zeros((len(q_block), 0), dtype=np.int64)
        for d_start in range(0, len(documents), document_chunk_size):
            scores = q_block @ documents[d_start : d_start + document_chunk_size].T
            keep = min(k, scores.shape[1])
            part = np.argpartition(-scores, keep - 1, axis=1)[:, :keep]
            # Merge this block's candidates with the running best, then cut back to k.
            best_scores = np.concatenate([best_scores, np.take_along_axis(scores, part, axis=1)], axis=1)
            best_indices = np.concatenate([best_indices, part + d_start], axis=1)
            if best_scores.shape[1] > k:
                cut = np.argpartition(-best_scores, k - 1, axis=1)[:, :k]
                best_scores = np.take_along_axis(best_scores, cut, axis=1)
                best_indices = np.take_along_axis(best_indices, cut, axis=1)
        order = np.argsort(-best_scores, axis=1, kind="stable")
        top_scores[q_start : q_start + len(q_block)] = np.take_along_axis(best_scores, order, axis=1)
        top_indices[q_start : q_start + len(q_block)] = np.take_along_axis(best_indices, order, axis=1)
    return top_indices, top_scores


def faiss_top_k(
    queries: np.ndarray, documents: np.ndarray, k: int, index_type: Literal["flat", "hnsw"] = "flat"
) -> tuple[np.ndarray, np.ndarray]:
    """Inner-product top-k with faiss: ``flat`` is exact, ``hnsw`` approximate and fast on large corpora."""
    try:
        import faiss
    except ImportError:
        raise ImportError("faiss search needs faiss-cpu: pip install 'syneg[faiss]'") from None
    dimension = documents.shape[1]
    if index_type == "hnsw":
        index = faiss.IndexHNSWFlat(dimension, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = max(64, 2 * k)
    else:
        index = faiss.IndexFlatIP(dimension)
    index.add(np.ascontiguousarray(documents, dtype=np.float32))
    scores, indices = index.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, len(documents)))
    return indices.astype(np.int64), scores


def top_k(queries: np.ndarray, documents: np.ndarray, k: int, backend: SearchBackend = DEFAULT_SEARCH) -> tuple[np.ndarray, np.ndarray]:
    if backend == "exact":
        return exact_top_k(queries, documents, k)
    if backend in ("faiss-flat", "faiss-hnsw"):
        return faiss_top_k(queries, documents, k, index_type=backend.removeprefix("faiss-"))
    raise ValueError(f"Unknown search backend {backend!r}; expected exact, faiss-flat or faiss-hnsw")
