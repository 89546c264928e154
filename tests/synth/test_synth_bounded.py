"""What a synthesis run holds does not grow with its number of pairs (issue 21, part 6).

A real synthesis against a loopback OpenAI-compatible server: the pairs are taken by ``concurrency``
workers, so the tasks alive at any request stay at the workers and the run's own, whatever the pairs.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from loopback_chat import EchoingChatServer
from syneg.data import demo_path, load_beir, read_training_set
from syneg.llm import ChatRequest, Completion, LLMClient, OpenAICompatibleBackend
from syneg.synth import AttributeSet, Synthesizer, pairs_from_beir


class TaskCountingBackend:
    """The real HTTP backend, counting the synthesis's tasks at each request."""

    def __init__(self, backend: OpenAICompatibleBackend) -> None:
        self.backend, self.name, self.model = backend, backend.name, backend.model
        self.most_tasks = 0

    async def complete(self, request: ChatRequest) -> Completion:
        # The synthesis's own tasks; the HTTP library runs a few of its own (closing connections).
        tasks = [t for t in asyncio.all_tasks() if t.get_coro().__qualname__.startswith("Synthesizer.")]
        self.most_tasks = max(self.most_tasks, len(tasks))
        return await self.backend.complete(request)

    async def aclose(self) -> None:
        await self.backend.aclose()


def test_synthesis_keeps_a_task_per_worker_not_per_pair(tmp_path: Path, encoder) -> None:
    server = EchoingChatServer(failing={})
    pairs = pairs_from_beir(load_beir(demo_path(), "train"), limit=12)
    backend = TaskCountingBackend(OpenAICompatibleBackend(server.base_url, "loopback", api_key_env="", concurrency=3))
    try:
        synthesizer = Synthesizer(LLMClient(backend), encoder=encoder, attributes=AttributeSet(domain=["Medicine"]),
                                  negatives_per_pair=1, max_rounds=0, concurrency=3)
        stats = synthesizer.run(pairs, tmp_path / "out.jsonl", show_progress=False)
    finally:
        server.close()
    assert stats["pairs"] == 12 and len(list(read_training_set(tmp_path / "out.jsonl"))) == 12
    assert server.requests >= 12
    assert backend.most_tasks <= 3 + 1  # the workers and the run's own task (a task per pair before: 13)
