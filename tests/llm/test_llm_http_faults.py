"""The OpenAI-compatible backend's error paths, against a real HTTP server on loopback that injects faults."""

from __future__ import annotations

import asyncio
import logging

import pytest
from pydantic import BaseModel

from syneg.llm import ChatRequest, LLMClient, LLMError, OpenAICompatibleBackend, RequestCache


class Answer(BaseModel):
    negative: str


SCHEMA = {"type": "object", "properties": {"negative": {"type": "string"}}, "required": ["negative"]}


def client_for(server, tmp_path=None, **options) -> LLMClient:
    options = {"timeout": 0.5, "max_retries": 2, "backoff": 0.01, "concurrency": 2} | options
    backend = OpenAICompatibleBackend(server.base_url, "fault-model", **options)
    cache = RequestCache(tmp_path / "cache.sqlite") if tmp_path is not None else None
    return LLMClient(backend, cache)


def ask(client: LLMClient, seed: int = 0):
    request = ChatRequest.chat("system", "Write a negative.", schema=SCHEMA, max_tokens=20, seed=seed)
    return asyncio.run(client.generate(request, Answer))


def test_timeout_is_retried_then_succeeds(fault_server):
    fault_server.script = ["slow"]
    client = client_for(fault_server)
    answer, _ = ask(client)
    assert answer.negative == "seed 0"
    assert client.stats.failures == {} and len(fault_server.requests) == 2


def test_timeouts_exhaust_retries(fault_server):
    fault_server.script = ["slow"] * 3
    client = client_for(fault_server)
    with pytest.raises(LLMError) as error:
        ask(client)
    assert error.value.kind == "timeout"
    assert client.stats.failures == {"timeout": 1}
    assert len(fault_server.requests) == 3  # first attempt plus max_retries


def test_429_and_500_are_retried_with_backoff(fault_server):
    fault_server.script = ["429", "500", "500"]
    client = client_for(fault_server, max_retries=3)
    answer, completion = ask(client)
    assert answer.negative == "seed 0" and completion.completion_tokens == 5
    assert len(fault_server.requests) == 4


def test_persistent_500_is_a_recorded_failure(fault_server):
    fault_server.script = ["500"] * 10
    client = client_for(fault_server, max_retries=1)
    with pytest.raises(LLMError) as error:
        ask(client)
    assert error.value.kind == "http_5xx"
    assert client.stats.failures == {"http_5xx": 1}


@pytest.mark.parametrize("status", ["401", "403"])
def test_a_rejected_key_is_fatal_and_ends_the_backend(fault_server, status):
    fault_server.script = [status]
    client = client_for(fault_server, max_retries=3)
    with pytest.raises(LLMError) as error:
        ask(client)
    assert error.value.fatal and f"HTTP {status}" in str(error.value)
    with pytest.raises(LLMError) as again:
        ask(client, seed=1)  # asks nothing more: every request would be rejected alike
    assert again.value is error.value and len(fault_server.requests) == 1


def test_garbage_body_is_not_retried_as_transport_error(fault_server):
    fault_server.script = ["garbage"]
    client = client_for(fault_server)
    with pytest.raises(LLMError) as error:
        ask(client)
    assert error.value.kind == "invalid_response"


def test_invalid_json_and_empty_answers_are_retried_with_new_seeds(fault_server, tmp_path):
    fault_server.script = ["not_json", "empty"]
    client = client_for(fault_server, tmp_path)
    answer, _ = ask(client, seed=7)
    assert answer.negative == "seed 9"  # third attempt, seed 7 + 2
    assert [r["seed"] for r in fault_server.requests] == [7, 8, 9]
    assert client.stats.failures == {"invalid_json": 1, "empty": 1}
    assert client.stats.requests == 3
    # Only the valid answer was cached: a rerun asks the failed seeds again but not the good one.
    rerun = client_for(fault_server, tmp_path)
    fault_server.script = ["not_json", "empty"]
    answer, completion = ask(rerun, seed=7)
    assert completion.cached and rerun.stats.cache_hits == 1 and rerun.stats.requests == 2


def test_malformed_answers_exhaust_attempts_without_crashing(fault_server):
    fault_server.script = ["not_json"] * 3
    client = client_for(fault_server)
    with pytest.raises(LLMError) as error:
        ask(client)
    assert error.value.kind == "invalid_json" and client.stats.failures == {"invalid_json": 3}


def test_concurrency_is_bounded(fault_server):
    fault_server.delay = 0.2
    client = client_for(fault_server, concurrency=3, timeout=5)

    async def many():
        requests = [ChatRequest.chat(None, "Write.", schema=SCHEMA, seed=i) for i in range(9)]
        return await asyncio.gather(*(client.generate(r, Answer) for r in requests))

    answers = asyncio.run(many())
    assert sorted(a.negative for a, _ in answers) == sorted(f"seed {i}" for i in range(9))
    assert fault_server.max_in_flight == 3


def test_api_key_is_sent_but_never_logged(fault_server, monkeypatch, caplog):
    monkeypatch.setenv("SYNEG_TEST_KEY", "sk-secret-123")
    fault_server.script = ["500"]
    client = client_for(fault_server, api_key_env="SYNEG_TEST_KEY")
    with caplog.at_level(logging.DEBUG):
        ask(client)
    assert fault_server.headers[0]["Authorization"] == "Bearer sk-secret-123"
    assert "sk-secret-123" not in caplog.text and "sk-secret-123" not in repr(client.backend)


def test_structured_output_modes(fault_server):
    for mode, expected in (("json_schema", "json_schema"), ("json_object", "json_object"), ("none", None)):
        client = client_for(fault_server, structured_output=mode)
        ask(client)
        response_format = fault_server.requests[-1].get("response_format")
        assert (response_format or {}).get("type") == expected
