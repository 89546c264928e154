"""The request cache and the client's bookkeeping, with a deterministic in-process backend."""

from __future__ import annotations

import asyncio
import json

import pytest
from pydantic import BaseModel

from syneg.llm import (
    ChatRequest,
    Completion,
    LLMClient,
    LLMError,
    RequestCache,
    default_llm_cache_path,
    parse_json_answer,
)


class Answer(BaseModel):
    negative: str


class EchoSeedBackend:
    """Answers every request with its seed, so tests can see which requests reached it."""

    name = "echo"
    model = "seed"

    def __init__(self) -> None:
        self.calls: list[int] = []

    async def complete(self, request: ChatRequest) -> Completion:
        self.calls.append(request.seed)
        return Completion(text=json.dumps({"negative": f"n{request.seed}"}), prompt_tokens=3, completion_tokens=2, latency=0.01)

    async def aclose(self) -> None:
        pass


def requests(count: int) -> list[ChatRequest]:
    return [ChatRequest.chat("s", "u", seed=i) for i in range(count)]


def run_all(client: LLMClient, batch: list[ChatRequest]) -> list[str]:
    async def go():
        return [(await client.generate(r, Answer))[0].negative for r in batch]

    return asyncio.run(go())


def test_default_cache_lives_under_syneg_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("SYNEG_CACHE_DIR", str(tmp_path))
    assert default_llm_cache_path() == tmp_path / "llm-cache.sqlite"


def test_rerun_makes_zero_calls(tmp_path):
    backend = EchoSeedBackend()
    client = LLMClient(backend, RequestCache(tmp_path / "c.sqlite"))
    assert run_all(client, requests(4)) == ["n0", "n1", "n2", "n3"]
    rerun_backend = EchoSeedBackend()
    rerun = LLMClient(rerun_backend, RequestCache(tmp_path / "c.sqlite"))
    assert run_all(rerun, requests(4)) == ["n0", "n1", "n2", "n3"]
    assert rerun_backend.calls == [] and rerun.stats.requests == 0 and rerun.stats.cache_hits == 4


def test_interrupted_run_resumes_without_asking_twice(tmp_path):
    backend = EchoSeedBackend()
    client = LLMClient(backend, RequestCache(tmp_path / "c.sqlite"))
    run_all(client, requests(2))  # "killed" after two answers
    resumed_backend = EchoSeedBackend()
    resumed = LLMClient(resumed_backend, RequestCache(tmp_path / "c.sqlite"))
    run_all(resumed, requests(5))
    assert resumed_backend.calls == [2, 3, 4]


def test_key_covers_backend_model_prompt_parameters_and_seed():
    base = ChatRequest.chat("s", "u", seed=1)
    keys = {
        base.cache_key("a", "m"),
        base.cache_key("b", "m"),
        base.cache_key("a", "other"),
        ChatRequest.chat("s", "u2", seed=1).cache_key("a", "m"),
        ChatRequest.chat("s", "u", seed=1, temperature=0.1).cache_key("a", "m"),
        ChatRequest.chat("s", "u", seed=1, max_tokens=5).cache_key("a", "m"),
        ChatRequest.chat("s", "u", seed=2).cache_key("a", "m"),
        ChatRequest.chat("s", "u", seed=1, schema={"type": "object"}).cache_key("a", "m"),
    }
    assert len(keys) == 8


def test_backend_errors_are_counted_and_not_cached(tmp_path):
    class Failing(EchoSeedBackend):
        async def complete(self, request):
            raise LLMError("http_5xx", "down", retryable=True)

    cache = RequestCache(tmp_path / "c.sqlite")
    client = LLMClient(Failing(), cache)
    with pytest.raises(LLMError):
        run_all(client, requests(1))
    assert client.stats.failures == {"http_5xx": 1} and len(cache) == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"negative": "a"}', {"negative": "a"}),
        ('```json\n{"negative": "a"}\n```', {"negative": "a"}),
        ('Here you go: {"negative": "a"} Hope it helps', {"negative": "a"}),
        ('{"negative": "line\nbreak"}', {"negative": "line\nbreak"}),
        ("negative: a plain answer", {"negative": "a plain answer"}),
    ],
)
def test_parser_accepts_what_models_write(text, expected):
    assert parse_json_answer(text, ["negative"]) == expected


@pytest.mark.parametrize(("text", "kind"), [("", "empty"), ("   ", "empty"), ("no json here", "invalid_json"), ('{"a": ', "invalid_json")])
def test_parser_failures_have_kinds(text, kind):
    with pytest.raises(LLMError) as error:
        parse_json_answer(text, ["negative"])
    assert error.value.kind == kind
