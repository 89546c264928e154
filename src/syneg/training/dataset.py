"""Training instances as the column table sentence-transformers' trainer reads.

Each instance becomes one row per positive: ``anchor`` (the query), ``positive`` and
``negative_1`` ... ``negative_k``. The trainer needs the same columns in every row, so instances
with different numbers of negatives are aligned to one ``k``:

- ``num_negatives=None`` (default): ``k`` is the smallest count in the file; longer instances keep
  their first ``k`` negatives (``syneg mix`` shuffles negatives within an instance, so the first
  ``k`` are an unbiased draw of its sources), and a warning says how many negatives were cut.
- ``num_negatives=k``: rows with more keep their first ``k``; rows with fewer are dropped, with a
  warning.

``syneg mix`` writes the same count for every instance, so neither happens on its output.
``k = 0`` gives (anchor, positive) pairs: training on in-batch negatives only.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from syneg.data import TrainingInstance

if TYPE_CHECKING:
    from datasets import Dataset

logger = logging.getLogger(__name__)


@dataclass
class TrainingData:
    """The trainer's table and what went into it.

    ``source_counts`` counts the negatives actually used (after alignment) by their ``neg_sources``
    entry; ``filled`` counts those that ``syneg mix`` used to fill a short pool.
    """

    dataset: Dataset
    num_negatives: int
    instances: int
    source_counts: Counter[str] = field(default_factory=Counter)
    filled: int = 0
    dropped_rows: int = 0
    cut_negatives: int = 0

    @property
    def rows(self) -> int:
        return len(self.dataset)

    def source_shares(self) -> dict[str, float]:
        total = sum(self.source_counts.values())
        return (
            {source: count / total for source, count in sorted(self.source_counts.items())} if total else {}
        )


def to_dataset(instances: Iterable[TrainingInstance], num_negatives: int | None = None) -> TrainingData:
    """Turn training instances into the trainer's columns (see the module documentation).

    Example::

        >>> from syneg.data import Negative, TrainingInstance
        >>> data = to_dataset([
        ...     TrainingInstance("q1", "what is a tide?", ["d1"], ["Tides are ..."],
        ...         [Negative("Moons are ...", "bm25"), Negative("A tide is not ...", "synthetic")]),
        ...     TrainingInstance("q2", "why boost?", ["d2"], ["Boosters ..."], [Negative("Vaccines ...", "dense")]),
        ... ])
        >>> data.dataset.column_names, data.num_negatives, data.cut_negatives
        (['anchor', 'positive', 'negative_1'], 1, 1)
        >>> dict(data.source_counts)
        {'bm25': 1, 'dense': 1}
    """
    from datasets import Dataset

    instances = list(instances)
    if not instances:
        raise ValueError("no training instances")
    if num_negatives is None:
        k = min(len(instance.negatives) for instance in instances)
    elif num_negatives < 0:
        raise ValueError(f"num_negatives must be >= 0 (got {num_negatives})")
    else:
        k = num_negatives
    columns: dict[str, list[str]] = {
        "anchor": [],
        "positive": [],
        **{f"negative_{i}": [] for i in range(1, k + 1)},
    }
    source_counts: Counter[str] = Counter()
    filled = dropped_rows = cut_negatives = 0
    for instance in instances:
        if len(instance.negatives) < k:
            dropped_rows += len(instance.pos)
            continue
        negatives = instance.negatives[:k]
        for positive in instance.pos:
            columns["anchor"].append(instance.query)
            columns["positive"].append(positive)
            for i, negative in enumerate(negatives, start=1):
                columns[f"negative_{i}"].append(negative.text)
            source_counts.update(n.source for n in negatives)
            filled += sum(1 for n in negatives if "filled_for" in n.details)
            cut_negatives += len(instance.negatives) - k
    if cut_negatives:
        logger.warning(
            "Instances have different numbers of negatives: kept the first %d, cut %d.", k, cut_negatives
        )
    if dropped_rows:
        logger.warning("Dropped %d rows with fewer than %d negatives.", dropped_rows, k)
    if not columns["anchor"]:
        raise ValueError(f"no training instance has {k} negatives")
    return TrainingData(
        dataset=Dataset.from_dict(columns),
        num_negatives=k,
        instances=len(instances),
        source_counts=source_counts,
        filled=filled,
        dropped_rows=dropped_rows,
        cut_negatives=cut_negatives,
    )
