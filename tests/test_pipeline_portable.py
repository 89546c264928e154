"""Portable run folders: stages fingerprinted by content and settings, never by where the data sits;
results never silently dropped; no machine paths in a run folder; markers of the path-based format
migrated. Training and evaluation are instant stand-ins here (mining is real BM25 on the demo data):
these tests are about which stages run and what the run folder records, not about models."""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from syneg.data import demo_path
from syneg.evaluation import EvaluationResult
from syneg.pipeline import BM25_BASELINE, Pipeline, PlannedStage, RunConfig, migrate_markers, run
from syneg.report import write_report
from syneg.system import EncodingChoice, PrecisionChoice

LEGACY_RUN = Path(__file__).parent / "fixtures" / "legacy-run"
EXPERIMENTS = Path(__file__).parents[1] / "bench" / "experiments"

# Retrieved-only arms on BM25 negatives: nothing here needs a model.
CONFIG = {
    "data": "../../shared/datasets/demo",
    "output": "runs/demo",
    "seeds": [1, 2],
    "validation_queries": 6,
    "mine": {"retriever": "bm25", "num_negatives": 4, "range_max": 20},
    "mix": {"num_negatives": 2},
    "evaluate": {"shortcut_probe": False},
    "arms": [
        {"name": "zero-shot", "strategy": "zero-shot"},
        {"name": "bm25", "strategy": "retrieved", "retrieved_sources": "bm25"},
        {"name": "random", "strategy": "random"},
        {"name": "in-batch", "strategy": "in-batch"},
    ],
}


@pytest.fixture
def stage_work(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Counts the mining, training and evaluations that run; training and evaluation are stand-ins."""
    import syneg.evaluation
    import syneg.retrieval.encoder
    import syneg.retrieval.mining
    import syneg.training

    done: Counter = Counter()
    mine = syneg.retrieval.mining.mine

    def counted_mine(*args, **kwargs):
        done["mine"] += 1
        return mine(*args, **kwargs)

    def train(training_set, model_dir, *args, **kwargs):
        done["train"] += 1
        Path(model_dir).mkdir(parents=True, exist_ok=True)
        (Path(model_dir) / "config.json").write_text("{}")
        return SimpleNamespace(global_step=1, training_loss=0.5, data=SimpleNamespace(rows=1, source_shares=dict),
                               precision=PrecisionChoice("fp32", "cpu", "stand-in"))

    def evaluate(dataset, model, metrics, encoder=None, name=None):
        done["evaluate"] += 1
        return EvaluationResult(name=name or model, metrics={"ndcg@10": 0.5, "recall@10": 0.6, "mrr@10": 0.4})

    monkeypatch.setattr(syneg.retrieval.mining, "mine", counted_mine)
    monkeypatch.setattr(syneg.training, "train", train)
    monkeypatch.setattr(syneg.evaluation, "evaluate", evaluate)
    monkeypatch.setattr(syneg.retrieval.encoder, "DenseEncoder",
                        lambda *args, **kwargs: SimpleNamespace(choice=EncodingChoice("torch", "fp32", "cpu", "stand-in")))
    return done


@pytest.fixture
def no_stage_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Mining, synthesis, mixing, training and evaluation fail the test if they start."""
    import syneg.evaluation
    import syneg.llm
    import syneg.mixing
    import syneg.retrieval.encoder
    import syneg.retrieval.mining
    import syneg.training

    def forbidden(*args, **kwargs):
        raise AssertionError("a stage ran that was done before")

    for module, name in ((syneg.retrieval.mining, "mine"), (syneg.llm, "make_client"), (syneg.mixing, "mix"),
                         (syneg.training, "train"), (syneg.evaluation, "evaluate"), (syneg.retrieval.encoder, "DenseEncoder")):
        monkeypatch.setattr(module, name, forbidden)


def make_repository(root: Path, config: dict = CONFIG) -> Path:
    """``root/repo/exp/demo.yaml`` beside ``root/shared/datasets/demo`` (a copy of the demo data); the config's path."""
    shutil.copytree(demo_path(), root / "shared" / "datasets" / "demo")
    return write_config(root / "repo" / "exp", config)


def write_config(folder: Path, config: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "demo.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def clone(repository: Path, to: Path) -> Path:
    """A clone of ``repo/exp`` that keeps what bench/experiments commits: configs, markers, metrics, results."""
    shutil.copytree(repository, to, ignore=shutil.ignore_patterns("model", "train.jsonl", "mined.jsonl", "*.trec"))
    return to / "demo.yaml"


def linked_clone(config: Path, root: Path) -> Path:
    """A clone of the repository of ``config`` in ``root``, whose ``../shared`` is a symbolic link to the data."""
    root.mkdir()
    (root / "shared").symlink_to(config.parents[2] / "shared", target_is_directory=True)
    return clone(config.parent, root / "repo" / "exp")


def stage_markers(run_dir: Path) -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted((run_dir / "stages").iterdir())}


def results(config: Path) -> list[dict]:
    return json.loads((config.parent / "runs" / "demo" / "results.json").read_text())


def test_the_same_data_through_a_symlink_or_a_copy_elsewhere_redoes_nothing(tmp_path, stage_work):
    config = make_repository(tmp_path / "first")
    rows = run(config)
    assert stage_work == {"mine": 1, "train": 6, "evaluate": 16}  # 8 models, on the validation and test splits
    markers = stage_markers(config.parent / "runs" / "demo")
    assert not any(str(tmp_path) in text for text in markers.values())

    linked = linked_clone(config, tmp_path / "linked")
    # A clone at another depth, with a copy of the data elsewhere, named by an absolute path.
    elsewhere = clone(config.parent, tmp_path / "else" / "where" / "repo" / "exp")
    shutil.copytree(demo_path(), tmp_path / "copied" / "demo")
    write_config(elsewhere.parent, CONFIG | {"data": str(tmp_path / "copied" / "demo")})

    stage_work.clear()
    for cloned in (linked, elsewhere):
        assert run(cloned) == rows
        assert stage_markers(cloned.parent / "runs" / "demo") == markers
        assert results(cloned) == rows
    assert not stage_work  # no mining, training or evaluation again: every stage was done


def test_a_run_of_one_arm_in_a_clone_keeps_every_other_arms_rows(tmp_path, stage_work):
    config = make_repository(tmp_path / "first")
    rows = run(config)
    linked = linked_clone(config, tmp_path / "linked")
    assert {(r["arm"], r["seed"]) for r in run(linked, arms=["random"], seeds=[1])} == {(BM25_BASELINE, None), ("random", 1)}
    assert results(linked) == rows


def test_a_changed_or_removed_arm_keeps_its_rows_marked_stale_and_the_report_leaves_them_out(tmp_path, stage_work):
    config = make_repository(tmp_path)
    rows = run(config)
    # random's τ changes and it keeps seed 1 only; in-batch leaves the config; only bm25 is run.
    arms = [*CONFIG["arms"][:2], CONFIG["arms"][2] | {"temperature": 0.05, "seeds": [1]}]
    write_config(config.parent, CONFIG | {"arms": arms})
    assert all("stale" not in row for row in run(config, arms=["bm25"]))

    kept = results(config)
    assert [{k: v for k, v in row.items() if k != "stale"} for row in kept] == rows  # every row, in its place
    assert {(row["arm"], row["seed"]): row.get("stale") for row in kept} == {
        (BM25_BASELINE, None): None, ("zero-shot", None): None, ("bm25", 1): None, ("bm25", 2): None,
        ("random", 1): "settings changed", ("random", 2): "seed removed from the config",
        ("in-batch", 1): "arm removed from the config", ("in-batch", 2): "arm removed from the config",
    }

    written = write_report([config.parent / "runs" / "demo"], tmp_path / "report")
    note, tables = written["markdown"].read_text().split("\n## demo", 1)
    assert "**Left out: 8 stale result rows.**" in note
    assert "| demo | random | 1 | settings changed |" in note and "| demo | random | 2 | seed removed from the config |" in note
    assert "| demo | in-batch | 1, 2 | arm removed from the config |" in note
    assert "| random | random |" not in tables and "| in-batch | in-batch |" not in tables and "| bm25 | retrieved |" in tables
    assert "stale" in written["csv"].read_text().splitlines()[0]  # the CSV keeps every row, with the reason

    # Running the changed arm replaces its stale rows with current ones.
    stage_work.clear()
    run(config, arms=["random"])
    assert stage_work == {"train": 1, "evaluate": 2}  # one model, on the validation and test splits
    assert {(r["arm"], r["seed"]): r.get("stale") for r in results(config)}[("random", 1)] is None


def test_the_run_folder_holds_no_machine_path(tmp_path):
    attributes = tmp_path / "repo" / "exp" / "attributes" / "mine.yaml"
    attributes.parent.mkdir(parents=True)
    attributes.write_text("domain: [Biology]\n")
    config = make_repository(tmp_path, CONFIG | {
        "synthesize": {"file": "negatives.jsonl", "cache": "../llm-cache.sqlite", "attributes": "attributes/mine.yaml"}})
    run(config, until="split")
    run_dir = config.parent / "runs" / "demo"
    written = (run_dir / "config.yaml").read_text()
    assert str(tmp_path) not in written and "data: ../../../../shared/datasets/demo" in written
    # The run folder's config reads from there as the config it was run with.
    original, kept = RunConfig.load(config), RunConfig.load(run_dir / "config.yaml")
    assert kept == original
    settings = Pipeline(original, run_dir).planner.synthesize(PlannedStage("mine", {})).settings
    assert settings["file"] == "../../negatives.jsonl" and settings["generation"]["attributes"] == "../../attributes/mine.yaml"
    assert not any(str(tmp_path) in text for text in stage_markers(run_dir).values())


def legacy_repository(root: Path) -> Path:
    """The committed run folder made by syneg 0.1.0 (path-based fingerprints), beside its data; the config's path."""
    shutil.copytree(demo_path(), root / "shared" / "datasets" / "demo")
    shutil.copytree(LEGACY_RUN, root / "repo" / "exp")
    return root / "repo" / "exp" / "demo.yaml"


def test_markers_of_the_path_based_format_are_migrated_when_they_name_the_same_data(tmp_path, stage_work):
    config = legacy_repository(tmp_path / "same")
    run_dir = config.parent / "runs" / "demo"
    legacy_rows = results(config)
    assert isinstance(json.loads((run_dir / "stages" / "split.json").read_text())["settings"]["data"], str)
    assert migrate_markers(config) == len(os.listdir(run_dir / "stages"))
    assert migrate_markers(config) == 0  # once
    assert run(config) == legacy_rows
    assert results(config) == legacy_rows
    assert not stage_work

    # The config now reads a copy of the data with one judgement's grade changed: nothing is migrated.
    config = legacy_repository(tmp_path / "other")
    shutil.copytree(demo_path(), tmp_path / "changed" / "demo")
    qrels = tmp_path / "changed" / "demo" / "qrels" / "train.tsv"
    qrels.write_text(qrels.read_text().replace("\t1\n", "\t2\n", 1))
    write_config(config.parent, yaml.safe_load(config.read_text()) | {"data": str(qrels.parents[1])})
    assert migrate_markers(config) == 0
    run(config)
    assert stage_work["mine"] == 1 and stage_work["train"] == 1
    assert all("stale" not in row for row in results(config))  # redone under the same names: replaced, not stale


def test_the_committed_scifact_run_skips_every_stage_in_a_clone_reaching_the_data_through_a_link(
        tmp_path, scifact_path, no_stage_work):
    """The run that once re-mined and cut results.json from 74 rows to 4: one arm and seed of the committed
    SciFact experiment, in a clone whose ../shared is a symbolic link. Every stage is done; every row stays."""
    experiments = tmp_path / "clone" / "bench" / "experiments"
    shutil.copytree(EXPERIMENTS / "runs" / "scifact", experiments / "runs" / "scifact")
    for name in ("scifact.yaml", "scifact-synthetic.jsonl"):
        shutil.copy(EXPERIMENTS / name, experiments)
    (tmp_path / "shared").symlink_to(scifact_path.parents[1], target_is_directory=True)
    committed = json.loads((EXPERIMENTS / "runs" / "scifact" / "results.json").read_text())
    assert {(r["arm"], r["seed"]) for r in run(experiments / "scifact.yaml", arms=["hybrid"], seeds=[1])} == {
        (BM25_BASELINE, None), ("hybrid", 1)}
    assert json.loads((experiments / "runs" / "scifact" / "results.json").read_text()) == committed


def test_auto_stays_out_of_the_fingerprints_and_an_explicit_choice_enters_them(tmp_path):
    """``backend: auto`` and ``precision: auto`` are the defaults and resolve per machine: left out of the
    settings, as options added after run folders were first committed are, they change no fingerprint of a
    committed run folder and none between machines; a backend or precision set explicitly is recorded."""
    def settings(**sections: dict) -> dict:
        config = RunConfig.model_validate({**CONFIG, "data": str(demo_path()), **sections})
        pipeline = Pipeline(config, tmp_path / "run")
        split = pipeline.planner.split()
        mine, _, chains = pipeline.plan(split, 6)
        chain = next(c for c in chains if c.arm.name == "bm25")
        return {"mine": mine.settings["mine"], "train": chain.train.settings, "evaluate": chain.evaluate.settings}

    default = settings()
    assert "backend" not in default["mine"] and "precision" not in default["train"] and "backend" not in default["evaluate"]
    assert settings(mine={**CONFIG["mine"], "backend": "auto"}, train={"precision": "auto"}) == default
    chosen = settings(mine={**CONFIG["mine"], "backend": "torch"}, train={"precision": "fp32"},
                      evaluate={**CONFIG["evaluate"], "backend": "onnx-int8"})
    assert (chosen["mine"]["backend"], chosen["train"]["precision"], chosen["evaluate"]["backend"]) == ("torch", "fp32", "onnx-int8")


def test_a_default_that_changed_records_the_new_value_and_keeps_the_markers_written_before():
    """``aspects_per_reflection`` came in at 1 and became 3 where there is a reflection: the settings leave it out
    at 1 (so the committed syntheses, written with 1, keep their fingerprints) and record any other value, the new
    default included (so a run written with 3 is not taken for one written with 1)."""
    from syneg.pipeline.plan import recorded_options
    from syneg.synth import SynthesizeOptions

    assert "aspects_per_reflection" not in recorded_options(SynthesizeOptions(aspects_per_reflection=1), "synthesize")
    assert recorded_options(SynthesizeOptions(), "synthesize")["aspects_per_reflection"] == 3
    assert "aspects_per_reflection" not in recorded_options(SynthesizeOptions(prompt_style="single"), "synthesize")
    # trim_cut_fields came in at true; false asks as before it, so only true is recorded.
    assert "trim_cut_fields" not in recorded_options(SynthesizeOptions(trim_cut_fields=False), "synthesize")
    assert recorded_options(SynthesizeOptions(), "synthesize")["trim_cut_fields"] is True


@pytest.mark.parametrize("name", ["scifact", "nfcorpus", "scifact-full"])
def test_the_committed_experiments_plan_every_stage_as_done(name, no_stage_work):
    """Without running anything: every stage the plan of a committed experiment config holds (every arm and
    seed's mix, train and evaluate, the baselines, split, mine and synthesis) has its committed marker's
    fingerprint, and the results planned from the markers are the committed ones."""
    config = RunConfig.load(EXPERIMENTS / f"{name}.yaml")
    if not (config.data / "corpus.jsonl").is_file():
        pytest.skip(f"real dataset not found at {config.data}")
    pipeline = Pipeline(config, EXPERIMENTS / "runs" / name)
    split = pipeline.planner.split()
    validation = pipeline.markers.recorded("split")["info"]["validation_queries"]
    mine, synthesize, chains = pipeline.plan(split, validation)
    planned = [split, mine, *([synthesize] if synthesize else []), *(stage for chain in chains for stage in (chain.mix, chain.train, chain.evaluate))]
    planned += [pipeline.baseline(split, "bm25", "bm25", validation)]
    planned += [pipeline.baseline(split, arm.name, config.train.model, validation) for arm in config.arms if arm.strategy == "zero-shot"]
    assert [stage.name for stage in planned if pipeline.markers.done(stage.name, stage.settings) is None] == []
    assert len(planned) == len(list((EXPERIMENTS / "runs" / name / "stages").glob("*.json")))
    committed = json.loads((EXPERIMENTS / "runs" / name / "results.json").read_text())
    assert pipeline.results(split, chains, validation) == [row for row in committed if "stale" not in row]
