"""The one interface every LLM backend implements, and the records that cross it.

A backend turns a :class:`ChatRequest` (messages, an optional JSON schema, sampling parameters and a
seed) into a :class:`Completion` (the raw text, token counts, latency). Everything above a backend -
the request cache, JSON parsing and validation, retries of malformed answers, usage statistics -
lives in :class:`syneg.llm.client.LLMClient`, so a new backend is one small class.

Transport failures are raised as :class:`LLMError` with a ``kind`` (``timeout``, ``http_429``,
``http_5xx``, ``http_4xx``, ``connection``, ``empty``, ``invalid_json``, ``schema``, ``backend``),
which is what the run statistics count failures by. A ``fatal`` error (the endpoint rejected the API
key) is one no other request can avoid: every stage lets it through, and the run ends at once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol


class LLMError(RuntimeError):
    """A failed LLM request. ``kind`` names the failure; ``retryable`` says whether asking again may help;
    ``fatal``, that every later request would fail the same way, so the run must stop rather than go on."""

    def __init__(self, kind: str, message: str, retryable: bool = False, fatal: bool = False) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.retryable = retryable
        self.fatal = fatal


@dataclass(frozen=True)
class ChatRequest:
    """One chat request.

    Args:
        messages: OpenAI-style messages (``{"role": ..., "content": ...}``).
        schema: JSON schema the answer must follow; backends enforce it where they can (a grammar
            in llama.cpp, ``response_format`` on HTTP endpoints), and the client always validates.
        max_tokens: Upper bound on generated tokens.
        temperature: Sampling temperature.
        seed: Sampling seed; part of the cache key, so a different seed asks again.
        repeat_penalty: llama.cpp's penalty on tokens already in the answer (1.0: none), against the
            repetition loops small models fall into in long texts. In-process llama.cpp only.
    """

    messages: tuple[tuple[str, str], ...]
    schema: dict[str, Any] | None = None
    max_tokens: int = 200
    temperature: float = 0.7
    seed: int = 0
    repeat_penalty: float = 1.0

    @classmethod
    def chat(cls, system: str | None, user: str, **kwargs: Any) -> ChatRequest:
        messages = ((("system", system),) if system else ()) + (("user", user),)
        return cls(messages=messages, **kwargs)

    def message_dicts(self) -> list[dict[str, str]]:
        return [{"role": role, "content": content} for role, content in self.messages]

    def cache_key(self, backend: str, model: str) -> str:
        """A digest of everything that determines the answer: backend, model, prompt, parameters, seed."""
        payload = {
            "backend": backend,
            "model": model,
            "messages": self.messages,
            "schema": self.schema,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "seed": self.seed,
        }
        if self.repeat_penalty != 1.0:  # only then: the keys of earlier answers stay valid
            payload["repeat_penalty"] = self.repeat_penalty
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


@dataclass
class Completion:
    """A backend's answer: the raw text and what it cost."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency: float = 0.0
    finish_reason: str | None = None
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class UsageStats:
    """What a run asked of its LLM: backend calls, cache hits, tokens, latency and failures by kind.

    ``requests`` counts calls that reached the backend (successful or not); answers served from the
    cache count only as ``cache_hits``, so a rerun of a finished job shows ``requests == 0``.
    """

    requests: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency: float = 0.0
    failures: dict[str, int] = field(default_factory=dict)

    def record_failure(self, kind: str) -> None:
        self.failures[kind] = self.failures.get(kind, 0) + 1

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["latency"] = round(self.latency, 3)
        data["completion_tokens_per_second"] = (
            round(self.completion_tokens / self.latency, 2) if self.latency > 0 else None
        )
        return data


class Backend(Protocol):
    """What a backend provides: a name and model for cache keys, and one async completion call."""

    name: str
    model: str

    async def complete(self, request: ChatRequest) -> Completion: ...

    async def aclose(self) -> None: ...
