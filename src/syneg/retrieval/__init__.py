"""The retrieval layer: BM25, dense encoding and search, and hard-negative mining."""

from __future__ import annotations

from syneg.retrieval.bm25 import BM25Retriever
from syneg.retrieval.dense import DenseRetriever
from syneg.locations import default_cache_dir, resolve_model
from syneg.retrieval.embedding_cache import EmbeddingCache
from syneg.retrieval.encoder import BACKENDS, DenseEncoder
from syneg.retrieval.mining import MiningResult, MiningStats, mine
from syneg.retrieval.search import SearchResult, exact_top_k, faiss_top_k

__all__ = [
    "BACKENDS",
    "BM25Retriever",
    "DenseEncoder",
    "DenseRetriever",
    "EmbeddingCache",
    "MiningResult",
    "MiningStats",
    "SearchResult",
    "default_cache_dir",
    "exact_top_k",
    "faiss_top_k",
    "mine",
    "resolve_model",
]
