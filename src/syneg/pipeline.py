"""One pipeline from a config file: split → mine → synthesize → mix → train → evaluate.

``syneg run CONFIG`` (or :func:`run`) reads a YAML file (:class:`RunConfig`), and keeps every stage's
output in a run folder::

    RUN/
      config.yaml              the config as run, its paths relative to the run folder
      splits.json              training and validation query ids
      mined.jsonl              retrieved negatives (syneg mine)
      synthetic.jsonl          LLM negatives (syneg synthesize; or ``synthesize.file``)
      baselines/<name>/        metrics.json of bm25 and the zero-shot backbone
      arms/<arm>/seed-<s>/     train.jsonl (syneg mix), model/ (syneg train), metrics.json
      results.json             one row per (arm, seed, split): what ``syneg report`` reads
      stages/<stage>.json      completion markers: settings, their fingerprint, the stage's counts

**Resuming.** A stage is skipped when its marker exists *and* records the same settings (its own and
those of the stages it reads from). A changed setting reruns that stage and every stage downstream
of it; an unchanged one is never redone. Within a stage, long work resumes on its own: synthesis
appends pair by pair and skips done pairs, training resumes from its last checkpoint, and the
embedding cache keeps every encoded text. So a run stopped at any point and started again picks up
where it was. A stage whose output is needed no more (mining, when every arm to run was evaluated
before) is not redone, even where its output is gone, as in a clone that commits markers and results.

**Portable run folders.** Fingerprints depend on content and settings, never on where the data
sits or how it is reached: the dataset is fingerprinted by the digest of its files
(:func:`syneg.data.dataset_digest`), and the paths settings hold are relative to the run folder.
So a clone at another place, with ``../shared`` a symbolic link or a copy, finds its committed
stages done. Markers of the path-based format of earlier versions are rewritten on the first run
(:func:`migrate_markers`).

**Results are never dropped.** ``results.json`` holds every arm and seed evaluated with the config's
current settings, whether this run or an earlier one evaluated it; an earlier row that is no longer
the config's (its arm's settings changed, or the arm or seed left the config) is kept with a
``stale`` field saying why, and ``syneg report`` leaves it out of its tables and lists it apart.

**Arms and seeds.** ``arms`` lists the training sets to compare (a mix strategy with optional
overrides of the ratio, the retrieved sources, the temperature or the number of negatives);
``zero-shot`` is the untrained backbone. Each arm is trained once per seed in ``seeds`` (the seed
drives mixing, shuffling and initialization), always with the same budget (``train``).

**Pairs.** Training queries are the train split's, minus ``validation_queries`` held out (seeded) for
tuning, optionally sampled down to ``train_queries``. Each query gives ``positives_per_query``
(query, positive) pairs, the highest-graded positives first (ties broken with the seed): for
NFCorpus, with dozens of graded positives per query, one pair per query keeps queries with many
positives from dominating. Every judged positive is still excluded from the query's negatives.

Example config (``syneg run --demo`` runs the shipped one)::

    data: ../shared/datasets/scifact
    output: runs/scifact
    validation_queries: 100
    seeds: [1, 2, 3]
    synthesize: {attributes: scifact, negatives_per_pair: 1}
    mix: {num_negatives: 3, ratio: 0.7}
    train: {temperature: 0.02, batch_size: 32, epochs: 1}
    arms:
      - {name: zero-shot, strategy: zero-shot}
      - {name: bm25, strategy: retrieved, retrieved_sources: bm25}
      - {name: hybrid, strategy: hybrid}
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from rich.console import Console
from rich.table import Table

from syneg.data import BeirDataset, DataError, dataset_digest, demo_path, load_beir, negatives_per_instance
from syneg.evaluation import DEFAULT_METRICS
from syneg.progress import activity, status_console
from syneg.report import COMPOSITION_PREFIX, SHOWN_METRICS, aggregate, load_rows, mean_std_cell

logger = logging.getLogger(__name__)

PipelineStage = Literal["split", "mine", "synthesize", "mix", "train", "evaluate"]
PIPELINE_STAGES: tuple[str, ...] = get_args(PipelineStage)
ArmStrategy = Literal["zero-shot", "hybrid", "direct", "synthetic", "retrieved", "random", "in-batch"]
# The untrained BM25 row of every run. Arm names cannot hold spaces, so no arm (e.g. one trained on
# BM25 negatives and named "bm25") can share its rows in results and reports.
BM25_BASELINE = "bm25 (no training)"
# The strategies whose training sets draw on the LLM's negatives.
SYNTHETIC_STRATEGIES = ("hybrid", "direct", "synthetic")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MineConfig(_Section):
    """Retrieved negatives (see :func:`syneg.mine`); mine more than you mix, so sampling has a pool."""

    retriever: Literal["bm25", "dense", "both"] = "both"
    num_negatives: int = Field(10, ge=1)
    range_min: int = Field(0, ge=0)
    range_max: int | None = 50
    relative_margin: float | None = 0.05
    absolute_margin: float | None = None
    sampling_strategy: Literal["top", "random"] = "top"
    max_seq_length: int | None = None


class SynthesizeConfig(_Section):
    """LLM negatives (see :class:`syneg.synth.Synthesizer`)."""

    enabled: bool = True
    pairs: int | None = Field(None, ge=0, description="Synthesize for the first N training pairs only.")
    negatives_per_pair: int = Field(1, ge=1)
    backend: Literal["llama.cpp", "openai"] = "llama.cpp"
    model: str = "default"
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = Field(4, ge=1)
    threads: int | None = None
    grammar: bool = True
    attributes: str | None = None
    max_rounds: int = Field(2, ge=0)
    prompt_style: Literal["two-step", "single"] = "two-step"
    ablation: Literal["none", "no-attributes", "no-attributes-no-reflection"] = "none"
    max_words: int = 400
    max_tokens: int = 220
    temperature: float = 0.7
    seed: int = 0
    checks: dict[str, float] = Field(default_factory=dict, description="Overrides of syneg.synth.CheckConfig thresholds.")
    file: Path | None = Field(None, description="Synthesis output to append to (default RUN/synthetic.jsonl).")
    cache: Path | None = Field(None, description="LLM request cache (default $SYNEG_CACHE_DIR/llm-cache.sqlite).")


class MixConfig(_Section):
    num_negatives: int = Field(3, ge=1)
    ratio: float = Field(0.7, gt=0)
    retrieved_sources: Literal["bm25", "dense", "both"] = "both"
    sampling_strategy: Literal["random", "top"] = "random"


class TrainConfig(_Section):
    model: str = "default"
    temperature: float = Field(0.02, gt=0)
    loss: Literal["infonce", "gist"] = "infonce"
    batch_size: int = Field(32, ge=2)
    learning_rate: float = 2e-5
    epochs: float = 1.0
    max_steps: int | None = None
    warmup_ratio: float = 0.1
    max_seq_length: int | None = None
    save_steps: int = 50


class EvaluateConfig(_Section):
    split: str = "test"
    metrics: list[str] = Field(default_factory=lambda: list(DEFAULT_METRICS))
    max_seq_length: int | None = None
    bm25: bool = True
    shortcut_probe: bool = True


class ArmConfig(_Section):
    """One training set to compare; unset fields take the ``mix`` / ``train`` values."""

    name: str
    strategy: ArmStrategy
    ratio: float | None = Field(None, gt=0)
    retrieved_sources: Literal["bm25", "dense", "both"] | None = None
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


class RunConfig(_Section):
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
    arms: list[ArmConfig] = Field(
        default_factory=lambda: [ArmConfig(name="zero-shot", strategy="zero-shot"), ArmConfig(name="hybrid", strategy="hybrid")],
        min_length=1,
    )

    @model_validator(mode="after")
    def _unique_arms(self) -> RunConfig:
        names = [arm.name for arm in self.arms]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"arm names must be unique; repeated: {', '.join(repeated)}")
        return self

    @field_validator("synthesize")
    @classmethod
    def _known_checks(cls, synthesize: SynthesizeConfig) -> SynthesizeConfig:
        from syneg.synth import CheckConfig

        unknown = sorted(set(synthesize.checks) - set(CheckConfig.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown checks {', '.join(unknown)}; known: {', '.join(CheckConfig.__dataclass_fields__)}")
        return synthesize

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        """Read and validate a YAML config; errors name the file and the offending key."""
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(f"{path}: config file not found") from None
        except yaml.YAMLError as error:
            raise DataError(f"{path}: not valid YAML: {error}") from None
        if not isinstance(raw, dict):
            raise DataError(f"{path}: a config is a YAML mapping (data: ..., arms: ...)")
        try:
            config = cls.model_validate(raw)
        except ValidationError as error:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in error.errors())
            raise DataError(f"{path}: {problems}") from None
        return config.resolved(path.parent)

    def resolved(self, base: Path) -> RunConfig:
        """Paths made absolute against ``base`` (``data: demo`` is the shipped demo dataset). Symbolic
        links are kept as written, so that paths read back relative to a run folder are the user's."""
        config = self._with_paths(lambda path: Path(os.path.abspath(base / path)))
        return config.model_copy(update={"data": demo_path()}) if str(self.data) == "demo" else config

    def portable(self, folder: Path) -> dict[str, Any]:
        """The config as plain data with its paths relative to ``folder``, the run folder (``output: .``):
        what a run folder keeps as ``config.yaml``, free of the machine's paths and readable from there."""
        config = self._with_paths(lambda path: Path(_relative(path, folder)))
        return json.loads(config.model_dump_json()) | {"output": "."}

    def _with_paths(self, convert: Callable[[Path], Path]) -> RunConfig:
        """A copy with ``convert`` applied to every path the config holds."""
        synthesize = self.synthesize.model_copy(
            update={key: convert(path) for key in ("file", "cache") if (path := getattr(self.synthesize, key)) is not None}
        )
        if _names_attribute_file(self.synthesize.attributes):
            synthesize.attributes = str(convert(Path(str(self.synthesize.attributes))))
        update: dict[str, Any] = {"data": convert(self.data), "synthesize": synthesize}
        if self.output is not None:
            update["output"] = convert(self.output)
        return self.model_copy(update=update)


def _names_attribute_file(spec: str | None) -> bool:
    """Whether ``synthesize.attributes`` is a path (to a YAML file) rather than a shipped example's name."""
    return bool(spec) and (str(spec).endswith((".yaml", ".yml")) or "/" in str(spec))


def _relative(path: str | Path, folder: Path) -> str:
    """``path`` relative to ``folder``, symbolic links kept as reached, or ``demo`` for the shipped demo
    dataset: how run folders record paths, the same in every clone of the same layout."""
    return "demo" if Path(path) == demo_path() else os.path.relpath(path, folder)


def demo_config_path() -> Path:
    """The shipped config of ``syneg run --demo``."""
    return Path(__file__).parent / "configs" / "demo.yaml"


class _Stages:
    """Completion markers: a stage is done when its marker records the same settings fingerprint."""

    def __init__(self, folder: Path, console: Console) -> None:
        self.folder = folder / "stages"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.console = console

    @staticmethod
    def fingerprint(settings: Any) -> str:
        return hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def _marker(self, name: str) -> Path:
        return self.folder / (name.replace("/", "__") + ".json")

    def recorded(self, name: str) -> dict[str, Any] | None:
        """A stage's marker (fingerprint, settings, info), or None when it has none."""
        marker = self._marker(name)
        return self._read(marker) if marker.is_file() else None

    @staticmethod
    def _read(marker: Path) -> dict[str, Any]:
        try:
            recorded = json.loads(marker.read_text())
            if isinstance(recorded, dict) and {"fingerprint", "settings", "info"} <= recorded.keys():
                return recorded
        except json.JSONDecodeError:
            pass
        raise DataError(f"{marker}: not a stage marker (fingerprint, settings, info); delete it to redo the stage")

    def done(self, name: str, settings: Any) -> dict[str, Any] | None:
        """The info of a stage done with these settings, else None."""
        recorded = self.recorded(name)
        return recorded["info"] if recorded and recorded.get("fingerprint") == self.fingerprint(settings) else None

    def run(self, name: str, settings: Any, work: Callable[[], dict[str, Any]],
            outputs: Iterable[Path] = ()) -> tuple[str, dict[str, Any]]:
        """Run ``work`` unless done with these settings and its ``outputs`` are all there.

        Returns (fingerprint, the stage's info). A marker whose outputs are gone (e.g. a fresh clone of
        a repository that commits markers but not models) is redone with the same fingerprint.
        """
        fingerprint = self.fingerprint(settings)
        marker = self._marker(name)
        recorded = self.recorded(name)
        if recorded is not None:
            missing = [str(path) for path in outputs if not path.exists()]
            if recorded.get("fingerprint") == fingerprint and not missing:
                self.console.print(f"[dim]✓ {name}: done before, skipped[/dim]")
                return fingerprint, recorded["info"]
            reason = "settings changed since it ran" if recorded.get("fingerprint") != fingerprint else f"{missing[0]} is gone"
            self.console.print(f"↻ {name}: {reason}, redoing it", soft_wrap=True)
            marker.unlink()
        self.console.print(f"▶ {name}")
        start = time.perf_counter()
        with activity(name):
            info = work()
        info["seconds"] = round(time.perf_counter() - start, 1)
        marker.write_text(json.dumps({"fingerprint": fingerprint, "settings": settings, "info": info}, indent=2, default=str))
        self.console.print(f"✓ {name} ({info['seconds']:.0f} s)")
        return fingerprint, info

    def rewrite(self, change: Callable[[str, dict[str, Any]], dict[str, Any]]) -> int:
        """Apply ``change(stage, settings)`` to every marker's recorded settings, in pipeline order, and
        fingerprint them anew; a marker whose upstream stage's fingerprint changed follows it, so what was
        done stays done and what was out of date stays so. Returns how many markers changed."""
        renamed: dict[str, str] = {}  # old fingerprint → new (arms differing only in training share a mix fingerprint)
        changed = 0
        stage_of = {marker: marker.stem.split("__")[0] for marker in self.folder.glob("*.json")}
        markers = [marker for marker, stage in stage_of.items() if stage in PIPELINE_STAGES]
        for marker in sorted(markers, key=lambda marker: (PIPELINE_STAGES.index(stage_of[marker]), marker.name)):
            recorded = self._read(marker)
            settings = change(stage_of[marker], dict(recorded["settings"]))
            if "upstream" in settings:  # "<fingerprint>" or "<mined>:<synthetic>"
                settings["upstream"] = ":".join(renamed.get(part, part) for part in str(settings["upstream"]).split(":"))
            fingerprint = self.fingerprint(settings)
            if fingerprint != recorded["fingerprint"]:
                renamed[recorded["fingerprint"]] = fingerprint
                marker.write_text(json.dumps(recorded | {"fingerprint": fingerprint, "settings": settings}, indent=2, default=str))
                changed += 1
        return changed


def split_queries(
    dataset: BeirDataset, validation_queries: int, train_queries: int | None, seed: int
) -> tuple[list[str], list[str]]:
    """(training ids, validation ids): a seeded hold-out of the train split, then an optional sample."""
    ids = sorted(q for q in dataset.qrels if any(grade > 0 for grade in dataset.qrels[q].values()))
    if validation_queries >= len(ids):
        raise ValueError(f"validation_queries={validation_queries} leaves no training query (the split has {len(ids)})")
    shuffled = ids[:]
    random.Random(seed).shuffle(shuffled)
    validation, training = sorted(shuffled[:validation_queries]), shuffled[validation_queries:]
    if train_queries is not None:
        training = training[:train_queries]
    return sorted(training), validation


class Pipeline:
    """The stages of one run folder; :func:`run` is the usual way in."""

    def __init__(self, config: RunConfig, output: Path, console: Console | None = None, arms: list[str] | None = None,
                 until: PipelineStage | None = None, seeds: list[int] | None = None) -> None:
        if until is not None and until not in PIPELINE_STAGES:
            raise ValueError(f"Unknown stage {until!r}; expected one of {', '.join(PIPELINE_STAGES)}")
        self.until = until
        self.config = config
        # Absolute, so that the paths stage settings record relative to it do not depend on the working folder.
        self.output = Path(os.path.abspath(output))
        self.console = console or status_console
        self.stages = _Stages(self.output, self.console)
        unknown = sorted(set(arms or []) - {arm.name for arm in config.arms})
        if unknown:
            raise ValueError(f"--arm {', '.join(unknown)}: no such arm in the config ({', '.join(a.name for a in config.arms)})")
        self.arms = [arm for arm in config.arms if not arms or arm.name in arms]
        known_seeds = {seed for arm in self.arms for seed in arm.seeds or config.seeds}
        if seeds and not set(seeds) <= known_seeds:
            missing = ", ".join(str(s) for s in sorted(set(seeds) - known_seeds))
            raise ValueError(f"--seed {missing}: no arm is trained with that seed (seeds: {', '.join(map(str, sorted(known_seeds)))})")
        self.seeds = seeds
        self._datasets: dict[str, BeirDataset] = {}
        self._probes_before: dict[tuple[Path, Path], dict[str, Any]] = {}
        self._mine_stage: Callable[[], object] | None = None  # set by mine(), run on first need

    def _portable(self, path: str | Path) -> str:
        """A path as stage settings record it: relative to the run folder, so that a clone elsewhere
        (same layout, e.g. ``../shared`` beside the repository) finds its committed stages done."""
        return _relative(path, self.output)

    def migrate_markers(self) -> int:
        """Rewrite markers of the path-based format to content fingerprints; returns how many changed.

        Up to syneg 0.1.0 the split stage fingerprinted the data folder's path as resolved from the run
        folder, so a clone at another place, or one reaching the data through a symbolic link, redid every
        stage. A split marker that records a path is given the digest of the config's data instead, when
        that path still names the same data (same digest; or, where it no longer exists, a folder of the
        same name), and every marker downstream is fingerprinted anew from it. Attribute files recorded
        as absolute paths become relative to the run folder. Nothing is marked done that was not.
        """
        split = self.stages.recorded("split")
        legacy = split["settings"].get("data") if split else None
        if not isinstance(legacy, str):
            return 0
        recorded_path = demo_path() if legacy == "demo" else Path(os.path.normpath(self.output / legacy))
        same = (dataset_digest(recorded_path) == dataset_digest(self.config.data) if recorded_path.is_dir()
                else recorded_path.name == Path(self.config.data).name)
        if not same:
            return 0
        data = self._split_settings()["data"]

        def change(stage: str, settings: dict[str, Any]) -> dict[str, Any]:
            if stage == "split":
                return settings | {"data": data}
            attributes = settings.get("generation", {}).get("attributes") if stage == "synthesize" else None
            if attributes and Path(attributes).is_absolute():
                return settings | {"generation": settings["generation"] | {"attributes": self._portable(attributes)}}
            return settings

        changed = self.stages.rewrite(change)
        self.console.print(f"↻ {changed} stage markers of the path-based format now fingerprint the data by content "
                           f"({self.stages.folder})", soft_wrap=True)
        return changed

    # -- data -------------------------------------------------------------------------------------
    def dataset(self, split: str) -> BeirDataset:
        if split not in self._datasets:
            self._datasets[split] = load_beir(self.config.data, split=split)
        return self._datasets[split]

    def evaluation_sets(self, validation: list[str]) -> dict[str, BeirDataset]:
        sets = {}
        if validation:
            sets["validation"] = self.dataset(self.config.train_split).with_queries(validation, "validation")
        sets[self.config.evaluate.split] = self.dataset(self.config.evaluate.split)
        return sets

    # -- stages -----------------------------------------------------------------------------------
    def _split_settings(self) -> dict[str, Any]:
        config = self.config
        # The data by content, not by path: the same data reached another way is the same stage.
        return {"data": {"content_sha1": dataset_digest(config.data)}, "split": config.train_split,
                "validation": config.validation_queries, "train_queries": config.train_queries, "seed": config.split_seed}

    def split(self) -> tuple[str, list[str], list[str]]:
        config = self.config
        settings = self._split_settings()
        path = self.output / "splits.json"

        def work() -> dict[str, Any]:
            training, validation = split_queries(
                self.dataset(config.train_split), config.validation_queries, config.train_queries, config.split_seed
            )
            path.write_text(json.dumps({"train": training, "validation": validation}, indent=1))
            return {"train_queries": len(training), "validation_queries": len(validation)}

        fingerprint, _ = self.stages.run("split", settings, work, outputs=[path])
        ids = json.loads(path.read_text())
        return fingerprint, ids["train"], ids["validation"]

    def mine(self, upstream: str, training: list[str]) -> tuple[str, Path]:
        """The mine stage's fingerprint and output file. The stage itself runs when a later stage reads the
        file (:meth:`_need_mined`): arms evaluated before need no mining where ``mined.jsonl`` is not kept."""
        from syneg.data import write_training_set
        from syneg.retrieval.mining import mine

        config = self.config
        settings = {"upstream": upstream, "mine": config.mine.model_dump(), "model": config.train.model,
                    "positives_per_query": config.positives_per_query, "seed": config.split_seed}
        path = self.output / "mined.jsonl"

        def work() -> dict[str, Any]:
            result = mine(
                self.dataset(config.train_split).with_queries(training),
                model=config.train.model,
                positives_per_query=config.positives_per_query,
                seed=config.split_seed,
                verbose=False,
                **config.mine.model_dump(),
            )
            written = write_training_set(path, result.instances)
            return {"pairs": written, "negatives": sum(len(i.negatives) for i in result.instances)}

        self._mine_stage = lambda: self.stages.run("mine", settings, work, outputs=[path])
        return self.stages.fingerprint(settings), path

    def _need_mined(self) -> None:
        """Run (or skip, when done) the mine stage, once, before a stage reads ``mined.jsonl``."""
        if self._mine_stage is not None:
            self._mine_stage()
            self._mine_stage = None

    def _synthesize_settings(self, upstream: str) -> tuple[dict[str, Any], Path]:
        config = self.config.synthesize
        path = config.file or self.output / "synthetic.jsonl"
        generation = config.model_dump(exclude={"file", "cache", "pairs", "concurrency", "threads", "base_url", "api_key_env"})
        if _names_attribute_file(config.attributes):
            generation["attributes"] = self._portable(str(config.attributes))
        return {"upstream": upstream, "generation": generation, "pairs": config.pairs, "file": self._portable(path)}, path

    def synthesize(self, upstream: str, mined: Path) -> tuple[str, Path | None]:
        if not self.config.synthesize.enabled:
            return "disabled", None
        settings, path = self._synthesize_settings(upstream)
        return self.stages.run("synthesize", settings, lambda: self._synthesize(mined, path), outputs=[path])[0], path

    def _synthesize(self, mined: Path, path: Path) -> dict[str, Any]:
        import asyncio

        from syneg.llm import make_client
        from syneg.synth import CheckConfig, Synthesizer, attributes_for_run, pairs_from_training_set

        config = self.config.synthesize
        self._need_mined()
        pairs = pairs_from_training_set(mined, limit=config.pairs)
        client = make_client(
            config.backend,
            model=config.model,
            base_url=config.base_url,
            api_key_env=config.api_key_env,
            concurrency=config.concurrency,
            grammar=config.grammar,
            n_threads=config.threads,
            cache=config.cache or True,
        )
        try:
            attributes = attributes_for_run(config.attributes, config.ablation, self.output / "attributes.yaml",
                                            self.dataset(self.config.train_split), client, seed=config.seed)
            synthesizer = Synthesizer(
                client,
                attributes=attributes,
                negatives_per_pair=config.negatives_per_pair,
                max_rounds=config.max_rounds,
                ablation=config.ablation,
                checks=CheckConfig(**config.checks),  # type: ignore[arg-type]
                max_words=config.max_words,
                max_tokens=config.max_tokens,
                temperature=config.temperature,
                seed=config.seed,
                concurrency=config.concurrency if config.backend == "openai" else 1,
                prompt_style=config.prompt_style,
            )
            stats = synthesizer.run(pairs, path, show_progress=True)
        finally:
            asyncio.run(client.aclose())
        # This run's counts, then the file's: a resumed synthesis only counts the pairs it wrote itself.
        negatives_per_pair = negatives_per_instance(path)
        return {k: stats[k] for k in ("pairs", "skipped_pairs", "empty_window_pairs", "accepted", "rejected", "check_failures", "requests", "cache_hits",
                                       "generator")} | {
            "file_pairs": len(negatives_per_pair),
            "file_negatives": sum(negatives_per_pair),
            "file_pairs_without_negatives": negatives_per_pair.count(0),
        }

    def _mix_options(self, arm: ArmConfig, seed: int) -> dict[str, Any]:
        config = self.config.mix
        return {
            "num_negatives": arm.num_negatives or config.num_negatives,
            "ratio": arm.ratio or config.ratio,
            "retrieved_sources": arm.retrieved_sources or config.retrieved_sources,
            "sampling_strategy": config.sampling_strategy,
            "seed": seed,
        }

    def _mix_settings(self, upstream: str, arm: ArmConfig, seed: int) -> dict[str, Any]:
        return {"upstream": upstream, "strategy": arm.strategy, **self._mix_options(arm, seed)}

    def _train_settings(self, upstream: str, arm: ArmConfig, seed: int) -> dict[str, Any]:
        config = self.config.train
        return {"upstream": upstream, **config.model_dump(), "temperature": arm.temperature or config.temperature,
                "max_seq_length": arm.max_seq_length or config.max_seq_length, "seed": seed}

    def _evaluate_settings(self, upstream: str, model: str, validation: list[str], probe_set: tuple[Path, Path] | None) -> dict[str, Any]:
        return {"upstream": upstream, "model": self._portable(model) if Path(model).is_absolute() else model,
                **self.config.evaluate.model_dump(), "validation": len(validation),
                "probe": [self._portable(p) for p in probe_set] if probe_set else None}

    def mix(self, upstream: str, arm: ArmConfig, seed: int, mined: Path, synthetic: Path | None) -> tuple[str, Path]:
        from syneg.data import read_training_set, write_training_set
        from syneg.mixing import mix

        options = self._mix_options(arm, seed)
        folder = self._arm_folder(arm, seed)
        path = folder / "train.jsonl"
        needs_synthetic = arm.strategy in SYNTHETIC_STRATEGIES
        if needs_synthetic and synthetic is None:
            raise ValueError(f"arm {arm.name!r} ({arm.strategy}) needs synthetic negatives, but synthesize.enabled is false")

        def work() -> dict[str, Any]:
            self._need_mined()
            instances, stats = mix(
                arm.strategy,  # type: ignore[arg-type]
                read_training_set(mined),
                read_training_set(synthetic) if needs_synthetic and synthetic and synthetic.is_file() else (),
                self.dataset(self.config.train_split),
                **options,
            )
            folder.mkdir(parents=True, exist_ok=True)
            write_training_set(path, instances)
            return {"instances": stats.instances, "per_source": dict(stats.per_source), "filled": stats.filled,
                    "short_instances": stats.short}

        settings = self._mix_settings(upstream, arm, seed)
        fingerprint, _ = self.stages.run(f"mix/{arm.name}/seed-{seed}", settings, work, outputs=[path])
        return fingerprint, path

    def train(self, upstream: str, arm: ArmConfig, seed: int, training_set: Path) -> tuple[str, Path]:
        from syneg.training import train

        config = self.config.train
        model_dir = self._arm_folder(arm, seed) / "model"
        settings = self._train_settings(upstream, arm, seed)

        def work() -> dict[str, Any]:
            result = train(
                training_set,
                model_dir,
                config.model,
                temperature=settings["temperature"],
                loss=config.loss,
                batch_size=config.batch_size,
                learning_rate=config.learning_rate,
                epochs=config.epochs,
                max_steps=config.max_steps,
                warmup_ratio=config.warmup_ratio,
                max_seq_length=settings["max_seq_length"],
                seed=seed,
                save_steps=config.save_steps,
                resume_from_checkpoint=True,
            )
            # Checkpoints only serve resuming; the finished model is in model_dir.
            shutil.rmtree(model_dir / "checkpoints", ignore_errors=True)
            return {"steps": result.global_step, "training_loss": result.training_loss, "rows": result.data.rows,
                    "source_shares": result.data.source_shares()}

        fingerprint, _ = self.stages.run(f"train/{arm.name}/seed-{seed}", settings, work, outputs=[model_dir / "config.json"])
        return fingerprint, model_dir

    def evaluate(self, upstream: str, name: str, model: str, folder: Path, validation: list[str],
                 probe_set: tuple[Path, Path] | None = None) -> dict[str, Any]:
        config = self.config.evaluate
        settings = self._evaluate_settings(upstream, model, validation, probe_set)

        def work() -> dict[str, Any]:
            from syneg.evaluation import evaluate, write_trec_run
            from syneg.retrieval.encoder import DenseEncoder

            encoder = None if model == "bm25" else DenseEncoder(model, max_seq_length=config.max_seq_length)
            metrics = {}
            for split, dataset in self.evaluation_sets(validation).items():
                result = evaluate(dataset, model=model, metrics=config.metrics, encoder=encoder, name=name)
                write_trec_run(folder / f"run.{split}.trec", result.run, tag=name)
                metrics[split] = result.metrics
            info: dict[str, Any] = {"metrics": metrics}
            if (Path(model) / "syneg_training.json").is_file():
                from syneg.training import write_model_card

                # The card of a trained model records its evaluation beside its data and negatives.
                write_model_card(model, evaluation={f"{Path(self.config.data).name} {split} {metric}": value
                                                    for split, values in metrics.items() for metric, value in values.items()})
            if probe_set is not None and encoder is not None:
                from syneg.diagnostics import shortcut_probe

                self._need_mined()
                if probe_set not in self._probes_before:  # the backbone's probe is the same for every arm
                    self._probes_before[probe_set] = shortcut_probe(*probe_set, model=self.config.train.model).to_dict()
                info["shortcut_probe"] = {
                    "before": self._probes_before[probe_set],
                    "after": shortcut_probe(*probe_set, encoder=encoder).to_dict(),
                }
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "metrics.json").write_text(json.dumps(info, indent=2))
            return info

        return self.stages.run(f"evaluate/{folder.relative_to(self.output)}", settings, work, outputs=[folder / "metrics.json"])[1]

    def _arm_folder(self, arm: ArmConfig, seed: int) -> Path:
        return self.output / "arms" / arm.name / f"seed-{seed}"

    # -- the whole run ----------------------------------------------------------------------------
    def run(self) -> list[dict[str, Any]]:
        config = self.config
        self.output.mkdir(parents=True, exist_ok=True)
        self.migrate_markers()
        (self.output / "config.yaml").write_text(yaml.safe_dump(config.portable(self.output), sort_keys=False))
        split_done, training, validation = self.split()
        if self.until == "split":
            return []
        mined_done, mined = self.mine(split_done, training)
        if self.until == "mine":
            self._need_mined()
            return []
        if any(arm.strategy in SYNTHETIC_STRATEGIES for arm in self.arms):
            synthetic_done, synthetic = self.synthesize(mined_done, mined)
        elif config.synthesize.enabled:  # not needed now: what it is, to find the synthetic arms' results
            settings, synthetic = self._synthesize_settings(mined_done)
            synthetic_done = self.stages.fingerprint(settings)
        else:
            synthetic_done, synthetic = "disabled", None
        if self.until == "synthesize":
            return []

        def pools(arm: ArmConfig) -> tuple[str, Path, Path | None]:
            # Arms without synthetic negatives neither read nor depend on the synthetic pool.
            if arm.strategy in SYNTHETIC_STRATEGIES:
                return f"{mined_done}:{synthetic_done}", mined, synthetic
            return f"{mined_done}:unused", mined, None

        evaluating = self.until in (None, "evaluate")
        if config.evaluate.bm25 and evaluating:
            self.evaluate(split_done, "bm25", "bm25", self.output / "baselines" / "bm25", validation)
        for arm in self.arms:
            if arm.strategy == "zero-shot":
                if evaluating:
                    self.evaluate(split_done, arm.name, config.train.model, self.output / "baselines" / arm.name, validation)
                continue
            for seed in arm.seeds or config.seeds:
                if not self.seeds or seed in self.seeds:
                    self._train_and_evaluate(arm, seed, pools(arm), validation)
        if not evaluating:
            return []
        rows = self._results(split_done, pools, validation)
        (self.output / "results.json").write_text(json.dumps(rows + self._stale_rows(rows), indent=1))
        # The rows of this run's selection: the baseline, the chosen arms, the chosen seeds.
        chosen = {arm.name for arm in self.arms} | {BM25_BASELINE}
        return [r for r in rows if r["arm"] in chosen and (r["seed"] is None or not self.seeds or r["seed"] in self.seeds)]

    def _describe(self, arm: ArmConfig) -> dict[str, Any]:
        """The arm's settings as result columns."""
        config = self.config
        return {
            "arm": arm.name,
            "strategy": arm.strategy,
            # R = synthetic / retrieved: 0 for a retrieved-only arm, the end of an R sweep.
            "ratio": 0.0 if arm.strategy == "retrieved" else (arm.ratio or config.mix.ratio) if arm.strategy in ("hybrid", "direct") else None,
            "retrieved_sources": (arm.retrieved_sources or config.mix.retrieved_sources) if arm.strategy in ("hybrid", "direct", "retrieved") else None,
            "temperature": (arm.temperature or config.train.temperature) if arm.strategy != "zero-shot" else None,
            "num_negatives": (arm.num_negatives or config.mix.num_negatives) if arm.strategy not in ("zero-shot", "in-batch") else 0,
            "max_seq_length": (arm.max_seq_length or config.train.max_seq_length) if arm.strategy != "zero-shot" else None,
            # Arms planned on fewer seeds than the run's (tuning and sweep points) are side arms in the report.
            "seeds_planned": 1 if arm.strategy == "zero-shot" else len(arm.seeds or config.seeds),
        }

    def _train_and_evaluate(self, arm: ArmConfig, seed: int, pools: tuple[str, Path, Path | None],
                            validation: list[str]) -> dict[str, Any] | None:
        """Mix, train and evaluate one arm and seed; the evaluation's info, or None when stopped earlier (--until)."""
        upstream, mined, synthetic = pools
        folder = self._arm_folder(arm, seed)
        probe = self._probe_set(arm, pools)
        # An arm evaluated with these settings needs neither its training set nor its model again.
        evaluated = self._evaluated(arm, seed, pools, validation)
        if evaluated is not None and self.until in (None, "evaluate"):
            self.console.print(f"[dim]✓ {arm.name}/seed-{seed}: evaluated before, skipped[/dim]")
            return evaluated
        mixed_done, training_set = self.mix(upstream, arm, seed, mined, synthetic)
        if self.until == "mix":
            return None
        trained_done, model_dir = self.train(mixed_done, arm, seed, training_set)
        if self.until == "train":
            return None
        return self.evaluate(trained_done, arm.name, str(model_dir), folder, validation, probe)

    def _probe_set(self, arm: ArmConfig, pools: tuple[str, Path, Path | None]) -> tuple[Path, Path] | None:
        _, mined, synthetic = pools
        return (synthetic, mined) if self.config.evaluate.shortcut_probe and synthetic and arm.strategy in SYNTHETIC_STRATEGIES else None

    def _evaluated(self, arm: ArmConfig, seed: int, pools: tuple[str, Path, Path | None],
                   validation: list[str]) -> dict[str, Any] | None:
        """The evaluation of an arm and seed done with the config's current settings, else None."""
        folder = self._arm_folder(arm, seed)
        mix_fingerprint = self.stages.fingerprint(self._mix_settings(pools[0], arm, seed))
        train_fingerprint = self.stages.fingerprint(self._train_settings(mix_fingerprint, arm, seed))
        settings = self._evaluate_settings(train_fingerprint, str(folder / "model"), validation, self._probe_set(arm, pools))
        return self.stages.done(f"evaluate/{folder.relative_to(self.output)}", settings)

    def _results(self, split_done: str, pools: Callable[[ArmConfig], tuple[str, Path, Path | None]],
                 validation: list[str]) -> list[dict[str, Any]]:
        """The current rows of results.json: every arm and seed of the config evaluated with its current
        settings, whether this run or an earlier one evaluated it."""
        config = self.config
        base = {"dataset": Path(config.data).name}
        rows: list[dict[str, Any]] = []
        if config.evaluate.bm25:
            info = self.stages.done("evaluate/baselines/bm25", self._evaluate_settings(split_done, "bm25", validation, None))
            rows += _rows(base | {"arm": BM25_BASELINE, "strategy": "bm25", "seed": None}, info) if info else []
        for arm in config.arms:
            described = base | self._describe(arm)
            if arm.strategy == "zero-shot":
                settings = self._evaluate_settings(split_done, config.train.model, validation, None)
                info = self.stages.done(f"evaluate/baselines/{arm.name}", settings)
                rows += _rows(described | {"seed": None}, info) if info else []
                continue
            arm_pools = pools(arm)
            for seed in arm.seeds or config.seeds:
                info = self._evaluated(arm, seed, arm_pools, validation)
                if info:
                    mixed = self.stages.done(f"mix/{arm.name}/seed-{seed}", self._mix_settings(arm_pools[0], arm, seed))
                    rows += _rows(described | {"seed": seed} | (_composition(mixed) if mixed else {}), info)
        return rows

    def _stale_rows(self, current: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The earlier results.json's rows that ``current`` does not replace, each with ``stale`` saying
        why it is no longer the config's: an arm not run now never loses its results, and a changed arm's
        old results stay readable (``syneg report`` lists them apart)."""
        path = self.output / "results.json"
        if not path.is_file():
            return []
        replaced = {_row_key(row) for row in current}
        arms = {arm.name: arm for arm in self.config.arms}
        baselines = {BM25_BASELINE} if self.config.evaluate.bm25 else set()
        stale = []
        for row in load_rows([path]):
            if _row_key(row) in replaced:
                continue
            arm = arms.get(row["arm"])
            if arm is None and row["arm"] not in baselines:
                reason = "arm removed from the config"
            elif arm is not None and row.get("seed") is not None and row["seed"] not in (arm.seeds or self.config.seeds):
                reason = "seed removed from the config"
            else:
                reason = "settings changed"
            stale.append(row | {"stale": reason})
        if stale:
            kept = ", ".join(f"{arm} ({reason})" for arm, reason in dict.fromkeys((r["arm"], r["stale"]) for r in stale))
            self.console.print(f"results.json keeps {len(stale)} earlier rows marked stale, which syneg report leaves "
                               f"out: {kept}", soft_wrap=True)
        return stale


def _row_key(row: dict[str, Any]) -> tuple[str, int | None, str]:
    """What a results row is the figure of: arm, seed and split."""
    return row["arm"], row.get("seed"), row["split"]


def _composition(mixed: dict[str, Any]) -> dict[str, float]:
    """Hard negatives per training instance by source, from the mix stage's counts; ``negatives_filled``
    are the slots a short pool left to another source (a reader needs it to know what an arm trained on)."""
    instances = mixed["instances"] or 1
    per_source = {f"{COMPOSITION_PREFIX}{source}": count / instances for source, count in sorted(mixed["per_source"].items())}
    return per_source | {f"{COMPOSITION_PREFIX}filled": mixed["filled"] / instances}


def _rows(described: dict[str, Any], info: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for split, metrics in info["metrics"].items():
        row = described | {"split": split} | metrics
        if "shortcut_probe" in info:
            row["probe_auc_before"] = info["shortcut_probe"]["before"]["auc"]
            row["probe_auc_after"] = info["shortcut_probe"]["after"]["auc"]
        rows.append(row)
    return rows


def summary_table(rows: list[dict[str, Any]], split: str, metrics: Iterable[str] | None = None) -> Table:
    """Before/after table: one line per arm (mean ± std over seeds) on one split."""
    metrics = list(metrics or SHOWN_METRICS)
    table = Table(title=f"{split} split (×100; mean ± std over seeds)")
    for column in ("arm", "strategy", "seeds", *metrics):
        table.add_column(column, justify="left" if column in ("arm", "strategy") else "right")
    for line in aggregate([r for r in rows if r["split"] == split], metrics):
        table.add_row(line["arm"], line["strategy"], str(line["seeds"]), *(mean_std_cell(line, m) for m in metrics))
    return table


def run(config: str | Path | RunConfig, output: str | Path | None = None, arms: list[str] | None = None,
        until: PipelineStage | None = None, console: Console | None = None, seeds: list[int] | None = None) -> list[dict[str, Any]]:
    """The verb: run (or resume) a pipeline and return its result rows.

    ``output`` overrides the config's run folder; the default is ``runs/<config file stem>``. ``arms``
    restricts the run to some arms and ``seeds`` to some seeds; ``until`` stops after a stage (e.g. ``synthesize``, to make the
    LLM negatives ahead of training), returning no rows.

    Example::

        >>> import syneg
        >>> rows = syneg.run(syneg.pipeline.demo_config_path(), output="runs/demo")  # doctest: +SKIP
    """
    return _pipeline(config, output, console=console, arms=arms, until=until, seeds=seeds).run()


def migrate_markers(config: str | Path | RunConfig, output: str | Path | None = None) -> int:
    """Rewrite a run folder's stage markers of the path-based format (syneg up to 0.1.0) to content
    fingerprints, so that the stages they record stay done; returns how many markers changed.

    ``syneg run`` does it on its own before anything else; this is the same step without running,
    e.g. to commit migrated markers. See :meth:`Pipeline.migrate_markers`.

    Example::

        >>> from syneg.pipeline import migrate_markers
        >>> migrate_markers("bench/experiments/scifact.yaml")  # doctest: +SKIP
        110
    """
    return _pipeline(config, output).migrate_markers()


def _pipeline(config: str | Path | RunConfig, output: str | Path | None, **options: Any) -> Pipeline:
    """The pipeline of a config (file) and its run folder: ``output``, else the config's, else ``runs/<config name>``."""
    if not isinstance(config, RunConfig):
        path = Path(config)
        config = RunConfig.load(path)
        default_output = Path("runs") / path.stem
    else:
        default_output = Path("runs") / "run"
    folder = Path(output) if output is not None else config.output or default_output
    return Pipeline(config, folder, **options)
