"""LLM access for syneg: one client interface, several backends, a persistent request cache.

- :class:`LlamaCppBackend`: in-process llama.cpp with an embedded GGUF model (the offline default).
- :class:`OpenAICompatibleBackend`: any OpenAI-compatible HTTP endpoint, async with bounded
  concurrency, timeouts and retries.
- :class:`LLMClient`: cache lookups, JSON parsing and validation, retries of malformed answers and
  usage statistics, whatever the backend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from syneg.llm.base import Backend, ChatRequest, Completion, LLMError, UsageStats
from syneg.llm.cache import RequestCache, default_llm_cache_path
from syneg.llm.client import LLMClient, parse_json_answer
from syneg.llm.llamacpp import LlamaCppBackend
from syneg.llm.models import DEFAULT_MODEL, EMBEDDED_MODELS, resolve_gguf
from syneg.llm.openai_compat import OpenAICompatibleBackend, StructuredOutput

# vllm: vLLM in Ray actors, with --engine ray only (syneg.engine.synthesis.RayVLLMBackend).
BackendName = Literal["llama.cpp", "openai", "vllm"]
VLLM_NEEDS_RAY = "backend vllm runs vLLM in Ray actors: add --engine ray (engine: ray in a config)"


def make_client(
    backend: BackendName = "llama.cpp",
    model: str = DEFAULT_MODEL,
    base_url: str | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    concurrency: int = 4,
    timeout: float = 120.0,
    structured_output: StructuredOutput = "json_schema",
    grammar: bool = True,
    n_threads: int | None = None,
    cache: bool | str | Path = True,
    max_attempts: int = 3,
) -> LLMClient:
    """Build an :class:`LLMClient` from plain options (what the CLI passes through).

    ``cache`` is True for the default cache file, a path for another one, or False for none.
    """
    if backend == "llama.cpp":
        chosen: Backend = LlamaCppBackend(model, grammar=grammar, n_threads=n_threads)
    elif backend == "openai":
        if not base_url:
            raise ValueError("The openai backend needs a base URL (e.g. http://127.0.0.1:8000/v1)")
        chosen = OpenAICompatibleBackend(
            base_url,
            model,
            api_key_env=api_key_env,
            concurrency=concurrency,
            timeout=timeout,
            structured_output=structured_output,
        )
    elif backend == "vllm":
        raise ValueError(VLLM_NEEDS_RAY)
    else:
        raise ValueError(f"Unknown backend {backend!r}; expected 'llama.cpp', 'openai' or 'vllm'")
    request_cache = None
    if cache:
        request_cache = RequestCache(None if cache is True else cache)
    return LLMClient(chosen, request_cache, max_attempts=max_attempts)


__all__ = [
    "DEFAULT_MODEL",
    "EMBEDDED_MODELS",
    "Backend",
    "BackendName",
    "ChatRequest",
    "Completion",
    "LLMClient",
    "LLMError",
    "LlamaCppBackend",
    "OpenAICompatibleBackend",
    "RequestCache",
    "StructuredOutput",
    "UsageStats",
    "VLLM_NEEDS_RAY",
    "default_llm_cache_path",
    "make_client",
    "parse_json_answer",
    "resolve_gguf",
]
