"""The pipeline config: one YAML file, one section per stage, the arms to compare.

Each stage's section is that stage's own option schema (:mod:`syneg.options`), so a config takes the
same options, defaults and allowed values as the stage's command and Python verb; ``synthesize`` and
``evaluate`` add what only a run needs (where the negatives go, the BM25 baseline, the shortcut probe).
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import Field, ValidationError, field_validator, model_validator

from syneg.data import DataError, Retrievers, demo_path
from syneg.data.storage import read_yaml
from syneg.engine import Engine
from syneg.evaluation import EvaluateOptions
from syneg.mixing import MixOptions, MixStrategy
from syneg.options import StageOptions
from syneg.retrieval.mining import MineOptions
from syneg.synth import SynthesizeOptions, is_shipped
from syneg.training import TrainOptions

PipelineStage = Literal["split", "mine", "synthesize", "mix", "train", "evaluate"]
PIPELINE_STAGES: tuple[str, ...] = get_args(PipelineStage)
ArmStrategy = Literal["zero-shot", MixStrategy]
# The untrained BM25 row of every run. Arm names cannot hold spaces, so no arm (e.g. one trained on
# BM25 negatives and named "bm25") can share its rows in results and reports.
BM25_BASELINE = "bm25 (no training)"
# The strategies whose training sets draw on the LLM's negatives.
SYNTHETIC_STRATEGIES = ("hybrid", "direct", "synthetic")

MineConfig = MineOptions
MixConfig = MixOptions
TrainConfig = TrainOptions


class SynthesizeConfig(SynthesizeOptions):
    """LLM negatives (see :func:`syneg.synth.synthesize`), and where a run keeps them."""

    enabled: bool = True
    pairs: int | None = Field(None, ge=0, description="Synthesize for the first N training pairs only.")
    file: Path | None = Field(None, description="Synthesis output to append to (default RUN/synthetic.jsonl).")


class EvaluateConfig(EvaluateOptions):
    """Evaluation of every model (see :func:`syneg.evaluate`), the BM25 baseline and the shortcut probe."""

    bm25: bool = True
    shortcut_probe: bool = True


class ArmConfig(StageOptions):
    """One training set to compare; unset fields take the ``mix`` / ``train`` values."""

    name: str
    strategy: ArmStrategy
    ratio: float | None = Field(None, gt=0)
    retrieved_sources: Retrievers | None = None
    num_negatives: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, gt=0)
    max_seq_length: int | None = Field(None, ge=8, description="Training truncation, overriding train.max_seq_length.")
    seeds: list[int] | None = Field(None, min_length=1, description="Overrides the run's seeds (e.g. one seed for sweep points).")

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name: str) -> str:
        if not name or any(c in name for c in "/\\ ") or name.startswith("."):
            raise ValueError(f"arm names become folder names: {name!r} must be non-empty, without / \\ or spaces")
        return name


class RunConfig(StageOptions):
    """Everything a pipeline run needs; relative paths are read from the config file's folder."""

    data: Path
    output: Path | None = None
    train_split: str = "train"
    train_queries: int | None = Field(None, ge=1)
    validation_queries: int = Field(0, ge=0)
    positives_per_query: int | None = Field(1, ge=1)
    split_seed: int = 0
    seeds: list[int] = Field(default_factory=lambda: [42], min_length=1)
    mine: MineConfig = Field(default_factory=MineConfig)
    synthesize: SynthesizeConfig = Field(default_factory=SynthesizeConfig)
    mix: MixConfig = Field(default_factory=MixConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    engine: Engine | None = Field(None, description="Where mine, synthesize and evaluate run, local or ray, unless "
                                                    "their own section sets engine (see syneg.engine).")
    ray_address: str | None = Field(None, description="ray: the cluster's address for those stages (default: a local Ray).")
    arms: list[ArmConfig] = Field(
        default_factory=lambda: [ArmConfig(name="zero-shot", strategy="zero-shot"), ArmConfig(name="hybrid", strategy="hybrid")],
        min_length=1,
    )

    @model_validator(mode="after")
    def _engine_of_stages(self) -> RunConfig:
        for section in (self.mine, self.synthesize, self.evaluate):
            for key in ("engine", "ray_address"):
                value = getattr(self, key)
                if value is not None and key not in section.model_fields_set:
                    setattr(section, key, value)
        return self

    @model_validator(mode="after")
    def _unique_arms(self) -> RunConfig:
        names = [arm.name for arm in self.arms]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"arm names must be unique; repeated: {', '.join(repeated)}")
        return self

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        """Read and validate a YAML config; errors name the file and the offending key."""
        path = Path(path)
        raw = read_yaml(path, "config file")
        if not isinstance(raw, dict):
            raise DataError(f"{path}: a config is a YAML mapping (data: ..., arms: ...)")
        try:
            config = cls.model_validate(raw)
        except ValidationError as error:
            raise DataError(f"{path}: {'; '.join(map(problem, error.errors()))}") from None
        return config.resolved(path.parent)

    def resolved(self, base: Path) -> RunConfig:
        """Paths made absolute against ``base`` (``data: demo`` is the shipped demo dataset). Symbolic
        links are kept as written, so that paths read back relative to a run folder are the user's."""
        config = self._with_paths(lambda path: Path(os.path.abspath(base / path)))
        return config.model_copy(update={"data": demo_path()}) if str(self.data) == "demo" else config

    def portable(self, folder: Path) -> dict[str, Any]:
        """The config as plain data with its paths relative to ``folder``, the run folder (``output: .``):
        what a run folder keeps as ``config.yaml``, free of the machine's paths and readable from there."""
        config = self._with_paths(lambda path: Path(relative(path, folder)))
        return json.loads(config.model_dump_json()) | {"output": "."}

    def _with_paths(self, convert: Callable[[Path], Path]) -> RunConfig:
        """A copy with ``convert`` applied to every path the config holds. An attribute spec is a path
        unless it names a shipped example (:func:`syneg.synth.attribute_file`: one rule everywhere)."""
        paths = {key: convert(path) for key in ("file", "cache", "prompts") if (path := getattr(self.synthesize, key)) is not None}
        attributes = self.synthesize.attributes
        if attributes is not None and not is_shipped(attributes):
            paths["attributes"] = str(convert(Path(attributes)))
        update: dict[str, Any] = {"data": convert(self.data), "synthesize": self.synthesize.model_copy(update=paths)}
        if self.output is not None:
            update["output"] = convert(self.output)
        return self.model_copy(update=update)


def problem(error: Any) -> str:
    """One validation error as ``key: message``; an unknown key is told with the keys its section knows."""
    location = [str(part) for part in error["loc"]]
    if error["type"] != "extra_forbidden":
        return f"{'.'.join(location) or '(top)'}: {error['msg']}"
    model: Any = RunConfig
    for part in location[:-1]:
        if part.isdigit():
            continue
        annotation = model.model_fields[part].annotation
        model = next((a for a in (annotation, *get_args(annotation)) if isinstance(a, type) and issubclass(a, StageOptions)), None)
        if model is None:
            return f"{'.'.join(location)}: unknown key"
    # The keys nearest the misspelt one first: a section's own keys come after those it inherits (engine, …).
    close = difflib.get_close_matches(location[-1], list(model.model_fields), n=3, cutoff=0.6)
    known = close + [key for key in model.model_fields if key not in close]
    return f"{'.'.join(location)}: unknown key (known: {', '.join(known)})"


def relative(path: str | Path, folder: Path) -> str:
    """``path`` relative to ``folder``, symbolic links kept as reached, or ``demo`` for the shipped demo
    dataset: how run folders record paths, the same in every clone of the same layout."""
    return "demo" if Path(path) == demo_path() else os.path.relpath(path, folder)


def demo_config_path() -> Path:
    """The shipped config of ``syneg run --demo``."""
    return Path(__file__).parents[1] / "configs" / "demo.yaml"
