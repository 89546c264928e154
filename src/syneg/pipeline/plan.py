"""The plan of a run: every stage's settings and fingerprint, computed before anything runs.

A stage's settings hold its own options and the fingerprint of the stage it reads from
(``upstream``), so a changed setting changes the fingerprint of its stage and of every stage
downstream. The chain of an arm and seed (mix → train → evaluate) is planned once
(:class:`ArmSeedPlan`) and read by the runner, the results and the skipping of evaluated arms alike.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syneg.data import dataset_digest
from syneg.engine import ENGINE_FIELDS
from syneg.options import StageOptions
from syneg.pipeline.config import SYNTHETIC_STRATEGIES, ArmConfig, RunConfig, relative
from syneg.pipeline.markers import fingerprint
from syneg.synth import is_shipped

# Options added to a stage's schema after run folders were first committed: they enter the stage's
# settings only when set away from the value that behaves as before they existed (their default, or
# the value in LEGACY_VALUES where the default changed since), so that the markers written before them
# stay valid, and a run with the new default records it.
# The encoding backend and training precision are also requests, not results: their default ``auto``
# resolves per machine, and what it resolved to is recorded in the marker's info (``encoding``,
# ``precision``), never fingerprinted, so a run folder stays done on a machine that resolves differently.
LATER_OPTIONS = {
    "mine": ("max_score", "min_score", "backend"),
    "synthesize": ("timeout", "structured_output", "critique", "prompts", "aspects_per_reflection", "refill",
                   "trim_cut_fields"),
    "train": ("guide_model", "num_negatives", "mini_batch_size", "weight_decay", "query_prompt", "document_prompt",
              "save_total_limit", "logging_steps", "precision"),
    "evaluate": ("backend",),
}
# aspects_per_reflection: the default became 3 in session 13; trim_cut_fields: true in session 15.
LEGACY_VALUES = {("synthesize", "aspects_per_reflection"): 1, ("synthesize", "trim_cut_fields"): False}
# What the synthesize stage's settings leave out: where the output and the cache go (recorded apart, or
# not at all) and how the LLM is reached or laid out on GPUs, none of which changes what it writes.
NOT_GENERATION = {"file", "cache", "pairs", "concurrency", "threads", "base_url", "api_key_env", "vllm_tensor_parallel_size",
                  "vllm_max_model_len", "vllm_batch_size", "vllm_replicas", "vllm_accelerator_type"}


def recorded_options(options: StageOptions, stage: str, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """A stage's options as its settings record them (see :data:`LATER_OPTIONS`); where the stage runs (the
    engine: its output is the same on Ray) is left out, so a run started on one engine resumes on the other."""
    later = LATER_OPTIONS.get(stage, ())
    fields = type(options).model_fields

    def as_before(key: str) -> Any:
        return LEGACY_VALUES.get((stage, key), fields[key].get_default(call_default_factory=True))

    return {key: value for key, value in options.model_dump(exclude=set(exclude) | ENGINE_FIELDS).items()
            if key not in later or value != as_before(key)}


@dataclass(frozen=True)
class PlannedStage:
    """A stage as planned: its marker's name, its settings and their fingerprint."""

    name: str
    settings: dict[str, Any]
    fingerprint: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fingerprint", fingerprint(self.settings))


@dataclass(frozen=True)
class NegativeFiles:
    """The files an arm mixes from and their fingerprint (its mix stage's upstream): the mined negatives,
    and the synthetic ones for the strategies that read them (the others neither read nor depend on them)."""

    upstream: str
    mined: Path
    synthetic: Path | None


@dataclass(frozen=True)
class ArmSeedPlan:
    """The chain of one arm and seed: mix, train and evaluate, each with its settings and fingerprint."""

    arm: ArmConfig
    seed: int
    folder: Path
    files: NegativeFiles
    probe: tuple[Path, Path] | None  # (synthetic, mined) for the shortcut probe, or None
    mix: PlannedStage
    train: PlannedStage
    evaluate: PlannedStage


class Planner:
    """The settings of every stage of a config's run in ``output`` (an absolute run folder)."""

    def __init__(self, config: RunConfig, output: Path) -> None:
        self.config = config
        self.output = output

    def portable(self, path: str | Path) -> str:
        """A path as stage settings record it: relative to the run folder, so that a clone elsewhere
        (same layout, e.g. ``../shared`` beside the repository) finds its committed stages done."""
        return relative(path, self.output)

    def split(self) -> PlannedStage:
        config = self.config
        # The data by content, not by path: the same data reached another way is the same stage.
        return PlannedStage("split", {"data": {"content_sha1": dataset_digest(config.data)}, "split": config.train_split,
                                      "validation": config.validation_queries, "train_queries": config.train_queries,
                                      "seed": config.split_seed})

    def mine(self, split: PlannedStage) -> PlannedStage:
        config = self.config
        return PlannedStage("mine", {"upstream": split.fingerprint, "mine": recorded_options(config.mine, "mine"),
                                     "model": config.train.model, "positives_per_query": config.positives_per_query,
                                     "seed": config.split_seed})

    def synthetic_file(self) -> Path:
        return self.config.synthesize.file or self.output / "synthetic.jsonl"

    def synthesize(self, mine: PlannedStage) -> PlannedStage:
        options = self.config.synthesize
        generation = recorded_options(options, "synthesize", exclude=NOT_GENERATION)
        for key in ("attributes", "prompts"):  # files, as the run folder reaches them; shipped names as they are
            value = generation.get(key)
            if value is not None and not (key == "attributes" and is_shipped(value)):
                generation[key] = self.portable(str(value))
        return PlannedStage("synthesize", {"upstream": mine.fingerprint, "generation": generation, "pairs": options.pairs,
                                           "file": self.portable(self.synthetic_file())})

    def files(self, arm: ArmConfig, mine: PlannedStage, synthesize: PlannedStage | None) -> NegativeFiles:
        mined = self.output / "mined.jsonl"
        if arm.strategy not in SYNTHETIC_STRATEGIES:
            return NegativeFiles(f"{mine.fingerprint}:unused", mined, None)
        if synthesize is None:  # synthesize.enabled is false: such an arm cannot be mixed (see the runner)
            return NegativeFiles(f"{mine.fingerprint}:disabled", mined, None)
        return NegativeFiles(f"{mine.fingerprint}:{synthesize.fingerprint}", mined, self.synthetic_file())

    def mix_options(self, arm: ArmConfig, seed: int) -> dict[str, Any]:
        mix = self.config.mix
        return {"num_negatives": arm.num_negatives or mix.num_negatives, "ratio": arm.ratio or mix.ratio,
                "retrieved_sources": arm.retrieved_sources or mix.retrieved_sources,
                "sampling_strategy": mix.sampling_strategy, "seed": seed}

    def train_options(self, arm: ArmConfig) -> dict[str, Any]:
        train = self.config.train
        return recorded_options(train, "train") | {"temperature": arm.temperature or train.temperature,
                                     "max_seq_length": arm.max_seq_length or train.max_seq_length}

    def arm_folder(self, arm: ArmConfig, seed: int) -> Path:
        return self.output / "arms" / arm.name / f"seed-{seed}"

    def arm_seed(self, arm: ArmConfig, seed: int, files: NegativeFiles, validation: int) -> ArmSeedPlan:
        folder = self.arm_folder(arm, seed)
        probe = ((files.synthetic, files.mined) if self.config.evaluate.shortcut_probe and files.synthetic is not None
                 else None)
        mix = PlannedStage(f"mix/{arm.name}/seed-{seed}",
                           {"upstream": files.upstream, "strategy": arm.strategy, **self.mix_options(arm, seed)})
        train = PlannedStage(f"train/{arm.name}/seed-{seed}",
                             {"upstream": mix.fingerprint, **self.train_options(arm), "seed": seed})
        evaluate = self.evaluation(train.fingerprint, str(folder / "model"), folder, validation, probe)
        return ArmSeedPlan(arm, seed, folder, files, probe, mix, train, evaluate)

    def evaluation(self, upstream: str, model: str, folder: Path, validation: int,
                   probe: tuple[Path, Path] | None = None) -> PlannedStage:
        """The evaluation of ``model`` (``bm25``, a backbone's name or a model folder) into ``folder``."""
        recorded_model = self.portable(model) if os.path.isabs(model) else model
        return PlannedStage(f"evaluate/{folder.relative_to(self.output)}",
                            {"upstream": upstream, "model": recorded_model, **recorded_options(self.config.evaluate, "evaluate"),
                             "validation": validation, "probe": [self.portable(p) for p in probe] if probe else None})
