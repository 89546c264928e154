"""The contrastive loss: InfoNCE over the positive, the instance's hard negatives and in-batch negatives.

For a query ``q`` with positive ``d+`` and the set ``D`` of every document in the batch (its own
positive and hard negatives, and the positives and hard negatives of the other queries), the
paper's loss is

    L = -log( exp(s(q, d+) / τ) / Σ_{d ∈ D} exp(s(q, d) / τ) )

with ``s`` the cosine similarity and τ the temperature (paper default 0.02). This is
sentence-transformers' ``MultipleNegativesRankingLoss`` with ``scale = 1 / τ``: τ = 0.02 is
scale 50; sentence-transformers' default scale 20 is τ = 0.05. The paper's temperature sweep on
SciFact found τ ≈ 0.017 best for BGE and 0.010 for COCO-DR, so τ matters and is a named option.

``loss="gist"`` switches to guided masking of false negatives (GISTEmbed): the same query-to-document
InfoNCE with the same τ, but a guide model (by default a frozen copy of the backbone before
training) masks every in-batch or hard negative that it scores above the query's positive, the
usual sign of an unlabeled positive. It is sentence-transformers' ``CachedGISTEmbedLoss`` (the
uncached ``GISTEmbedLoss`` takes at most one negative column) with its extra anchor-anchor and
positive-positive terms switched off, so that only the masking differs from ``infonce``. It costs a
forward pass of the guide and a second one of the model (gradient caching) per batch, and in return
memory grows with ``mini_batch_size``, not with the batch size.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from torch import nn

TrainLoss = Literal["infonce", "gist"]
TRAIN_LOSSES: tuple[str, ...] = get_args(TrainLoss)
DEFAULT_TEMPERATURE = 0.02


def temperature_to_scale(temperature: float) -> float:
    """The sentence-transformers ``scale`` for a temperature τ: ``1 / τ``.

    Example::

        >>> temperature_to_scale(0.02), temperature_to_scale(0.05)
        (50.0, 20.0)
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be positive (got {temperature})")
    return 1.0 / temperature


def build_loss(
    model: SentenceTransformer,
    loss: TrainLoss = "infonce",
    temperature: float = DEFAULT_TEMPERATURE,
    guide: SentenceTransformer | None = None,
    mini_batch_size: int = 32,
) -> nn.Module:
    """The training loss for ``model``.

    Args:
        model: The model being trained.
        loss: ``infonce`` (``MultipleNegativesRankingLoss``, scale 1/τ) or ``gist``
            (``CachedGISTEmbedLoss``: InfoNCE with guided masking of false negatives).
        temperature: τ of the softmax (paper default 0.02).
        guide: The guide of ``gist``; None for a frozen copy of ``model`` as it is now (call this
            before training).
        mini_batch_size: Texts per forward pass of ``gist`` (gradient caching); ignored by ``infonce``.

    Example::

        >>> from sentence_transformers import SentenceTransformer
        >>> from syneg.locations import resolve_model
        >>> model = SentenceTransformer(resolve_model("default"))
        >>> build_loss(model, temperature=0.02).scale
        50.0
    """
    from sentence_transformers.sentence_transformer.losses import (
        CachedGISTEmbedLoss,
        MultipleNegativesRankingLoss,
    )

    if loss not in TRAIN_LOSSES:
        raise ValueError(f"unknown loss {loss!r} (expected one of {', '.join(TRAIN_LOSSES)})")
    scale = temperature_to_scale(temperature)
    if loss == "infonce":
        return MultipleNegativesRankingLoss(model, scale=scale)
    if guide is None:
        guide = copy.deepcopy(model)
    guide.requires_grad_(False)
    guide.eval()
    return CachedGISTEmbedLoss(
        model,
        guide=guide,
        temperature=temperature,
        mini_batch_size=mini_batch_size,
        contrast_anchors=False,
        contrast_positives=False,
    )
