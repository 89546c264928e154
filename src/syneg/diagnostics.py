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
- references: the same probe on the word count alone, a content-free cue, and on which words a text
  uses (a bag of words): style words ("crucial", "aims", "insights" against "we", "here", "p") give
  the source away without any model; :func:`telltale_words` lists the words that differ most.

An AUC near 0.5 means the sources look alike; near 1.0 means the embedding encodes the source. Run
it on the backbone and on the trained model: an AUC that *rises* with training is the warning sign
(the model learned the source); the pipeline records both beside each arm's results.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
    words_auc: float | None = None
    telltale: dict[str, list[dict[str, Any]]] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


WORD_PATTERN = r"(?u)\b[^\W\d_][\w'-]*\b"  # words, not numbers: a number's presence is counted apart


def words_probe(seed: int = 0) -> Any:
    """A logistic regression on which words a text uses (a bag of words); as a pipeline, so that under
    cross-validation the vocabulary is learnt inside each fold and no scored text lends the probe its words."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(CountVectorizer(binary=True, token_pattern=WORD_PATTERN), LogisticRegression(max_iter=2000, random_state=seed))


def telltale_words(texts: list[str], labels: np.ndarray, top: int = 10, min_share: float = 0.05) -> dict[str, list[dict[str, Any]]]:
    """The words whose share of texts differs most between the sources (log-odds of the shares, each word
    counted once a text), ``top`` for each side, among words in at least ``min_share`` of one source's texts.

    >>> words = telltale_words(["crucial research aims", "crucial insights", "here we show", "we report"],
    ...                        np.array([1, 1, 0, 0]), top=1)
    >>> words["synthetic"][0]["word"], words["retrieved"][0]["word"]
    ('crucial', 'we')
    """
    from sklearn.feature_extraction.text import CountVectorizer

    vectorizer = CountVectorizer(binary=True, token_pattern=WORD_PATTERN)
    present = vectorizer.fit_transform(texts)
    vocabulary = vectorizer.get_feature_names_out()
    synthetic = np.asarray(present[labels == 1].mean(axis=0)).ravel()
    retrieved = np.asarray(present[labels == 0].mean(axis=0)).ravel()
    smoothing = 0.01
    log_odds = np.log((synthetic + smoothing) / (retrieved + smoothing))
    frequent = np.maximum(synthetic, retrieved) >= min_share

    def side(order: np.ndarray) -> list[dict[str, Any]]:
        chosen = [i for i in order if frequent[i]][:top]
        return [{"word": str(vocabulary[i]), "synthetic_share": round(float(synthetic[i]), 3),
                 "retrieved_share": round(float(retrieved[i]), 3)} for i in chosen]

    return {"synthetic": side(np.argsort(-log_odds, kind="stable")), "retrieved": side(np.argsort(log_odds, kind="stable"))}


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

    def cross_validated(features: Any, probe: Any = None) -> np.ndarray:
        probe = probe or LogisticRegression(max_iter=2000, random_state=seed)
        return cross_val_predict(probe, features, labels, groups=groups, cv=splitter, method="predict_proba")[:, 1]

    probabilities = cross_validated(embeddings)
    lengths = np.log1p([len(words(t)) for t in texts]).reshape(-1, 1)
    return ProbeResult(
        queries=queries,
        samples_per_source=per_source,
        auc=round(float(roc_auc_score(labels, probabilities)), 4),
        accuracy=round(float(accuracy_score(labels, probabilities > 0.5)), 4),
        length_auc=round(float(roc_auc_score(labels, cross_validated(lengths))), 4),
        words_auc=_or_none(lambda: round(float(roc_auc_score(labels, cross_validated(np.array(texts, dtype=object), words_probe(seed)))), 4)),
        telltale=_or_none(lambda: telltale_words(texts, labels)),
    )


def _or_none(measure: Any) -> Any:
    """A word measure, or None where the texts hold no words at all (scikit-learn's empty vocabulary)."""
    try:
        return measure()
    except ValueError as error:
        if "empty vocabulary" in str(error):
            return None
        raise
