"""Any OpenAI-compatible chat endpoint: vLLM, llama.cpp server, Ollama, OpenAI itself.

Async (``httpx``), with bounded concurrency, a timeout per request, and retries with exponential
backoff and jitter on timeouts, connection errors, 429 and 5xx (``Retry-After`` is honoured). The API
key is read from an environment variable at call time and never logged or stored in the cache key.

Structured output is requested through the endpoint's own option:

- ``json_schema``: OpenAI's ``{"type": "json_schema", "json_schema": {...}}`` (OpenAI, vLLM,
  the C++ llama.cpp server, Ollama's OpenAI API);
- ``json_object``: ``{"type": "json_object", "schema": ...}`` (llama-cpp-python's server, older vLLM);
- ``none``: nothing asked; the client's parser still validates every answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time
from typing import Any, Literal

from syneg.llm.base import ChatRequest, Completion, LLMError

logger = logging.getLogger(__name__)

StructuredOutput = Literal["json_schema", "json_object", "none"]


def _import_httpx() -> Any:
    try:
        import httpx
    except ImportError as error:
        raise ImportError("The OpenAI-compatible backend needs httpx: pip install httpx") from error
    return httpx


def redacted(text: str, key: str | None) -> str:
    """``text`` without the API key: an endpoint may echo the request's headers in an error or an answer,
    and what it says goes to messages, logs, the cache and output files."""
    return text.replace(key, "[API key]") if key else text


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def completion_from_body(body: Any, key: str | None, latency: float = 0.0, raw: str | None = None) -> Completion:
    """A chat-completion body (parsed JSON) as a :class:`Completion`, the API key redacted from its text; the
    one reading of an answer for this backend and for Ray's HTTP processor (:mod:`syneg.engine.synthesis`).
    ``raw`` is the body as received, quoted when it is not a chat completion."""
    try:
        choice = body["choices"][0]
        text = choice["message"].get("content") or ""
        if not isinstance(text, str):
            raise TypeError("content is not text")
    except (KeyError, IndexError, TypeError, AttributeError):
        shown = raw if raw is not None else json.dumps(body, default=str)
        raise LLMError("invalid_response", f"not a chat completion: {redacted(shown[:200], key)!r}") from None
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    finish_reason = choice.get("finish_reason")
    return Completion(
        text=redacted(text, key),
        prompt_tokens=_count(usage.get("prompt_tokens")),
        completion_tokens=_count(usage.get("completion_tokens")),
        latency=latency,
        finish_reason=finish_reason if isinstance(finish_reason, str) else None,
    )


class OpenAICompatibleBackend:
    """Chat completions from an OpenAI-compatible HTTP endpoint.

    Args:
        base_url: The API root, e.g. ``http://127.0.0.1:8000/v1`` or ``https://api.openai.com/v1``.
        model: The model name the endpoint expects.
        api_key_env: Name of the environment variable holding the API key; unset means no key.
        concurrency: Requests in flight at most (the endpoint batches them if it can).
        timeout: Seconds before a request is abandoned (and retried).
        max_retries: Retries after the first attempt for timeouts, connection errors, 429 and 5xx.
        backoff: Base delay in seconds, doubled on each retry, with jitter; capped at 30 s.
        structured_output: How the JSON schema is passed to the endpoint (see the module docstring).

    Example::

        >>> backend = OpenAICompatibleBackend("http://127.0.0.1:8000/v1", "qwen2.5-0.5b", concurrency=4)
        >>> completion = asyncio.run(backend.complete(ChatRequest.chat(None, "Hi")))  # doctest: +SKIP
    """

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 4,
        timeout: float = 120.0,
        max_retries: int = 4,
        backoff: float = 1.0,
        structured_output: StructuredOutput = "json_schema",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.structured_output = structured_output
        self._semaphore: asyncio.Semaphore | None = None
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fatal: LLMError | None = None

    def __repr__(self) -> str:
        return f"OpenAICompatibleBackend(base_url={self.base_url!r}, model={self.model!r}, api_key_env={self.api_key_env!r})"

    @property
    def client(self) -> Any:
        if self._client is None:
            httpx = _import_httpx()
            limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
            self._client = httpx.AsyncClient(timeout=self.timeout, limits=limits)
        return self._client

    def payload(self, request: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": request.message_dicts(),
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "seed": request.seed,
        }
        if request.schema is not None and self.structured_output == "json_schema":
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": request.schema},
            }
        elif request.schema is not None and self.structured_output == "json_object":
            body["response_format"] = {"type": "json_object", "schema": request.schema}
        return body

    def _bind_loop(self) -> asyncio.Semaphore:
        # A semaphore and a connection pool belong to one event loop; a new asyncio.run gets new ones.
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._semaphore is None:
            self._loop, self._semaphore, self._client = loop, asyncio.Semaphore(self.concurrency), None
        return self._semaphore

    async def complete(self, request: ChatRequest) -> Completion:
        async with self._bind_loop():
            for attempt in range(self.max_retries + 1):
                if self._fatal is not None:
                    # Requests waiting for a slot when the key was rejected must not go out: the run ends at once,
                    # whatever its callers do with their other tasks.
                    raise self._fatal
                try:
                    return await self._post(request)
                except LLMError as error:
                    if error.fatal:
                        self._fatal = self._fatal or error
                    if not error.retryable or attempt == self.max_retries:
                        raise
                    delay = getattr(error, "retry_after", None)
                    if delay is None:
                        delay = min(30.0, self.backoff * 2**attempt) * (0.5 + random.random())
                    logger.info("Retrying after %s (attempt %d, %.1f s).", error.kind, attempt + 1, delay)
                    await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _post(self, request: ChatRequest) -> Completion:
        httpx = _import_httpx()
        headers = {}
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        start = time.perf_counter()
        try:
            response = await self.client.post(
                f"{self.base_url}/chat/completions", json=self.payload(request), headers=headers
            )
        except httpx.TimeoutException as error:
            raise LLMError("timeout", f"no answer within {self.timeout} s", retryable=True) from error
        except httpx.TransportError as error:
            raise LLMError("connection", type(error).__name__, retryable=True) from error
        latency = time.perf_counter() - start
        if response.status_code == 429 or response.status_code >= 500:
            kind = "http_429" if response.status_code == 429 else "http_5xx"
            error = LLMError(kind, f"HTTP {response.status_code}", retryable=True)
            retry_after = response.headers.get("retry-after")
            if retry_after and retry_after.replace(".", "", 1).isdigit():
                error.retry_after = min(30.0, float(retry_after))  # type: ignore[attr-defined]
            raise error
        if response.status_code in (401, 403):
            # A rejected key fails every request alike: stop the run now, with what to fix, rather than
            # record a failure per pair and leave a later stage to complain about missing negatives.
            given = f"the key in ${self.api_key_env}" if key else f"no key (${self.api_key_env} is not set)"
            raise LLMError("http_4xx", f"{self.base_url} rejected the request with HTTP {response.status_code} "
                           f"({redacted(response.text[:120], key)!r}); it was sent {given}", fatal=True)
        if response.status_code >= 400:
            raise LLMError("http_4xx", f"HTTP {response.status_code}: {redacted(response.text[:200], key)}")
        try:
            body = response.json()
        except ValueError:
            body = None
        return completion_from_body(body, key, latency, response.text)

    async def aclose(self) -> None:
        client, self._client = self._client, None
        # A client is closed in the event loop it ran in. Callers close from a new ``asyncio.run`` once the run's
        # own has ended (after an error too): closing it there fails with "Event loop is closed", hiding the error.
        if client is not None and self._loop is asyncio.get_running_loop():
            await client.aclose()
