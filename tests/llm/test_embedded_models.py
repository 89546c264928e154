"""The embedded GGUF models: parts joined once, checked against their pinned sha256, and run by llama.cpp."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util

import pytest

from syneg.llm import ChatRequest, LlamaCppBackend
from syneg.llm.models import QWEN_1_5B_PARTS, joined_parts, resolve_gguf


def test_parts_are_joined_once_and_a_wrong_checksum_leaves_nothing_behind(tmp_path):
    parts = []
    for index, content in enumerate((b"GGUF", b"-weights"), start=1):
        parts.append(tmp_path / f"part{index:02d}.bin")
        parts[-1].write_bytes(content)
    digest = hashlib.sha256(b"GGUF-weights").hexdigest()
    joined = joined_parts(parts, "model.gguf", digest, cache_dir=tmp_path / "cache")
    assert joined.read_bytes() == b"GGUF-weights"
    with pytest.raises(RuntimeError, match="sha256"):
        joined_parts(parts, "other.gguf", "0" * 64, cache_dir=tmp_path / "cache")
    assert sorted(p.name for p in (tmp_path / "cache" / "models").iterdir()) == ["model.gguf"]


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec(QWEN_1_5B_PARTS[0]) is None,
                    reason="the qwen15b extra is not installed (pip install 'syneg[qwen15b]')")
def test_the_larger_generator_loads_and_answers(tmp_path):
    path = resolve_gguf("qwen2.5-1.5b")
    assert path.stat().st_size == 1_117_320_768 and path.read_bytes()[:4] == b"GGUF"
    backend = LlamaCppBackend("qwen2.5-1.5b", n_threads=2, n_ctx=512)
    completion = asyncio.run(backend.complete(ChatRequest.chat(None, "Name one organ of the human body.", max_tokens=8)))
    asyncio.run(backend.aclose())
    assert completion.text.strip() and completion.completion_tokens > 0
