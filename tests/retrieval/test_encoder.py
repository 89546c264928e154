from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from syneg import system
from syneg.retrieval import DenseEncoder, EmbeddingCache
from syneg.retrieval.encoder import ONNX_EXPORT_REPAID_FROM, model_fingerprint
from syneg.retrieval.onnx_backend import QUANTIZED_FILE

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
    a = DenseEncoder("default", cache_dir=tmp_path, backend="torch")
    b = DenseEncoder("default", cache_dir=tmp_path, backend="torch", max_seq_length=128)
    c = DenseEncoder("default", cache_dir=tmp_path, backend="onnx-int8")
    d = DenseEncoder("default", cache_dir=tmp_path, backend="torch-bf16")
    assert len({a.fingerprint, b.fingerprint, c.fingerprint, d.fingerprint}) == 4
    # fp32 keeps the key it had before there were other torch backends: existing caches stay valid.
    assert a.fingerprint == model_fingerprint(a.model_path, backend="torch", max_seq_length=None)


def fake_machine(monkeypatch, usable: set[str]) -> None:
    """This process runs ``usable`` instruction sets, and there is no GPU."""
    monkeypatch.setattr(system, "usable_instruction_sets", lambda: frozenset(usable))
    monkeypatch.setattr(system, "gpu", lambda: {"torch": "2", "cuda": False, "devices": []})


def test_the_cache_never_mixes_vectors_of_different_backends(tmp_path, monkeypatch):
    """bf16 vectors are not fp32 vectors: each backend has its own cache, and auto reads the cache of the
    backend it resolves to, never another's."""
    fp32 = DenseEncoder("default", backend="torch", cache_dir=tmp_path, show_progress=False)
    fp32_vectors = fp32.encode(TEXTS)
    bf16 = DenseEncoder("default", backend="torch-bf16", cache_dir=tmp_path, show_progress=False)
    bf16_vectors = bf16.encode(TEXTS)
    assert bf16.encoded_count == 5 and bf16.fingerprint != fp32.fingerprint  # nothing served from fp32's cache
    assert not np.array_equal(bf16_vectors, fp32_vectors) and (bf16_vectors * fp32_vectors).sum(axis=1).min() > 0.99
    assert len(list((tmp_path / "embeddings").iterdir())) == 2

    fake_machine(monkeypatch, {"avx2", "avx512", "avx512_bf16"})
    auto = DenseEncoder("default", cache_dir=tmp_path, show_progress=False)
    np.testing.assert_array_equal(auto.encode(TEXTS), bf16_vectors)
    assert auto.backend == "torch-bf16" and auto.fingerprint == bf16.fingerprint and auto.encoded_count == 0
    fake_machine(monkeypatch, {"avx2"})
    auto = DenseEncoder("default", cache_dir=tmp_path, show_progress=False)
    np.testing.assert_array_equal(auto.encode(TEXTS), fp32_vectors)
    assert auto.backend == "torch" and auto.fingerprint == fp32.fingerprint and auto.encoded_count == 0
    # One encoder keeps the backend it chose for every later text: queries match the documents.
    auto.encode_queries(["How long does caffeine last?"])
    fake_machine(monkeypatch, {"avx2", "avx512", "avx512_bf16"})
    assert auto.encode(["A new text."]).shape == (1, 384) and auto.backend == "torch"


def test_auto_does_not_export_a_model_for_too_few_texts(tmp_path, monkeypatch):
    """On a CPU with VNNI and no bf16, auto runs int8 ONNX, but not for a request too small to repay the
    model's export (a freshly trained model evaluated on a small corpus): fp32 then, with the reason."""
    fake_machine(monkeypatch, {"avx2", "avx512", "avx512_vnni"})
    small = DenseEncoder("default", cache_dir=tmp_path, show_progress=False)
    small.encode(TEXTS)
    assert small.backend == "torch" and "would not repay" in small.choice.reason
    assert not (tmp_path / "onnx").exists()
    large = DenseEncoder("default", cache_dir=tmp_path, show_progress=False)
    assert large._resolve(ONNX_EXPORT_REPAID_FROM).backend == "onnx-int8"
    large._export_folder().mkdir(parents=True)
    (large._export_folder() / QUANTIZED_FILE).touch()  # exported before: nothing left to repay
    assert DenseEncoder("default", cache_dir=tmp_path)._resolve(len(TEXTS)).backend == "onnx-int8"
    assert DenseEncoder("default", cache_dir=tmp_path, backend="torch")._resolve(5000).backend == "torch"


def test_bf16_embeddings_stay_close_to_fp32_on_real_abstracts(scifact_path):
    """bf16 autocast on real MiniLM and real SciFact abstracts: cosine to fp32 at least 0.99 for every text
    (0.99997 measured on 256 abstracts). Correct, if slow, where bf16 is emulated."""
    with (scifact_path / "corpus.jsonl").open(encoding="utf-8") as corpus:
        abstracts = [" ".join(filter(None, (row["title"], row["text"]))) for row in map(json.loads, itertools.islice(corpus, 12))]
    fp32 = DenseEncoder("default", backend="torch", use_cache=False, show_progress=False).encode(abstracts)
    bf16 = DenseEncoder("default", backend="torch-bf16", use_cache=False, show_progress=False).encode(abstracts)
    assert bf16.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(bf16, axis=1), 1.0, rtol=1e-5)
    assert (bf16 * fp32).sum(axis=1).min() >= 0.99


def test_unknown_backend():
    with pytest.raises(ValueError, match="Unknown backend"):
        DenseEncoder("default", backend="tensorrt")


@pytest.mark.slow
def test_onnx_backends_match_torch():
    reference = DenseEncoder("default", backend="torch", use_cache=False, show_progress=False).encode(TEXTS)
    for backend, floor in (("onnx", 0.9999), ("onnx-int8", 0.98)):
        vectors = DenseEncoder("default", backend=backend, show_progress=False).encode(TEXTS)
        assert (vectors * reference).sum(axis=1).min() > floor, backend
