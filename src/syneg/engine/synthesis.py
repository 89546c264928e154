"""Synthesis on Ray: the local revision loop, its LLM requests sent through ``ray.data.llm``.

A pair's synthesis is a conversation (reflect, write, check, revise), each request depending on the
last answer, so the pairs' loops stay the local path's (:class:`syneg.synth.Synthesizer`: the same
prompts, checks and revision rounds, not a copy) and only their requests leave the process: the pairs in
flight each ask their next request, :class:`RayHttpBackend` gathers them, and sends them as one Ray
Dataset through ``ray.data.llm.build_processor(HttpRequestProcessorConfig(...))`` to any OpenAI-compatible
endpoint (vLLM, the llama.cpp server, OpenAI), while the answered pairs go on to their checks.

Every answer is recorded by the HTTP processor's actor that received it, as it arrives (:class:`BodySession`),
in the request cache of per-writer shards (:class:`syneg.llm.ShardedRequestCache`,
keyed by the request's hash), before the driver sees it. A job stopped at any point and started again
finds every request answered before in the cache, malformed answers included (they are retried with the
next seed, as on the local path), and asks the endpoint only what it never answered; pairs already in
the output are skipped, as on the local path.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from syneg.engine import ACTOR_CPUS, RayEngine
from syneg.llm.base import ChatRequest, Completion, LLMError
from syneg.llm.client import LLMClient
from syneg.llm.openai_compat import OpenAICompatibleBackend, completion_from_body
from syneg.llm.shards import ShardedRequestCache

logger = logging.getLogger(__name__)

# Seconds the gathering waits after the first request of a batch for the other pairs in flight to ask
# theirs: each pair runs its checks (a few ms of encoding) between two requests.
LINGER = 0.05
_CACHES: dict[str, ShardedRequestCache] = {}  # one shard writer per worker process and cache folder


def _record(key: str, body: Any, folder: str, api_key: str | None) -> None:
    """In a Ray actor: record an endpoint's answer under its request's key, in this process's shard."""
    try:
        completion = completion_from_body(body, api_key)
    except LLMError:
        return  # not a chat completion (an error body): nothing to replay, the driver reports it
    cache = _CACHES.get(folder)
    if cache is None:
        cache = _CACHES[folder] = ShardedRequestCache(folder, read=False)
    cache.put(key, completion)


class BodySession:
    """The HTTP processor's client session (``session_factory``): it sends each row's ``payload["body"]``, a
    JSON text, as the request body, and records the answer in the request cache the moment it arrives.

    A body travels as text because Ray Data keeps rows in Arrow blocks, which unify the nested dicts of
    a block into one struct type: two chat bodies with different JSON schemas in one block would each
    reach the endpoint with the other's fields added as nulls. Recording here, in the actor that sent the
    request, rather than in a later stage, is what makes a stopped job lose no answer: the processor
    hands a block of answers on only when the whole block is answered.
    """

    def __init__(self, folder: str, api_key: str | None, timeout: float) -> None:
        import aiohttp

        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout))
        self.folder = folder
        self.api_key = api_key

    async def __aenter__(self) -> BodySession:
        await self.session.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.session.__aexit__(*exc)

    def post(self, url: str, *, data: str, headers: dict[str, str]) -> Any:
        return self._post(url, json.loads(data), headers)

    async def _post(self, url: str, payload: dict[str, str], headers: dict[str, str]) -> Any:
        response = await self.session.post(url, data=payload["body"], headers=headers)
        if response.status == 200:
            try:
                body = json.loads(await response.read())
            except ValueError:
                return response  # not JSON: the processor reports it
            _record(payload["key"], body, self.folder, self.api_key)
        return response


class RayHttpBackend:
    """A :class:`syneg.llm.Backend` whose requests go, in batches, through Ray Data's HTTP request processor.

    Args:
        endpoint: The OpenAI-compatible backend whose request bodies and answer reading are used (the
            local path's :class:`OpenAICompatibleBackend`, so both send the same bodies).
        cache: The sharded request cache, written by the processor's workers and read here.
        engine: The Ray connection and the number of HTTP actors.
    """

    name = OpenAICompatibleBackend.name  # the same cache keys as the local openai backend

    def __init__(self, endpoint: OpenAICompatibleBackend, cache: ShardedRequestCache, engine: RayEngine) -> None:
        self.endpoint = endpoint
        self.model = endpoint.model
        self.cache = cache
        self.engine = engine
        self._pending: list[tuple[str, ChatRequest, asyncio.Future[Completion]]] = []
        self._sender: asyncio.Task[None] | None = None
        self.batches: list[int] = []  # requests per batch sent, for the statistics

    async def complete(self, request: ChatRequest) -> Completion:
        key = request.cache_key(self.name, self.model)
        known = self.cache.get(key)
        if known is not None:  # answered before (recorded by a worker), whatever the client made of it
            return replace(known, cached=False)
        future: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
        self._pending.append((key, request, future))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_pending())
        return await future

    async def _send_pending(self) -> None:
        while self._pending:
            await asyncio.sleep(LINGER)
            batch, self._pending = self._pending, []
            try:
                answers = await asyncio.to_thread(self._send, [(key, request) for key, request, _ in batch])
            except Exception as error:  # noqa: BLE001 - handed to every request of the batch
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            self.cache.refresh()
            for key, _, future in batch:
                completion = self.cache.get(key)
                if completion is not None:
                    latency = answers.get(key)
                    future.set_result(replace(completion, cached=False, latency=latency if isinstance(latency, float) else 0.0))
                else:
                    future.set_exception(LLMError("invalid_response", f"not a chat completion: {answers.get(key)!r}"[:300]))

    def _send(self, batch: list[tuple[str, ChatRequest]]) -> dict[str, Any]:
        """One Ray Data job: the batch's requests through the HTTP processor; each answer recorded in the cache
        by the worker that postprocesses it. Returns each key's latency share, or its error body."""
        ray = self.engine.connect()
        from ray.data.llm import HttpRequestProcessorConfig, build_processor

        api_key = os.environ.get(self.endpoint.api_key_env) if self.endpoint.api_key_env else None
        config = HttpRequestProcessorConfig(
            url=f"{self.endpoint.base_url}/chat/completions",
            headers={"Authorization": f"Bearer {api_key}"} if api_key else None,
            batch_size=max(1, -(-len(batch) // self.engine.actors)),
            # A fixed pool: an int is an autoscaling range from 1, and a job of a few batches never grows past
            # one actor (one request in flight, measured at the server).
            concurrency=(self.engine.actors, self.engine.actors),
            max_retries=self.endpoint.max_retries,
            http_request_stage={"num_cpus": ACTOR_CPUS / 2},
            session_factory=functools.partial(BodySession, str(self.cache.path), api_key, self.endpoint.timeout),
        )
        processor = build_processor(config, postprocess=_answered)
        rows = [{"key": key, "payload": {"key": key, "body": json.dumps(self.endpoint.payload(request))}} for key, request in batch]
        started = time.perf_counter()
        # One block per actor, and one task at a time per actor: by default the first actor ready takes two
        # tasks and, sending a batch's requests one after another, runs them in turn (one request in flight).
        context = ray.data.DataContext.get_current()
        tasks_per_actor, context.max_tasks_in_flight_per_actor = context.max_tasks_in_flight_per_actor, 1
        try:
            results = processor(ray.data.from_items(rows, override_num_blocks=self.engine.actors)).take_all()
        finally:
            context.max_tasks_in_flight_per_actor = tasks_per_actor
        self.batches.append(len(batch))
        share = (time.perf_counter() - started) / max(1, len(batch))
        return {row["key"]: share if row["ok"] else row["error"] for row in results}

    async def aclose(self) -> None:
        await self.endpoint.aclose()


def _answered(row: dict[str, Any]) -> dict[str, Any]:
    """The processor's postprocess: whether the endpoint answered with a chat completion (recorded already)."""
    body = row["http_response"]
    ok = isinstance(body, dict) and "choices" in body
    return {"key": row["key"], "ok": ok, "error": "" if ok else str(body)[:200]}


def ray_client(options: Any, engine: RayEngine, use_cache: bool = True) -> LLMClient:
    """The LLM client of a synthesis on Ray: the endpoint of ``options`` (:class:`syneg.synth.LLMOptions`),
    reached through Ray Data, and the sharded request cache (``<options.cache>.shards`` or the default)."""
    if options.backend != "openai" or not options.base_url:
        raise ValueError("engine ray sends requests through ray.data.llm's HTTP processor: it needs backend openai "
                         "and a base_url (an OpenAI-compatible endpoint: vLLM, llama.cpp server, OpenAI)")
    endpoint = OpenAICompatibleBackend(options.base_url, options.model, api_key_env=options.api_key_env, timeout=options.timeout,
                                       structured_output=options.structured_output)
    folder = Path(f"{options.cache}.shards") if options.cache else None
    cache = ShardedRequestCache(folder)
    if not use_cache:  # the workers still record answers; only replaying them is off
        cache = ShardedRequestCache(cache.path / f"fresh-{time.time_ns()}")
    return LLMClient(RayHttpBackend(endpoint, cache, engine), cache)
