"""The training stage: contrastive fine-tuning of a bi-encoder on a syneg training set.

- :func:`train` wires sentence-transformers' trainer: rows of (query, positive, hard negatives),
  batches without duplicate texts, checkpoints, resumption and a model card.
- :mod:`syneg.training.loss`: InfoNCE with temperature τ (``scale = 1 / τ``), optionally with guided
  masking of false negatives.
- :mod:`syneg.training.dataset`: training instances to trainer columns.
- :func:`write_model_card`: the syneg section of the model card, rewritable after evaluation.

sentence-transformers, ``datasets`` and ``accelerate`` are imported when a function needs them, so
``import syneg`` stays fast.
"""

from __future__ import annotations

from syneg.training.card import write_model_card
from syneg.training.dataset import TrainingData, to_dataset
from syneg.training.loss import DEFAULT_TEMPERATURE, TRAIN_LOSSES, TrainLoss, build_loss, temperature_to_scale
from syneg.training.trainer import TRAIN, TrainOptions, TrainPrecision, TrainResult, train

__all__ = [
    "DEFAULT_TEMPERATURE",
    "TRAIN",
    "TRAIN_LOSSES",
    "TrainLoss",
    "TrainOptions",
    "TrainPrecision",
    "TrainResult",
    "TrainingData",
    "build_loss",
    "temperature_to_scale",
    "to_dataset",
    "train",
    "write_model_card",
]
