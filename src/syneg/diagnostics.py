"""Shortcut diagnostic: can a simple probe tell synthetic negatives from retrieved ones by their embeddings?

Training on LLM-written negatives beside retrieved ones invites a shortcut: if the model can tell
*where* a negative came from (the style of LLM text), it can push synthetic text away without
learning anything about relevance. :func:`shortcut_probe` measures how separable the two sources
are in a model's embedding space:

- samples: for every pair with synthetic negatives, its synthetic negatives and as many retrieved
  negatives of the same pair (the best-ranked first), so both classes cover the same queries and
  topic cannot give the source away;
- probe: logistic regression on the L2-normalized embeddings, scored by ROC AUC and accuracy with
  cross-validation grouped by query (no query has texts in both the fitting and the scoring folds);
- reference: the same probe on the word count alone, a content-free cue.

An AUC near 0.5 means the sources look alike; near 1.0 means the embedding encodes the source. Run
it on the backbone and on the trained model: an AUC that *rises* with training is the warning sign
(the model learned the source); the pipeline records both beside each arm's results.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from syneg.data import RETRIEVED_SOURCES, read_training_set

if TYPE_CHECKING:
    from syneg.retrieval.encoder import DenseEncoder

MIN_GROUPS = 4


@dataclass
class ProbeResult:
    """Probe scores (None when there are too few pairs to cross-validate)."""

    queries: int
    samples_per_source: int
    auc: float | None
    accuracy: float | None
    length_auc: float | None

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def probe_samples(
    synthetic: str | Path, retrieved: str | Path, per_pair: int | None = None
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(texts, labels: 1 synthetic / 0 retrieved, query groups), balanced within every pair."""
    pools = {(i.query_id, i.pos_ids[0]): i for i in read_training_set(retrieved)}
    texts: list[str] = []
    labels: list[int] = []
    groups: list[str] = []
    for instance in read_training_set(synthetic):
        synthetic_texts = [n.text for n in instance.negatives if n.source == "synthetic"]
        pool = pools.get((instance.query_id, instance.pos_ids[0]))
        if not synthetic_texts or pool is None:
            continue
        retrieved_texts = [n.text for n in pool.negatives if n.source in RETRIEVED_SOURCES]
        count = min(len(synthetic_texts), len(retrieved_texts), per_pair or len(synthetic_texts))
        for text, label in [(t, 1) for t in synthetic_texts[:count]] + [(t, 0) for t in retrieved_texts[:count]]:
            texts.append(text)
            labels.append(label)
            groups.append(instance.query_id)
    return texts, np.array(labels), np.array(groups)


def shortcut_probe(
    synthetic: str | Path,
    retrieved: str | Path,
    model: str = "default",
    encoder: DenseEncoder | None = None,
    folds: int = 5,
    per_pair: int | None = None,
    seed: int = 0,
) -> ProbeResult:
    """Cross-validated separability of synthetic from retrieved negatives in ``model``'s embeddings.

    Args:
        synthetic: A ``syneg synthesize`` output (or any training set with ``synthetic`` negatives).
        retrieved: A ``syneg mine`` output for the same pairs.
        model: The model to probe (ignored when ``encoder`` is given).
        encoder: A ready :class:`~syneg.retrieval.encoder.DenseEncoder`.
        folds: Cross-validation folds, grouped by query.
        per_pair: At most this many negatives per source and pair; None keeps all synthetic ones.

    Example::

        >>> result = shortcut_probe("synthetic.jsonl", "mined.jsonl", model="runs/x/model")  # doctest: +SKIP
        >>> result.auc  # doctest: +SKIP
        0.71
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, roc_auc_score
    from sklearn.model_selection import GroupKFold, cross_val_predict

    from syneg.retrieval.encoder import DenseEncoder
    from syneg.synth.checks import words

    texts, labels, groups = probe_samples(synthetic, retrieved, per_pair)
    queries = len(set(groups.tolist()))
    per_source = int(labels.sum())
    if queries < MIN_GROUPS:
        return ProbeResult(queries, per_source, None, None, None)
    encoder = encoder or DenseEncoder(model, show_progress=False)
    embeddings = encoder.encode_documents(texts)
    splitter = GroupKFold(n_splits=min(folds, queries))

    def cross_validated(features: np.ndarray) -> np.ndarray:
        probe = LogisticRegression(max_iter=2000, random_state=seed)
        return cross_val_predict(probe, features, labels, groups=groups, cv=splitter, method="predict_proba")[:, 1]

    probabilities = cross_validated(embeddings)
    lengths = np.log1p([len(words(t)) for t in texts]).reshape(-1, 1)
    return ProbeResult(
        queries=queries,
        samples_per_source=per_source,
        auc=round(float(roc_auc_score(labels, probabilities)), 4),
        accuracy=round(float(accuracy_score(labels, probabilities > 0.5)), 4),
        length_auc=round(float(roc_auc_score(labels, cross_validated(lengths))), 4),
    )
