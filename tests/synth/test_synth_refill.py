"""A refill pass: the pairs a run left short of negatives are synthesized again, resumably, and merged."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from syneg.data import load_beir, read_training_set, write_training_set
from syneg.llm import LLMClient
from syneg.pipeline.plan import recorded_options
from syneg.synth import Pair, Synthesizer, pairs_from_beir, synthesize
from syneg.synth.options import SynthesizeOptions
from syneg.synth.synthesize import refill_path

from test_synth_revision import ECHO, GOOD, PAIR, ScriptedBackend

OTHER = Pair("q2", PAIR.query, "d2", PAIR.positive)


def synthesizer(negatives: list[str], encoder, **options) -> tuple[Synthesizer, ScriptedBackend]:
    backend = ScriptedBackend(negatives)
    options = {"max_rounds": 0, "aspects_per_reflection": 1} | options
    return Synthesizer(LLMClient(backend), encoder=encoder, **options), backend


def negatives_by_pair(path) -> dict[str, list[str]]:
    return {json.loads(line)["query_id"]: json.loads(line)["neg"] for line in path.read_text().splitlines()}


def test_a_refill_asks_again_only_for_the_pairs_left_without_a_negative_and_merges_them_in_place(tmp_path, encoder):
    output = tmp_path / "out.jsonl"
    first, _ = synthesizer([ECHO, GOOD], encoder)
    first.run([PAIR, OTHER], output, show_progress=False)
    assert negatives_by_pair(output) == {"q1": [], "q2": [GOOD]}
    refill, backend = synthesizer([GOOD], encoder, refill=True)
    stats = refill.run([PAIR, OTHER], output, show_progress=False)
    assert negatives_by_pair(output) == {"q1": [GOOD], "q2": [GOOD]}  # the file's order is kept
    assert stats["refilled_pairs"] == 1 and stats["refill_gained"] == 1 and stats["skipped_pairs"] == 1
    assert len(backend.prompts) == 2  # one reflection and one passage, for q1 alone
    assert not refill_path(output).exists()
    # Without refill a rerun skips every pair, short or not.
    plain, backend = synthesizer([], encoder)
    assert plain.run([PAIR, OTHER], output, show_progress=False)["skipped_pairs"] == 2 and backend.prompts == []


def test_a_killed_refill_is_merged_when_it_starts_again(tmp_path, encoder):
    output = tmp_path / "out.jsonl"
    synthesizer([ECHO, ECHO], encoder)[0].run([PAIR, OTHER], output, show_progress=False)
    # A refill killed after q1 was written, and in the middle of q2's line.
    synthesizer([GOOD], encoder)[0].run([PAIR], refill_path(output), show_progress=False)
    with refill_path(output).open("a") as handle:
        handle.write('{"query": "torn')
    refill, backend = synthesizer([GOOD], encoder, refill=True)
    stats = refill.run([PAIR, OTHER], output, show_progress=False)
    assert len(backend.prompts) == 2  # q2 only: q1's record in the refill file was merged first
    assert negatives_by_pair(output) == {"q1": [GOOD], "q2": [GOOD]}
    assert stats["refilled_pairs"] == 1 and stats["refill_gained"] == 2 and not refill_path(output).exists()


def test_a_refill_never_loses_a_negative(tmp_path, encoder):
    output = tmp_path / "out.jsonl"
    synthesizer([GOOD, ECHO], encoder, negatives_per_pair=2)[0].run([PAIR], output, show_progress=False)
    assert negatives_by_pair(output) == {"q1": [GOOD]}
    stats = synthesizer([ECHO, ECHO], encoder, negatives_per_pair=2, refill=True)[0].run([PAIR], output, show_progress=False)
    assert stats["refilled_pairs"] == 1 and stats["refill_gained"] == 0
    assert negatives_by_pair(output) == {"q1": [GOOD]}


@pytest.mark.parametrize("refill", [False, True])
def test_the_stage_settings_record_a_refill_only_when_asked(refill):
    """Markers written before the option existed stay valid; a refill changes the stage, so it runs again."""
    settings = recorded_options(SynthesizeOptions(refill=refill), "synthesize")
    assert ("refill" in settings) is refill


REPLAYED = Path(__file__).resolve().parents[2] / "bench" / "out" / "aspects-compare"


def test_a_refill_with_three_aspects_gives_the_pairs_one_aspect_left_empty_what_a_three_aspect_run_gave_them(
        tmp_path, scifact_path, encoder):
    """Real model output, real SciFact pairs and the real encoder: the session-13 side-by-side run of the same 50
    pairs at one and at three aspects per reflection (committed with its caches), replayed. A refill at three
    aspects of the one-aspect output asks exactly the three-aspect run's requests (every one answered by that
    run's cache: nothing is generated), and merges its negatives into the pairs one aspect left without."""
    one, three = (list(read_training_set(REPLAYED / arm / "negatives.jsonl")) for arm in ("current", "current-aspects3"))
    gained = {(i.query_id, i.pos_ids[0]): i for i in three if i.negatives}
    empty = [i for i in one if not i.negatives and (i.query_id, i.pos_ids[0]) in gained][:3]
    kept = next(i for i in one if i.negatives)
    output = tmp_path / "negatives.jsonl"
    write_training_set(output, [kept, *empty])
    cache = tmp_path / "cache.sqlite"
    shutil.copy(REPLAYED / "current-aspects3" / "llm-cache.sqlite", cache)
    # The options of bench/synthesis_bench.py's runs.
    options = SynthesizeOptions(attributes="scifact", max_rounds=2, aspects_per_reflection=3, cache=cache, threads=1,
                                refill=True)
    chosen = {(i.query_id, i.pos_ids[0]) for i in (kept, *empty)}
    pairs = [p for p in pairs_from_beir(load_beir(scifact_path, split="train"), limit=50) if (p.query_id, p.pos_id) in chosen]
    client = options.client()

    async def no_generation(request):
        raise AssertionError(f"not in the three-aspect run's cache: {request.messages[-1][1][:300]!r}")

    client.backend.complete = no_generation  # fail at the first miss, without loading the model
    try:
        stats = synthesize(pairs, output, options, client=client, encoder=encoder, show_progress=False)
    finally:
        asyncio.run(client.aclose())
    assert stats["requests"] == 0 and stats["cache_hits"] > 0
    assert stats["refilled_pairs"] == 3 and stats["refill_gained"] == 3
    merged = list(read_training_set(output))
    assert [i.query_id for i in merged] == [i.query_id for i in (kept, *empty)]
    assert merged[0].negatives == kept.negatives  # a pair with its negative is not asked again
    for instance in merged[1:]:
        assert [n.text for n in instance.negatives] == [n.text for n in gained[instance.query_id, instance.pos_ids[0]].negatives]
