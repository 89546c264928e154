"""The requests synthesis sends are the ones the committed LLM caches were filled with.

The SciFact full-budget negatives (bench/experiments/scifact-all.yaml) are regenerated from the
committed request cache. Any change to a prompt, a seed, ``max_tokens``, ``repeat_penalty`` or the
order of the requests changes their cache keys, and a rerun would then need the LLM for every pair:
so the first pairs of that run, replayed with the current code, must be answered by the cache alone.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from syneg.data import TrainingInstance, read_training_set
from syneg.llm import ChatRequest
from syneg.pipeline import RunConfig
from syneg.synth import pairs_from_training_set, synthesize

EXPERIMENTS = Path(__file__).parents[2] / "bench" / "experiments"
FIRST_PASS = Path(__file__).parents[2] / "bench" / "audit" / "scifact-all-first-pass-438.jsonl"


def first_pairs(path: Path, at_most: int = 12) -> int:
    """How many of the run's first pairs to replay: through the first one that failed every round (so that
    reflection, writing and every revision request are replayed), at most ``at_most``."""
    for count, instance in enumerate(read_training_set(path), 1):
        if not instance.negatives or count == at_most:
            return count
    return count


@pytest.fixture(autouse=True)
def _committed_cache_present() -> None:
    if not (EXPERIMENTS / "scifact-all-llm-cache.sqlite").is_file():
        pytest.skip("bench/experiments/scifact-all-llm-cache.sqlite is not in this checkout")


def snapshot(source: Path, target: Path) -> Path:
    """A consistent copy of an SQLite file that a running synthesis may be writing to."""
    with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as reader, sqlite3.connect(target) as writer:
        reader.backup(writer)
    return target


def test_the_committed_scifact_cache_answers_every_request_of_its_first_pairs(tmp_path, encoder):
    config = RunConfig.load(EXPERIMENTS / "scifact-all.yaml")
    # Checks added after these pairs were written turn down texts the run kept (abbreviations_match: "BIR (Breast
    # Cancer Indicators)" in one of the first pairs), and a round turned down asks anew; the replay is of the requests,
    # so it keeps the run's checks by turning the later one off, and the first pass's options, whatever the config
    # says for the passes after it. Its pairs are read from the kept copy of the first pass's file, since a later
    # pass replaces the records of the pairs the first left without a negative.
    options = config.synthesize.model_copy(update={
        "checks": {**config.synthesize.checks, "max_abbreviation_conflicts": 99},
        "aspects_per_reflection": 1, "trim_cut_fields": False, "seed": 0, "refill": False})
    count = first_pairs(FIRST_PASS)
    pairs = pairs_from_training_set(FIRST_PASS, limit=count)
    client = options.model_copy(update={"cache": snapshot(options.cache, tmp_path / "cache.sqlite")}).client()

    async def no_generation(request: ChatRequest) -> None:
        raise AssertionError(f"not in the committed cache (a prompt or parameter changed): {request.messages[-1][1][:300]!r}")

    client.backend.complete = no_generation  # fail at the first miss, without loading the model
    try:  # through the stage's entry point, which builds the Synthesizer from the options as the run did
        stats = synthesize(pairs, tmp_path / "replayed.jsonl", options, client=client, encoder=encoder, show_progress=False)
    finally:
        asyncio.run(client.aclose())
    replayed = list(read_training_set(tmp_path / "replayed.jsonl"))
    # The live file's record, written again under later text repairs (bench/rewrite_pairs.py); for a pair the first
    # pass left empty, that pass's record, since a later pass may have given it a negative since.
    live = {(i.query_id, i.pos_ids[0]): i for i in read_training_set(options.file)}
    expected = [i if not i.negatives else live[(i.query_id, i.pos_ids[0])] for i in read_training_set(FIRST_PASS)][:count]
    assert stats["requests"] == 0 and stats["cache_hits"] >= 2 * count
    assert stats["rejected"] > 0  # the revision path was replayed too
    assert stats["failed_slots"] == sum(not instance.negatives for instance in expected)
    # A reflection the current code turns down by its title alone (max_title_ratio, added after these pairs
    # were written) was, in the run, a passage the 95% rule turned down: the same revision request follows,
    # so the same negatives come about, with that round recorded as a title instead of a passage.
    title_rounds = [{r["round"] for n in i.negatives for r in n.details.get("rejected", []) if r.get("title_only")}
                    for i in replayed]
    for instance, rounds in zip(expected, title_rounds, strict=True):
        assert all(not r["checks"]["below_positive"]["passed"]
                   for n in instance.negatives for r in n.details.get("rejected", []) if r["round"] in rounds)
    assert [written(i, rounds) for i, rounds in zip(replayed, title_rounds)] == [
        written(i, rounds) for i, rounds in zip(expected, title_rounds)]


def written(instance: TrainingInstance, skip_rounds: set[int] | frozenset[int] = frozenset()) -> list[dict[str, Any]]:
    """What the LLM's answers decide of an instance: each kept text and how it came about, without the
    checks' values, whose last digits vary with the encoder's backend and threads, without the rejected
    rounds ``skip_rounds`` and without the rejected texts."""

    def without_checks(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: without_checks(item) for key, item in value.items() if key != "checks"}
        if isinstance(value, list):
            return [without_checks(item) for item in value]
        return value

    def details(negative: Any) -> dict[str, Any]:
        kept = dict(negative.details)
        if "rejected" in kept:
            # A rejected round's text is recorded as the day's repairs (as_passage) left it, and a later repair
            # may shorten it (a reference list cut); its round, aspect and reasoning, the requests that led to
            # it, must replay.
            kept["rejected"] = [{k: v for k, v in r.items() if k != "text"} for r in kept["rejected"] if r["round"] not in skip_rounds]
        return without_checks(kept)

    return [{"id": n.id, "text": n.text, "details": details(n)} for n in instance.negatives]
