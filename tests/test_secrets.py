"""An API key given through the environment is written nowhere (issue 21, part 5).

A real ``syneg synthesize --backend openai`` runs against a loopback server that answers chat
completions deterministically and, on its first requests, fails with a 400 and a 500 whose bodies echo
the request's Authorization header, as some proxies do (a 401 ends the run: tests/llm/test_llm_load.py). The key must then appear in no file written (the
output, the request cache, the logs: everything under the test's folder) and in neither stream.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from syneg.data import demo_path
from loopback_chat import EchoingChatServer
from syneg.llm import ChatRequest, LLMError, OpenAICompatibleBackend
from syneg.llm.openai_compat import redacted

KEY = "sk-syneg-SECRET-4f9c2e71d0"
@pytest.fixture
def chat_server() -> Iterator[EchoingChatServer]:
    """The loopback chat server, its first two requests failing with the Authorization header echoed."""
    chat = EchoingChatServer({1: 400, 2: 500})
    yield chat
    chat.close()


def files_holding(folder: Path, secret: str) -> list[str]:
    return [str(path) for path in folder.rglob("*") if path.is_file() and secret.encode() in path.read_bytes()]


def test_redacted_removes_every_occurrence() -> None:
    assert redacted(f"Authorization: Bearer {KEY}, again {KEY}", KEY) == "Authorization: Bearer [API key], again [API key]"
    assert redacted("no key", None) == "no key"


def test_http_errors_echoing_the_key_do_not_repeat_it(chat_server: EchoingChatServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNEG_TEST_API_KEY", KEY)
    server = chat_server
    server.failing = {1: 401, 2: 500}
    messages = []
    for _ in range(2):  # the 401, then the 500 (a backend whose key was rejected asks nothing more: a new one)
        backend = OpenAICompatibleBackend(server.base_url, "loopback", api_key_env="SYNEG_TEST_API_KEY", max_retries=0)
        with pytest.raises(LLMError) as raised:
            asyncio.run(backend.complete(ChatRequest.chat(None, "q")))
        messages.append(str(raised.value))
    assert "Bearer [API key]" in messages[0] and not any(KEY in message for message in messages)


def test_the_api_key_is_written_nowhere(tmp_path: Path, chat_server: EchoingChatServer) -> None:
    server = chat_server
    cache, output = tmp_path / "cache", tmp_path / "out"
    env = os.environ | {"SYNEG_CACHE_DIR": str(cache), "SYNEG_TEST_API_KEY": KEY, "HOME": str(tmp_path / "home")}
    common = ["--backend", "openai", "--base-url", server.base_url, "--model", "loopback", "--api-key-env", "SYNEG_TEST_API_KEY",
              "--concurrency", "1", "--timeout", "10"]
    runs = [
        # the 400 and the 500 that echo the key come first; then the pairs get their negatives
        [sys.executable, "-m", "syneg", "-v", "synthesize", str(demo_path()), "-o", str(output / "synthetic.jsonl"),
         "--limit", "2", "--attributes", "demo", "--max-rounds", "1", "--json", *common],
        # asked again: every answer from the cache
        [sys.executable, "-m", "syneg", "synthesize", str(demo_path()), "-o", str(output / "synthetic.jsonl"),
         "--limit", "2", "--attributes", "demo", "--max-rounds", "1", *common],
        # a run that fails with a traceback in the log folder
        [sys.executable, "-m", "syneg", "propose-attributes", str(demo_path()), "-o", str(output / "attributes.yaml"),
         "--sample-size", "4", *common[:-4]],
    ]
    streams = []
    for number, command in enumerate(runs):
        if number == 2:
            server.requests = 0  # fail again: the first two requests of the proposal echo the key
        completed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, check=False)
        streams.append(completed.stdout + completed.stderr)
        assert completed.returncode in (0, 1), completed.stderr
    assert f"Bearer {KEY}" in server.authorizations  # the key was sent: there was something to leak
    assert (output / "synthetic.jsonl").is_file() and any((cache / "logs").iterdir())
    assert [stream for stream in streams if KEY in stream] == []
    assert files_holding(tmp_path, KEY) == []
