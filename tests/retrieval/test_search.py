from __future__ import annotations

import numpy as np
import pytest

from syneg.retrieval.search import exact_top_k, faiss_top_k


def brute_force(queries, documents, k):
    scores = queries @ documents.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(scores, order, axis=1)


@pytest.mark.parametrize(("query_chunk", "doc_chunk"), [(7, 13), (256, 65536), (1, 1)])
def test_chunked_exact_search_equals_brute_force(query_chunk, doc_chunk):
    rng = np.random.default_rng(0)
    queries = rng.normal(size=(23, 16)).astype(np.float32)
    documents = rng.normal(size=(101, 16)).astype(np.float32)
    indices, scores = exact_top_k(queries, documents, k=10, query_chunk_size=query_chunk, document_chunk_size=doc_chunk)
    expected_indices, expected_scores = brute_force(queries, documents, 10)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-5)
    assert (indices == expected_indices).mean() > 0.99  # ties aside, the same documents


def test_k_larger_than_corpus():
    documents = np.eye(3, dtype=np.float32)
    indices, scores = exact_top_k(documents[:1], documents, k=10)
    assert indices.tolist() == [[0, 1, 2]] and scores.shape == (1, 3)


def test_faiss_flat_is_exact():
    pytest.importorskip("faiss")
    rng = np.random.default_rng(1)
    queries, documents = rng.normal(size=(5, 8)).astype(np.float32), rng.normal(size=(50, 8)).astype(np.float32)
    _, scores = faiss_top_k(queries, documents, k=5)
    np.testing.assert_allclose(scores, brute_force(queries, documents, 5)[1], rtol=1e-5)
