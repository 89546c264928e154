"""The pipeline: config validation, stage skipping and resume, and the demo end to end (real models)."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import pytest
import yaml

from syneg.data import DataError, load_beir, read_training_set
from syneg.pipeline import BM25_BASELINE, ArmConfig, Pipeline, RunConfig, demo_config_path, run, split_queries
from syneg.pipeline.results import describe
from syneg.system import encoding_backend, training_precision

# Retrieved-only arms: the stages and their skipping without the LLM (the demo test covers synthesis).
FAST_CONFIG = {
    "data": "demo",
    "seeds": [1],
    "validation_queries": 6,
    "mine": {"retriever": "both", "num_negatives": 4, "range_max": 20},
    "mix": {"num_negatives": 2},
    "train": {"batch_size": 8, "max_steps": 3, "save_steps": 1},
    "evaluate": {"bm25": False},
    "arms": [
        {"name": "zero-shot", "strategy": "zero-shot"},
        {"name": "bm25", "strategy": "retrieved", "retrieved_sources": "bm25"},
    ],
}


def write_config(folder: Path, config: dict) -> Path:
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def markers(run_dir: Path) -> dict[str, float]:
    return {p.name: p.stat().st_mtime_ns for p in (run_dir / "stages").iterdir()}


def test_config_errors_name_the_file_and_key(tmp_path):
    path = write_config(tmp_path, {"data": "demo", "mine": {"num_negatives": "many"}, "colour": "red"})
    with pytest.raises(DataError, match=r"config\.yaml: .*mine\.num_negatives.*colour"):
        RunConfig.load(path)
    path = write_config(tmp_path, {"data": "demo", "arms": [{"name": "a", "strategy": "hybrid"}, {"name": "a", "strategy": "random"}]})
    with pytest.raises(DataError, match="repeated: a"):
        RunConfig.load(path)
    path = write_config(tmp_path, {"data": "demo", "arms": [{"name": "x/y", "strategy": "hybrid"}]})
    with pytest.raises(DataError, match="arms.0.name"):
        RunConfig.load(path)
    # The BM25 baseline's row name can never be an arm's (an arm "bm25" once shared its rows).
    with pytest.raises(ValueError, match="folder names"):
        ArmConfig(name=BM25_BASELINE, strategy="retrieved")
    path = write_config(tmp_path, {"data": "demo", "synthesize": {"checks": {"positive_ratio": 1.0, "colour": 1}}})
    with pytest.raises(DataError, match="unknown checks colour"):
        RunConfig.load(path)
    path = write_config(tmp_path, {"data": "demo", "seeds": [1, 2], "train": {"max_seq_length": 128},
                                   "arms": [{"name": "h", "strategy": "hybrid", "seeds": [7], "max_seq_length": 256},
                                            {"name": "r", "strategy": "retrieved"}]})
    config = RunConfig.load(path)
    assert config.arms[0].seeds == [7]
    planner = Pipeline(config, tmp_path / "run").planner
    assert planner.train_options(config.arms[0])["max_seq_length"] == 256
    assert planner.train_options(config.arms[1])["max_seq_length"] == 128
    # Result columns: the arm's training length, and its planned seeds (one-seed arms are the report's side arms).
    assert {k: describe(config.arms[0], config)[k] for k in ("max_seq_length", "seeds_planned")} == {"max_seq_length": 256, "seeds_planned": 1}
    assert {k: describe(config.arms[1], config)[k] for k in ("max_seq_length", "seeds_planned")} == {"max_seq_length": 128, "seeds_planned": 2}
    with pytest.raises(DataError, match="not found"):
        RunConfig.load(tmp_path / "missing.yaml")


def test_config_paths_are_read_from_the_config_folder(tmp_path):
    path = write_config(tmp_path, {"data": "../datasets/x", "synthesize": {"file": "negs/synthetic.jsonl"}})
    config = RunConfig.load(path)
    assert config.data == (tmp_path / "../datasets/x").resolve()
    assert config.synthesize.file == tmp_path / "negs" / "synthetic.jsonl"


def test_validation_queries_are_held_out_of_training(demo_train):
    training, validation = split_queries(demo_train, validation_queries=6, train_queries=None, seed=0)
    assert len(validation) == 6 and not set(training) & set(validation)
    assert set(training) | set(validation) == set(demo_train.qrels)
    assert split_queries(demo_train, 6, None, seed=0) == (training, validation)
    sampled, same_validation = split_queries(demo_train, 6, 10, seed=0)
    assert len(sampled) == 10 and set(sampled) <= set(training) and same_validation == validation
    with pytest.raises(ValueError, match="leaves no training query"):
        split_queries(demo_train, 100, None, seed=0)


def test_pipeline_runs_skips_done_stages_and_resumes_a_stopped_run(tmp_path, capsys, monkeypatch):
    path = write_config(tmp_path, FAST_CONFIG)
    run_dir = tmp_path / "run"
    # --until stops after a stage: mixed training sets, no model, no results.
    assert run(path, output=run_dir, until="mix") == []
    assert set(markers(run_dir)) == {"split.json", "mine.json", "mix__bm25__seed-1.json"}
    assert not (run_dir / "results.json").exists()
    rows = run(path, output=run_dir)

    # Zero-shot and one trained seed, each on the held-out validation queries and the test split.
    assert {(r["arm"], r["split"]) for r in rows} == {(a, s) for a in ("zero-shot", "bm25") for s in ("validation", "test")}
    assert all(0 <= r["ndcg@10"] <= 1 for r in rows)
    splits = json.loads((run_dir / "splits.json").read_text())
    mined_queries = {i.query_id for i in read_training_set(run_dir / "mined.jsonl")}
    assert mined_queries == set(splits["train"]) and not mined_queries & set(splits["validation"])
    arm = run_dir / "arms" / "bm25" / "seed-1"
    assert {n.source for i in read_training_set(arm / "train.jsonl") for n in i.negatives} == {"bm25"}
    assert (arm / "run.test.trec").is_file()
    bm25_test = next(r for r in rows if r["arm"] == "bm25" and r["split"] == "test")
    assert f"| demo test ndcg@10 | {bm25_test['ndcg@10']:.4f} |" in (arm / "model" / "README.md").read_text()
    # Each row says what the arm trained on: hard negatives per instance by source, as mixed.
    trained = list(read_training_set(arm / "train.jsonl"))
    sources = Counter(n.source for instance in trained for n in instance.negatives)
    assert {k: v for k, v in bm25_test.items() if k.startswith("negatives_")} == {
        "negatives_bm25": sources["bm25"] / len(trained), "negatives_filled": 0.0}
    assert not (arm / "model" / "checkpoints").exists()
    assert json.loads((run_dir / "results.json").read_text()) == rows
    # What auto resolved to on this machine is in the markers' info and the card, not in the settings.
    stages = {name: json.loads((run_dir / "stages" / f"{name}.json").read_text())
              for name in ("mine", "train__bm25__seed-1", "evaluate__arms__bm25__seed-1")}
    assert stages["mine"]["info"]["encoding"] == asdict(encoding_backend()) and "backend" not in stages["mine"]["settings"]["mine"]
    assert stages["train__bm25__seed-1"]["info"]["precision"] == asdict(training_precision())
    assert stages["evaluate__arms__bm25__seed-1"]["info"]["encoding"] == asdict(encoding_backend())
    assert "precision" not in stages["train__bm25__seed-1"]["settings"]
    assert "backend" not in stages["evaluate__arms__bm25__seed-1"]["settings"]
    card = (arm / "model" / "README.md").read_text()
    assert f"- Precision: {training_precision().precision}" in card and f"with `{encoding_backend().backend}`" in card

    # A rerun does nothing: every stage is skipped and the results are the same.
    before = markers(run_dir)
    assert run(path, output=run_dir) == rows
    assert markers(run_dir) == before
    # A run of one arm keeps the other arms' rows in results.json.
    assert {r["arm"] for r in run(path, output=run_dir, arms=["zero-shot"])} == {"zero-shot"}
    assert json.loads((run_dir / "results.json").read_text()) == rows

    # A run stopped during training: two of the three steps done, their checkpoints left, no later marker.
    from sentence_transformers import SentenceTransformerTrainer

    from syneg.training import train

    (run_dir / "stages" / "train__bm25__seed-1.json").unlink()
    (run_dir / "stages" / "evaluate__arms__bm25__seed-1.json").unlink()
    shutil.rmtree(arm / "model")
    train(arm / "train.jsonl", arm / "model", max_steps=2, batch_size=8, save_steps=1, seed=1)
    checkpoint = arm / "model" / "checkpoints" / "checkpoint-2"
    assert checkpoint.is_dir()
    resumed_from = []
    original = SentenceTransformerTrainer.train

    def spy(self, *args, **kwargs):
        resumed_from.append(kwargs.get("resume_from_checkpoint"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SentenceTransformerTrainer, "train", spy)
    capsys.readouterr()
    rows_resumed = run(path, output=run_dir)
    log = capsys.readouterr().err
    assert "▶ mine" not in log and "mix/bm25/seed-1: done before, skipped" in log
    assert "▶ train/bm25/seed-1" in log and "▶ evaluate/arms/bm25/seed-1" in log
    assert resumed_from == [str(checkpoint)]
    assert json.loads((run_dir / "stages" / "train__bm25__seed-1.json").read_text())["info"]["steps"] == 3
    assert not checkpoint.exists()  # cleaned once the resumed training finished
    assert len(rows_resumed) == len(rows)

    # A clone at another place that keeps markers and metrics but not models, training sets or pools (as
    # the experiments commit them): evaluated arms are not retrained, nor mined for; a stage needed again
    # whose output is gone is redone.
    clone = tmp_path / "clone" / "elsewhere"
    shutil.copytree(run_dir, clone / "run", ignore=shutil.ignore_patterns("model", "train.jsonl", "mined.jsonl"))
    path, run_dir, arm = write_config(clone, FAST_CONFIG), clone / "run", clone / "run" / "arms" / "bm25" / "seed-1"
    capsys.readouterr()
    assert run(path, output=run_dir, arms=["bm25"]) == [r for r in rows if r["arm"] == "bm25"]
    log = capsys.readouterr().err
    assert "bm25/seed-1: evaluated before, skipped" in log and "▶ train" not in log and "▶ mine" not in log
    assert not (arm / "model").exists()
    run(path, output=run_dir, until="mix")
    log = capsys.readouterr().err
    assert "mined.jsonl is gone, redoing it" in log and "▶ mix/bm25/seed-1" in log and (arm / "train.jsonl").is_file()

    # A changed training setting redoes training and evaluation only, not mining or mixing.
    changed = FAST_CONFIG | {"train": FAST_CONFIG["train"] | {"temperature": 0.05}}
    write_config(clone, changed)
    capsys.readouterr()
    run(path, output=run_dir)
    log = capsys.readouterr().err
    assert "mix/bm25/seed-1: done before, skipped" in log
    assert "train/bm25/seed-1: settings changed since it ran" in log

    # results.json follows the config, and keeps the rows of an arm removed from it, marked stale.
    write_config(clone, FAST_CONFIG | {"arms": FAST_CONFIG["arms"][:1]})
    assert {r["arm"] for r in run(path, output=run_dir)} == {"zero-shot"}
    assert {(r["arm"], r.get("stale")) for r in json.loads((run_dir / "results.json").read_text())} == {
        ("zero-shot", None), ("bm25", "arm removed from the config")}


def test_results_follow_every_evaluation_so_a_stopped_run_keeps_them(tmp_path, monkeypatch):
    """A run of many arms stopped during one (here its training fails) has already written results.json
    with the arms evaluated before it, as a report read meanwhile would want them."""
    import syneg.training

    config = FAST_CONFIG | {"arms": [*FAST_CONFIG["arms"], {"name": "dense", "strategy": "retrieved", "retrieved_sources": "dense"}]}
    path, run_dir = write_config(tmp_path, config), tmp_path / "run"
    real_train, trained = syneg.training.train, []

    def train_then_stop(training_set, model_dir, *args, **kwargs):
        if trained:
            raise RuntimeError("stopped during the second arm")
        trained.append(model_dir)
        return real_train(training_set, model_dir, *args, **kwargs)

    monkeypatch.setattr(syneg.training, "train", train_then_stop)
    with pytest.raises(RuntimeError, match="second arm"):
        run(path, output=run_dir)
    written = json.loads((run_dir / "results.json").read_text())
    assert {(r["arm"], r["split"]) for r in written} == {(a, s) for a in ("zero-shot", "bm25") for s in ("validation", "test")}
    assert not any(r.get("stale") for r in written)


def test_unknown_arm_or_seed_is_an_error(tmp_path):
    path = write_config(tmp_path, FAST_CONFIG)
    with pytest.raises(ValueError, match="no such arm"):
        run(path, output=tmp_path / "run", arms=["hybrid"])
    with pytest.raises(ValueError, match="--seed 2: no arm is trained with that seed"):
        run(path, output=tmp_path / "run", seeds=[2])


def test_a_seed_filter_runs_only_that_seed(tmp_path):
    config = FAST_CONFIG | {"seeds": [1, 2], "arms": [FAST_CONFIG["arms"][1]]}
    run_dir = tmp_path / "run"
    assert run(write_config(tmp_path, config), output=run_dir, until="mix", seeds=[2]) == []
    assert (run_dir / "arms" / "bm25" / "seed-2" / "train.jsonl").is_file()
    assert not (run_dir / "arms" / "bm25" / "seed-1").exists()


@pytest.mark.slow
def test_demo_pipeline_end_to_end(tmp_path, monkeypatch):
    """`syneg run --demo` as the README runs it: real MiniLM, real Qwen, every stage, a before/after table."""
    from typer.testing import CliRunner

    from syneg.cli import app

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["run", "--demo"])
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "runs" / "demo"
    rows = json.loads((run_dir / "results.json").read_text())
    config = RunConfig.load(demo_config_path())
    assert {r["arm"] for r in rows} == {BM25_BASELINE} | {a.name for a in config.arms}
    assert "zero-shot" in result.output and "hybrid" in result.output

    synthetic = list(read_training_set(run_dir / "synthetic.jsonl"))
    assert len(synthetic) == config.synthesize.pairs
    synthesized = json.loads((run_dir / "stages" / "synthesize.json").read_text())["info"]
    assert synthesized["file_pairs"] == len(synthetic)
    assert synthesized["file_negatives"] == sum(len(i.negatives) for i in synthetic)
    hybrid = list(read_training_set(run_dir / "arms" / "hybrid" / "seed-42" / "train.jsonl"))
    train_split = load_beir(config.data, split="train")
    assert len(hybrid) == len(train_split.qrels)  # one pair per training query
    accepted = {(i.query_id, i.pos_ids[0]) for i in synthetic if i.negatives}
    for instance in hybrid:
        sources = [n.source for n in instance.negatives]
        assert len(sources) == config.mix.num_negatives
        # Pairs with an accepted LLM negative carry one synthetic and two retrieved negatives.
        if (instance.query_id, instance.pos_ids[0]) in accepted:
            assert sources.count("synthetic") == 1
    card = (run_dir / "arms" / "hybrid" / "seed-42" / "model" / "README.md").read_text()
    assert "synthetic" in card
