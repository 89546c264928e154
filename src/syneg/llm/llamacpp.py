"""In-process llama.cpp backend (``llama-cpp-python``): the embedded default, fully offline.

The model is loaded on first use. Requests run one at a time in a worker thread (a llama.cpp context
decodes one sequence at a time), so the event loop stays free for the rest of the pipeline. With a
schema, the answer is constrained by a JSON-schema grammar; ``grammar=False`` leaves the model free
and relies on the client's parser, which is several times faster on large vocabularies (Qwen's 151k
tokens: measured 0.7 vs 2.4 tokens/s on a busy 2-core machine).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from syneg.llm.base import ChatRequest, Completion, LLMError
from syneg.llm.cpu_backend import load_cpu_backend
from syneg.llm.models import DEFAULT_MODEL, resolve_gguf

if TYPE_CHECKING:
    from llama_cpp import Llama


def _import_llama() -> type[Llama]:
    try:
        from llama_cpp import Llama
    except ImportError as error:
        raise ImportError(
            "The llama.cpp backend needs llama-cpp-python: pip install 'llama-cpp-python[server]==0.3.36'"
        ) from error
    return Llama


class LlamaCppBackend:
    """A GGUF model run in-process by llama.cpp.

    Args:
        model: ``default`` / ``qwen2.5-0.5b`` (Qwen2.5-Coder-0.5B-Instruct), ``smollm2-135m``, or a
            path to any GGUF file with a chat template.
        n_ctx: Context length in tokens (prompt plus answer).
        n_threads: CPU threads; None uses half the cores. On a busy 2-core machine one thread decoded
            twice as fast as two (measured 1.9 vs 1.0 tokens/s), since spinning threads fight for cores.
        grammar: Constrain answers to the request's JSON schema with a llama.cpp grammar.
        cache_dir: Where the joined Qwen file is stored; None for the syneg cache directory.

    Example::

        >>> backend = LlamaCppBackend("smollm2-135m")
        >>> request = ChatRequest.chat(None, "Say hi as JSON", schema={"type": "object"}, max_tokens=20)
        >>> completion = asyncio.run(backend.complete(request))  # doctest: +SKIP
    """

    name = "llama.cpp"

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        grammar: bool = True,
        cache_dir: str | Path | None = None,
    ) -> None:
        _import_llama()
        # The CPU level loads now, not with the model: a bad SYNEG_LLAMA_CPU is named before any work starts.
        self.cpu = load_cpu_backend()
        self.model_path = resolve_gguf(model, cache_dir)
        self.model = model if model != "default" else DEFAULT_MODEL
        self.n_ctx = n_ctx
        self.n_threads = n_threads or max(1, (os.cpu_count() or 2) // 2)
        self.grammar = grammar
        self._llama: Llama | None = None
        self._lock = threading.Lock()

    @property
    def llama(self) -> Llama:
        if self._llama is None:
            Llama = _import_llama()
            # llama.cpp writes its load report to stderr; it is noise for a CLI user.
            with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
                self._llama = Llama(
                    model_path=str(self.model_path), n_ctx=self.n_ctx, n_threads=self.n_threads, verbose=False
                )
        return self._llama

    def complete_sync(self, request: ChatRequest) -> Completion:
        kwargs: dict[str, Any] = {}
        if request.schema is not None and self.grammar:
            kwargs["response_format"] = {"type": "json_object", "schema": request.schema}
        with self._lock:
            start = time.perf_counter()
            try:
                output = self.llama.create_chat_completion(
                    messages=request.message_dicts(),
                    max_tokens=request.max_tokens,
                    temperature=request.temperature,
                    seed=request.seed,
                    repeat_penalty=request.repeat_penalty,
                    **kwargs,
                )
            except ValueError as error:  # e.g. a prompt longer than the context
                raise LLMError("backend", str(error)) from error
            latency = time.perf_counter() - start
        choice = output["choices"][0]
        usage = output.get("usage") or {}
        return Completion(
            text=choice["message"].get("content") or "",
            prompt_tokens=usage.get("prompt_tokens", 0),
            completion_tokens=usage.get("completion_tokens", 0),
            latency=latency,
            finish_reason=choice.get("finish_reason"),
        )

    async def complete(self, request: ChatRequest) -> Completion:
        return await asyncio.to_thread(self.complete_sync, request)

    async def aclose(self) -> None:
        if self._llama is not None:
            self._llama.close()
            self._llama = None
