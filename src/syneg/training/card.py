"""The syneg section of a trained model's card (README.md) and its machine-readable twin.

sentence-transformers writes a model card when the model is saved; syneg adds a section recording
what the card cannot know: the training-set file, the negative sources and their shares, the
temperature and the other hyper-parameters, the precision training computed in (and why it was chosen),
and evaluation results once there are some, with the encoding path that produced them. The same
facts are kept in ``syneg_training.json`` beside the card, from which the section is rendered, so
:func:`write_model_card` can be called again after evaluation to add the results.

Example::

    from syneg.training import write_model_card

    write_model_card("models/scifact-hybrid", evaluation={"ndcg@10": 0.712, "recall@100": 0.95})
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from syneg.data.storage import atomic_write_text

TRAINING_INFO_FILE = "syneg_training.json"
_BEGIN, _END = "<!-- syneg:begin -->", "<!-- syneg:end -->"
_LOSS_NAMES = {
    "infonce": "InfoNCE (MultipleNegativesRankingLoss)",
    "gist": "InfoNCE with guided masking of false negatives (CachedGISTEmbedLoss)",
}
_SECTION = re.compile(re.escape(_BEGIN) + ".*?" + re.escape(_END), re.DOTALL)


def write_model_card(
    model_dir: str | Path,
    info: Mapping[str, Any] | None = None,
    evaluation: Mapping[str, float] | None = None,
    encoding: Mapping[str, str] | None = None,
) -> Path:
    """Write (or rewrite) the syneg section of ``model_dir/README.md``; returns the card's path.

    Args:
        model_dir: A model folder written by :func:`syneg.training.train`.
        info: The training facts; None reads them from ``syneg_training.json`` in ``model_dir``.
        evaluation: Metrics to record (e.g. ``{"ndcg@10": 0.71}``); merged into earlier ones.
        encoding: The encoding path of the evaluation (:class:`syneg.system.EncodingChoice` as a dict).

    The section goes right after the card's "Training Details" heading (or at the end of a card
    without one) and replaces any syneg section already there, so calling this twice is safe.
    """
    model_dir = Path(model_dir)
    info_path = model_dir / TRAINING_INFO_FILE
    facts = dict(info) if info is not None else json.loads(info_path.read_text(encoding="utf-8"))
    if evaluation:
        facts["evaluation"] = {**facts.get("evaluation", {}), **evaluation}
    if encoding:
        facts["evaluation_encoding"] = dict(encoding)
    atomic_write_text(info_path, json.dumps(facts, indent=2, ensure_ascii=False) + "\n")

    card_path = model_dir / "README.md"
    card = card_path.read_text(encoding="utf-8") if card_path.is_file() else ""
    section = f"{_BEGIN}\n{_render(facts)}\n{_END}"
    if _SECTION.search(card):
        card = _SECTION.sub(lambda _: section, card)
    elif "\n## Training Details\n" in card:
        card = card.replace("\n## Training Details\n", f"\n## Training Details\n\n{section}\n", 1)
    else:
        card = f"{card.rstrip()}\n\n{section}\n".lstrip()
    atomic_write_text(card_path, card)
    return card_path


def _render(facts: Mapping[str, Any]) -> str:
    lines = [
        "### syneg: training data and negatives",
        "",
        (
            "Fine-tuned with syneg: contrastive InfoNCE over the positive, "
            "the hard negatives below and in-batch negatives (SyNeg, Li et al., arXiv 2412.17250)."
        ),
        "",
        (
            f"- Training set: `{facts['training_set']}` ({facts['instances']} instances, {facts['rows']} rows, "
            f"{facts['num_negatives']} hard negatives per row)"
        ),
        f"- Base model: `{facts['base_model']}`",
        (
            f"- Loss: {_LOSS_NAMES.get(facts['loss'], facts['loss'])}, "
            f"temperature τ = {facts['temperature']:g} (scale {1 / facts['temperature']:g})"
        ),
    ]
    if precision := facts.get("precision"):
        mixed = "" if precision["precision"] == "fp32" else " autocast (fp32 weights)"
        lines.append(f"- Precision: {precision['precision']}{mixed} on {precision['device']}; {precision['reason']}")
    if facts.get("filled"):
        lines.append(f"- Negatives that filled a short pool in `syneg mix`: {facts['filled']}")
    lines += ["", "| negative source | negatives | share |", "|---|---:|---:|"]
    total = sum(facts["source_counts"].values())
    for source, count in sorted(facts["source_counts"].items()):
        lines.append(f"| {source} | {count} | {count / total:.1%} |")
    if not total:
        lines.append("| (none: in-batch negatives only) | 0 | |")
    lines += ["", "| hyper-parameter | value |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in facts["hyperparameters"].items()]
    if facts.get("evaluation"):
        lines += ["", "| metric | value |", "|---|---:|"]
        lines += [f"| {name} | {value:.4f} |" for name, value in facts["evaluation"].items()]
        if encoding := facts.get("evaluation_encoding"):
            lines += ["", (f"Encoded for evaluation with `{encoding['backend']}` ({encoding['precision']}) on "
                           f"{encoding['device']}; {encoding['reason']}.")]
    return "\n".join(lines)
