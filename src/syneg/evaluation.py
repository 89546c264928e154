"""Evaluation on BEIR test splits with pytrec_eval (trec_eval's own code), BEIR's conventions.

Metrics are named as ranx names them: ``ndcg@10``, ``recall@100``, ``mrr@10``, ``map@100``,
``precision@10``. As in BEIR, a retrieved document whose id equals the query id is ignored (some
BEIR corpora contain the query itself), and scores are fractions in [0, 1]. A query judged in the
qrels but absent from the run scores 0 rather than being left out of the mean.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from pydantic import Field
from rich.console import Console
from rich.table import Table

from syneg.data import BeirDataset
from syneg.data.storage import atomic_writer
from syneg.engine import Engine, EngineOptions
from syneg.retrieval.encoder import DEFAULT_BACKEND, Backend, DenseEncoder
from syneg.retrieval.search import DEFAULT_SEARCH, SearchBackend
from syneg.system import EncodingChoice

Run = dict[str, dict[str, float]]
DEFAULT_METRICS: tuple[str, ...] = ("ndcg@10", "recall@10", "recall@100", "mrr@10")
# Documents retrieved per query: as deep as the deepest default metric (recall@100).
RETRIEVED_PER_QUERY = 100



class EvaluateOptions(EngineOptions):
    """What :func:`evaluate` measures: its defaults, and the ``evaluate`` section of a pipeline config."""

    split: str = Field("test", description="The qrels split to evaluate on.")
    metrics: list[str] = Field(default_factory=lambda: list(DEFAULT_METRICS),
                               description="Metrics (ndcg@10, recall@100, mrr@10, map@k, precision@k).")
    max_seq_length: int | None = Field(None, description="Dense model truncation length in tokens (default: the model's).")
    backend: Backend = Field(DEFAULT_BACKEND, description="Dense encoding: auto (this machine's fastest), torch (fp32), torch-bf16, "
                                                 "torch-fp16 (GPU), onnx or onnx-int8.")


EVALUATE = EvaluateOptions()

_TREC_NAMES = {"ndcg": "ndcg_cut", "recall": "recall", "map": "map_cut", "precision": "P"}


@dataclass
class EvaluationResult:
    """Mean metrics, per-query metrics and the run they were computed from."""

    name: str
    metrics: dict[str, float]
    per_query: dict[str, dict[str, float]] = field(default_factory=dict)
    run: Run = field(default_factory=dict)
    seconds: float | None = None
    encoding: EncodingChoice | None = None  # the dense encoding path (None for BM25)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"model": self.name, **self.metrics}
        if self.seconds is not None:
            out["seconds"] = round(self.seconds, 2)
        if self.encoding is not None:
            out["encoding"] = asdict(self.encoding)
        return out


def _parse_metric(metric: str) -> tuple[str, int]:
    match = re.fullmatch(r"(ndcg|recall|map|precision|mrr)@(\d+)", metric)
    if not match:
        raise ValueError(f"Unknown metric {metric!r}; use ndcg@k, recall@k, map@k, precision@k or mrr@k")
    return match.group(1), int(match.group(2))


def evaluate_run(
    qrels: dict[str, dict[str, int]],
    run: Run,
    metrics: tuple[str, ...] | list[str] = DEFAULT_METRICS,
    ignore_identical_ids: bool = True,
    name: str = "run",
) -> EvaluationResult:
    """Score a run against qrels.

    Example::

        >>> qrels = {"q1": {"d1": 1}, "q2": {"d3": 1}}
        >>> run = {"q1": {"d1": 0.9, "d2": 0.5}, "q2": {"d2": 0.8, "d3": 0.4}}
        >>> evaluate_run(qrels, run, ["mrr@10", "recall@1"]).metrics
        {'mrr@10': 0.75, 'recall@1': 0.5}
    """
    import pytrec_eval

    if ignore_identical_ids:
        run = {q: {d: s for d, s in docs.items() if d != q} for q, docs in run.items()}
    parsed = [(m, *_parse_metric(m)) for m in metrics]
    per_query: dict[str, dict[str, float]] = {q: {} for q in qrels}
    trec_measures = {f"{_TREC_NAMES[kind]}.{k}" for _, kind, k in parsed if kind != "mrr"}
    if trec_measures:
        evaluator = pytrec_eval.RelevanceEvaluator(qrels, trec_measures)
        scores = evaluator.evaluate(run)
        for metric, kind, k in parsed:
            if kind != "mrr":
                for query_id, values in scores.items():
                    per_query[query_id][metric] = values[f"{_TREC_NAMES[kind]}_{k}"]
    for metric, kind, k in parsed:
        if kind == "mrr":  # trec_eval's recip_rank has no cut-off: cut the run at k first
            cut = {q: dict(sorted(docs.items(), key=lambda item: -item[1])[:k]) for q, docs in run.items()}
            scores = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(cut)
            for query_id, values in scores.items():
                per_query[query_id][metric] = values["recip_rank"]
    for values in per_query.values():
        for metric, *_ in parsed:
            values.setdefault(metric, 0.0)
    means = {metric: float(np.mean([v[metric] for v in per_query.values()])) if per_query else 0.0 for metric, *_ in parsed}
    return EvaluationResult(name=name, metrics=means, per_query=per_query, run=run)


def retrieve(
    dataset: BeirDataset,
    model: str = "bm25",
    k: int = RETRIEVED_PER_QUERY,
    backend: Backend = DEFAULT_BACKEND,
    search: SearchBackend = DEFAULT_SEARCH,
    encoder: DenseEncoder | None = None,
    show_progress: bool = True,
    max_seq_length: int | None = None,
) -> Run:
    """Retrieve the top k documents for each query: ``model`` is ``bm25``, ``default`` or a model path."""
    query_ids = list(dataset.queries)
    texts = [dataset.queries[q] for q in query_ids]
    if model == "bm25":
        from syneg.retrieval.bm25 import BM25Retriever

        result = BM25Retriever(dataset.corpus).search(texts, k=k + 1)
    else:
        from syneg.retrieval.dense import DenseRetriever

        encoder = encoder or DenseEncoder(model, backend=backend, max_seq_length=max_seq_length, show_progress=show_progress)
        result = DenseRetriever(dataset.corpus, encoder, search=search).search(texts, k=k + 1)
    # One extra hit, so k remain when the query's own id is dropped under BEIR's convention.
    return result.as_run(query_ids)


def evaluate(
    dataset: BeirDataset,
    model: str = "bm25",
    metrics: tuple[str, ...] | list[str] = DEFAULT_METRICS,
    k: int = RETRIEVED_PER_QUERY,
    backend: Backend = DEFAULT_BACKEND,
    search: SearchBackend = DEFAULT_SEARCH,
    encoder: DenseEncoder | None = None,
    show_progress: bool = True,
    name: str | None = None,
    max_seq_length: int | None = EVALUATE.max_seq_length,
    engine: Engine = EVALUATE.engine,
    ray_address: str | None = EVALUATE.ray_address,
    ray_actors: int = EVALUATE.ray_actors,
) -> EvaluationResult:
    """Retrieve with ``model`` on a dataset split and score the run; ``engine="ray"`` encodes the corpus and
    queries and ranks the queries on Ray (see :mod:`syneg.engine`), unless a ready ``encoder`` is given.

    Example::

        >>> from syneg.data import load_beir, demo_path
        >>> result = evaluate(load_beir(demo_path(), "test"), model="bm25", show_progress=False)
        >>> sorted(result.metrics)
        ['mrr@10', 'ndcg@10', 'recall@10', 'recall@100']
    """
    import time

    if not dataset.qrels:
        raise ValueError(f"{dataset.path}: evaluation needs a split with qrels")
    started = time.perf_counter()
    if model != "bm25" and encoder is None:
        encoder = DenseEncoder(model, backend=backend, max_seq_length=max_seq_length, show_progress=show_progress,
                               engine=EngineOptions(engine=engine, ray_address=ray_address, ray_actors=ray_actors).ray_engine())
    run = retrieve(dataset, model, k=k, search=search, encoder=encoder)
    result = evaluate_run(dataset.qrels, run, metrics, name=name or model)
    result.seconds = time.perf_counter() - started
    result.encoding = encoder.choice if encoder is not None and model != "bm25" else None
    return result


def write_trec_run(path: str | Path, run: Run, tag: str = "syneg") -> None:
    """Write a run in TREC format: ``query_id Q0 doc_id rank score tag``."""
    path = Path(path)
    safe_tag = re.sub(r"\s+", "_", tag)
    with atomic_writer(path) as handle:
        for query_id, docs in run.items():
            ranked = sorted(docs.items(), key=lambda item: -item[1])
            for rank, (doc_id, score) in enumerate(ranked, start=1):
                handle.write(f"{query_id} Q0 {doc_id} {rank} {score:.6f} {safe_tag}\n")


def read_trec_run(path: str | Path) -> Run:
    from syneg.data import DataError

    run: Run = {}
    with Path(path).open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 6:
                raise DataError(f"{path}:{line_number}: expected 6 columns (query Q0 doc rank score tag), got {len(parts)}")
            try:
                run.setdefault(parts[0], {})[parts[2]] = float(parts[4])
            except ValueError:
                raise DataError(f"{path}:{line_number}: score {parts[4]!r} is not a number") from None
    return run


def compare(results: list[EvaluationResult], console: Console | None = None, print_table: bool = True) -> dict[str, dict[str, object]]:
    """Side-by-side table of several results on the same queries, with a paired t-test against the first.

    A ``*`` marks a difference from the first run with p < 0.05 (two-sided paired t-test over queries).
    Returns ``{name: {metric: value, metric + "_p": p-value}}``.
    """
    from scipy.stats import ttest_rel

    baseline = results[0]
    metrics = list(baseline.metrics)
    queries = sorted(baseline.per_query)
    table_data: dict[str, dict[str, object]] = {}
    table = Table(title="Evaluation")
    table.add_column("model")
    for metric in metrics:
        table.add_column(metric, justify="right")
    for result in results:
        row: dict[str, object] = dict(result.metrics)
        cells = []
        for metric in metrics:
            value = result.metrics[metric]
            mark = ""
            if result is not baseline:
                a = [baseline.per_query[q][metric] for q in queries]
                b = [result.per_query.get(q, {}).get(metric, 0.0) for q in queries]
                p_value = float(ttest_rel(a, b).pvalue) if len(queries) > 1 and a != b else 1.0
                row[f"{metric}_p"] = p_value
                mark = "*" if p_value < 0.05 else ""
            cells.append(f"{100 * value:.2f}{mark}")
        table.add_row(result.name, *cells)
        table_data[result.name] = row
    if print_table:
        (console or Console()).print(table)
    return table_data
