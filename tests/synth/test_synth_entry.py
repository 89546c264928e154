"""One way into the synthesize stage, and one rule for what an attribute spec names."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

import syneg
from syneg.llm import ChatRequest, Completion, LLMClient
from syneg.pipeline import RunConfig, run
from syneg.synth import AttributeSet, attribute_file, example_path, pairs_from_beir
from syneg.synth.options import SynthesizeOptions

PASSAGE = ("Tidal ranges differ between coasts because of the shape of the basin and the width of the shelf, so that "
           "some bays see tides of several metres while enclosed seas barely change their level during the day at all.")


class DomainsThenPassages:
    """Answers the domain proposal with one field, then every reflection and passage alike."""

    name, model = "scripted", "script"

    def __init__(self) -> None:
        self.prompts: list[str] = []

    async def complete(self, request: ChatRequest) -> Completion:
        self.prompts.append(" ".join(text for _, text in request.messages))
        properties = (request.schema or {}).get("properties", {})
        if "domains" in properties:
            text = json.dumps({"domains": ["Oceanography"]})
        elif "aspect" in properties:
            text = json.dumps({"topic": "tides", "aspect": "tidal range", "reasoning": "Same subject, other question."})
        elif "aspects" in properties:  # the default: several aspects from one reflection
            aspect = {"aspect": "tidal range", "reasoning": "Same subject, other question.", "title": "Tidal range"}
            text = json.dumps({"topic": "tides", "aspects": [aspect] * properties["aspects"]["minItems"]})
        else:
            text = PASSAGE
        return Completion(text=text, prompt_tokens=10, completion_tokens=10, latency=0.01)

    async def aclose(self) -> None:
        pass


def test_the_python_verb_proposes_domains_from_the_corpus_as_the_command_does(tmp_path, demo_train, encoder):
    """syneg.synthesize once wrote "general knowledge" negatives where `syneg synthesize` proposes domains."""
    backend = DomainsThenPassages()
    output = tmp_path / "out.jsonl"
    stats = syneg.synthesize(demo_train, output, client=LLMClient(backend), limit=1, encoder=encoder, show_progress=False)
    proposed = output.with_name("out.jsonl.attributes.yaml")
    assert AttributeSet.load(proposed).domain == ["Oceanography"]
    # What the stage used, for its marker and the report: where the values came from, and the values.
    assert stats["attributes"] == {"source": "proposed", "name": proposed.name, "values": AttributeSet.load(proposed).values()}
    assert any("Oceanography" in prompt for prompt in backend.prompts)
    assert not any("general knowledge" in prompt for prompt in backend.prompts)


def test_the_command_and_the_pipeline_synthesize_through_the_one_entry_point(tmp_path, monkeypatch):
    import syneg.synth

    recorded = {"source": "shipped", "name": "demo", "values": AttributeSet.example("demo").values()}
    from typer.testing import CliRunner

    from syneg.cli import app

    calls = []

    def entry_point(data, output, options=None, **kwargs):
        calls.append((data, Path(output), options, kwargs))
        Path(output).write_text("")
        return {key: 0 for key in ("pairs", "skipped_pairs", "empty_window_pairs", "refilled_pairs", "refill_gained", "accepted", "rejected",
                                   "check_failures", "requests", "cache_hits")} | {"generator": "x", "attributes": recorded}

    monkeypatch.setattr(syneg.synth, "synthesize", entry_point)
    result = CliRunner().invoke(app, ["synthesize", str(syneg.demo_path()), "-o", str(tmp_path / "cli.jsonl"),
                                      "--backend", "openai", "--concurrency", "8", "--attributes", "demo", "--refill",
                                      "--no-trim-cut-fields", "--json"])
    assert result.exit_code == 0, result.output
    (config_path := tmp_path / "exp" / "demo.yaml").parent.mkdir()
    config_path.write_text(yaml.safe_dump({"data": "demo", "mine": {"retriever": "bm25", "num_negatives": 2, "range_max": 10},
                                           "synthesize": {"attributes": "demo", "pairs": 3, "refill": True,
                                                          "trim_cut_fields": False},
                                           "arms": [{"name": "hybrid", "strategy": "hybrid"}]}))
    run(config_path, output=tmp_path / "run", until="synthesize")
    (cli_data, _, cli_options, cli_kwargs), (run_data, run_output, run_options, run_kwargs) = calls
    assert cli_data == syneg.demo_path() and cli_options.pairs_in_flight == 8 and cli_options.attributes == "demo"
    assert run_data == tmp_path / "run" / "mined.jsonl" and run_output == tmp_path / "run" / "synthetic.jsonl"
    assert run_options.pairs_in_flight == 1 and run_kwargs["limit"] == 3  # llama.cpp decodes one pair at a time
    assert cli_options.refill and run_options.refill
    assert not cli_options.trim_cut_fields and not run_options.trim_cut_fields
    marker = json.loads((tmp_path / "run" / "stages" / "synthesize.json").read_text())
    assert marker["info"]["attributes"] == recorded  # the attribute values the stage used, for the report


def test_shipped_attribute_names_come_first_and_paths_are_read_from_the_configs_folder(tmp_path, monkeypatch):
    """A folder named demo where syneg runs once made `attributes: demo` fail with 'demo: file not found'."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").mkdir()
    (tmp_path / "scifact").write_text("not an attribute file")
    assert AttributeSet.from_spec("demo") == AttributeSet.load(example_path("demo"))
    assert attribute_file("scifact") == example_path("scifact")
    # A file: read from the config's folder in a pipeline, from the working directory on the command line.
    experiment = tmp_path / "exp"
    (experiment / "attributes").mkdir(parents=True)
    AttributeSet(domain=["Geology"]).save(experiment / "attributes" / "mine.yaml")
    (experiment / "run.yaml").write_text(yaml.safe_dump({"data": "demo", "synthesize": {"attributes": "attributes/mine.yaml"}}))
    (experiment / "demo.yaml").write_text(yaml.safe_dump({"data": "demo", "synthesize": {"attributes": "demo"}}))
    configured = RunConfig.load(experiment / "run.yaml").synthesize
    assert AttributeSet.from_spec(configured.attributes).domain == ["Geology"]
    assert RunConfig.load(experiment / "demo.yaml").synthesize.attributes == "demo"
    assert AttributeSet.from_spec("exp/attributes/mine.yaml").domain == ["Geology"]


def test_a_write_template_quoting_example_gets_texts_of_the_corpus(tmp_path, demo_train, encoder):
    """``$example`` in a write template: each passage prompt quotes a text of the corpus (never the pair's
    positive), the same one whenever that candidate is asked again; without a corpus it is one clear error."""
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    (prompts / "write.txt").write_text('In the style of: $example\nWrite "$title", on $aspect.$attributes\n$layout')
    backend = DomainsThenPassages()
    options = SynthesizeOptions(attributes="demo", prompts=prompts, max_rounds=3)
    syneg.synthesize(demo_train, tmp_path / "a.jsonl", options, limit=1, client=LLMClient(backend), encoder=encoder,
                     show_progress=False)
    writes = [p for p in backend.prompts if "In the style of:" in p]
    assert writes
    corpus = {" ".join(d.full_text.split()[:20]) for d in demo_train.corpus.values()}
    [pair] = pairs_from_beir(demo_train, limit=1)
    shown = [" ".join(p.split("In the style of: ", 1)[1].split()[:20]) for p in writes]
    assert all(text in corpus for text in shown) and " ".join(pair.positive.split()[:20]) not in shown
    again = DomainsThenPassages()
    syneg.synthesize(demo_train, tmp_path / "b.jsonl", options, limit=1, client=LLMClient(again), encoder=encoder,
                     show_progress=False)
    assert [p for p in again.prompts if "In the style of:" in p] == writes  # the same requests: the cache answers them

    syneg.synthesize(demo_train, tmp_path / "pairs.jsonl", options, limit=1, client=LLMClient(DomainsThenPassages()),
                     encoder=encoder, show_progress=False)
    try:
        syneg.synthesize(tmp_path / "pairs.jsonl", tmp_path / "c.jsonl", options, client=LLMClient(DomainsThenPassages()),
                         encoder=encoder, show_progress=False)
    except syneg.DataError as error:
        assert "write.txt quotes $example" in str(error)
    else:
        raise AssertionError("a training-set file has no corpus to quote")
