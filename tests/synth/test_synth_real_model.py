"""Synthesis end to end with real embedded models (SmolLM2-135M for speed, Qwen2.5-0.5B in a slow test)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from syneg.data import demo_path, load_beir, read_training_set
from syneg.llm import ChatRequest, LLMError, make_client, parse_json_answer
from syneg.synth import AttributeSet, Synthesizer, pairs_from_beir, propose_attributes_sync

SYNEG = str(Path(sys.executable).parent / "syneg")


@pytest.fixture(scope="module")
def demo_pairs():
    return pairs_from_beir(load_beir(demo_path(), "train"), limit=2)


@pytest.fixture(scope="module")
def smol_run(demo_pairs, tmp_path_factory, encoder):
    folder = tmp_path_factory.mktemp("smol")
    client = make_client("llama.cpp", "smollm2-135m", cache=folder / "cache.sqlite")
    synthesizer = Synthesizer(client, attributes=AttributeSet(domain=["Immunology", "Medicine"]), negatives_per_pair=1,
                              max_rounds=0, max_tokens=120, encoder=encoder)
    stats = synthesizer.run(demo_pairs, folder / "out.jsonl", show_progress=False)
    return folder, client, stats


def test_output_is_a_training_set_with_provenance(smol_run, demo_pairs):
    folder, _, stats = smol_run
    instances = list(read_training_set(folder / "out.jsonl"))
    assert [(i.query_id, i.pos_ids) for i in instances] == [(p.query_id, [p.pos_id]) for p in demo_pairs]
    negatives = [n for i in instances for n in i.negatives]
    assert len(negatives) == stats["accepted"] and all(len(i.negatives) <= 1 for i in instances)
    assert stats["candidates"] == stats["accepted"] + stats["rejected"]
    for negative in negatives:
        assert negative.source == "synthetic" and negative.id.startswith("syn-")
        assert negative.score == negative.scores["query_similarity"]
        details = negative.details
        assert set(details["attributes"]) == {"domain", "difficulty", "length"}
        assert details["generator"] == "llama.cpp:smollm2-135m" and details["rounds"] == 0
        assert all(check["passed"] for check in details["checks"].values())
        assert {"on_topic", "not_paraphrase", "below_positive", "no_answer_leak", "not_duplicate", "length", "not_echo",
                "not_degenerate", "abbreviations_match", "terms_spelled"} == set(details["checks"])


def test_rerun_is_served_from_cache(smol_run, demo_pairs, encoder):
    folder, _client, first = smol_run
    assert first["requests"] > 0
    again = make_client("llama.cpp", "smollm2-135m", cache=folder / "cache.sqlite")
    stats = Synthesizer(again, attributes=AttributeSet(domain=["Immunology", "Medicine"]), negatives_per_pair=1,
                        max_rounds=0, max_tokens=120, encoder=encoder).run(demo_pairs, folder / "rerun.jsonl", show_progress=False)
    assert stats["requests"] == 0 and stats["cache_hits"] == first["requests"] - sum(first["failures"].values())
    assert (folder / "rerun.jsonl").read_text() == (folder / "out.jsonl").read_text()


def test_parser_on_real_unconstrained_output(smol_run):
    """Without a grammar the model writes what it likes: the parser returns a dict or a typed failure."""
    client = make_client("llama.cpp", "smollm2-135m", grammar=False, cache=False)
    request = ChatRequest.chat(None, 'Name a field of biology. Reply with JSON: {"field": "<name>"}', max_tokens=30, seed=3)
    import asyncio

    completion = asyncio.run(client.backend.complete(request))
    try:
        parsed = parse_json_answer(completion.text, ["field"])
    except LLMError as error:
        assert error.kind in ("empty", "invalid_json")
    else:
        assert isinstance(parsed, dict) and parsed


def test_ablation_without_attributes_and_reflection(demo_pairs, tmp_path, encoder):
    client = make_client("llama.cpp", "smollm2-135m", cache=tmp_path / "c.sqlite")
    synthesizer = Synthesizer(client, ablation="no-attributes-no-reflection", max_rounds=3, encoder=encoder)
    stats = synthesizer.run(demo_pairs[:1], tmp_path / "out.jsonl", show_progress=False)
    assert stats["candidates"] <= 1 and stats["requests"] <= 3  # no revision rounds, no reflection call
    sent = client.cache._db.execute("SELECT COUNT(*) FROM completions").fetchone()[0]
    assert sent <= 1
    for instance in read_training_set(tmp_path / "out.jsonl"):
        for negative in instance.negatives:
            assert negative.details["attributes"] == {} and negative.details["reasoning"] == ""


def test_propose_attributes_names_domains(tmp_path):
    client = make_client("llama.cpp", "smollm2-135m", cache=tmp_path / "c.sqlite")
    attributes = propose_attributes_sync(load_beir(demo_path(), "train"), client, sample_size=8, per_prompt=4)
    assert attributes.domain and all(isinstance(d, str) and d and "<" not in d for d in attributes.domain)
    attributes.save(tmp_path / "a.yaml")
    assert AttributeSet.load(tmp_path / "a.yaml").domain == attributes.domain


def synthesize_cli(output: Path, *extra: str) -> list[str]:
    return [SYNEG, "synthesize", str(demo_path()), "--split", "train", "--output", str(output), "--json", *extra]


@pytest.mark.slow
def test_killed_cli_run_resumes_and_rerun_makes_no_calls(tmp_path):
    output = tmp_path / "neg.jsonl"
    command = synthesize_cli(output, "--limit", "2", "--negatives-per-pair", "1", "--model", "smollm2-135m",
                             "--attributes", "scifact", "--max-rounds", "0")
    env = os.environ | {"SYNEG_CACHE_DIR": str(tmp_path / "cache")}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not (output.is_file() and output.read_text().count("\n") >= 1):
        assert process.poll() is None and time.monotonic() < deadline, "no pair written before the run ended"
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    written = output.read_text().count("\n")
    assert written == 1

    resumed = json.loads(subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout)
    assert resumed["skipped_pairs"] == 1 and resumed["pairs"] == 1
    assert len(list(read_training_set(output))) == 2

    rerun = json.loads(subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout)
    assert rerun["requests"] == 0 and rerun["skipped_pairs"] == 2
    for key in ("requests", "cache_hits", "accepted", "rejected"):
        assert key in rerun


@pytest.mark.slow
def test_cli_with_the_embedded_default_model(tmp_path):
    output = tmp_path / "neg.jsonl"
    result = subprocess.run(synthesize_cli(output, "--limit", "1", "--negatives-per-pair", "1", "--attributes", "scifact",
                                           "--max-rounds", "0"), capture_output=True, text=True, check=True)
    stats = json.loads(result.stdout)
    assert stats["generator"] == "llama.cpp:qwen2.5-0.5b" and stats["requests"] >= 1
    assert stats["accepted"] + stats["rejected"] == stats["candidates"]
    record = json.loads(output.read_text().splitlines()[0])
    assert record["query_id"] and record["pos_ids"]


@pytest.mark.slow
def test_qwen_writes_length_matched_passages_in_the_corpus_form(scifact_path, tmp_path, encoder):
    """The default generator on real SciFact pairs: every kept negative is within 0.7-1.3x its positive's
    length and passes the degeneration check; every passage was asked for as free text (no grammar)."""
    from syneg.synth.checks import degeneration, words

    pairs = pairs_from_beir(load_beir(scifact_path, "train"), limit=2)
    client = make_client("llama.cpp", "qwen2.5-0.5b", cache=tmp_path / "cache.sqlite")
    synthesizer = Synthesizer(client, attributes=AttributeSet.from_spec("scifact"), negatives_per_pair=1, max_rounds=2,
                              encoder=encoder)
    stats = synthesizer.run(pairs, tmp_path / "out.jsonl", show_progress=False)
    free_text = [json.loads(value) for (value,) in client.cache._db.execute("SELECT value FROM completions")]
    passages = [c["text"] for c in free_text if not c["text"].lstrip().startswith("{")]
    assert passages and stats["candidates"] >= len(pairs)
    for instance in read_training_set(tmp_path / "out.jsonl"):
        for negative in instance.negatives:
            ratio = len(words(negative.text)) / len(words(instance.pos[0]))
            assert 0.7 <= ratio <= 1.3 and not degeneration(negative.text, instance.pos[0])
            assert negative.details["checks"]["length"]["passed"] and negative.details["checks"]["not_degenerate"]["passed"]


@pytest.mark.slow
def test_qwen_proposes_several_aspects_in_one_reflection(scifact_path, tmp_path):
    """``aspects_per_reflection``: the default generator, under the JSON grammar, answers one ``reflect_many``
    request with exactly as many aspects as asked, each with a title to check before its passage is written."""
    import asyncio

    from syneg.synth.prompts import PromptTemplates
    from syneg.synth.writing import CandidateWriter, quoted_pair

    [pair] = pairs_from_beir(load_beir(scifact_path, "train"), limit=1)
    client = make_client("llama.cpp", "qwen2.5-0.5b", cache=tmp_path / "cache.sqlite")
    writer = CandidateWriter(client, PromptTemplates(), "none", "two-step", max_tokens=220, temperature=0.7)
    attributes = AttributeSet.from_spec("scifact").draw(0, f"{pair.query_id}/{pair.pos_id}/0")
    try:
        reflections = asyncio.run(writer.reflect_aspects(quoted_pair(pair)[0], attributes, seed=0, follow_up="", count=3))
    finally:
        asyncio.run(client.aclose())
    assert len(reflections) == 3 and client.stats.requests == 1
    assert all(len(r.title) >= 8 and r.aspect.strip() and r.reasoning.strip() and r.topic.strip() for r in reflections)
    # Not asserted: that the three differ. The 0.5B model repeats one (on this pair, two of the three are the same).


@pytest.mark.slow
def test_qwen_does_not_copy_a_topic_cut_at_the_grammars_cap(scifact_path):
    """A real reflection of the second SciFact pass (claim 1126, from its cache): the grammar closed the topic
    at its cap, mid-word, and the title copied its end; written from it, the passage said "cancer mortality
    in O" five times. With the cut fields kept to their whole words the model has no "in O" to copy."""
    import asyncio
    import re

    from syneg.synth.prompts import PromptTemplates
    from syneg.synth.writing import CandidateWriter, Reflection, quoted_pair, sections_for

    [pair] = [p for p in pairs_from_beir(load_beir(scifact_path, "train")) if p.query_id == "1126"]
    reflection = Reflection(topic="Impact of Immunosuppressive Therapy on Cancer Mortality in O",
                            aspect="Risk of Immunosuppressive Therapy",
                            reasoning="The reference text mentions the risk of immunosuppressive therapy, which is a "
                                      "concern for the study.",
                            title="Risk of Immunosuppressive Therapy in Cancer Mortality in O")
    client = make_client("llama.cpp", "qwen2.5-0.5b", cache=False)
    writer = CandidateWriter(client, PromptTemplates(), "none", "two-step", max_tokens=220, temperature=0.7)
    attributes = AttributeSet.from_spec("scifact").draw(0, f"{pair.query_id}/{pair.pos_id}/0")
    try:
        candidate = asyncio.run(writer.write(quoted_pair(pair)[0], attributes, target_words=120, seed=0, follow_up="",
                                             reflection=reflection, sections=sections_for(120)))
    finally:
        asyncio.run(client.aclose())
    assert candidate.text.startswith("Risk of Immunosuppressive Therapy in Cancer Mortality ")
    assert not re.search(r"\bin O\b", candidate.text), candidate.text
    assert candidate.notes[:2] == ["topic cut to its whole words", "title cut to its whole words"]
