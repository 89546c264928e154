"""The trainer's progress in syneg's display: a callback that drives a :class:`syneg.progress.Progress`
with the step, the loss and the ETA, in place of the trainer's own bar and printed log dictionaries."""

from __future__ import annotations

import time
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from syneg.progress import Progress


class TrainingProgress(TrainerCallback):
    """Steps done (of the run's total, counted from a resumed checkpoint's step), the last logged loss, and
    at the end the mean loss."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        self.progress.start(state.max_steps, completed=state.global_step)

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        self.progress.update(state.global_step)

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
               logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        # The loss is logged every ``logging_steps``, so the step it belongs to is shown with it.
        if logs and "loss" in logs:
            self.progress.update(state.global_step, f"loss {float(logs['loss']):.4f} at step {state.global_step}")
        elif logs and "train_loss" in logs:
            self.progress.update(state.global_step, f"mean loss {float(logs['train_loss']):.4f}")


# Checkpoints every ``save_steps`` steps are too rare where a step takes minutes: SciFact's full-budget arms
# run 26 steps of 2-3 minutes each on a loaded 2-core CPU, with save_steps 50, so an arm stopped by the end
# of a session started again from nothing. A checkpoint is also written once this much training time has
# passed since the last one. It changes nothing the run computes (training resumes to the same steps), so
# it is no setting of the stage and no part of a marker's fingerprint.
CHECKPOINT_MINUTES = 10.0


class TimedCheckpoints(TrainerCallback):
    """Ask the trainer for a checkpoint when ``minutes`` (default :data:`CHECKPOINT_MINUTES`) have passed
    since the start or the last checkpoint."""

    def __init__(self, minutes: float | None = None) -> None:
        self.seconds = 60.0 * (CHECKPOINT_MINUTES if minutes is None else minutes)
        self.last = time.monotonic()

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if time.monotonic() - self.last >= self.seconds:
            control.should_save = True

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        self.last = time.monotonic()
