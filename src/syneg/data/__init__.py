"""The data layer: BEIR folders, training-set jsonl and the shipped demo dataset."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from syneg.data.beir import (
    BeirDataset,
    Document,
    available_splits,
    dataset_digest,
    load_beir,
    load_corpus,
    load_qrels,
    load_queries,
)
from syneg.data.errors import DataError
from syneg.data.training_set import (
    NEGATIVE_SOURCES,
    RETRIEVED_SOURCES,
    Negative,
    NegativeSource,
    Retrievers,
    SamplingStrategy,
    TrainingInstance,
    negatives_per_instance,
    read_training_set,
    write_training_set,
)


def demo_path() -> Path:
    """The folder of the demo dataset shipped with syneg (BEIR layout, train and test qrels)."""
    return Path(str(files("syneg.data") / "demo"))


__all__ = [
    "NEGATIVE_SOURCES",
    "RETRIEVED_SOURCES",
    "BeirDataset",
    "DataError",
    "Document",
    "Negative",
    "NegativeSource",
    "Retrievers",
    "SamplingStrategy",
    "TrainingInstance",
    "available_splits",
    "dataset_digest",
    "demo_path",
    "load_beir",
    "load_corpus",
    "load_qrels",
    "load_queries",
    "negatives_per_instance",
    "read_training_set",
    "write_training_set",
]
