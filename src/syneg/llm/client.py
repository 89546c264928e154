"""The client the synthesis stage talks to: cache, JSON parsing and validation, retries, statistics.

:class:`LLMClient` wraps any backend. For each request it first looks in the cache; on a miss it asks
the backend, parses the answer as JSON, validates it against a pydantic model, and caches it only if
valid. A malformed answer (empty, not JSON, wrong fields) is a recorded failure, asked again with the
next seed up to ``max_attempts`` times - never a crash. The attempt's seed is part of the cache key,
so a rerun replays exactly the answers the first run accepted.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from syneg.llm.base import Backend, ChatRequest, Completion, LLMError, UsageStats
from syneg.llm.cache import RequestCache

Answer = TypeVar("Answer", bound=BaseModel)
Parsed = TypeVar("Parsed")

# The closing fence's spaces are matched only from their start (the lookbehind): tried from every space of
# a long run, they cost time quadratic in the run's length.
_FENCE = re.compile(r"^```(?:json)?\s*|(?<!\s)\s*```$", re.MULTILINE)


def parse_json_answer(text: str, fields: list[str] | None = None) -> dict[str, Any]:
    """Parse a model's answer into a dict.

    Accepts plain JSON, JSON inside a code fence or after a preamble (the first ``{`` to the last
    ``}``), and, when ``fields`` are given, ``field: value`` lines, which is what small models write
    when no grammar holds them to JSON. Raises :class:`LLMError` (``empty`` or ``invalid_json``).

    Example::

        >>> parse_json_answer('Sure! {"negative": "x"}')
        {'negative': 'x'}
        >>> parse_json_answer("Reasoning: looks close.\\nNegative: Another text.", ["reasoning", "negative"])
        {'reasoning': 'looks close.', 'negative': 'Another text.'}
    """
    if not isinstance(text, str):
        raise LLMError("invalid_response", f"the answer is {type(text).__name__}, not text")
    stripped = _FENCE.sub("", text.strip()).strip()
    if not stripped:
        raise LLMError("empty", "the model returned no text")
    start, end = stripped.find("{"), stripped.rfind("}")
    if start != -1 and end > start:
        try:
            value = json.loads(stripped[start : end + 1], strict=False)
        except (json.JSONDecodeError, RecursionError):  # nested too deeply for Python's parser
            value = None
        if isinstance(value, dict):
            return value
    if fields:
        pattern = re.compile(
            r"^\W*(" + "|".join(map(re.escape, fields)) + r")\W*?[:=]\s*(.*)$", re.IGNORECASE | re.MULTILINE
        )
        matches = list(pattern.finditer(stripped))
        if matches:
            found: dict[str, Any] = {}
            for index, match in enumerate(matches):
                stop = matches[index + 1].start() if index + 1 < len(matches) else len(stripped)
                value_text = (match.group(2) + stripped[match.end() : stop]).strip().strip('",')
                found[match.group(1).lower()] = value_text
            return found
    raise LLMError("invalid_json", f"not a JSON object: {stripped[:120]!r}")


class LLMClient:
    """A backend plus a request cache, answer validation, retries and usage statistics.

    Args:
        backend: Any object with ``name``, ``model`` and ``async complete(ChatRequest)``.
        cache: A :class:`RequestCache`; None disables caching.
        max_attempts: Attempts per request when answers are malformed (each with the next seed).

    Example::

        >>> from syneg.llm import LlamaCppBackend, RequestCache
        >>> client = LLMClient(LlamaCppBackend("smollm2-135m"), RequestCache())  # doctest: +SKIP
        >>> answer, completion = asyncio.run(client.generate(request, NegativeAnswer))  # doctest: +SKIP
        >>> client.stats.to_dict()  # doctest: +SKIP
        {'requests': 1, 'cache_hits': 0, 'prompt_tokens': 190, 'completion_tokens': 74, ...}
    """

    def __init__(self, backend: Backend, cache: RequestCache | None = None, max_attempts: int = 3) -> None:
        self.backend = backend
        self.cache = cache
        self.max_attempts = max_attempts
        self.stats = UsageStats()

    @property
    def model(self) -> str:
        return self.backend.model

    async def generate(self, request: ChatRequest, answer_type: type[Answer]) -> tuple[Answer, Completion]:
        """Ask for a JSON answer of ``answer_type``; cached, validated and retried as described above."""
        fields = list(answer_type.model_fields)

        def validated(completion: Completion) -> Answer:
            try:
                return answer_type.model_validate(parse_json_answer(completion.text, fields))
            except ValidationError as error:
                raise LLMError("schema", str(error).splitlines()[0]) from None

        return await self._ask(request, validated)

    async def generate_text(self, request: ChatRequest) -> Completion:
        """Ask for free text (no schema, no grammar), cached, counted and retried like :meth:`generate`.

        An empty answer is a malformed one. Long passages are asked for this way: on a CPU, a JSON
        grammar over Qwen's 151k-token vocabulary costs more per token than the model itself, and
        escaping adds nothing to prose.
        """

        def non_empty(completion: Completion) -> Completion:
            if not completion.text.strip():
                raise LLMError("empty", "the model returned no text")
            return completion

        _, completion = await self._ask(request, non_empty)
        return completion

    async def _ask(self, request: ChatRequest, accept: Callable[[Completion], Parsed]) -> tuple[Parsed, Completion]:
        """The cache, the backend and the retries: ``accept`` parses a completion or raises LLMError."""
        last_error: LLMError | None = None
        for attempt in range(self.max_attempts):
            attempt_request = replace(request, seed=request.seed + attempt)
            key = attempt_request.cache_key(self.backend.name, self.backend.model)
            completion = self.cache.get(key) if self.cache is not None else None
            if completion is not None:
                try:
                    parsed = accept(completion)
                except LLMError:
                    pass  # cached under an older answer type: ask again
                else:
                    self.stats.cache_hits += 1
                    return parsed, completion
            try:
                completion = await self.backend.complete(attempt_request)
            except LLMError as error:
                self.stats.requests += 1
                self.stats.record_failure(error.kind)
                raise
            self.stats.requests += 1
            self.stats.prompt_tokens += completion.prompt_tokens
            self.stats.completion_tokens += completion.completion_tokens
            self.stats.latency += completion.latency
            try:
                parsed = accept(completion)
            except LLMError as error:
                last_error = error
            else:
                if self.cache is not None:
                    self.cache.put(key, completion)
                return parsed, completion
            self.stats.record_failure(last_error.kind)
        assert last_error is not None
        raise last_error

    async def aclose(self) -> None:
        await self.backend.aclose()
