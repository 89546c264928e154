"""The ``syneg`` command line: one command per pipeline stage, thin wrappers over the Python API.

Streams: results go to stdout (with ``--json``, one JSON document and nothing else); logs, warnings
and progress go to stderr. Exit codes: 0 done, 2 bad input or configuration, 130 interrupted, 1
anything else (one line on stderr, the traceback in a log file under ``$SYNEG_CACHE_DIR/logs``).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shlex
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from syneg import progress
from syneg.data import DataError, Retrievers, SamplingStrategy
from syneg.data.storage import STORAGE_ERRORS, storage_error
from syneg.engine import Engine
from syneg.evaluation import EVALUATE, RETRIEVED_PER_QUERY
from syneg.llm import BackendName, LLMError, StructuredOutput
from syneg.mixing import MIX, MixStrategy
from syneg.pipeline import PipelineStage
from syneg.retrieval.encoder import DEFAULT_BACKEND, Backend
from syneg.retrieval.mining import MINE
from syneg.retrieval.search import DEFAULT_SEARCH, SearchBackend
from syneg.synth import SYNTHESIZE, Ablation, CheckConfig, Critique, PromptStyle
from syneg.training import TRAIN, TrainLoss, TrainPrecision

# Defaults and choices of every stage option come from the stage's schema (syneg.options): one set for
# the command line, the pipeline config and the Python verbs.
CHECKS = CheckConfig()

app = typer.Typer(
    name="syneg",
    help="Train dense retrievers with LLM-synthesized hard negatives (SyNeg).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
stderr = Console(stderr=True)


INTERRUPTED = 130  # the shell's code for a process ended by Ctrl-C (128 + SIGINT)

# Levels by verbosity: syneg's own logger, then every other library's (and Python warnings).
LOG_LEVELS: dict[progress.Verbosity, tuple[int, int]] = {
    "quiet": (logging.ERROR, logging.ERROR),
    "normal": (logging.INFO, logging.ERROR),
    "verbose": (logging.DEBUG, logging.INFO),
}
# Libraries that set their logger's level from these variables when imported (after this callback runs).
LIBRARY_VERBOSITY_VARIABLES = ("TRANSFORMERS_VERBOSITY", "DATASETS_VERBOSITY", "HF_HUB_VERBOSITY")


@app.callback()
def _configure(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also show the libraries' logs and warnings.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Show only results and errors.")] = False,
) -> None:
    from rich.logging import RichHandler

    verbosity: progress.Verbosity = "quiet" if quiet else "verbose" if verbose else "normal"
    own_level, library_level = LOG_LEVELS[verbosity]
    logging.basicConfig(
        level=library_level,
        format="%(message)s",
        handlers=[RichHandler(console=stderr, show_path=False, show_time=False)],
        force=True,
    )
    logging.getLogger("syneg").setLevel(own_level)
    logging.captureWarnings(True)
    for variable in LIBRARY_VERBOSITY_VARIABLES:
        os.environ[variable] = logging.getLevelName(library_level).lower()
    progress.set_verbosity(verbosity)
    progress.silence_third_party_progress()


def json_output(command: Callable[..., Any]) -> Callable[..., None]:
    """For a command that returns its ``--json`` document: while it works, stdout (file descriptor 1,
    so C libraries and the trainer's prints too) goes to stderr; then the document alone goes to stdout."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        if not kwargs.get("as_json"):
            command(*args, **kwargs)
            return
        sys.stdout.flush()
        real_stdout = os.dup(1)
        os.dup2(2, 1)
        try:
            document = command(*args, **kwargs)
        finally:
            sys.stdout.flush()
            os.dup2(real_stdout, 1)
            os.close(real_stdout)
        print(json.dumps(document, indent=2))

    return wrapper


DataDir = Annotated[Path, typer.Argument(help="A BEIR dataset folder (corpus.jsonl, queries.jsonl, qrels/).")]
BackendOption = Annotated[Backend, typer.Option(help="Dense encoding: auto (this machine's fastest; `syneg doctor` shows it), torch "
                                                     "(fp32), torch-bf16, torch-fp16 (GPU), onnx (ONNX Runtime fp32) or onnx-int8.")]
SearchOption = Annotated[SearchBackend, typer.Option(help="Dense search: exact, faiss-flat or faiss-hnsw.")]
MaxLengthOption = Annotated[int | None, typer.Option(help="Dense model truncation length in tokens (default: the model's).")]
EngineOption = Annotated[Engine, typer.Option(help="Where the work runs: local, or ray (Ray Data; pip install 'syneg[ray]').")]
RayAddressOption = Annotated[str | None, typer.Option(help="ray: an existing cluster's address (default: $RAY_ADDRESS, else "
                                                           "a local Ray).")]
RayActorsOption = Annotated[int, typer.Option(min=1, help="ray: actors per stage (encoders; HTTP request senders).")]


@app.command()
@json_output
def evaluate(
    data_dir: DataDir,
    model: Annotated[
        list[str],
        typer.Option("--model", "-m", help="bm25, default (embedded all-MiniLM-L6-v2) or a model folder; repeat to compare."),
    ] = ["default"],  # noqa: B006 - typer needs a literal default
    split: Annotated[str, typer.Option(help="The qrels split to evaluate on.")] = EVALUATE.split,
    k: Annotated[int, typer.Option(help="Documents retrieved per query.")] = RETRIEVED_PER_QUERY,
    metric: Annotated[list[str] | None, typer.Option(help="Metrics (ndcg@10, recall@100, mrr@10, map@k, precision@k).")] = None,
    backend: BackendOption = DEFAULT_BACKEND,
    search: SearchOption = DEFAULT_SEARCH,
    max_seq_length: MaxLengthOption = None,
    run_dir: Annotated[Path | None, typer.Option(help="Write each model's TREC run file here.")] = None,
    engine: EngineOption = EVALUATE.engine,
    ray_address: RayAddressOption = EVALUATE.ray_address,
    ray_actors: RayActorsOption = EVALUATE.ray_actors,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (one object; one per model when comparing).")] = False,
) -> dict[str, Any] | None:
    """Evaluate BM25 or dense models on a BEIR split: nDCG@10, Recall@10/100, MRR@10."""
    from syneg.data import load_beir
    from syneg.evaluation import compare, write_trec_run
    from syneg.evaluation import evaluate as evaluate_model

    dataset = load_beir(data_dir, split=split)
    results = []
    for name in model:
        result = evaluate_model(
            dataset, model=name, metrics=metric or EVALUATE.metrics, k=k, backend=backend, search=search, max_seq_length=max_seq_length,
            engine=engine, ray_address=ray_address, ray_actors=ray_actors,
        )
        results.append(result)
        if run_dir is not None:
            tag = Path(name).name or name
            write_trec_run(run_dir / f"{tag}.{split}.trec", result.run, tag=tag)
    if as_json:
        objects = [r.to_dict() for r in results]
        return objects[0] if len(objects) == 1 else {o["model"]: o for o in objects}
    compare(results, console=Console())
    return None


@app.command()
@json_output
def mine(
    data_dir: DataDir,
    output: Annotated[Path, typer.Option("--output", "-o", help="Training-set jsonl to write.")],
    split: Annotated[str, typer.Option(help="The qrels split whose (query, positive) pairs get negatives.")] = "train",
    retriever: Annotated[Retrievers, typer.Option(help="bm25, dense or both (interleaved).")] = MINE.retriever,
    model: Annotated[str, typer.Option(help="Dense model: default or a sentence-transformers folder.")] = "default",
    num_negatives: Annotated[int, typer.Option(help="Negatives per (query, positive) pair.")] = MINE.num_negatives,
    range_min: Annotated[int, typer.Option(help="Skip this many of the best surviving candidates.")] = MINE.range_min,
    range_max: Annotated[int | None, typer.Option(help="Candidates considered per query and retriever.")] = MINE.range_max,
    max_score: Annotated[float | None, typer.Option(help="Drop candidates scoring above this.")] = MINE.max_score,
    min_score: Annotated[float | None, typer.Option(help="Drop candidates scoring below this.")] = MINE.min_score,
    absolute_margin: Annotated[float | None, typer.Option(help="Drop candidates within this of the positive's score.")] = MINE.absolute_margin,
    relative_margin: Annotated[
        float | None, typer.Option(help="Drop candidates above (1 - margin) x the positive's score; 0.05 is NV-Retriever's 95% rule.")
    ] = MINE.relative_margin,
    sampling_strategy: Annotated[SamplingStrategy, typer.Option(help="top or random.")] = MINE.sampling_strategy,
    positives_per_query: Annotated[int | None, typer.Option(help="At most this many positives per query.")] = None,
    seed: Annotated[int, typer.Option()] = 42,
    backend: BackendOption = DEFAULT_BACKEND,
    search: SearchOption = DEFAULT_SEARCH,
    max_seq_length: MaxLengthOption = MINE.max_seq_length,
    engine: EngineOption = MINE.engine,
    ray_address: RayAddressOption = MINE.ray_address,
    ray_actors: RayActorsOption = MINE.ray_actors,
    as_json: Annotated[bool, typer.Option("--json", help="Print the statistics as JSON on stdout.")] = False,
) -> dict[str, Any] | None:
    """Mine retrieved hard negatives (BM25, dense or both) for every (query, positive) pair of a split."""
    from syneg.data import load_beir, write_training_set
    from syneg.retrieval.mining import mine as mine_negatives

    dataset = load_beir(data_dir, split=split)
    result = mine_negatives(
        dataset,
        retriever=retriever,
        model=model,
        num_negatives=num_negatives,
        range_min=range_min,
        range_max=range_max,
        max_score=max_score,
        min_score=min_score,
        absolute_margin=absolute_margin,
        relative_margin=relative_margin,
        sampling_strategy=sampling_strategy,
        positives_per_query=positives_per_query,
        seed=seed,
        backend=backend,
        search=search,
        max_seq_length=max_seq_length,
        engine=engine,
        ray_address=ray_address,
        ray_actors=ray_actors,
        verbose=not as_json,
    )
    written = write_training_set(output, result.instances)
    if as_json:
        return {"output": str(output), **result.stats.summary(), "repaired_texts": dataset.repaired}
    stderr.print(f"Wrote {written:,} training instances to {output}")
    return None


@app.command()
def mix(
    output: Annotated[Path, typer.Option("--output", "-o", help="Training-set jsonl to write.")],
    strategy: Annotated[MixStrategy, typer.Option(help="hybrid, direct, synthetic, retrieved, random or in-batch.")] = "hybrid",
    retrieved: Annotated[Path | None, typer.Option(help="Retrieved pool: a `syneg mine` jsonl.")] = None,
    synthetic: Annotated[Path | None, typer.Option(help="Synthetic pool: a `syneg synthesize` jsonl.")] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data", help="BEIR folder: corpus for random negatives and fills (its split's pairs if no pool)."),
    ] = None,
    split: Annotated[str, typer.Option(help="The qrels split of --data.")] = "train",
    num_negatives: Annotated[int, typer.Option(help="Negatives per instance, the same for every strategy.")] = MIX.num_negatives,
    ratio: Annotated[float, typer.Option(help="R = synthetic / retrieved negatives (hybrid: per instance; direct: overall).")] = MIX.ratio,
    retrieved_sources: Annotated[Retrievers, typer.Option(help="Retrieved negatives used: bm25, dense or both.")] = MIX.retrieved_sources,
    sampling_strategy: Annotated[SamplingStrategy, typer.Option(help="random (seeded) or top (pool order).")] = MIX.sampling_strategy,
    seed: Annotated[int, typer.Option()] = 42,
) -> None:
    """Mix negative pools into a training set: hybrid (SyNeg), direct or single-source baselines."""
    from syneg.data import load_beir, read_training_set, write_training_set
    from syneg.mixing import mix as mix_negatives

    instances, stats = mix_negatives(
        strategy,
        read_training_set(retrieved) if retrieved else (),
        read_training_set(synthetic) if synthetic else (),
        load_beir(data_dir, split=split) if data_dir else None,
        num_negatives=num_negatives,
        ratio=ratio,
        retrieved_sources=retrieved_sources,
        sampling_strategy=sampling_strategy,
        seed=seed,
    )
    written = write_training_set(output, instances)
    Console().print(stats.table())
    stderr.print(f"Wrote {written:,} training instances to {output}")


@app.command()
def train(
    training_set: Annotated[Path, typer.Argument(help="Training-set jsonl (`syneg mix` output).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder of the trained model.")],
    model: Annotated[str, typer.Option(help="Backbone: default (embedded all-MiniLM-L6-v2) or a model folder.")] = TRAIN.model,
    temperature: Annotated[float, typer.Option(help="InfoNCE temperature τ (scale = 1/τ; paper 0.02).")] = TRAIN.temperature,
    loss: Annotated[TrainLoss, typer.Option(help="infonce, or gist (guided masking of false negatives).")] = TRAIN.loss,
    guide_model: Annotated[str | None, typer.Option(help="Guide of gist; default a frozen copy of --model.")] = TRAIN.guide_model,
    num_negatives: Annotated[int | None, typer.Option(help="Hard negatives per row (default: the smallest count).")] = TRAIN.num_negatives,
    batch_size: Annotated[int, typer.Option(help="Rows per batch.")] = TRAIN.batch_size,
    mini_batch_size: Annotated[int, typer.Option(help="Texts per forward pass with gist (gradient caching).")] = TRAIN.mini_batch_size,
    learning_rate: Annotated[float, typer.Option("--lr", "--learning-rate", help="Peak learning rate.")] = TRAIN.learning_rate,
    epochs: Annotated[float, typer.Option(help="Passes over the training set.")] = TRAIN.epochs,
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many steps (overrides --epochs).")] = TRAIN.max_steps,
    warmup_ratio: Annotated[float, typer.Option(help="Share of steps warming up the learning rate.")] = TRAIN.warmup_ratio,
    weight_decay: Annotated[float, typer.Option(help="AdamW weight decay.")] = TRAIN.weight_decay,
    max_seq_length: Annotated[int | None, typer.Option(help="Truncation length in tokens.")] = TRAIN.max_seq_length,
    query_prompt: Annotated[str | None, typer.Option(help='Prefix of queries, e.g. "query: ".')] = TRAIN.query_prompt,
    document_prompt: Annotated[str | None, typer.Option(help='Prefix of documents, e.g. "passage: ".')] = TRAIN.document_prompt,
    seed: Annotated[int, typer.Option()] = 42,
    save_steps: Annotated[int, typer.Option(help="Steps between checkpoints (in OUTPUT/checkpoints).")] = TRAIN.save_steps,
    save_total_limit: Annotated[int | None, typer.Option(help="Checkpoints kept, oldest deleted first.")] = TRAIN.save_total_limit,
    logging_steps: Annotated[int, typer.Option(help="Steps between loss log lines.")] = TRAIN.logging_steps,
    resume: Annotated[bool, typer.Option(help="Resume from the last checkpoint, if any.")] = False,
    precision: Annotated[TrainPrecision, typer.Option(help="auto (bf16 on a CPU with native bf16, mixed precision on a GPU, "
                                                           "else fp32), fp32, bf16 or fp16 (GPU).")] = TRAIN.precision,
) -> None:
    """Fine-tune a bi-encoder with InfoNCE over positives, hard negatives and in-batch negatives."""
    from syneg.training import train as train_model

    train_model(
        training_set,
        output,
        model,
        temperature=temperature,
        loss=loss,
        guide_model=guide_model,
        num_negatives=num_negatives,
        batch_size=batch_size,
        mini_batch_size=mini_batch_size,
        learning_rate=learning_rate,
        epochs=epochs,
        max_steps=max_steps,
        warmup_ratio=warmup_ratio,
        weight_decay=weight_decay,
        max_seq_length=max_seq_length,
        query_prompt=query_prompt,
        document_prompt=document_prompt,
        seed=seed,
        save_steps=save_steps,
        save_total_limit=save_total_limit,
        logging_steps=logging_steps,
        resume_from_checkpoint=resume,
        precision=precision,
    )


LLMBackendOption = Annotated[BackendName, typer.Option("--backend", help="LLM backend: llama.cpp (in-process, offline), openai "
                                                                          "(any OpenAI-compatible endpoint) or vllm (vLLM in Ray "
                                                                          "actors on GPUs; --engine ray).")]
LLMModelOption = Annotated[
    str, typer.Option("--model", help="llama.cpp: qwen2.5-0.5b (default), smollm2-135m or a GGUF path; openai: the endpoint's model name; "
                                      "vllm: a Hugging Face id or a folder.")
]
BaseUrlOption = Annotated[str | None, typer.Option(help="OpenAI-compatible API root, e.g. http://127.0.0.1:8000/v1.")]
ApiKeyEnvOption = Annotated[str, typer.Option(help="Environment variable holding the API key (never logged).")]
LLMCacheOption = Annotated[Path | None, typer.Option("--cache", help="LLM request cache (default: $SYNEG_CACHE_DIR/llm-cache.sqlite).")]


@app.command("propose-attributes")
def propose_attributes(
    data_dir: DataDir,
    output: Annotated[Path, typer.Option("--output", "-o", help="YAML attribute file to write (edit it, then pass it to synthesize).")],
    sample_size: Annotated[int, typer.Option(help="Documents sampled from the corpus.")] = 12,
    seed: Annotated[int, typer.Option()] = SYNTHESIZE.seed,
    backend: LLMBackendOption = SYNTHESIZE.backend,
    model: LLMModelOption = SYNTHESIZE.model,
    base_url: BaseUrlOption = SYNTHESIZE.base_url,
    api_key_env: ApiKeyEnvOption = SYNTHESIZE.api_key_env,
    cache: LLMCacheOption = SYNTHESIZE.cache,
) -> None:
    """Ask the LLM to name the domains of a sample of the corpus and write an editable attribute file."""
    import asyncio

    from syneg.data import load_beir
    from syneg.synth import LLMOptions
    from syneg.synth import propose_attributes as propose

    client = LLMOptions(backend=backend, model=model, base_url=base_url, api_key_env=api_key_env, cache=cache).client()
    dataset = load_beir(data_dir, split=None)
    try:
        attributes = asyncio.run(propose(dataset, client, sample_size=sample_size, seed=seed))
    finally:
        asyncio.run(client.aclose())
    attributes.save(output)
    stderr.print(f"Wrote {len(attributes.domain)} domains to {output}: {', '.join(attributes.domain)}")


@app.command()
@json_output
def synthesize(
    data: Annotated[Path, typer.Argument(help="A BEIR dataset folder, or a training-set jsonl (e.g. from `syneg mine`).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Training-set jsonl to append to (pairs already in it are skipped).")],
    split: Annotated[str, typer.Option(help="The qrels split whose (query, positive) pairs get negatives.")] = "train",
    limit: Annotated[int | None, typer.Option(help="Only the first N pairs.")] = None,
    negatives_per_pair: Annotated[int, typer.Option(help="Negatives kept per pair (K).")] = SYNTHESIZE.negatives_per_pair,
    attributes: Annotated[
        str | None,
        typer.Option(help="A shipped example (scifact, demo), else an attribute YAML file. Default: proposed by the LLM, "
                          "saved beside --output."),
    ] = SYNTHESIZE.attributes,
    max_rounds: Annotated[int, typer.Option(help="Revisions of a candidate that fails a check.")] = SYNTHESIZE.max_rounds,
    ablation: Annotated[Ablation, typer.Option(help="none, no-attributes or no-attributes-no-reflection (the paper's ablations).")] = SYNTHESIZE.ablation,
    critique: Annotated[Critique, typer.Option(help="LLM self-critique: off, record or enforce.")] = SYNTHESIZE.critique,
    prompt_style: Annotated[PromptStyle, typer.Option(help="two-step (reflect, then write) or single (one JSON answer).")] = SYNTHESIZE.prompt_style,
    aspects_per_reflection: Annotated[
        int | None, typer.Option(help="two-step: aspects one reflection proposes (1-5); rounds after a rejected passage write "
                                      "the spare ones. Default: 3 with a reflection, else 1.")
    ] = None,
    trim_cut_fields: Annotated[bool, typer.Option(help="two-step: write from the whole words of a reflection field the JSON "
                                                       "grammar cut at its cap (--no-trim-cut-fields: the title alone, as before).")] = (
        SYNTHESIZE.trim_cut_fields),
    prompts: Annotated[Path | None, typer.Option(help="Folder of prompt templates overriding the shipped ones.")] = SYNTHESIZE.prompts,
    max_words: Annotated[int, typer.Option(help="Cap on the target length of a negative, in words.")] = SYNTHESIZE.max_words,
    max_tokens: Annotated[int, typer.Option(help="Generation budget per LLM answer.")] = SYNTHESIZE.max_tokens,
    temperature: Annotated[float, typer.Option()] = SYNTHESIZE.temperature,
    min_query_similarity: Annotated[float, typer.Option(help="On-topic floor: dense similarity to the query.")] = CHECKS.min_query_similarity,
    min_relative_similarity: Annotated[
        float, typer.Option(help="On-topic floor relative to the positive's similarity, when lower than the absolute one.")
    ] = CHECKS.min_relative_similarity,
    max_positive_similarity: Annotated[float, typer.Option(help="Paraphrase cap: dense similarity to the positive.")] = CHECKS.max_positive_similarity,
    positive_ratio: Annotated[float, typer.Option(help="Positive-aware cap: similarity to the query at most this x the positive's.")] = CHECKS.positive_ratio,
    max_answer_leak: Annotated[float, typer.Option(help="Cap on the share of the answer sentence's bigrams reused.")] = CHECKS.max_answer_leak,
    seed: Annotated[int, typer.Option()] = SYNTHESIZE.seed,
    refill: Annotated[bool, typer.Option("--refill", help="Synthesize again the pairs already in the output with fewer than "
                                                          "K negatives (with more --max-rounds, other aspects or another --seed).")] = SYNTHESIZE.refill,
    backend: LLMBackendOption = SYNTHESIZE.backend,
    model: LLMModelOption = SYNTHESIZE.model,
    base_url: BaseUrlOption = SYNTHESIZE.base_url,
    api_key_env: ApiKeyEnvOption = SYNTHESIZE.api_key_env,
    concurrency: Annotated[int, typer.Option(help="openai: requests in flight (pairs synthesized at once).")] = SYNTHESIZE.concurrency,
    timeout: Annotated[float, typer.Option(help="openai: seconds per request before retrying.")] = SYNTHESIZE.timeout,
    structured_output: Annotated[StructuredOutput, typer.Option(help="openai: json_schema, json_object or none.")] = SYNTHESIZE.structured_output,
    grammar: Annotated[bool, typer.Option(help="llama.cpp: enforce the JSON schema with a grammar.")] = SYNTHESIZE.grammar,
    threads: Annotated[int | None, typer.Option(help="llama.cpp: CPU threads (default: half the cores).")] = SYNTHESIZE.threads,
    cache: LLMCacheOption = SYNTHESIZE.cache,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Ask the LLM even for requests answered before.")] = False,
    engine: EngineOption = SYNTHESIZE.engine,
    ray_address: RayAddressOption = SYNTHESIZE.ray_address,
    ray_actors: RayActorsOption = SYNTHESIZE.ray_actors,
    vllm_tensor_parallel_size: Annotated[int, typer.Option(min=1, help="vllm: GPUs per engine replica.")] = SYNTHESIZE.vllm_tensor_parallel_size,
    vllm_max_model_len: Annotated[int | None, typer.Option(min=1, help="vllm: context length in tokens (default: the model's).")] = (
        SYNTHESIZE.vllm_max_model_len),
    vllm_batch_size: Annotated[int, typer.Option(min=1, help="vllm: requests per engine batch.")] = SYNTHESIZE.vllm_batch_size,
    vllm_replicas: Annotated[int, typer.Option(min=1, help="vllm: engine replicas, each on --vllm-tensor-parallel-size GPUs.")] = (
        SYNTHESIZE.vllm_replicas),
    vllm_accelerator_type: Annotated[str | None, typer.Option(help="vllm: GPU type as Ray names it (e.g. H100); default any.")] = (
        SYNTHESIZE.vllm_accelerator_type),
    as_json: Annotated[bool, typer.Option("--json", help="Print the run statistics as JSON on stdout.")] = False,
) -> dict[str, Any] | None:
    """Synthesize hard negatives with an LLM for each (query, positive) pair: attributes, reflection, checks, revision."""
    from syneg.synth import SynthesizeOptions
    from syneg.synth import synthesize as synthesize_negatives

    checks = {"min_query_similarity": min_query_similarity, "min_relative_similarity": min_relative_similarity,
              "max_positive_similarity": max_positive_similarity, "positive_ratio": positive_ratio, "max_answer_leak": max_answer_leak}
    options = SynthesizeOptions(
        backend=backend, model=model, base_url=base_url, api_key_env=api_key_env, concurrency=concurrency, timeout=timeout,
        structured_output=structured_output, grammar=grammar, threads=threads, cache=cache, attributes=attributes,
        negatives_per_pair=negatives_per_pair, max_rounds=max_rounds, ablation=ablation, critique=critique,
        prompt_style=prompt_style, aspects_per_reflection=aspects_per_reflection,
        trim_cut_fields=trim_cut_fields, prompts=prompts, max_words=max_words, max_tokens=max_tokens, temperature=temperature,
        seed=seed, refill=refill, checks=checks, engine=engine, ray_address=ray_address, ray_actors=ray_actors,
        vllm_tensor_parallel_size=vllm_tensor_parallel_size, vllm_max_model_len=vllm_max_model_len,
        vllm_batch_size=vllm_batch_size, vllm_replicas=vllm_replicas, vllm_accelerator_type=vllm_accelerator_type,
    )
    stats = synthesize_negatives(data, output, options, split=split, limit=limit, use_cache=not no_cache)
    if as_json:
        return {"output": str(output), **stats}
    stderr.print(
        f"Wrote {stats['pairs']} pairs to {output} ({stats['skipped_pairs']} already there, "
        + (f"{stats['refilled_pairs']} synthesized again gaining {stats['refill_gained']} negatives, " if refill else "") +
        f"{stats['empty_window_pairs']} left without negatives as their positive scores 0 or less): "
        f"{stats['accepted']} negatives accepted, {stats['rejected']} candidates rejected, "
        f"{stats['requests']} LLM requests, {stats['cache_hits']} cache hits."
    )
    # Long abstracts cut to the words a prompt quotes are the rule; anything else quoting changed is worth a line.
    changed = {what: count for what, count in stats["quoted_texts"].items() if "words" not in what}
    if changed or stats["repaired_texts"]:
        stderr.print(f"Texts of the dataset changed for the prompts: {changed or 'none'}; repaired when read "
                     f"(not valid Unicode): {stats['repaired_texts'] or 'none'}.", highlight=False, soft_wrap=True)
    return None


@app.command()
@json_output
def run(
    config: Annotated[Path | None, typer.Argument(help="Pipeline config (YAML); see syneg.pipeline.RunConfig.")] = None,
    demo: Annotated[bool, typer.Option("--demo", help="Run the shipped demo config on the demo dataset.")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Run folder (default: the config's, else runs/<config name>).")] = None,
    arm: Annotated[list[str] | None, typer.Option("--arm", help="Only this arm (repeatable); the others are left as they are.")] = None,
    seed: Annotated[list[int] | None, typer.Option("--seed", help="Only this seed (repeatable).")] = None,
    until: Annotated[PipelineStage | None, typer.Option(help="Stop after this stage: split, mine, synthesize, mix, train or evaluate.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result rows as JSON on stdout ([] after --until).")] = False,
) -> list[dict[str, Any]] | None:
    """Run the pipeline mine → synthesize → mix → train → evaluate; completed stages are skipped, so a rerun resumes."""
    from syneg.pipeline import demo_config_path
    from syneg.pipeline import run as run_pipeline
    from syneg.report import summary_table

    if demo == (config is not None):
        raise typer.BadParameter("give a CONFIG file or --demo (not both)")
    path = demo_config_path() if demo else config
    assert path is not None
    if demo and output is None:
        output = Path("runs") / "demo"
    rows = run_pipeline(path, output=output, arms=arm, until=until, seeds=seed)
    if until not in (None, "evaluate"):
        stderr.print(f"Stopped after the {until} stage.")
    if as_json:
        return rows
    splits = list(dict.fromkeys(r["split"] for r in rows))
    for split in splits:
        Console().print(summary_table(rows, split))
    return None


@app.command()
@json_output
def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON on stdout.")] = False,
) -> dict[str, Any] | None:
    """What this machine offers and what syneg will use: CPU instruction sets, GPU, encoding backend, llama.cpp, models, caches."""
    from syneg.doctor import diagnose, print_diagnosis

    diagnosis = diagnose()
    if as_json:
        return diagnosis
    print_diagnosis(diagnosis, Console())
    return None


cache_app = typer.Typer(help="List and prune syneg's caches: embeddings, ONNX exports, LLM answers, the joined model, logs.",
                        no_args_is_help=True)
app.add_typer(cache_app, name="cache")
RunsOption = Annotated[
    list[Path] | None,
    typer.Option("--runs", help="Run folder, or a folder of them, whose configs name LLM caches to keep (repeatable; "
                                "default: runs/ and bench/experiments/runs/ where present)."),
]


@cache_app.command("list")
@json_output
def cache_list(
    runs: RunsOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the entries as JSON on stdout.")] = False,
) -> dict[str, Any] | None:
    """List every cache entry with its size, age and the runs that use it (and the LLM caches runs keep elsewhere)."""
    from syneg.caches import cache_entries, default_run_folders, entries_table
    from syneg.locations import default_cache_dir

    entries = cache_entries(runs or default_run_folders(), elsewhere=True)
    if as_json:
        return {"root": str(default_cache_dir()), "bytes": sum(e.bytes for e in entries), "entries": [e.to_dict() for e in entries]}
    Console().print(entries_table(entries, title=f"syneg caches in {default_cache_dir()}"))
    return None


@cache_app.command("prune")
@json_output
def cache_prune(
    older_than: Annotated[str | None, typer.Option(help="Only entries unused for this long: 30d, 12h, 90m, 2w (0d: all).")] = None,
    model: Annotated[str | None, typer.Option(help="Only entries of this model (a name from `syneg cache list`, a folder, or default).")] = None,
    kind: Annotated[list[str] | None, typer.Option(help="Only entries of this kind: embeddings, onnx, llm, models or logs (repeatable).")] = None,
    runs: RunsOption = None,
    force: Annotated[bool, typer.Option("--force", help="Also delete LLM caches that run folders name.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be deleted, delete nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print what was deleted and kept as JSON on stdout.")] = False,
) -> dict[str, Any] | None:
    """Delete cache entries by age, model or kind; LLM caches that run folders name are kept unless --force."""
    from syneg.caches import CACHE_KINDS, cache_entries, default_run_folders, entries_table, human_size, parse_age, prune, select

    if older_than is None and model is None and not kind:
        raise typer.BadParameter("say what to prune: --older-than, --model or --kind (--older-than 0d prunes everything)")
    unknown = sorted(set(kind or []) - set(CACHE_KINDS))
    if unknown:
        raise typer.BadParameter(f"--kind {', '.join(unknown)}: expected {', '.join(CACHE_KINDS)}")
    age = parse_age(older_than) if older_than is not None else None
    result = prune(select(cache_entries(runs or default_run_folders()), age, model, kind or []), force=force, dry_run=dry_run)
    if as_json:
        return result.to_dict()
    verb = "Would delete" if dry_run else "Deleted"
    if result.deleted:
        Console().print(entries_table(result.deleted, title=verb))
    for entry in result.protected:
        stderr.print(f"Kept {entry.path}: named by {', '.join(entry.used_by)} (--force deletes it)", highlight=False, soft_wrap=True)
    stderr.print(f"{verb} {len(result.deleted)} entries ({human_size(sum(e.bytes for e in result.deleted))}).")
    return None


@app.command()
def report(
    runs: Annotated[list[Path], typer.Argument(help="Run folders of `syneg run` (or their results.json).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for report.md, report.html, results.csv and the plots.")] = Path("report"),
    split: Annotated[str, typer.Option(help="The split of the tables (sweep plots show every split).")] = "test",
) -> None:
    """Compare runs: strategy tables (markdown, HTML, CSV), R and τ sweep plots, the shortcut probe."""
    from syneg.report import write_report

    written = write_report(runs, output, split=split)
    Console().print((output / "report.md").read_text(encoding="utf-8"))
    stderr.print("Wrote " + ", ".join(str(path) for path in written.values()))


@app.command()
@json_output
def probe(
    synthetic: Annotated[Path, typer.Argument(help="Training set with synthetic negatives (`syneg synthesize` output).")],
    retrieved: Annotated[Path, typer.Argument(help="The mined training set of the same pairs (`syneg mine` output).")],
    model: Annotated[str, typer.Option(help="The model whose embeddings are probed (a trained model's folder, or default).")] = "default",
    as_json: Annotated[bool, typer.Option("--json", help="Print the probe as JSON on stdout.")] = False,
) -> dict[str, Any] | None:
    """Can the source of a negative be told from its form? Probes on word count, words used, and embeddings."""
    from rich.table import Table

    from syneg.diagnostics import shortcut_probe

    result = shortcut_probe(synthetic, retrieved, model=model).to_dict()
    if as_json:
        return result
    if result["auc"] is None:
        stderr.print(f"Too few pairs with synthetic negatives to cross-validate ({result['queries']} queries).")
        return None
    table = Table(title=f"Telling synthetic from retrieved negatives ({result['samples_per_source']} per source, "
                        f"{result['queries']} queries; ROC AUC, 0.5 = indistinguishable)")
    table.add_column("probe on")
    table.add_column("ROC AUC", justify="right")
    for label, key in [("word count", "length_auc"), ("words used (bag of words)", "words_auc"), (f"embeddings ({model})", "auc")]:
        table.add_row(label, "-" if result[key] is None else f"{result[key]:.3f}")
    Console().print(table)
    for source, words in (result["telltale"] or {}).items():
        listed = ", ".join(f"{w['word']} ({w['synthetic_share']:.0%} / {w['retrieved_share']:.0%})" for w in words)
        Console().print(f"Words most typical of {source} negatives (share of synthetic / retrieved texts): {escape(listed)}")
    return None


@app.command()
def view(
    source: Annotated[Path, typer.Argument(help="A training-set jsonl (from mine, synthesize or mix) or a run folder of `syneg run`.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="HTML page to write (default: the jsonl's name with .html, or RUN/view.html).")
    ] = None,
) -> None:
    """Write one HTML page to browse every instance and negative: source, scores, attributes, reasoning, checks."""
    from syneg.viewer import view as write_view

    page = write_view(source, output)
    stderr.print(f"Wrote {page}; open it in a browser (filters go in the address: {page.name}#source=synthetic&q=...)")


def main() -> None:
    """Entry point; its exit code is 0 when done, 2 for bad input or configuration (one line naming the file
    and line, or the key and its allowed values), 130 when interrupted (where it stopped, how to resume),
    and 1 for anything else (one line, and the traceback in a log file)."""
    try:
        app(prog_name="syneg")  # usage errors exit with 2 there, after typer's message
    except SystemExit as exit:
        if exit.code == INTERRUPTED:  # typer's exit for Ctrl-C
            _interrupted()
        raise
    except KeyboardInterrupt:
        _interrupted()
        sys.exit(INTERRUPTED)
    except ValidationError as error:  # an option's value out of its schema: one line per option, as the CLI names it
        _error("; ".join(_option_problem(problem) for problem in error.errors()))
        sys.exit(2)
    except (DataError, ValueError, FileNotFoundError, ImportError) as error:
        _error(str(error))
        sys.exit(2)
    except LLMError as error:
        if not error.fatal:
            _error(f"{type(error).__name__}: {error} (traceback in {_write_traceback(error)})")
            sys.exit(1)
        _error(f"{error}; the run stopped here, and what it had written is kept")  # e.g. a rejected API key: configuration
        sys.exit(2)
    except OSError as error:
        if error.errno not in STORAGE_ERRORS:  # the machine's refusal (full disk, read-only, permissions), not a bug
            _error(f"{type(error).__name__}: {error} (traceback in {_write_traceback(error)})")
            sys.exit(1)
        _error(str(storage_error(error, doing=None)))
        sys.exit(2)
    except Exception as error:
        _error(f"{type(error).__name__}: {error} (traceback in {_write_traceback(error)})")
        sys.exit(1)


def _interrupted() -> None:
    where = progress.stopped_at()
    stderr.print(f"Interrupted{f' in {where}' if where else ''}. Finished stages, written pairs, checkpoints and "
                 "cached embeddings and LLM answers are kept; to resume, run the same command again:",
                 highlight=False, soft_wrap=True)
    stderr.print(f"  syneg {shlex.join(resume_command(sys.argv[1:]))}", highlight=False, soft_wrap=True)


def resume_command(arguments: list[str]) -> list[str]:
    """The arguments that resume an interrupted command: the same, but ``train`` (which starts afresh unless
    told otherwise) with ``--resume``.

    Example::

        >>> resume_command(["-v", "train", "train.jsonl", "-o", "model"])
        ['-v', 'train', 'train.jsonl', '-o', 'model', '--resume']
    """
    command = next((argument for argument in arguments if not argument.startswith("-")), None)
    if command != "train" or "--resume" in arguments:
        return arguments
    return [argument for argument in arguments if argument != "--no-resume"] + ["--resume"]


def _option_problem(problem: Any) -> str:
    """One error of a stage's option schema as ``--option: message`` (pydantic's own text is several lines)."""
    message = str(problem["msg"]).removeprefix("Value error, ")
    return f"--{str(problem['loc'][0]).replace('_', '-')}: {message}" if problem["loc"] else message


def _error(message: str) -> None:
    stderr.print(f"[bold red]error:[/bold red] {escape(message)}", highlight=False, soft_wrap=True)


def _write_traceback(error: Exception) -> Path | str:
    """The command line and the traceback in a new file under ``$SYNEG_CACHE_DIR/logs`` (else the temp folder;
    where neither can be written, e.g. on a full disk, says so)."""
    from syneg.caches import logs_dir

    text = f"syneg {shlex.join(sys.argv[1:])}\n\n" + "".join(traceback.format_exception(error))
    name = time.strftime("syneg-%Y%m%d-%H%M%S") + f"-{os.getpid()}.log"
    try:
        logs_dir().mkdir(parents=True, exist_ok=True)
        path = logs_dir() / name
        path.write_text(text, encoding="utf-8")
    except OSError:
        path = Path(tempfile.gettempdir()) / name
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as error:
            return f"no log: {error.strerror}"
    return path
