"""Dense retrieval: a corpus encoded once (and cached), searched exactly or through faiss."""

from __future__ import annotations

import numpy as np

from syneg.data import Document
from syneg.retrieval.encoder import DenseEncoder
from syneg.retrieval.search import DEFAULT_SEARCH, SearchBackend, SearchResult, top_k


class DenseRetriever:
    """Cosine-similarity retrieval over a corpus with a sentence-transformers bi-encoder.

    Args:
        corpus: ``{doc id: Document}``; title and text are encoded together.
        encoder: The :class:`DenseEncoder` to use (its cache makes a second run over an unchanged
            corpus encode nothing).
        search: ``exact`` (chunked numpy, never a full queries x corpus matrix), ``faiss-flat``
            (exact) or ``faiss-hnsw`` (approximate).

    Example::

        >>> from syneg.data import load_beir, demo_path
        >>> data = load_beir(demo_path(), split="test")
        >>> retriever = DenseRetriever(data.corpus, DenseEncoder(show_progress=False))
        >>> retriever.search(["Why is jet lag worse flying east?"], k=5).doc_ids[0][:1]  # doctest: +SKIP
        ['d231']
    """

    def __init__(self, corpus: dict[str, Document], encoder: DenseEncoder | None = None, search: SearchBackend = DEFAULT_SEARCH) -> None:
        self.encoder = encoder or DenseEncoder()
        self.search_backend = search
        self.doc_ids = list(corpus)
        self.position = {doc_id: i for i, doc_id in enumerate(self.doc_ids)}
        self.doc_embeddings = self.encoder.encode_documents([corpus[d].full_text for d in self.doc_ids])

    def encode_queries(self, queries: list[str]) -> np.ndarray:
        return self.encoder.encode_queries(queries)

    def search(self, queries: list[str], k: int = 100, query_embeddings: np.ndarray | None = None) -> SearchResult:
        if query_embeddings is None:
            query_embeddings = self.encode_queries(queries)
        if self.encoder.engine is not None:
            indices, scores = self.encoder.engine.top_k(query_embeddings, self.doc_embeddings, k, self.search_backend)
        else:
            indices, scores = top_k(query_embeddings, self.doc_embeddings, k, backend=self.search_backend)
        return SearchResult(
            doc_ids=[[self.doc_ids[i] for i in row if i >= 0] for row in indices],
            scores=[row[indices_row >= 0] for row, indices_row in zip(scores, indices, strict=True)],
        )

    def score(self, query_embedding: np.ndarray, doc_ids: list[str]) -> np.ndarray:
        """Cosine similarity of one encoded query to given documents."""
        rows = [self.position[d] for d in doc_ids]
        return (self.doc_embeddings[rows] @ query_embedding).astype(np.float32)
