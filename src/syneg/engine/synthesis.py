"""Synthesis on Ray: the local revision loop, its LLM requests sent through ``ray.data.llm``.

A pair's synthesis is a conversation (reflect, write, check, revise), each request depending on the
last answer, so the pairs' loops stay the local path's (:class:`syneg.synth.Synthesizer`: the same
prompts, checks and revision rounds, not a copy) and only their requests leave the process: the pairs in
flight each ask their next request, a :class:`RayBatchBackend` gathers them and sends them as one Ray
Dataset through a ``ray.data.llm`` processor, while the answered pairs go on to their checks:

- :class:`RayHttpBackend` (backend ``openai``): ``build_processor(HttpRequestProcessorConfig(...))`` to any
  OpenAI-compatible endpoint (vLLM, the llama.cpp server, OpenAI);
- :class:`RayVLLMBackend` (backend ``vllm``): ``build_processor(vLLMEngineProcessorConfig(...))``, vLLM
  itself in Ray actors on the cluster's GPUs. It needs vLLM and CUDA, so it is not run by syneg's tests
  (they check its request rows, its reading of answers and its cache records, not a generation).

Every answer is recorded in a Ray worker before the driver sees it, in the request cache of per-writer
shards (:class:`syneg.llm.ShardedRequestCache`, keyed by the request's hash): by the HTTP processor's actor
that received it, as it arrives (:class:`BodySession`), or by the vLLM processor's postprocess, a block of
answers at a time as they leave the engine. A job stopped at any point and started again
finds every request answered before in the cache, malformed answers included (they are retried with the
next seed, as on the local path), and asks the endpoint only what it never answered; pairs already in
the output are skipped, as on the local path.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import json
import logging
import os
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from syneg.engine import ACTOR_CPUS, RayEngine
from syneg.llm import VLLM_NEEDS_RAY
from syneg.llm.base import ChatRequest, Completion, LLMError
from syneg.llm.client import LLMClient
from syneg.llm.openai_compat import OpenAICompatibleBackend, completion_from_body
from syneg.llm.shards import ShardedRequestCache, default_sharded_cache_path

logger = logging.getLogger(__name__)

# Seconds the gathering waits after the first request of a batch for the other pairs in flight to ask
# theirs: each pair runs its checks (a few ms of encoding) between two requests.
LINGER = 0.05
_CACHES: dict[str, ShardedRequestCache] = {}  # one shard writer per worker process and cache folder


def _writer(folder: str) -> ShardedRequestCache:
    """In a Ray worker: this process's shard writer of the cache in ``folder``."""
    cache = _CACHES.get(folder)
    if cache is None:
        cache = _CACHES[folder] = ShardedRequestCache(folder, read=False)
    return cache


def _record(key: str, body: Any, folder: str, api_key: str | None) -> None:
    """In a Ray actor: record an endpoint's answer under its request's key, in this process's shard."""
    try:
        completion = completion_from_body(body, api_key)
    except LLMError:
        return  # not a chat completion (an error body): nothing to replay, the driver reports it
    _writer(folder).put(key, completion)


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


class RayBatchBackend:
    """A :class:`syneg.llm.Backend` whose requests are gathered from the pairs in flight and sent in batches,
    each batch one Ray Data job (:meth:`_process`, a subclass's) whose workers record the answers in ``cache``.

    Args:
        model: The model, part of every request's cache key.
        cache: The sharded request cache, written by the processor's workers and read here.
        engine: The Ray connection and its settings.
    """

    name: str
    linger = LINGER

    def __init__(self, model: str, cache: ShardedRequestCache, engine: RayEngine) -> None:
        self.model = model
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
            await asyncio.sleep(self.linger)
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
        """One Ray Data job: the batch's requests, each answer recorded in the cache by the worker that has it.
        Returns each key's latency share, or its error."""
        started = time.perf_counter()
        results = self._process(batch)
        self.batches.append(len(batch))
        share = (time.perf_counter() - started) / max(1, len(batch))
        return {row["key"]: share if row["ok"] else row["error"] for row in results}

    def _process(self, batch: list[tuple[str, ChatRequest]]) -> list[dict[str, Any]]:
        """The processor's output rows for ``batch``: ``key``, ``ok`` and ``error`` each."""
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


class RayHttpBackend(RayBatchBackend):
    """Requests sent, in batches, through Ray Data's HTTP request processor to an OpenAI-compatible endpoint.

    Args:
        endpoint: The OpenAI-compatible backend whose request bodies and answer reading are used (the
            local path's :class:`OpenAICompatibleBackend`, so both send the same bodies).
        cache: The sharded request cache, written by the processor's actors and read here.
        engine: The Ray connection and the number of HTTP actors.
    """

    name = OpenAICompatibleBackend.name  # the same cache keys as the local openai backend

    def __init__(self, endpoint: OpenAICompatibleBackend, cache: ShardedRequestCache, engine: RayEngine) -> None:
        super().__init__(endpoint.model, cache, engine)
        self.endpoint = endpoint

    def _process(self, batch: list[tuple[str, ChatRequest]]) -> list[dict[str, Any]]:
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
        # One block per actor, and one task at a time per actor: by default the first actor ready takes two
        # tasks and, sending a batch's requests one after another, runs them in turn (one request in flight).
        context = ray.data.DataContext.get_current()
        tasks_per_actor, context.max_tasks_in_flight_per_actor = context.max_tasks_in_flight_per_actor, 1
        try:
            return processor(ray.data.from_items(rows, override_num_blocks=self.engine.actors)).take_all()
        finally:
            context.max_tasks_in_flight_per_actor = tasks_per_actor

    async def aclose(self) -> None:
        await self.endpoint.aclose()


def _answered(row: dict[str, Any]) -> dict[str, Any]:
    """The processor's postprocess: whether the endpoint answered with a chat completion (recorded already)."""
    body = row["http_response"]
    ok = isinstance(body, dict) and "choices" in body
    return {"key": row["key"], "ok": ok, "error": "" if ok else str(body)[:200]}


VLLM_INSTALL = "pip install 'syneg[vllm]'"


def vllm_installed() -> bool:
    return importlib.util.find_spec("vllm") is not None


def vllm_row(request: ChatRequest) -> dict[str, Any]:
    """The row vLLM's engine processor reads for ``request``: its messages (the processor applies the model's
    chat template) and the ``sampling_params`` of ``vllm.SamplingParams``, the JSON schema as vLLM's
    structured outputs (``StructuredOutputsParams(json=...)``, Ray 2.60 with vLLM 0.29).

    Every row has the same keys, ``structured_outputs`` None without a schema: Arrow blocks unify rows into
    one struct type, and a key some rows lack would reach vLLM as a null sampling parameter. The schema
    travels as JSON text for the same reason (two schemas in a block would each gain the other's fields).
    """
    return {
        "messages": request.message_dicts(),
        "sampling_params": {
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
            "seed": request.seed,
            "repetition_penalty": request.repeat_penalty,  # 1.0, vLLM's default, unless the request asks otherwise
            "structured_outputs": {"json": json.dumps(request.schema)} if request.schema is not None else None,
        },
        "max_tokens": request.max_tokens,  # kept beside sampling_params, which the engine consumes, for finish_reason
    }


def request_row(key: str, request: ChatRequest) -> dict[str, Any]:
    """A batch's row for the vLLM processor: the request's key and the request as JSON text (see :func:`vllm_row`)."""
    return {"key": key, "request": json.dumps(asdict(request))}


def vllm_preprocess(row: dict[str, Any]) -> dict[str, Any]:
    """The processor's preprocess (in a Ray worker): a :func:`request_row` as the row vLLM reads (the processor
    keeps the input's columns, ``key`` among them, beside what this returns)."""
    fields = json.loads(row["request"])
    fields["messages"] = tuple(tuple(message) for message in fields["messages"])
    return vllm_row(ChatRequest(**fields))


def completion_from_row(row: dict[str, Any]) -> Completion:
    """What the vLLM engine stage wrote in a row (``generated_text`` and its token counts) as a :class:`Completion`."""
    generated = int(row.get("num_generated_tokens") or 0)
    return Completion(
        text=str(row.get("generated_text") or ""),
        prompt_tokens=int(row.get("num_input_tokens") or 0),
        completion_tokens=generated,
        # The stage reports no finish reason; an answer as long as its budget was cut there.
        finish_reason="length" if generated >= int(row["max_tokens"]) else "stop",
    )


def vllm_postprocess(row: dict[str, Any], folder: str) -> dict[str, Any]:
    """The processor's postprocess (in a Ray worker): record the answer in the cache in ``folder``, before the
    driver sees it; rows leave the engine a block at a time, so a killed job loses at most the blocks in it."""
    _writer(folder).put(row["key"], completion_from_row(row))
    return {"key": row["key"], "ok": True, "error": ""}


class RayVLLMBackend(RayBatchBackend):
    """Requests sent, in batches, through Ray Data's vLLM engine processor: vLLM in Ray actors on the cluster's GPUs.

    Each batch is one Ray Data job, which starts the engine replicas (the model loaded onto their GPUs) for
    that job, so it pays off for batches of thousands of requests (many pairs in flight); with fewer, a
    vLLM server reached through :class:`RayHttpBackend` loads the model once. Untested here: vLLM needs
    CUDA; syneg's tests check the rows, the reading of answers and the cache records only.

    Args:
        model: A Hugging Face model id or a folder every GPU node reaches (vLLM's model source).
        cache: The sharded request cache, written by the postprocess and read here.
        engine: The Ray connection.
        tensor_parallel_size: GPUs per engine replica.
        max_model_len: The engine's context length (None: the model's).
        batch_size: Requests per engine batch, and per block of answers recorded.
        replicas: Engine replicas, each on ``tensor_parallel_size`` GPUs.
        accelerator_type: Ray's accelerator type to schedule the replicas on (e.g. ``H100``), or any GPU.
    """

    name = "vllm"
    # A batch starts the engines: wait longer for the pairs in flight (their checks run on the driver
    # between two requests) so that a round of the pairs goes as one batch, not as many.
    linger = 1.0

    def __init__(self, model: str, cache: ShardedRequestCache, engine: RayEngine, tensor_parallel_size: int = 1,
                 max_model_len: int | None = None, batch_size: int = 32, replicas: int = 1,
                 accelerator_type: str | None = None) -> None:
        super().__init__(model, cache, engine)
        self.tensor_parallel_size = tensor_parallel_size
        self.max_model_len = max_model_len
        self.batch_size = batch_size
        self.replicas = replicas
        self.accelerator_type = accelerator_type
        self._processor: Any = None

    def processor_config(self) -> Any:
        """The ``vLLMEngineProcessorConfig`` of these settings."""
        from ray.data.llm import vLLMEngineProcessorConfig

        engine_kwargs: dict[str, Any] = {"tensor_parallel_size": self.tensor_parallel_size}
        if self.max_model_len is not None:
            engine_kwargs["max_model_len"] = self.max_model_len
        return vLLMEngineProcessorConfig(
            model_source=self.model,
            engine_kwargs=engine_kwargs,
            batch_size=self.batch_size,
            concurrency=(self.replicas, self.replicas),  # a fixed pool: an autoscaling one starts with one replica
            accelerator_type=self.accelerator_type,
        )

    def _process(self, batch: list[tuple[str, ChatRequest]]) -> list[dict[str, Any]]:
        ray = self.engine.connect()
        if self._processor is None:  # built once: it reads the model's tokenizer files on the driver
            from ray.data.llm import build_processor

            self._processor = build_processor(self.processor_config(), preprocess=vllm_preprocess,
                                              postprocess=functools.partial(vllm_postprocess, folder=str(self.cache.path)))
        rows = [request_row(key, request) for key, request in batch]
        blocks = max(1, -(-len(rows) // self.batch_size))
        return self._processor(ray.data.from_items(rows, override_num_blocks=blocks)).take_all()


def check_backend(options: Any) -> None:
    """Raise what keeps the LLM of ``options`` (:class:`syneg.synth.SynthesizeOptions`) from running, before any
    work: a ValueError for a missing setting, an ImportError naming what to install (both bad input in the CLI)."""
    if options.backend == "vllm" and options.engine != "ray":
        raise ValueError(VLLM_NEEDS_RAY)
    if options.engine != "ray":
        return
    if options.backend == "vllm":
        if options.model == "default":
            raise ValueError("backend vllm needs --model: a Hugging Face model id or a folder every GPU node reaches")
        if not vllm_installed():
            raise ImportError(f"backend vllm runs vLLM in Ray actors on CUDA GPUs, and vLLM is not installed: {VLLM_INSTALL}")
    elif options.backend != "openai" or not options.base_url:
        raise ValueError("engine ray sends requests through ray.data.llm: it needs backend openai and a base_url (an "
                         "OpenAI-compatible endpoint: vLLM, llama.cpp server, OpenAI), or backend vllm (vLLM in Ray actors)")


def ray_client(options: Any, engine: RayEngine, use_cache: bool = True) -> LLMClient:
    """The LLM client of a synthesis on Ray: the endpoint or vLLM engine of ``options`` (:class:`syneg.synth.LLMOptions`),
    reached through Ray Data, and the sharded request cache (``<options.cache>.shards`` or the default)."""
    check_backend(options)
    folder = Path(f"{options.cache}.shards") if options.cache else default_sharded_cache_path()
    # Without the cache the workers still record answers, in a folder of their own: only replaying is off.
    cache = ShardedRequestCache(folder if use_cache else folder / f"fresh-{time.time_ns()}")
    backend: RayBatchBackend
    if options.backend == "vllm":
        backend = RayVLLMBackend(options.model, cache, engine, tensor_parallel_size=options.vllm_tensor_parallel_size,
                                 max_model_len=options.vllm_max_model_len, batch_size=options.vllm_batch_size,
                                 replicas=options.vllm_replicas, accelerator_type=options.vllm_accelerator_type)
    else:
        endpoint = OpenAICompatibleBackend(options.base_url, options.model, api_key_env=options.api_key_env,
                                           timeout=options.timeout, structured_output=options.structured_output)
        backend = RayHttpBackend(endpoint, cache, engine)
    return LLMClient(backend, cache)
