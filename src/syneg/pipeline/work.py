"""What each stage of a run does when it has to run: the calls into the stages' own verbs, and the
counts its marker records. Which stages run, and in what order, is the runner's
(:mod:`syneg.pipeline.runner`); their settings are the plan's (:mod:`syneg.pipeline.plan`)."""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from syneg.data import BeirDataset, load_beir, negatives_per_instance
from syneg.data.storage import atomic_write_text
from syneg.pipeline.config import RunConfig
from syneg.pipeline.markers import StageMarkers
from syneg.pipeline.plan import ArmSeedPlan, PlannedStage

# What a synthesize marker records of the stage's statistics: this sitting's counts (a resumed synthesis
# counts only the pairs it wrote), the generator, and the attribute values used (read by the report).
SYNTHESIS_INFO = ("pairs", "skipped_pairs", "empty_window_pairs", "refilled_pairs", "refill_gained", "accepted", "rejected",
                  "check_failures", "requests", "cache_hits", "generator", "attributes")


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


class StageWork:
    """The stages of one run folder, each done unless its marker says it was (:meth:`StageMarkers.complete`)."""

    def __init__(self, config: RunConfig, output: Path, markers: StageMarkers) -> None:
        self.config = config
        self.output = output
        self.markers = markers
        self._datasets: dict[str, BeirDataset] = {}
        self._probes_before: dict[tuple[Path, Path], dict[str, Any]] = {}
        self._pending_mine: Callable[[], object] | None = None

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

    def split(self, plan: PlannedStage) -> tuple[list[str], list[str]]:
        """(training ids, validation ids), from ``splits.json``."""
        config = self.config
        path = self.output / "splits.json"

        def work() -> dict[str, Any]:
            training, validation = split_queries(
                self.dataset(config.train_split), config.validation_queries, config.train_queries, config.split_seed
            )
            atomic_write_text(path, json.dumps({"train": training, "validation": validation}, indent=1))
            return {"train_queries": len(training), "validation_queries": len(validation)}

        self.markers.complete(plan.name, plan.settings, work, outputs=[path])
        ids = json.loads(path.read_text())
        return ids["train"], ids["validation"]

    def defer_mine(self, plan: PlannedStage, training: list[str]) -> None:
        """Mine when a later stage reads ``mined.jsonl`` (:meth:`need_mined`), not before: arms evaluated
        before need no mining where ``mined.jsonl`` is not kept."""
        from syneg.data import write_training_set
        from syneg.retrieval.mining import mine

        config = self.config
        path = self.output / "mined.jsonl"

        def work() -> dict[str, Any]:
            result = mine(self.dataset(config.train_split).with_queries(training), model=config.train.model,
                          positives_per_query=config.positives_per_query, seed=config.split_seed, verbose=False,
                          **config.mine.model_dump())
            written = write_training_set(path, result.instances)
            return {"pairs": written, "negatives": sum(len(i.negatives) for i in result.instances),
                    "encoding": asdict(result.encoding) if result.encoding else None}

        self._pending_mine = lambda: self.markers.complete(plan.name, plan.settings, work, outputs=[path])

    def need_mined(self) -> None:
        """Run (or skip, when done) the mine stage, once, before a stage reads ``mined.jsonl``."""
        if self._pending_mine is not None:
            self._pending_mine()
            self._pending_mine = None

    def synthesize(self, plan: PlannedStage, path: Path) -> None:
        from syneg.synth import synthesize

        def work() -> dict[str, Any]:
            self.need_mined()
            stats = synthesize(self.output / "mined.jsonl", path, self.config.synthesize, limit=self.config.synthesize.pairs,
                               corpus=self.dataset(self.config.train_split), proposed_attributes=self.output / "attributes.yaml")
            per_pair = negatives_per_instance(path)
            return {key: stats[key] for key in SYNTHESIS_INFO} | {
                "file_pairs": len(per_pair), "file_negatives": sum(per_pair), "file_pairs_without_negatives": per_pair.count(0)}

        self.markers.complete(plan.name, plan.settings, work, outputs=[path])

    def mix(self, plan: ArmSeedPlan) -> Path:
        from syneg.data import read_training_set, write_training_set
        from syneg.mixing import mix

        arm, files, path = plan.arm, plan.files, plan.folder / "train.jsonl"
        options = {key: value for key, value in plan.mix.settings.items() if key not in ("upstream", "strategy")}
        if files.upstream.endswith(":disabled"):
            raise ValueError(f"arm {arm.name!r} ({arm.strategy}) needs synthetic negatives, but synthesize.enabled is false")

        def work() -> dict[str, Any]:
            self.need_mined()
            synthetic = files.synthetic
            instances, stats = mix(arm.strategy, read_training_set(files.mined),
                                   read_training_set(synthetic) if synthetic and synthetic.is_file() else (),
                                   self.dataset(self.config.train_split), **options)
            plan.folder.mkdir(parents=True, exist_ok=True)
            write_training_set(path, instances)
            return {"instances": stats.instances, "per_source": dict(stats.per_source), "filled": stats.filled,
                    "short_instances": stats.short}

        self.markers.complete(plan.mix.name, plan.mix.settings, work, outputs=[path])
        return path

    def train(self, plan: ArmSeedPlan, training_set: Path) -> Path:
        from syneg.training import train

        model_dir = plan.folder / "model"
        options = {key: value for key, value in plan.train.settings.items() if key not in ("upstream", "model")}

        def work() -> dict[str, Any]:
            result = train(training_set, model_dir, self.config.train.model, resume_from_checkpoint=True, **options)
            # Checkpoints only serve resuming; the finished model is in model_dir.
            shutil.rmtree(model_dir / "checkpoints", ignore_errors=True)
            return {"steps": result.global_step, "training_loss": result.training_loss, "rows": result.data.rows,
                    "source_shares": result.data.source_shares(), "precision": asdict(result.precision)}

        self.markers.complete(plan.train.name, plan.train.settings, work, outputs=[model_dir / "config.json"])
        return model_dir

    def evaluate(self, plan: PlannedStage, name: str, model: str, folder: Path, validation: list[str],
                 probe: tuple[Path, Path] | None = None) -> dict[str, Any]:
        config = self.config.evaluate

        def work() -> dict[str, Any]:
            from syneg.evaluation import evaluate, write_trec_run
            from syneg.retrieval.encoder import DenseEncoder

            encoder = None if model == "bm25" else DenseEncoder(model, backend=config.backend, max_seq_length=config.max_seq_length,
                                                                engine=config.ray_engine())
            metrics = {}
            for split, dataset in self.evaluation_sets(validation).items():
                result = evaluate(dataset, model=model, metrics=config.metrics, encoder=encoder, name=name)
                write_trec_run(folder / f"run.{split}.trec", result.run, tag=name)
                metrics[split] = result.metrics
            info: dict[str, Any] = {"metrics": metrics}
            if encoder is not None:  # what `backend` (auto by default) resolved to on this machine, and why
                info["encoding"] = asdict(encoder.choice)
            if (Path(model) / "syneg_training.json").is_file():
                from syneg.training import write_model_card

                # The card of a trained model records its evaluation beside its data and negatives.
                write_model_card(model, evaluation={f"{Path(self.config.data).name} {split} {metric}": value
                                                    for split, values in metrics.items() for metric, value in values.items()},
                                 encoding=info.get("encoding"))
            if probe is not None and encoder is not None:
                info["shortcut_probe"] = self._probe(probe, encoder)
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write_text(folder / "metrics.json", json.dumps(info, indent=2))
            return info

        return self.markers.complete(plan.name, plan.settings, work, outputs=[folder / "metrics.json"])

    def _probe(self, probe: tuple[Path, Path], encoder: Any) -> dict[str, Any]:
        from syneg.diagnostics import shortcut_probe

        self.need_mined()
        if probe not in self._probes_before:  # the backbone's probe is the same for every arm
            from syneg.retrieval.encoder import DenseEncoder

            backbone = DenseEncoder(self.config.train.model, backend=self.config.evaluate.backend, show_progress=False)
            self._probes_before[probe] = shortcut_probe(*probe, encoder=backbone).to_dict()
        return {"before": self._probes_before[probe], "after": shortcut_probe(*probe, encoder=encoder).to_dict()}
