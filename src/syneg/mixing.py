"""Mixing strategies: which negatives each training instance carries, drawn from negative pools.

Mining (``syneg mine``) and synthesis (``syneg synthesize``) each write a pool of negatives per
(query, positive) pair. :func:`mix` joins the pools on ``(query_id, pos_ids[0])`` and builds one
training instance per pair with the same number of negatives for every strategy (except
``in-batch``), so that training arms compare on the same budget:

- ``hybrid`` (SyNeg): every instance carries both synthetic and retrieved negatives, at ratio R.
- ``direct``: mixing at dataset level, the paper's weaker baseline. A share of the instances gets
  only synthetic negatives, the others only retrieved ones, so that the dataset-wide
  synthetic : retrieved ratio is about R.
- ``synthetic``: only synthetic negatives.
- ``retrieved``: only retrieved negatives, from ``bm25``, ``dense`` or ``both``
  (``retrieved_sources``).
- ``random``: random corpus documents, never one of the query's positives.
- ``in-batch``: no hard negatives at all; training then relies on in-batch negatives only.

**The ratio R** is the number of synthetic negatives divided by the number of retrieved ones. With
``n`` negatives per instance, ``hybrid`` gives each instance

    n_syn = floor(n * R / (1 + R) + 0.5), clamped to [1, n - 1]

synthetic negatives (the fraction rounded half up) and ``n - n_syn`` retrieved ones. The defaults
(``n = 3``, ``R = 0.7``, the paper's best ratio) give ``n_syn = floor(1.735) = 1``: one synthetic
and two retrieved negatives, the composition shown in the paper's Figure 1. ``direct`` applies the
same formula to instances instead of negatives: of ``N`` instances, ``floor(N * R / (1 + R) + 0.5)``
(chosen at random with the seed) get only synthetic negatives, the rest only retrieved ones.

**Short pools.** When a pool holds fewer negatives than an instance needs, the missing ones are
filled from the other pool (``hybrid``, ``direct``) and then from random corpus documents (every
strategy, if a corpus is given). A filled negative keeps its own ``source`` and records the fill in
its ``details``: ``{"filled_for": "synthetic", "filled_from": "retrieved"}``. If nothing can fill
the gap, the instance keeps fewer negatives and is counted as short. :class:`MixStats` counts all of
this, and ``syneg mix`` prints it as a table.

**Determinism.** Each instance draws from its own random generator, seeded with
``(seed, query_id, positive id)``: the result for a pair depends only on the seed and the pair's
pools, not on the order of the file or on the other pairs, so a split or resumed run gives the same
negatives. Negatives are shuffled within an instance, so their position says nothing of their
source (training keeps the first ``k`` when it has to truncate).

Example::

    >>> from syneg.data import Negative, TrainingInstance
    >>> from syneg.mixing import mix
    >>> retrieved = [TrainingInstance("q1", "what is a tide?", ["d1"], ["Tides are ..."],
    ...     [Negative(f"bm25 text {i}", "bm25", id=f"b{i}") for i in range(5)])]
    >>> synthetic = [TrainingInstance("q1", "what is a tide?", ["d1"], ["Tides are ..."],
    ...     [Negative(f"synthetic text {i}", "synthetic") for i in range(3)])]
    >>> instances, stats = mix("hybrid", retrieved, synthetic, num_negatives=3, ratio=0.7)
    >>> sorted(n.source for n in instances[0].negatives)
    ['bm25', 'bm25', 'synthetic']
    >>> stats.per_source["synthetic"], stats.per_source["bm25"]
    (1, 2)

Recommendations: ``hybrid`` at R = 0.7 is the paper's method; ``direct``, ``synthetic``,
``retrieved``, ``random`` and ``in-batch`` are the baselines of its ablations, run with the same
``num_negatives`` and seed. Mine more candidates than you mix (e.g. ``num_negatives=10`` in
``syneg mine``) so that ``sampling_strategy="random"`` has a pool to draw from.
"""

from __future__ import annotations

import logging
import math
import random
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, get_args

from pydantic import Field

from syneg.data import RETRIEVED_SOURCES, BeirDataset, Document, Negative, Retrievers, SamplingStrategy, TrainingInstance
from syneg.options import StageOptions

if TYPE_CHECKING:
    from rich.table import Table

logger = logging.getLogger(__name__)

MixStrategy = Literal["hybrid", "direct", "synthetic", "retrieved", "random", "in-batch"]


class MixOptions(StageOptions):
    """How :func:`mix` fills each instance: its defaults, and the ``mix`` section of a pipeline config."""

    num_negatives: int = Field(3, ge=1, description="Negatives per instance, the same for every strategy.")
    ratio: float = Field(0.7, gt=0, description="R = synthetic / retrieved negatives (hybrid: per instance; direct: overall).")
    retrieved_sources: Retrievers = Field("both", description="Retrieved negatives used: bm25, dense or both.")
    sampling_strategy: SamplingStrategy = Field("random", description="random (seeded) or top (pool order).")


MIX = MixOptions()

# The pools an instance draws from; "retrieved" stands for the bm25 and/or dense negatives.
Pool = Literal["synthetic", "retrieved", "random"]


@dataclass
class MixStats:
    """What :func:`mix` produced: negatives per source, fills and short instances.

    ``fills`` counts filled negatives by ``(filled_for, filled_from)``, e.g.
    ``("synthetic", "retrieved")`` for a retrieved negative standing in for a missing synthetic one.
    ``short`` counts instances left with fewer than ``num_negatives`` negatives. For ``direct``,
    ``synthetic_only`` is the number of instances assigned to the synthetic side.
    """

    strategy: str
    num_negatives: int
    ratio: float | None = None
    instances: int = 0
    per_source: Counter[str] = field(default_factory=Counter)
    fills: Counter[tuple[str, str]] = field(default_factory=Counter)
    short: int = 0
    synthetic_only: int | None = None

    @property
    def negatives(self) -> int:
        return sum(self.per_source.values())

    @property
    def filled(self) -> int:
        return sum(self.fills.values())

    @property
    def synthetic_to_retrieved(self) -> float | None:
        """The realised dataset-wide ratio R (synthetic / retrieved negatives), None without retrieved ones."""
        retrieved = sum(self.per_source[source] for source in RETRIEVED_SOURCES)
        return self.per_source["synthetic"] / retrieved if retrieved else None

    def table(self) -> Table:
        """The statistics as a rich table, as printed by ``syneg mix``."""
        from rich.table import Table

        title = f"syneg mix: {self.strategy}, {self.instances} instances x {self.num_negatives} negatives"
        if self.ratio is not None and self.strategy in ("hybrid", "direct"):
            title += f", R = {self.ratio:g}"
        table = Table(title=title)
        table.add_column("")
        table.add_column("negatives", justify="right")
        table.add_column("share", justify="right")
        total = self.negatives or 1
        for source in ("synthetic", "bm25", "dense", "random"):
            if self.per_source[source]:
                table.add_row(source, str(self.per_source[source]), f"{self.per_source[source] / total:.1%}")
        for (filled_for, filled_from), count in sorted(self.fills.items()):
            table.add_row(
                f"of which filled: {filled_for} <- {filled_from}", str(count), f"{count / total:.1%}"
            )
        if (ratio := self.synthetic_to_retrieved) is not None and self.per_source["synthetic"]:
            table.add_row("realised R (synthetic / retrieved)", f"{ratio:.3f}", "")
        if self.synthetic_only is not None:
            table.add_row("instances with synthetic negatives only", str(self.synthetic_only), "")
        if self.short:
            table.add_row("instances short of negatives", str(self.short), "")
        return table


def synthetic_count(num_negatives: int, ratio: float) -> int:
    """How many of ``num_negatives`` a ``hybrid`` instance gives to synthetic negatives at ratio R.

    ``floor(n * R / (1 + R) + 0.5)`` clamped to ``[1, n - 1]``, so both kinds are always present.

    Example::

        >>> [synthetic_count(3, r) for r in (0.2, 0.7, 1.0, 2.7)]
        [1, 1, 2, 2]
        >>> [synthetic_count(10, r) for r in (0.2, 0.7, 1.0, 2.7)]
        [2, 4, 5, 7]
    """
    if num_negatives < 2:
        raise ValueError(f"hybrid mixing needs num_negatives >= 2 (got {num_negatives})")
    _check_ratio(ratio)
    return min(max(_round_half_up(num_negatives * ratio / (1 + ratio)), 1), num_negatives - 1)


def mix(
    strategy: MixStrategy = "hybrid",
    retrieved: Iterable[TrainingInstance] = (),
    synthetic: Iterable[TrainingInstance] = (),
    dataset: BeirDataset | Mapping[str, Document] | None = None,
    *,
    num_negatives: int = MIX.num_negatives,
    ratio: float = MIX.ratio,
    retrieved_sources: Retrievers = MIX.retrieved_sources,
    sampling_strategy: SamplingStrategy = MIX.sampling_strategy,
    seed: int = 42,
) -> tuple[list[TrainingInstance], MixStats]:
    """Build training instances with ``num_negatives`` negatives each, chosen by ``strategy``.

    See the module documentation for the strategies, the exact definition of R and how short pools
    are filled.

    Args:
        strategy: ``hybrid``, ``direct``, ``synthetic``, ``retrieved``, ``random`` or ``in-batch``.
        retrieved: The retrieved pool (``syneg mine`` output); negatives of source ``bm25``/``dense``.
        synthetic: The synthetic pool (``syneg synthesize`` output); negatives of source ``synthetic``.
            Both pools are joined on ``(query_id, pos_ids[0])``; a pair present in only one of them
            has an empty pool on the other side. Negatives are sorted into pools by their
            ``source``, whichever file they come from.
        dataset: The corpus for ``random`` negatives and random fills: a :class:`BeirDataset` or a
            ``{doc id: Document}`` mapping. When both pools are empty and a :class:`BeirDataset` is
            given, the instances are its ``(query, relevant document)`` pairs (for ``random`` and
            ``in-batch`` runs without mining).
        num_negatives: Negatives per instance (ignored by ``in-batch``). Default 3, the paper's
            Figure 1 (one synthetic and two retrieved negatives per row).
        ratio: R, synthetic : retrieved, for ``hybrid`` and ``direct``. Default 0.7, the paper's best.
        retrieved_sources: Which retrieved negatives make the retrieved pool: ``bm25``, ``dense`` or
            ``both``.
        sampling_strategy: ``random`` draws from each pool at random (with the seed); ``top`` takes
            pool order (the miner's ranking; with ``both``, bm25 and dense interleaved rank by rank).
        seed: Seed of every random choice.

    Returns:
        The instances (one per pair, with ``pos`` as in the pools) and their :class:`MixStats`.

    Raises:
        ValueError: For an unknown option, R <= 0, ``hybrid`` with fewer than 2 negatives, or
            ``random`` without a corpus.
    """
    _check_choice("strategy", strategy, MixStrategy)
    _check_choice("retrieved_sources", retrieved_sources, Retrievers)
    _check_choice("sampling_strategy", sampling_strategy, SamplingStrategy)
    _check_ratio(ratio)
    if num_negatives < 0:
        raise ValueError(f"num_negatives must be >= 0 (got {num_negatives})")
    n_syn = synthetic_count(num_negatives, ratio) if strategy == "hybrid" else 0
    corpus = dataset.corpus if isinstance(dataset, BeirDataset) else dataset
    if strategy == "random" and not corpus:
        raise ValueError("the random strategy needs a corpus (pass dataset=...)")
    corpus_ids = list(corpus) if corpus else []

    joined = _join(retrieved, synthetic)
    if not joined and isinstance(dataset, BeirDataset):
        joined = {pair: (_instance_from_pair(dataset, *pair), []) for pair in dataset.pairs()}

    stats = MixStats(strategy, 0 if strategy == "in-batch" else num_negatives, ratio)
    synthetic_side: set[tuple[str, str]] = set()
    if strategy == "direct":
        share = _round_half_up(len(joined) * ratio / (1 + ratio))
        synthetic_side = set(random.Random(f"{seed}:direct").sample(sorted(joined), share))
        stats.synthetic_only = len(synthetic_side)

    wanted_retrieved = RETRIEVED_SOURCES if retrieved_sources == "both" else (retrieved_sources,)
    instances = []
    for key, (base, negatives) in joined.items():
        rng = random.Random(f"{seed}:{key[0]}:{key[1]}")
        excluded = set(base.pos_ids) | set(base.pos)
        if isinstance(dataset, BeirDataset):
            excluded.update(dataset.relevant(base.query_id))
        retrieved_pool = _interleave(
            [[n for n in negatives if n.source == source] for source in wanted_retrieved]
        )
        pools: dict[Pool, list[Negative]] = {
            "synthetic": _pool(
                [n for n in negatives if n.source == "synthetic"], excluded, sampling_strategy, rng
            ),
            "retrieved": _pool(retrieved_pool, excluded, sampling_strategy, rng),
        }

        if strategy == "hybrid":
            plan = [
                ("synthetic", n_syn, ("retrieved", "random")),
                ("retrieved", num_negatives - n_syn, ("synthetic", "random")),
            ]
        elif strategy == "direct":
            side, other = ("synthetic", "retrieved") if key in synthetic_side else ("retrieved", "synthetic")
            plan = [(side, num_negatives, (other, "random"))]
        elif strategy in ("synthetic", "retrieved"):
            plan = [(strategy, num_negatives, ("random",))]
        elif strategy == "random":
            plan = [("random", num_negatives, ())]
        else:
            plan = []

        chosen: list[Negative] = []
        taken = set(excluded)
        shortfalls = []
        # Every slot first takes from its own pool, so a fill never steals from a pool that another
        # slot of the same instance still needs.
        for name, count, fallbacks in plan:
            own = _take(pools, name, count, taken, corpus, corpus_ids, rng)
            chosen += own
            shortfalls.append((name, count - len(own), fallbacks))
        for name, missing, fallbacks in shortfalls:
            for fallback in fallbacks:
                if missing <= 0:
                    break
                fills = _take(pools, fallback, missing, taken, corpus, corpus_ids, rng)
                if fills:
                    chosen += [
                        replace(n, details={**n.details, "filled_for": name, "filled_from": fallback})
                        for n in fills
                    ]
                    stats.fills[name, fallback] += len(fills)
                    missing -= len(fills)

        rng.shuffle(chosen)
        stats.instances += 1
        stats.per_source.update(n.source for n in chosen)
        if len(chosen) < stats.num_negatives:
            stats.short += 1
        instances.append(replace(base, negatives=chosen))

    needs = {"hybrid": ("synthetic", "retrieved"), "direct": ("synthetic", "retrieved")}.get(
        strategy, (strategy,)
    )
    found = {
        "synthetic": stats.per_source["synthetic"],
        "retrieved": stats.per_source["bm25"] + stats.per_source["dense"],
    }
    for pool_name in needs:
        if stats.instances and found.get(pool_name) == 0:
            logger.warning(
                "The pools hold no %s negatives: their slots were filled or left short.", pool_name
            )
    if stats.short:
        logger.warning(
            "%d of %d instances got fewer than %d negatives%s.",
            stats.short,
            stats.instances,
            num_negatives,
            "" if corpus else " (pass a corpus to fill them with random documents)",
        )
    return instances, stats


def _take(
    pools: dict[Pool, list[Negative]],
    name: Pool,
    count: int,
    taken: set[str],
    corpus: Mapping[str, Document] | None,
    corpus_ids: list[str],
    rng: random.Random,
) -> list[Negative]:
    """Remove up to ``count`` negatives not yet in the instance from a pool (``random``: the corpus)."""
    if count <= 0:
        return []
    if name == "random":
        if not corpus:
            return []
        # Drawing a few extra covers the excluded ids without scanning the whole corpus.
        candidates = rng.sample(corpus_ids, min(len(corpus_ids), count + len(taken)))
        picked = [corpus[i] for i in candidates if i not in taken and corpus[i].full_text not in taken][
            :count
        ]
        taken.update(d.id for d in picked)
        return [Negative(text=d.full_text, source="random", id=d.id) for d in picked]
    picked = []
    pool = pools[name]
    while pool and len(picked) < count:
        negative = pool.pop(0)
        if negative.text not in taken and (negative.id is None or negative.id not in taken):
            picked.append(negative)
            taken.update(x for x in (negative.id, negative.text) if x is not None)
    return picked


def _pool(
    candidates: list[Negative], excluded: set[str], sampling_strategy: SamplingStrategy, rng: random.Random
) -> list[Negative]:
    """A pool in drawing order: positives and repeats removed, shuffled for ``random`` sampling."""
    kept = _unique(n for n in candidates if n.id not in excluded and n.text not in excluded)
    return rng.sample(kept, len(kept)) if sampling_strategy == "random" else kept


def _join(
    retrieved: Iterable[TrainingInstance], synthetic: Iterable[TrainingInstance]
) -> dict[tuple[str, str], tuple[TrainingInstance, list[Negative]]]:
    """Group both pools' negatives by (query id, first positive id), keeping the first record's fields."""
    joined: dict[tuple[str, str], tuple[TrainingInstance, list[Negative]]] = {}
    for instance in _chain(retrieved, synthetic):
        # Plain FlagEmbedding records have no ids; their texts stand in.
        key = (instance.query_id or instance.query, instance.pos_ids[0] or instance.pos[0])
        if key not in joined:
            joined[key] = (instance, [])
        joined[key][1].extend(instance.negatives)
    return joined


def _chain(*iterables: Iterable[TrainingInstance]) -> Iterator[TrainingInstance]:
    for iterable in iterables:
        yield from iterable


def _instance_from_pair(dataset: BeirDataset, query_id: str, doc_id: str) -> TrainingInstance:
    return TrainingInstance(query_id, dataset.queries[query_id], [doc_id], [dataset.corpus[doc_id].full_text])


def _interleave(lists: list[list[Negative]]) -> list[Negative]:
    """Rank 1 of every list, then rank 2, ...: ``top`` sampling over bm25 and dense keeps both."""
    longest = max((len(items) for items in lists), default=0)
    return [items[rank] for rank in range(longest) for items in lists if rank < len(items)]


def _unique(negatives: Iterable[Negative]) -> list[Negative]:
    """Drop repeated documents (by id, else text): bm25 and dense often retrieve the same one."""
    seen: set[str] = set()
    kept = []
    for negative in negatives:
        key = negative.id if negative.id is not None else negative.text
        if key not in seen:
            seen.add(key)
            kept.append(negative)
    return kept


def _round_half_up(value: float) -> int:
    return math.floor(value + 0.5)


def _check_ratio(ratio: float) -> None:
    if not ratio > 0 or math.isinf(ratio):
        raise ValueError(f"ratio R must be a positive number (got {ratio})")


def _check_choice(name: str, value: str, literal: Any) -> None:
    choices = get_args(literal)
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r} (expected one of {', '.join(choices)})")
