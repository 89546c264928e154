from __future__ import annotations

import numpy as np
import pytest

from syneg.retrieval import DenseEncoder, EmbeddingCache

TEXTS = [
    "Caffeine has a half-life of about five hours in healthy adults.",
    "Tides are caused by the gravitational pull of the moon.",
    "TCP retransmits segments that are not acknowledged.",
    "Melatonin is released by the pineal gland in darkness.",
    "Solar panels convert sunlight into electricity.",
]


def test_embedding_cache_round_trip(tmp_path):
    cache = EmbeddingCache(tmp_path, "toy")
    cache.put(["a", "b"], np.array([[1, 0], [0, 1]], dtype=np.float32))
    reopened = EmbeddingCache(tmp_path, "toy")
    found, missing = reopened.get(["b", "c", "a"])
    assert missing == [1] and found[0].tolist() == [0, 1] and found[2].tolist() == [1, 0]


def test_half_written_shard_is_ignored(tmp_path):
    cache = EmbeddingCache(tmp_path, "toy")
    cache.put(["a"], np.ones((1, 2), dtype=np.float32))
    (cache.folder / "000009-1-x.npy").write_bytes(b"truncated")  # a shard whose keys file never landed
    assert len(EmbeddingCache(tmp_path, "toy")) == 1


def test_real_model_vectors(dense_encoder):
    vectors = dense_encoder.encode(TEXTS)
    assert vectors.shape == (5, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-4)
    query = dense_encoder.encode_queries(["How long does caffeine last in the body?"])[0]
    assert int(np.argmax(vectors @ query)) == 0


def test_second_run_encodes_nothing_and_changed_text_only(tmp_path):
    first = DenseEncoder("default", cache_dir=tmp_path, show_progress=False)
    vectors = first.encode(TEXTS)
    assert first.encoded_count == 5
    second = DenseEncoder("default", cache_dir=tmp_path, show_progress=False)
    np.testing.assert_array_equal(second.encode(TEXTS), vectors)
    assert second.encoded_count == 0 and second._model is None  # served from disk, model never loaded
    second.encode([*TEXTS[:4], "An edited fifth document."])
    assert second.encoded_count == 1


def test_killed_run_resumes_from_the_last_chunk(tmp_path, monkeypatch):
    encoder = DenseEncoder("default", cache_dir=tmp_path, show_progress=False, chunk_size=2)
    real_encode = encoder.model.encode
    calls = {"n": 0}

    def dies_on_third_chunk(texts, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_encode(texts, **kwargs)

    monkeypatch.setattr(encoder.model, "encode", dies_on_third_chunk)
    with pytest.raises(KeyboardInterrupt):
        encoder.encode(TEXTS)
    resumed = DenseEncoder("default", cache_dir=tmp_path, show_progress=False, chunk_size=2)
    resumed.encode(TEXTS)
    assert resumed.encoded_count == 1  # four texts were cached before the interruption


def test_fingerprint_follows_settings(tmp_path):
    a = DenseEncoder("default", cache_dir=tmp_path, use_cache=True)
    b = DenseEncoder("default", cache_dir=tmp_path, max_seq_length=128)
    c = DenseEncoder("default", cache_dir=tmp_path, backend="onnx-int8")
    assert len({a.fingerprint, b.fingerprint, c.fingerprint}) == 3


def test_unknown_backend():
    with pytest.raises(ValueError, match="Unknown backend"):
        DenseEncoder("default", backend="tensorrt")


@pytest.mark.slow
def test_onnx_backends_match_torch(dense_encoder):
    reference = dense_encoder.encode(TEXTS)
    for backend, floor in (("onnx", 0.9999), ("onnx-int8", 0.98)):
        vectors = DenseEncoder("default", backend=backend, show_progress=False).encode(TEXTS)
        assert (vectors * reference).sum(axis=1).min() > floor, backend
