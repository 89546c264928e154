"""The (query, positive) pairs that synthesis writes negatives for, from BEIR qrels or a training set."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from syneg.data import BeirDataset, DataError, read_training_set
from syneg.synth.prompts import PromptTemplates


@dataclass(frozen=True)
class Pair:
    query_id: str
    query: str
    pos_id: str
    positive: str


def pairs_from_beir(dataset: BeirDataset, limit: int | None = None) -> list[Pair]:
    """Every (query, relevant document) pair of the dataset's qrels, in qrels order."""
    pairs = []
    for query_id, doc_id in dataset.pairs():
        if query_id not in dataset.queries or doc_id not in dataset.corpus:
            raise DataError(f"qrels pair ({query_id}, {doc_id}) names a query or document that does not exist")
        pairs.append(Pair(query_id, dataset.queries[query_id], doc_id, dataset.corpus[doc_id].full_text))
        if limit is not None and len(pairs) >= limit:
            break
    return pairs


def pairs_from_training_set(path: str | Path, limit: int | None = None) -> list[Pair]:
    """The (query, positive) pairs of a training-set jsonl (e.g. the output of ``syneg mine``)."""
    pairs = []
    for instance in read_training_set(path):
        for pos_id, positive in zip(instance.pos_ids, instance.pos, strict=True):
            pairs.append(Pair(instance.query_id, instance.query, pos_id, positive))
            if limit is not None and len(pairs) >= limit:
                return pairs
    return pairs


def style_examples(dataset: BeirDataset, size: int = 256, seed: int = 0) -> list[str]:
    """Texts of the corpus, drawn with ``seed``, that a write template's ``$example`` shows as a model of the
    collection's style (see :meth:`syneg.synth.writing.CandidateWriter.style_example`)."""
    ids = sorted(dataset.corpus)
    return [dataset.corpus[i].full_text for i in random.Random(seed).sample(ids, min(size, len(ids)))]


def style_examples_for(templates: PromptTemplates, dataset: BeirDataset | None, seed: int = 0) -> list[str]:
    """The :func:`style_examples` a write template needs: none when it does not quote ``$example``; a
    :class:`DataError` when it does and there is no corpus to draw them from (pairs from a training-set file)."""
    if "example" not in templates.placeholders("write"):
        return []
    if dataset is None:
        raise DataError(f"{templates.folder}/write.txt quotes $example, a text of the corpus: give a BEIR folder "
                        "or a corpus, not a training-set file")
    return style_examples(dataset, seed=seed)
