"""The OpenAI-compatible backend against a real ``llama_cpp.server`` on loopback (SmolLM2-135M)."""

from __future__ import annotations

import asyncio
import time

import pytest
from pydantic import BaseModel

from syneg.llm import ChatRequest, LLMClient, OpenAICompatibleBackend, RequestCache


class Topic(BaseModel):
    topic: str


SCHEMA = {"type": "object", "properties": {"topic": {"type": "string", "maxLength": 40}}, "required": ["topic"]}


def request(seed: int) -> ChatRequest:
    return ChatRequest.chat(None, "Name one topic in biology. Reply with JSON.", schema=SCHEMA, max_tokens=24, seed=seed)


def test_structured_answer_from_real_server(llama_server, tmp_path):
    backend = OpenAICompatibleBackend(llama_server, "smollm2-135m", structured_output="json_object", timeout=120)
    client = LLMClient(backend, RequestCache(tmp_path / "cache.sqlite"))
    answer, completion = asyncio.run(client.generate(request(0), Topic))
    assert answer.topic.strip()
    assert completion.prompt_tokens > 0 and completion.completion_tokens > 0
    assert client.stats.requests == 1 and client.stats.failures == {}

    again = LLMClient(OpenAICompatibleBackend(llama_server, "smollm2-135m", structured_output="json_object"),
                      RequestCache(tmp_path / "cache.sqlite"))
    cached, completion = asyncio.run(again.generate(request(0), Topic))
    assert cached == answer and completion.cached and again.stats.requests == 0


def test_closing_after_the_runs_loop_has_ended(llama_server):
    """The synthesize stage closes its client in a new event loop, after the run's; the real server keeps the
    connection alive, and closing it from the new loop raised "Event loop is closed" (exit 1 after a run)."""
    backend = OpenAICompatibleBackend(llama_server, "smollm2-135m", structured_output="json_object", timeout=120)
    asyncio.run(backend.complete(request(7)))
    asyncio.run(backend.aclose())
    assert backend._client is None


@pytest.mark.slow
def test_concurrent_requests_to_real_server(llama_server):
    backend = OpenAICompatibleBackend(llama_server, "smollm2-135m", structured_output="json_object", concurrency=3, timeout=300)
    client = LLMClient(backend)

    async def many():
        return await asyncio.gather(*(client.generate(request(seed), Topic) for seed in range(1, 4)))

    start = time.perf_counter()
    answers = asyncio.run(many())
    elapsed = time.perf_counter() - start
    assert len(answers) == 3 and all(a.topic.strip() for a, _ in answers)
    assert client.stats.requests == 3 and client.stats.failures == {}
    # All three were in flight together: the wall time is less than the sum of per-request latencies
    # only when the server overlaps them; llama-cpp-python's server queues them, so it is about equal.
    assert elapsed <= client.stats.latency + 1.0
