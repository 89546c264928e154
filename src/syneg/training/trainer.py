"""``train``: fine-tune a bi-encoder on a syneg training set with sentence-transformers' trainer."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from syneg.data import TrainingInstance, read_training_set
from syneg.locations import resolve_model
from syneg.options import StageOptions
from syneg.progress import Progress
from syneg.system import PrecisionChoice, training_precision
from syneg.training.card import TRAINING_INFO_FILE, write_model_card
from syneg.training.dataset import TrainingData, to_dataset
from syneg.training.loss import DEFAULT_TEMPERATURE, TrainLoss, build_loss

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer, SentenceTransformerModelCardData

logger = logging.getLogger(__name__)

CHECKPOINTS_DIR = "checkpoints"
# auto: bf16 autocast where the CPU runs bf16 natively, mixed precision on a GPU, fp32 elsewhere.
TrainPrecision = Literal["auto", "fp32", "bf16", "fp16"]


class TrainOptions(StageOptions):
    """How :func:`train` fine-tunes: its defaults, and the ``train`` section of a pipeline config.

    The seed is not among them: a pipeline trains each arm once per seed of the run's ``seeds``.
    """

    model: str = Field("default", description="Backbone: default (embedded all-MiniLM-L6-v2) or a model folder.")
    temperature: float = Field(DEFAULT_TEMPERATURE, gt=0, description="InfoNCE temperature τ (scale = 1/τ; paper 0.02).")
    loss: TrainLoss = Field("infonce", description="infonce, or gist (guided masking of false negatives).")
    batch_size: int = Field(32, ge=2, description="Rows per batch.")
    learning_rate: float = Field(2e-5, description="Peak learning rate.")
    epochs: float = Field(1.0, description="Passes over the training set.")
    max_steps: int | None = Field(None, description="Stop after this many steps (overrides epochs).")
    warmup_ratio: float = Field(0.1, description="Share of steps warming up the learning rate.")
    max_seq_length: int | None = Field(None, description="Truncation length in tokens.")
    save_steps: int = Field(50, description="Steps between checkpoints (in OUTPUT/checkpoints).")
    guide_model: str | None = Field(None, description="Guide of gist; default a frozen copy of the model.")
    num_negatives: int | None = Field(None, ge=1, description="Hard negatives per row (default: the smallest count).")
    mini_batch_size: int = Field(32, ge=1, description="Texts per forward pass with gist (gradient caching).")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay.")
    query_prompt: str | None = Field(None, description='Prefix of queries, e.g. "query: ".')
    document_prompt: str | None = Field(None, description='Prefix of documents, e.g. "passage: ".')
    save_total_limit: int | None = Field(2, ge=1, description="Checkpoints kept, oldest deleted first (none: all).")
    logging_steps: int = Field(10, ge=1, description="Steps between loss log lines.")
    precision: TrainPrecision = Field("auto", description="auto (bf16 on a CPU with native bf16, mixed precision on a GPU, "
                                                          "else fp32), fp32, bf16 or fp16 (GPU).")


TRAIN = TrainOptions()


@dataclass
class TrainResult:
    """Where the model went and how training ended."""

    model_dir: Path
    global_step: int
    training_loss: float
    data: TrainingData
    precision: PrecisionChoice | None = None  # what training computed in, and why


def train(
    training_set: str | Path | Iterable[TrainingInstance],
    output_dir: str | Path,
    model: str = TRAIN.model,
    *,
    temperature: float = TRAIN.temperature,
    loss: TrainLoss = TRAIN.loss,
    guide_model: str | None = TRAIN.guide_model,
    num_negatives: int | None = TRAIN.num_negatives,
    batch_size: int = TRAIN.batch_size,
    mini_batch_size: int = TRAIN.mini_batch_size,
    learning_rate: float = TRAIN.learning_rate,
    epochs: float = TRAIN.epochs,
    max_steps: int | None = TRAIN.max_steps,
    warmup_ratio: float = TRAIN.warmup_ratio,
    weight_decay: float = TRAIN.weight_decay,
    max_seq_length: int | None = TRAIN.max_seq_length,
    query_prompt: str | None = TRAIN.query_prompt,
    document_prompt: str | None = TRAIN.document_prompt,
    seed: int = 42,
    save_steps: int = TRAIN.save_steps,
    save_total_limit: int | None = TRAIN.save_total_limit,
    logging_steps: int = TRAIN.logging_steps,
    resume_from_checkpoint: bool | str = False,
    evaluation: dict[str, float] | None = None,
    show_progress: bool = True,
    precision: TrainPrecision = TRAIN.precision,
) -> TrainResult:
    """Fine-tune ``model`` with InfoNCE over each row's positive, hard negatives and in-batch negatives.

    The training set is a syneg/FlagEmbedding jsonl (``syneg mix`` output) or training instances.
    Rows become ``(anchor, positive, negative_1..k)`` (see :mod:`syneg.training.dataset` for rows with
    different numbers of negatives) and are batched with ``BatchSamplers.NO_DUPLICATES``, so no text
    appears twice in a batch: a duplicate would be an in-batch "negative" equal to a positive. The
    loss (:mod:`syneg.training.loss`) is ``MultipleNegativesRankingLoss`` with ``scale = 1 / temperature``
    or, with ``loss="gist"``, the same with guided masking of false negatives.

    The model, with its card (README.md: sentence-transformers' card plus a syneg section recording
    the data file, the negative sources and their shares, the temperature, the hyper-parameters and
    ``evaluation``) and ``syneg_training.json``, is saved in ``output_dir``; checkpoints go to
    ``output_dir/checkpoints`` every ``save_steps`` steps.

    Args:
        training_set: A training-set jsonl path, or training instances.
        output_dir: Folder of the trained model.
        model: ``default`` (the embedded all-MiniLM-L6-v2) or a sentence-transformers model path.
        temperature: τ of InfoNCE; paper default 0.02 (scale 50; sentence-transformers' default
            scale 20 is τ = 0.05).
        loss: ``infonce`` or ``gist`` (guided masking of in-batch false negatives).
        guide_model: The guide of ``gist``; None for a frozen copy of ``model``.
        num_negatives: Hard negatives per row; None for the smallest count in the training set.
        batch_size: Rows per batch; each query sees ``batch_size * (1 + k) - 1`` negatives.
        mini_batch_size: Texts per forward pass with ``gist`` (gradient caching).
        learning_rate: Peak learning rate (linear warm-up, then linear decay).
        epochs: Passes over the training set.
        max_steps: Stop after this many optimizer steps (overrides ``epochs``); None for no limit.
        warmup_ratio: Share of the steps spent warming the learning rate up, in [0, 1).
        weight_decay: AdamW weight decay.
        max_seq_length: Truncation length in tokens; None keeps the model's own (256 for MiniLM).
        query_prompt: Text put before every query (e.g. ``"query: "`` for E5 models).
        document_prompt: Text put before every positive and negative (e.g. ``"passage: "``).
        seed: Seed of initialization, shuffling and sampling.
        save_steps: Steps between checkpoints (one is also written after every
            :data:`syneg.training.progress.CHECKPOINT_MINUTES` of training).
        save_total_limit: Checkpoints kept (oldest deleted first); None keeps all.
        logging_steps: Steps between loss log lines.
        resume_from_checkpoint: True resumes from the last complete checkpoint in
            ``output_dir/checkpoints`` (starting fresh when there is none; one a kill left half-written is
            removed, see :func:`last_checkpoint`); a path resumes from that checkpoint.
        evaluation: Metrics to record in the model card (more can be added later with
            :func:`syneg.training.write_model_card`).
        show_progress: Show syneg's progress bar (step, loss, ETA); the trainer's own is always off.
        precision: ``auto`` (chosen at run time by :func:`syneg.system.training_precision`: bf16 autocast
            on a CPU that runs bf16 natively, mixed precision on a GPU, fp32 elsewhere), ``fp32``, ``bf16``
            or ``fp16`` (GPU only). Weights and optimizer states stay fp32; the card records the choice.

    Returns:
        A :class:`TrainResult`.

    Example::

        from syneg.training import train

        result = train("scifact-hybrid.jsonl", "models/scifact-hybrid", temperature=0.02, max_steps=100)
        print(result.model_dir, result.training_loss, result.data.source_shares())

    Recommendations: keep ``temperature``, ``batch_size``, ``seed`` and the number of negatives fixed
    across the arms of a comparison, and vary only the training set (``syneg mix --strategy``).
    On CPU, a lower ``max_seq_length`` (e.g. 128) makes every step cheaper; check that it still
    covers most of your passages.
    """
    from sentence_transformers import (
        SentenceTransformerModelCardData,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.base.sampler import BatchSamplers
    from transformers import PrinterCallback
    from transformers.trainer_utils import TrainOutput

    from syneg.training.progress import TimedCheckpoints, TrainingProgress

    if not 0 <= warmup_ratio < 1:
        raise ValueError(f"warmup_ratio must be in [0, 1) (got {warmup_ratio})")
    output_dir = Path(output_dir)
    chosen = training_precision(precision)
    logger.info("Training in %s on %s: %s.", chosen.precision, chosen.device, chosen.reason)
    if isinstance(training_set, (str, Path)):
        source, instances = str(training_set), read_training_set(training_set)
    else:
        source, instances = "(training instances in memory)", training_set
    data = to_dataset(instances, num_negatives=num_negatives)
    logger.info(
        "Training on %d rows from %d instances, %d hard negatives each (%s).",
        data.rows,
        data.instances,
        data.num_negatives,
        ", ".join(f"{s} {share:.1%}" for s, share in data.source_shares().items()) or "in-batch only",
    )

    path = resolve_model(model)
    local = Path(path).is_dir()
    card_data = SentenceTransformerModelCardData(
        local_files_only=local, train_datasets=[{"name": Path(source).name}]
    )
    encoder = _load(path, local, card_data)
    if max_seq_length is not None:
        encoder.max_seq_length = max_seq_length
    guide = None
    if loss == "gist" and guide_model is not None:
        guide_path = resolve_model(guide_model)
        guide = _load(guide_path, Path(guide_path).is_dir())
    criterion = build_loss(encoder, loss, temperature, guide=guide, mini_batch_size=mini_batch_size)

    checkpoints = output_dir / CHECKPOINTS_DIR
    resume: str | None = str(resume_from_checkpoint) if isinstance(resume_from_checkpoint, str) else None
    if resume_from_checkpoint is True:
        resume = last_checkpoint(checkpoints)
        if resume is None:
            logger.info("No checkpoint in %s: training from the start.", checkpoints)
        else:
            logger.info("Resuming from %s.", resume)

    prompts = {"anchor": query_prompt} if query_prompt else {}
    if document_prompt:
        prompts.update({column: document_prompt for column in data.dataset.column_names[1:]})
    args = SentenceTransformerTrainingArguments(
        output_dir=str(checkpoints),
        num_train_epochs=epochs,
        max_steps=max_steps if max_steps is not None else -1,
        per_device_train_batch_size=batch_size,
        learning_rate=learning_rate,
        # transformers 5 reads a warmup_steps below 1 as a ratio of the total steps.
        warmup_steps=warmup_ratio,
        weight_decay=weight_decay,
        seed=seed,
        data_seed=seed,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        prompts=prompts or None,
        save_strategy="steps",
        save_steps=save_steps,
        save_total_limit=save_total_limit,
        logging_steps=logging_steps,
        logging_first_step=True,
        report_to="none",
        dataloader_pin_memory=False,
        disable_tqdm=True,
        bf16=chosen.precision == "bf16",
        fp16=chosen.precision == "fp16",
        use_cpu=chosen.device == "cpu",
    )
    trainer = SentenceTransformerTrainer(model=encoder, args=args, train_dataset=data.dataset, loss=criterion)
    # Without its bar, the trainer prints each log dictionary on stdout; syneg's bar shows the loss instead.
    trainer.remove_callback(PrinterCallback)
    finished = _finished_state(resume, max_steps)
    if finished is None:
        with Progress("Training", unit="steps", enabled=show_progress) as progress:
            trainer.add_callback(TrainingProgress(progress))
            trainer.add_callback(TimedCheckpoints())  # besides every save_steps
            output = trainer.train(resume_from_checkpoint=resume)
    else:  # resumed from it, transformers would train one step beyond the end
        logger.info("%s holds the last step: its weights are the trained model.", resume)
        encoder = _load(resume, True, card_data)
        losses = [entry["loss"] for entry in finished.get("log_history", []) if "loss" in entry]
        output = TrainOutput(finished["global_step"], sum(losses) / len(losses) if losses else float("nan"), {})
    # The card's facts file is written last: a folder without it is a model whose saving was stopped.
    (output_dir / TRAINING_INFO_FILE).unlink(missing_ok=True)
    encoder.save(str(output_dir))

    hyperparameters = {
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "epochs": epochs,
        "max_steps": max_steps,
        "steps_trained": output.global_step,
        "warmup_ratio": warmup_ratio,
        "weight_decay": weight_decay,
        "max_seq_length": encoder.max_seq_length,
        "seed": seed,
        "batch_sampler": "no_duplicates",
    }
    if loss == "gist":
        hyperparameters["guide_model"] = guide_model or "frozen copy of the base model"
        hyperparameters["mini_batch_size"] = mini_batch_size
    if prompts:
        hyperparameters["prompts"] = prompts
    info = {
        "training_set": source,
        "instances": data.instances,
        "rows": data.rows,
        "num_negatives": data.num_negatives,
        "source_counts": dict(data.source_counts),
        "source_shares": data.source_shares(),
        "filled": data.filled,
        "base_model": "all-MiniLM-L6-v2 (syneg's embedded default)" if model == "default" else path,
        "loss": loss,
        "temperature": temperature,
        "training_loss": output.training_loss,
        "hyperparameters": hyperparameters,
        "precision": asdict(chosen),
    }
    write_model_card(output_dir, info, evaluation=evaluation)
    logger.info(
        "Saved the model to %s (%d steps, mean loss %.4f).",
        output_dir,
        output.global_step,
        output.training_loss,
    )
    return TrainResult(output_dir, output.global_step, output.training_loss, data, chosen)


def last_checkpoint(folder: str | Path) -> str | None:
    """The newest complete checkpoint in ``folder`` (None when there is none); a checkpoint that a kill
    left half-written is removed.

    The trainer writes a checkpoint's files one by one and ``trainer_state.json`` last, so a checkpoint
    without a readable one is incomplete: resuming from it (as ``get_last_checkpoint`` of transformers
    would) fails, or starts from a torn optimizer state.
    """
    complete: dict[int, Path] = {}
    for path in Path(folder).glob("checkpoint-*"):
        step = path.name.removeprefix("checkpoint-")
        if not (step.isdigit() and path.is_dir()):
            continue
        try:
            json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            logger.warning("Removing %s: a checkpoint a stopped run left incomplete.", path)
            shutil.rmtree(path, ignore_errors=True)
            continue
        complete[int(step)] = path
    return str(complete[max(complete)]) if complete else None


def _finished_state(checkpoint: str | None, max_steps: int | None) -> dict | None:
    """The trainer state of ``checkpoint`` when it holds the last step (a run stopped while saving the model
    or its card), else None. Its training loss is the mean of the losses it logged."""
    if checkpoint is None:
        return None
    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text(encoding="utf-8"))
    end = max_steps if max_steps is not None else state.get("max_steps")
    return state if end and state.get("global_step", 0) >= end else None


def _load(
    path: str, local: bool, card_data: SentenceTransformerModelCardData | None = None
) -> SentenceTransformer:
    from syneg.retrieval.encoder import load_sentence_transformer

    return load_sentence_transformer(path, local_files_only=local, model_card_data=card_data)
