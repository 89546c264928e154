"""One option schema per stage: the command line, the pipeline config and the Python verbs share its
defaults and its allowed values."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import get_args

import pytest
import typer
from typer.testing import CliRunner

from syneg import cli
from syneg.data import Retrievers, SamplingStrategy, demo_path
from syneg.engine import Engine
from syneg.evaluation import EvaluateOptions, evaluate
from syneg.mixing import MixOptions, MixStrategy, mix
from syneg.pipeline import ArmConfig, Planner, RunConfig
from syneg.pipeline.plan import LATER_OPTIONS
from syneg.retrieval.mining import MineOptions, mine
from syneg.synth import Ablation, Critique, PromptStyle, Synthesizer, SynthesizeOptions
from syneg.training import TrainOptions, train

# Synthesizer takes what the options build: the attribute set and check thresholds as objects, and the
# pairs in flight (SynthesizeOptions.pairs_in_flight) as its concurrency.
BUILT = {Synthesizer.__init__: ("attributes", "checks", "concurrency")}
# Left unset (None) on the command line and in Python, these follow another option as the schema does: 3
# aspects per reflection where the prompt asks for a reflection, else 1.
FOLLOWING = {"aspects_per_reflection"}
SCHEMAS = [
    (MineOptions, "mine", [cli.mine, mine]),
    (MixOptions, "mix", [cli.mix, mix]),
    (TrainOptions, "train", [cli.train, train]),
    (SynthesizeOptions, "synthesize", [cli.synthesize, Synthesizer.__init__]),
    (EvaluateOptions, "evaluate", [cli.evaluate, evaluate]),
]


@pytest.mark.parametrize(("schema", "section", "functions"), SCHEMAS, ids=[s[1] for s in SCHEMAS])
def test_the_command_line_the_verbs_and_the_pipeline_share_each_stages_defaults(schema, section, functions):
    defaults = schema()
    assert isinstance(getattr(RunConfig(data=Path(".")), section), schema)  # the pipeline's section is the schema
    for function in functions:
        parameters = inspect.signature(function).parameters
        shared = [name for name in schema.model_fields if name in parameters and name not in BUILT.get(function, ())]
        assert shared, function
        for name in shared:
            default = parameters[name].default
            default = list(default) if isinstance(default, tuple) else default  # a verb's metrics are a tuple
            if default is None and name in FOLLOWING:
                default = getattr(schema(**{name: None}), name)
            assert default == getattr(defaults, name), f"{function.__qualname__}({name}=...)"


def test_the_command_lines_choices_are_the_schemas_literals():
    commands = typer.main.get_command(cli.app).commands
    expected = {
        ("mine", "retriever"): Retrievers, ("mine", "sampling_strategy"): SamplingStrategy,
        ("mix", "strategy"): MixStrategy, ("mix", "retrieved_sources"): Retrievers,
        ("mix", "sampling_strategy"): SamplingStrategy, ("synthesize", "ablation"): Ablation,
        ("synthesize", "critique"): Critique, ("synthesize", "prompt_style"): PromptStyle,
        ("mine", "engine"): Engine, ("synthesize", "engine"): Engine, ("evaluate", "engine"): Engine,
    }
    for (command, option), literal in expected.items():
        param = next(p for p in commands[command].params if p.name == option)
        assert param.type_descriptor.annotation == literal, (command, option)
    refused = CliRunner().invoke(cli.app, ["mix", "-o", "x.jsonl", "--retrieved-sources", "splade"])
    assert refused.exit_code == 2 and all(value in refused.output for value in get_args(Retrievers))
    assert "type: ignore" not in Path(cli.__file__).read_text()


def test_every_train_option_reaches_the_verb_from_the_command_line_and_from_a_pipeline(monkeypatch, tmp_path):
    """`syneg train` and `syneg run` pass each TrainOptions field on to syneg.train(), so the options once only
    on the command line (guide_model, prompts, logging_steps, num_negatives, ...) take the schema's defaults."""
    import syneg.training

    calls: list[dict] = []
    monkeypatch.setattr(syneg.training, "train", lambda *args, **kwargs: calls.append(kwargs))
    result = CliRunner().invoke(cli.app, ["train", str(tmp_path / "train.jsonl"), "-o", str(tmp_path / "model")])
    assert result.exit_code == 0, result.output
    defaults = TrainOptions().model_dump(exclude={"model"})
    assert {name: calls[0][name] for name in defaults} == defaults

    changed = {"query_prompt": "query: ", "logging_steps": 5, "num_negatives": 2, "guide_model": "default"}
    planner = Planner(RunConfig(data=Path("."), train=changed), tmp_path)
    arm = ArmConfig(name="hybrid", strategy="hybrid")
    assert planner.train_options(arm).items() >= changed.items()  # what the runner passes to syneg.train()
    # Unset, the options added after runs were committed stay out of the train stage's settings and
    # fingerprint (see syneg.pipeline.plan.LATER_OPTIONS), so those runs' markers stay valid.
    unset = Planner(RunConfig(data=Path(".")), tmp_path).train_options(arm)
    assert not set(unset) & set(LATER_OPTIONS["train"])
    assert set(unset) | set(LATER_OPTIONS["train"]) == set(TrainOptions.model_fields)


def test_the_engine_of_a_config_reaches_the_stages_that_scale_and_no_fingerprint(tmp_path):
    local = RunConfig(data=demo_path())
    on_ray = RunConfig.model_validate({"data": demo_path(), "engine": "ray", "ray_address": "10.0.0.1:6379",
                                       "evaluate": {"engine": "local"}})
    assert (on_ray.mine.engine, on_ray.synthesize.engine, on_ray.evaluate.engine) == ("ray", "ray", "local")
    assert on_ray.mine.ray_address == on_ray.synthesize.ray_address == "10.0.0.1:6379"
    assert on_ray.mine.ray_engine().address == "10.0.0.1:6379" and local.mine.ray_engine() is None
    # The same output on either engine: a run started on one is done, stage by stage, on the other.
    plans = [Planner(config, tmp_path) for config in (local, on_ray)]
    mined = [plan.mine(plan.split()) for plan in plans]
    assert mined[0].fingerprint == mined[1].fingerprint
    assert plans[0].synthesize(mined[0]).fingerprint == plans[1].synthesize(mined[1]).fingerprint
    refused = CliRunner().invoke(cli.app, ["mine", str(tmp_path), "-o", "x.jsonl", "--engine", "spark"])
    assert refused.exit_code == 2 and "local" in refused.output and "ray" in refused.output
