"""The runner: which stages of a run to do, in what order, and the rows of ``results.json``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from syneg.data.storage import atomic_write_text
from syneg.engine.synthesis import check_backend
from syneg.pipeline.config import BM25_BASELINE, PIPELINE_STAGES, SYNTHETIC_STRATEGIES, PipelineStage, RunConfig
from syneg.pipeline.markers import StageMarkers
from syneg.pipeline.migration import migrate_path_markers
from syneg.pipeline.plan import ArmSeedPlan, PlannedStage, Planner
from syneg.pipeline.results import RESULTS_FILE, composition, describe, rows_of, stale_rows
from syneg.pipeline.work import StageWork
from syneg.progress import status_console


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
        self.markers = StageMarkers(self.output, self.console)
        self.planner = Planner(config, self.output)
        self.work = StageWork(config, self.output, self.markers)
        unknown = sorted(set(arms or []) - {arm.name for arm in config.arms})
        if unknown:
            raise ValueError(f"--arm {', '.join(unknown)}: no such arm in the config ({', '.join(a.name for a in config.arms)})")
        self.arms = [arm for arm in config.arms if not arms or arm.name in arms]
        known_seeds = {seed for arm in self.arms for seed in arm.seeds or config.seeds}
        if seeds and not set(seeds) <= known_seeds:
            missing = ", ".join(str(s) for s in sorted(set(seeds) - known_seeds))
            raise ValueError(f"--seed {missing}: no arm is trained with that seed (seeds: {', '.join(map(str, sorted(known_seeds)))})")
        self.seeds = seeds

    def migrate_markers(self) -> int:
        """Rewrite markers of the path-based format to content fingerprints (:mod:`syneg.pipeline.migration`)."""
        return migrate_path_markers(self.markers, self.planner)

    def plan(self, split: PlannedStage, validation: int) -> tuple[PlannedStage, PlannedStage | None, list[ArmSeedPlan]]:
        """(mine, synthesize or None when disabled, the chain of every arm and seed of the config), planned once."""
        mine = self.planner.mine(split)
        synthesize = self.planner.synthesize(mine) if self.config.synthesize.enabled else None
        chains = [self.planner.arm_seed(arm, seed, self.planner.files(arm, mine, synthesize), validation)
                  for arm in self.config.arms if arm.strategy != "zero-shot" for seed in arm.seeds or self.config.seeds]
        return mine, synthesize, chains

    def baseline(self, split: PlannedStage, name: str, model: str, validation: int) -> PlannedStage:
        """The evaluation of an untrained model (BM25, or a zero-shot arm's backbone) into ``baselines/<name>``."""
        return self.planner.evaluation(split.fingerprint, model, self.output / "baselines" / name, validation)

    def run(self) -> list[dict[str, Any]]:
        config = self.config
        self.output.mkdir(parents=True, exist_ok=True)
        self.migrate_markers()
        atomic_write_text(self.output / "config.yaml", yaml.safe_dump(config.portable(self.output), sort_keys=False))
        split = self.planner.split()
        training, validation = self.work.split(split)
        if self.until == "split":
            return []
        mine, synthesize, chains = self.plan(split, len(validation))
        self.work.defer_mine(mine, training)
        if self.until == "mine":
            self.work.need_mined()
            return []
        synthesizing = synthesize is not None and any(arm.strategy in SYNTHETIC_STRATEGIES for arm in self.arms)
        if synthesizing and self._done(synthesize) is None:
            check_backend(config.synthesize)  # e.g. vLLM not installed: said before mining (deferred until read)
        if synthesizing:
            self.work.synthesize(synthesize, self.planner.synthetic_file())
        if self.until == "synthesize":
            return []
        evaluating = self.until in (None, "evaluate")
        if config.evaluate.bm25 and evaluating:
            self._evaluate_untrained(split, "bm25", "bm25", validation)
        for arm in self.arms:
            if arm.strategy == "zero-shot":
                if evaluating:
                    self._evaluate_untrained(split, arm.name, config.train.model, validation)
                continue
            for chain in chains:
                if chain.arm is arm and (not self.seeds or chain.seed in self.seeds):
                    if self._train_and_evaluate(chain, validation):
                        # A run of many arms takes hours: results.json follows every evaluation, so a
                        # stopped run (or a report read meanwhile) has every arm-seed finished so far.
                        self.write_results(split, chains, len(validation))
        if not evaluating:
            return []
        rows, stale = self.write_results(split, chains, len(validation))
        if stale:
            kept = ", ".join(f"{arm} ({reason})" for arm, reason in dict.fromkeys((r["arm"], r["stale"]) for r in stale))
            self.console.print(f"results.json keeps {len(stale)} earlier rows marked stale, which syneg report leaves "
                               f"out: {kept}", soft_wrap=True)
        # The rows of this run's selection: the baseline, the chosen arms, the chosen seeds.
        chosen = {arm.name for arm in self.arms} | {BM25_BASELINE}
        return [r for r in rows if r["arm"] in chosen and (r["seed"] is None or not self.seeds or r["seed"] in self.seeds)]

    def _evaluate_untrained(self, split: PlannedStage, name: str, model: str, validation: list[str]) -> None:
        self.work.evaluate(self.baseline(split, name, model, len(validation)), name, model, self.output / "baselines" / name,
                           validation)

    def _train_and_evaluate(self, chain: ArmSeedPlan, validation: list[str]) -> bool:
        """Mix, train and evaluate one arm and seed, as far as ``--until`` goes; True when it evaluated now."""
        name = f"{chain.arm.name}/seed-{chain.seed}"
        # An arm evaluated with these settings needs neither its training set nor its model again.
        if self.until in (None, "evaluate") and self._done(chain.evaluate) is not None:
            self.console.print(f"[dim]✓ {name}: evaluated before, skipped[/dim]")
            return False
        training_set = self.work.mix(chain)
        if self.until == "mix":
            return False
        model_dir = self.work.train(chain, training_set)
        if self.until == "train":
            return False
        self.work.evaluate(chain.evaluate, chain.arm.name, str(model_dir), chain.folder, validation, chain.probe)
        return True

    def _done(self, stage: PlannedStage) -> dict[str, Any] | None:
        """The info of a planned stage done with its settings, else None."""
        return self.markers.done(stage.name, stage.settings)

    def write_results(self, split: PlannedStage, chains: list[ArmSeedPlan], validation: int
                      ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Write results.json: the current rows, then the earlier rows they do not replace, marked stale."""
        rows = self.results(split, chains, validation)
        path = self.output / RESULTS_FILE
        stale = stale_rows(path, rows, self.config)
        atomic_write_text(path, json.dumps(rows + stale, indent=1))
        return rows, stale

    def results(self, split: PlannedStage, chains: list[ArmSeedPlan], validation: int) -> list[dict[str, Any]]:
        """The current rows of results.json: every arm and seed of the config evaluated with its current
        settings, whether this run or an earlier one evaluated it."""
        config = self.config
        base = {"dataset": Path(config.data).name}
        rows: list[dict[str, Any]] = []
        if config.evaluate.bm25 and (info := self._done(self.baseline(split, "bm25", "bm25", validation))):
            rows += rows_of(base | {"arm": BM25_BASELINE, "strategy": "bm25", "seed": None}, info)
        for arm in config.arms:
            described = base | describe(arm, config)
            if arm.strategy == "zero-shot":
                info = self._done(self.baseline(split, arm.name, config.train.model, validation))
                rows += rows_of(described | {"seed": None}, info) if info else []
                continue
            for chain in (chain for chain in chains if chain.arm is arm):
                info = self._done(chain.evaluate)
                if info:
                    mixed = self._done(chain.mix)
                    rows += rows_of(described | {"seed": chain.seed} | (composition(mixed) if mixed else {}), info)
        return rows


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
    return pipeline_of(config, output, console=console, arms=arms, until=until, seeds=seeds).run()


def migrate_markers(config: str | Path | RunConfig, output: str | Path | None = None) -> int:
    """Rewrite a run folder's stage markers of the path-based format (syneg up to 0.1.0) to content
    fingerprints, so that the stages they record stay done; returns how many markers changed.

    ``syneg run`` does it on its own before anything else; this is the same step without running,
    e.g. to commit migrated markers. See :mod:`syneg.pipeline.migration`.

    Example::

        >>> from syneg.pipeline import migrate_markers
        >>> migrate_markers("bench/experiments/scifact.yaml")  # doctest: +SKIP
        110
    """
    return pipeline_of(config, output).migrate_markers()


def pipeline_of(config: str | Path | RunConfig, output: str | Path | None, **options: Any) -> Pipeline:
    """The pipeline of a config (file) and its run folder: ``output``, else the config's, else ``runs/<config name>``."""
    if not isinstance(config, RunConfig):
        path = Path(config)
        config = RunConfig.load(path)
        default_output = Path("runs") / path.stem
    else:
        default_output = Path("runs") / "run"
    folder = Path(output) if output is not None else config.output or default_output
    return Pipeline(config, folder, **options)
