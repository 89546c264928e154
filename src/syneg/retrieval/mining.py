"""Hard-negative mining from a corpus with BM25, a dense model, or both.

The options mean what they mean in sentence-transformers' ``mine_hard_negatives``, so nothing new
has to be learned; what differs is the output (every negative keeps its source and all its scores)
and that BM25 is a retriever too.

For each query of the split, ``range_max`` candidates are retrieved (plus as many as the query has
positives, which are then dropped: every document judged relevant in the split is excluded, not only
the instance's own positive). Candidates failing a score filter (``absolute_margin``,
``relative_margin``, ``max_score``, ``min_score``) are dropped, the ``range_min`` best survivors are
skipped, and ``num_negatives`` are taken from the rest, best first (``top``) or at random
(``random``). Negatives are mined once per query and shared by all of the query's (query, positive)
training instances.

Which score the filters read: BM25's when mining with BM25 alone; otherwise the dense model's cosine
similarity, BM25 candidates being rescored with the dense model. The margins compare against the
query's *hardest* positive (its lowest-scoring one), as sentence-transformers does, which is the
positive-aware false-negative filter of NV-Retriever (``relative_margin=0.05`` keeps negatives
scoring below 95% of the positive).

With ``retriever="both"``, BM25's and the dense model's surviving candidates are interleaved (one
from each in turn, duplicates dropped), so the negatives are split evenly between the two sources.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import get_args
import numpy as np
from pydantic import Field
from rich.console import Console
from rich.table import Table

from syneg.data import BeirDataset, Negative, Retrievers, SamplingStrategy, TrainingInstance
from syneg.engine import Engine, EngineOptions
from syneg.progress import Progress
from syneg.retrieval.bm25 import BM25Retriever
from syneg.retrieval.dense import DenseRetriever
from syneg.retrieval.encoder import DEFAULT_BACKEND, Backend, DenseEncoder
from syneg.retrieval.search import DEFAULT_SEARCH, SearchBackend
from syneg.system import EncodingChoice

logger = logging.getLogger(__name__)

SCORE_FILTERS = ("absolute_margin", "relative_margin", "max_score", "min_score")


class MineOptions(EngineOptions):
    """What :func:`mine` retrieves and keeps: its defaults, and the ``mine`` section of a pipeline config.
    Mine more than you mix (10 negatives for 3 mixed), so that sampling has a pool."""

    retriever: Retrievers = Field("both", description="bm25, dense or both (interleaved).")
    num_negatives: int = Field(10, ge=1, description="Negatives per (query, positive) pair.")
    range_min: int = Field(0, ge=0, description="Skip this many of the best surviving candidates.")
    range_max: int | None = Field(50, ge=1, description="Candidates considered per query and retriever.")
    relative_margin: float | None = Field(
        0.05, description="Drop candidates above (1 - margin) x the positive's score; 0.05 is NV-Retriever's 95% rule.")
    absolute_margin: float | None = Field(None, description="Drop candidates within this of the positive's score.")
    max_score: float | None = Field(None, description="Drop candidates scoring above this.")
    min_score: float | None = Field(None, description="Drop candidates scoring below this.")
    sampling_strategy: SamplingStrategy = Field("top", description="top (the best survivors) or random.")
    max_seq_length: int | None = Field(None, description="Dense model truncation length in tokens (default: the model's).")
    backend: Backend = Field(DEFAULT_BACKEND, description="Dense encoding: auto (this machine's fastest), torch (fp32), torch-bf16, "
                                                 "torch-fp16 (GPU), onnx or onnx-int8.")


MINE = MineOptions()


@dataclass
class MiningStats:
    """What mining did: score distributions, candidates removed by each filter, queries left short."""

    scorer: str
    num_negatives: int
    instances: int = 0
    queries: int = 0
    candidates: int = 0
    removed: dict[str, int] = field(default_factory=lambda: {"positives": 0, **{f: 0 for f in SCORE_FILTERS}, "range_min": 0})
    short_queries: int = 0
    short_instances: int = 0
    by_source: dict[str, int] = field(default_factory=dict)
    positive_scores: list[float] = field(default_factory=list)
    negative_scores: list[float] = field(default_factory=list)
    differences: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        def describe(values: list[float]) -> dict[str, float]:
            if not values:
                return {}
            array = np.asarray(values, dtype=np.float64)
            quantiles = np.percentile(array, [25, 50, 75])
            return {
                "count": int(array.size), "mean": float(array.mean()), "std": float(array.std()),
                "min": float(array.min()), "25%": float(quantiles[0]), "50%": float(quantiles[1]),
                "75%": float(quantiles[2]), "max": float(array.max()),
            }  # fmt: skip

        return {
            "scorer": self.scorer,
            "instances": self.instances,
            "queries": self.queries,
            "candidates": self.candidates,
            "removed": dict(self.removed),
            "short_queries": self.short_queries,
            "short_instances": self.short_instances,
            "negatives_by_source": dict(self.by_source),
            "positive_scores": describe(self.positive_scores),
            "negative_scores": describe(self.negative_scores),
            "difference": describe(self.differences),
        }

    def print(self, console: Console | None = None) -> None:
        """Print the statistics table, as sentence-transformers' ``mine_hard_negatives`` does."""
        console = console or Console(stderr=True)
        summary = self.summary()
        table = Table(title=f"Mined negatives ({self.scorer} scores)")
        table.add_column("Metric")
        for column in ("Positive", "Negative", "Difference"):
            table.add_column(column, justify="right")
        columns = [summary["positive_scores"], summary["negative_scores"], summary["difference"]]
        for metric in ("count", "mean", "std", "min", "25%", "50%", "75%", "max"):
            table.add_row(
                metric.capitalize(),
                *[(f"{c[metric]:,}" if metric == "count" else f"{c[metric]:.4f}") if c else "-" for c in columns],
            )
        console.print(table)
        for name, count in self.removed.items():
            if count:
                console.print(f"Removed {count:,} of {self.candidates:,} candidates ({count / max(self.candidates, 1):.2%}) by {name}.")
        sources = ", ".join(f"{source}: {count:,}" for source, count in self.by_source.items())
        console.print(f"{self.instances:,} instances for {self.queries:,} queries; negatives by source: {sources or 'none'}.")
        if self.short_instances:
            console.print(
                f"[yellow]{self.short_queries:,} queries ({self.short_instances:,} instances) got fewer than "
                f"{self.num_negatives} negatives; widen range_max or loosen the margins to find more.[/yellow]"
            )


@dataclass
class MiningResult:
    """The training instances, the statistics, and the dense encoding path that scored them (None for BM25 alone)."""

    instances: list[TrainingInstance]
    stats: MiningStats
    encoding: EncodingChoice | None = None


def mine(
    dataset: BeirDataset,
    retriever: Retrievers = MINE.retriever,
    model: str = "default",
    num_negatives: int = MINE.num_negatives,
    range_min: int = MINE.range_min,
    range_max: int | None = MINE.range_max,
    max_score: float | None = MINE.max_score,
    min_score: float | None = MINE.min_score,
    absolute_margin: float | None = MINE.absolute_margin,
    relative_margin: float | None = MINE.relative_margin,
    sampling_strategy: SamplingStrategy = MINE.sampling_strategy,
    positives_per_query: int | None = None,
    seed: int = 42,
    backend: Backend = DEFAULT_BACKEND,
    search: SearchBackend = DEFAULT_SEARCH,
    batch_size: int = 64,
    max_seq_length: int | None = MINE.max_seq_length,
    encoder: DenseEncoder | None = None,
    engine: Engine = MINE.engine,
    ray_address: str | None = MINE.ray_address,
    ray_actors: int = MINE.ray_actors,
    show_progress: bool = True,
    verbose: bool = True,
) -> MiningResult:
    """Mine retrieved hard negatives for every (query, positive) pair of a split.

    The defaults are :class:`MineOptions`' (the pipeline's): both retrievers, 10 negatives from the best
    50 candidates, NV-Retriever's 95% rule. ``range_max=None, relative_margin=None`` is
    sentence-transformers' own default.

    Args:
        dataset: A BEIR dataset loaded with a split (usually ``train``).
        retriever: ``bm25``, ``dense`` or ``both``.
        model: The dense model: ``default`` (embedded all-MiniLM-L6-v2) or a sentence-transformers path.
        num_negatives: Negatives per instance.
        range_min: Skip this many of the best surviving candidates (the likeliest false negatives).
        range_max: Candidates retrieved per query and retriever. None, as in sentence-transformers:
            ``range_min + num_negatives`` with no score filter, ``range_min + 10 * num_negatives`` with one.
        max_score: Drop candidates scoring above this.
        min_score: Drop candidates scoring below this.
        absolute_margin: Drop candidates with ``score > positive_score - absolute_margin``.
        relative_margin: Drop candidates with ``score > positive_score - |positive_score| * relative_margin``.
        sampling_strategy: ``top`` takes the best survivors; ``random`` samples among them.
        positives_per_query: Keep at most this many positives (the highest-graded, ties at random) per
            query; None keeps them all. Useful for NFCorpus, with dozens of positives per query.
        seed: For ``random`` sampling and positive sub-sampling.
        backend: Dense encoding backend: ``auto`` (this machine's fastest) or one of :class:`DenseEncoder`'s.
        search: Dense search backend: ``exact``, ``faiss-flat`` or ``faiss-hnsw``.
        max_seq_length: Truncation length of the dense model in tokens; None keeps the model's.
        encoder: A ready :class:`DenseEncoder` (overrides ``model``, ``backend``, ``batch_size``, ``max_seq_length``).
        engine: ``local``, or ``ray`` to encode the corpus and queries and rank the queries on Ray (the
            selection of negatives then runs here, on those rankings), on the cluster at ``ray_address`` with
            ``ray_actors`` encoders (see :mod:`syneg.engine`). Ignored with a ready ``encoder``.

    Returns:
        A :class:`MiningResult`: one :class:`TrainingInstance` per pair, and the statistics.

    Example::

        >>> from syneg.data import load_beir, demo_path
        >>> result = mine(load_beir(demo_path(), "train"), retriever="bm25", num_negatives=2, verbose=False, show_progress=False)
        >>> {n.source for i in result.instances for n in i.negatives}
        {'bm25'}
    """
    if retriever not in get_args(Retrievers):
        raise ValueError(f"retriever must be one of {', '.join(get_args(Retrievers))}, got {retriever!r}")
    if num_negatives < 1:
        raise ValueError(f"num_negatives must be at least 1, got {num_negatives}")
    if sampling_strategy not in get_args(SamplingStrategy):
        raise ValueError(f"sampling_strategy must be one of {', '.join(get_args(SamplingStrategy))}, got {sampling_strategy!r}")
    if not dataset.qrels:
        raise ValueError(f"{dataset.path}: mining needs a split with qrels (load_beir(path, split='train'))")
    filters = {"absolute_margin": absolute_margin, "relative_margin": relative_margin, "max_score": max_score, "min_score": min_score}
    if range_max is None:
        range_max = range_min + num_negatives * (10 if any(v is not None for v in filters.values()) else 1)
    if range_max <= range_min:
        raise ValueError(f"range_max ({range_max}) must be larger than range_min ({range_min})")

    rng = np.random.default_rng(seed)
    query_ids = list(dataset.queries)
    query_texts = [dataset.queries[q] for q in query_ids]
    positives = {q: _choose_positives(dataset, q, positives_per_query, rng) for q in query_ids}
    excluded = {q: {d for d, grade in dataset.qrels[q].items() if grade > 0} for q in query_ids}
    depth = range_max + max(len(e) for e in excluded.values())

    bm25 = dense = None
    rankings: dict[str, list[list[str]]] = {}
    query_embeddings = None
    if retriever in ("bm25", "both"):
        bm25 = BM25Retriever(dataset.corpus)
        rankings["bm25"] = bm25.search(query_texts, k=depth).doc_ids
    if retriever in ("dense", "both"):
        encoder = encoder or DenseEncoder(
            model, backend=backend, batch_size=batch_size, max_seq_length=max_seq_length, show_progress=show_progress,
            engine=EngineOptions(engine=engine, ray_address=ray_address, ray_actors=ray_actors).ray_engine(),
        )
        dense = DenseRetriever(dataset.corpus, encoder, search=search)
        query_embeddings = dense.encode_queries(query_texts)
        rankings["dense"] = dense.search(query_texts, k=depth, query_embeddings=query_embeddings).doc_ids

    scorer = "dense" if dense is not None else "bm25"
    stats = MiningStats(scorer=scorer, num_negatives=num_negatives, queries=len(query_ids))
    instances: list[TrainingInstance] = []

    def scores_of(index: int, doc_ids: list[str]) -> dict[str, np.ndarray]:
        """Every score known for the documents against query ``index``, by scorer."""
        known = {}
        if dense is not None:
            known["dense"] = dense.score(query_embeddings[index], doc_ids)
        if bm25 is not None:
            known["bm25"] = bm25.score(query_texts[index], doc_ids)
        return known

    with Progress("Selecting negatives", total=len(query_ids), unit="queries", enabled=show_progress) as progress:
        for index, query_id in enumerate(query_ids):
            positive_ids = positives[query_id]
            positive_scores = scores_of(index, positive_ids)
            threshold_base = float(positive_scores[scorer].min()) if positive_ids else None

            per_source: dict[str, list[tuple[str, dict[str, float]]]] = {}
            for source, ranking in rankings.items():
                # Walk the ranking until range_max non-positives are in hand; positives passed on the way
                # count as candidates removed (the ranking is range_max + the query's positives deep).
                candidates: list[str] = []
                for doc_id in ranking[index]:
                    if len(candidates) == range_max:
                        break
                    if doc_id in excluded[query_id]:
                        stats.removed["positives"] += 1
                        stats.candidates += 1
                    else:
                        candidates.append(doc_id)
                stats.candidates += len(candidates)
                candidate_scores = scores_of(index, candidates)
                survivors = []
                for position, doc_id in enumerate(candidates):
                    score = float(candidate_scores[scorer][position])
                    failed = _failed_filter(score, threshold_base, filters)
                    if failed:
                        stats.removed[failed] += 1
                        continue
                    survivors.append((doc_id, {name: float(values[position]) for name, values in candidate_scores.items()}))
                stats.removed["range_min"] += min(range_min, len(survivors))
                survivors = survivors[range_min:]
                if sampling_strategy == "random" and len(survivors) > num_negatives:
                    chosen = sorted(rng.choice(len(survivors), size=num_negatives, replace=False))
                    survivors = [survivors[i] for i in chosen]
                per_source[source] = survivors

            negatives = [
                Negative(text=dataset.corpus[doc_id].full_text, source=source, id=doc_id, score=scores[scorer], scores=scores)
                for source, doc_id, scores in _interleave(per_source, num_negatives)
            ]
            if len(negatives) < num_negatives:
                stats.short_queries += 1
                stats.short_instances += len(positive_ids)
            for negative in negatives:
                stats.by_source[negative.source] = stats.by_source.get(negative.source, 0) + len(positive_ids)
            for position, positive_id in enumerate(positive_ids):
                positive_score = float(positive_scores[scorer][position])
                instances.append(
                    TrainingInstance(
                        query_id=query_id,
                        query=dataset.queries[query_id],
                        pos_ids=[positive_id],
                        pos=[dataset.corpus[positive_id].full_text],
                        pos_scores=[positive_score],
                        negatives=list(negatives),
                    )
                )
                stats.positive_scores.append(positive_score)
                for negative in negatives:
                    stats.negative_scores.append(negative.score)
                    stats.differences.append(positive_score - negative.score)
            progress.advance()
    stats.instances = len(instances)
    if verbose:
        stats.print()
    return MiningResult(instances=instances, stats=stats, encoding=dense.encoder.choice if dense is not None else None)


def _choose_positives(dataset: BeirDataset, query_id: str, limit: int | None, rng: np.random.Generator) -> list[str]:
    relevant = dataset.relevant(query_id)
    if limit is None or len(relevant) <= limit:
        return relevant
    grades = dataset.qrels[query_id]
    shuffled = [relevant[i] for i in rng.permutation(len(relevant))]
    return sorted(shuffled, key=lambda d: -grades[d])[:limit]  # sorted() is stable: random among equal grades


def _failed_filter(score: float, positive_score: float | None, filters: dict[str, float | None]) -> str | None:
    """The name of the first filter a candidate fails, or None."""
    if positive_score is not None:
        if filters["absolute_margin"] is not None and score > positive_score - filters["absolute_margin"]:
            return "absolute_margin"
        if filters["relative_margin"] is not None and score > positive_score - abs(positive_score) * filters["relative_margin"]:
            return "relative_margin"
    if filters["max_score"] is not None and score > filters["max_score"]:
        return "max_score"
    if filters["min_score"] is not None and score < filters["min_score"]:
        return "min_score"
    return None


def _interleave(per_source: dict[str, list[tuple[str, dict[str, float]]]], limit: int) -> list[tuple[str, str, dict[str, float]]]:
    """Take candidates from each source in turn, skipping documents already taken, up to ``limit``."""
    taken: list[tuple[str, str, dict[str, float]]] = []
    seen: set[str] = set()
    queues = {source: list(candidates) for source, candidates in per_source.items()}
    while len(taken) < limit and any(queues.values()):
        for source, queue in queues.items():
            while queue and queue[0][0] in seen:
                queue.pop(0)
            if queue and len(taken) < limit:
                doc_id, scores = queue.pop(0)
                seen.add(doc_id)
                taken.append((source, doc_id, scores))
    return taken
