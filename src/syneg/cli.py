"""The ``syneg`` command line: one command per pipeline stage, thin wrappers over the Python API."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from syneg.data import DataError

app = typer.Typer(
    name="syneg",
    help="Train dense retrievers with LLM-synthesized hard negatives (SyNeg).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
stderr = Console(stderr=True)


@app.callback()
def _configure(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug messages.")] = False) -> None:
    from rich.logging import RichHandler

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=stderr, show_path=False, show_time=False)],
        force=True,
    )
    for noisy in ("sentence_transformers", "transformers", "httpx", "urllib3", "bm25s"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


DataDir = Annotated[Path, typer.Argument(help="A BEIR dataset folder (corpus.jsonl, queries.jsonl, qrels/).")]
BackendOption = Annotated[str, typer.Option(help="Dense encoding backend: torch (fp32), onnx (ONNX Runtime fp32) or onnx-int8.")]
SearchOption = Annotated[str, typer.Option(help="Dense search: exact, faiss-flat or faiss-hnsw.")]


@app.command()
def evaluate(
    data_dir: DataDir,
    model: Annotated[
        list[str],
        typer.Option("--model", "-m", help="bm25, default (embedded all-MiniLM-L6-v2) or a model folder; repeat to compare."),
    ] = ["default"],  # noqa: B006 - typer needs a literal default
    split: Annotated[str, typer.Option(help="The qrels split to evaluate on.")] = "test",
    k: Annotated[int, typer.Option(help="Documents retrieved per query.")] = 100,
    metric: Annotated[Optional[list[str]], typer.Option(help="Metrics (ndcg@10, recall@100, mrr@10, map@k, precision@k).")] = None,
    backend: BackendOption = "torch",
    search: SearchOption = "exact",
    run_dir: Annotated[Optional[Path], typer.Option(help="Write each model's TREC run file here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (one object; one per model when comparing).")] = False,
) -> None:
    """Evaluate BM25 or dense models on a BEIR split: nDCG@10, Recall@10/100, MRR@10."""
    from syneg.data import load_beir
    from syneg.evaluation import DEFAULT_METRICS, compare, evaluate as evaluate_model, write_trec_run

    dataset = load_beir(data_dir, split=split)
    results = []
    for name in model:
        result = evaluate_model(dataset, model=name, metrics=metric or DEFAULT_METRICS, k=k, backend=backend, search=search)
        results.append(result)
        if run_dir is not None:
            tag = Path(name).name or name
            write_trec_run(run_dir / f"{tag}.{split}.trec", result.run, tag=tag)
    if as_json:
        objects = [r.to_dict() for r in results]
        print(json.dumps(objects[0] if len(objects) == 1 else {o["model"]: o for o in objects}, indent=2))
    else:
        compare(results, console=Console())


@app.command()
def mine(
    data_dir: DataDir,
    output: Annotated[Path, typer.Option("--output", "-o", help="Training-set jsonl to write.")],
    split: Annotated[str, typer.Option(help="The qrels split whose (query, positive) pairs get negatives.")] = "train",
    retriever: Annotated[str, typer.Option(help="bm25, dense or both.")] = "dense",
    model: Annotated[str, typer.Option(help="Dense model: default or a sentence-transformers folder.")] = "default",
    num_negatives: Annotated[int, typer.Option(help="Negatives per (query, positive) pair.")] = 3,
    range_min: Annotated[int, typer.Option(help="Skip this many of the best surviving candidates.")] = 0,
    range_max: Annotated[Optional[int], typer.Option(help="Candidates considered per query and retriever.")] = None,
    max_score: Annotated[Optional[float], typer.Option(help="Drop candidates scoring above this.")] = None,
    min_score: Annotated[Optional[float], typer.Option(help="Drop candidates scoring below this.")] = None,
    absolute_margin: Annotated[Optional[float], typer.Option(help="Drop candidates within this of the positive's score.")] = None,
    relative_margin: Annotated[
        Optional[float], typer.Option(help="Drop candidates above (1 - margin) x the positive's score; 0.05 is NV-Retriever's 95% rule.")
    ] = None,
    sampling_strategy: Annotated[str, typer.Option(help="top or random.")] = "top",
    positives_per_query: Annotated[Optional[int], typer.Option(help="At most this many positives per query.")] = None,
    seed: Annotated[int, typer.Option()] = 42,
    backend: BackendOption = "torch",
    search: SearchOption = "exact",
    as_json: Annotated[bool, typer.Option("--json", help="Print the statistics as JSON on stdout.")] = False,
) -> None:
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
        verbose=not as_json,
    )
    written = write_training_set(output, result.instances)
    if as_json:
        print(json.dumps({"output": str(output), **result.stats.summary()}, indent=2))
    else:
        stderr.print(f"Wrote {written:,} training instances to {output}")


@app.command()
def mix(
    output: Annotated[Path, typer.Option("--output", "-o", help="Training-set jsonl to write.")],
    strategy: Annotated[str, typer.Option(help="hybrid, direct, synthetic, retrieved, random or in-batch.")] = "hybrid",
    retrieved: Annotated[Optional[Path], typer.Option(help="Retrieved pool: a `syneg mine` jsonl.")] = None,
    synthetic: Annotated[Optional[Path], typer.Option(help="Synthetic pool: a `syneg synthesize` jsonl.")] = None,
    data_dir: Annotated[
        Optional[Path],
        typer.Option("--data", help="BEIR folder: corpus for random negatives and fills (its split's pairs if no pool)."),
    ] = None,
    split: Annotated[str, typer.Option(help="The qrels split of --data.")] = "train",
    num_negatives: Annotated[int, typer.Option(help="Negatives per instance, the same for every strategy.")] = 3,
    ratio: Annotated[float, typer.Option(help="R = synthetic / retrieved negatives (hybrid: per instance; direct: overall).")] = 0.7,
    retrieved_sources: Annotated[str, typer.Option(help="Retrieved negatives used: bm25, dense or both.")] = "both",
    sampling_strategy: Annotated[str, typer.Option(help="random (seeded) or top (pool order).")] = "random",
    seed: Annotated[int, typer.Option()] = 42,
) -> None:
    """Mix negative pools into a training set: hybrid (SyNeg), direct or single-source baselines."""
    from syneg.data import load_beir, read_training_set, write_training_set
    from syneg.mix import mix as mix_negatives

    instances, stats = mix_negatives(
        strategy,  # type: ignore[arg-type]
        read_training_set(retrieved) if retrieved else (),
        read_training_set(synthetic) if synthetic else (),
        load_beir(data_dir, split=split) if data_dir else None,
        num_negatives=num_negatives,
        ratio=ratio,
        retrieved_sources=retrieved_sources,  # type: ignore[arg-type]
        sampling_strategy=sampling_strategy,  # type: ignore[arg-type]
        seed=seed,
    )
    written = write_training_set(output, instances)
    Console().print(stats.table())
    stderr.print(f"Wrote {written:,} training instances to {output}")


@app.command()
def train(
    training_set: Annotated[Path, typer.Argument(help="Training-set jsonl (`syneg mix` output).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder of the trained model.")],
    model: Annotated[str, typer.Option(help="Backbone: default (embedded all-MiniLM-L6-v2) or a model folder.")] = "default",
    temperature: Annotated[float, typer.Option(help="InfoNCE temperature τ (scale = 1/τ; paper 0.02).")] = 0.02,
    loss: Annotated[str, typer.Option(help="infonce, or gist (guided masking of false negatives).")] = "infonce",
    guide_model: Annotated[Optional[str], typer.Option(help="Guide of gist; default a frozen copy of --model.")] = None,
    num_negatives: Annotated[Optional[int], typer.Option(help="Hard negatives per row (default: the smallest count).")] = None,
    batch_size: Annotated[int, typer.Option(help="Rows per batch.")] = 32,
    learning_rate: Annotated[float, typer.Option("--lr", "--learning-rate", help="Peak learning rate.")] = 2e-5,
    epochs: Annotated[float, typer.Option(help="Passes over the training set.")] = 1.0,
    max_steps: Annotated[Optional[int], typer.Option(help="Stop after this many steps (overrides --epochs).")] = None,
    warmup_ratio: Annotated[float, typer.Option(help="Share of steps warming up the learning rate.")] = 0.1,
    max_seq_length: Annotated[Optional[int], typer.Option(help="Truncation length in tokens.")] = None,
    query_prompt: Annotated[Optional[str], typer.Option(help='Prefix of queries, e.g. "query: ".')] = None,
    document_prompt: Annotated[Optional[str], typer.Option(help='Prefix of documents, e.g. "passage: ".')] = None,
    seed: Annotated[int, typer.Option()] = 42,
    save_steps: Annotated[int, typer.Option(help="Steps between checkpoints (in OUTPUT/checkpoints).")] = 500,
    logging_steps: Annotated[int, typer.Option(help="Steps between loss log lines.")] = 10,
    resume: Annotated[bool, typer.Option(help="Resume from the last checkpoint, if any.")] = False,
) -> None:
    """Fine-tune a bi-encoder with InfoNCE over positives, hard negatives and in-batch negatives."""
    from syneg.train import train as train_model

    train_model(
        training_set,
        output,
        model,
        temperature=temperature,
        loss=loss,  # type: ignore[arg-type]
        guide_model=guide_model,
        num_negatives=num_negatives,
        batch_size=batch_size,
        learning_rate=learning_rate,
        epochs=epochs,
        max_steps=max_steps,
        warmup_ratio=warmup_ratio,
        max_seq_length=max_seq_length,
        query_prompt=query_prompt,
        document_prompt=document_prompt,
        seed=seed,
        save_steps=save_steps,
        logging_steps=logging_steps,
        resume_from_checkpoint=resume,
    )


def main() -> None:
    """Entry point: input errors become one clear line and exit code 2, not a traceback."""
    try:
        app()
    except (DataError, ValueError, FileNotFoundError, ImportError) as error:
        stderr.print(f"[bold red]error:[/bold red] {error}", highlight=False)
        sys.exit(2)
