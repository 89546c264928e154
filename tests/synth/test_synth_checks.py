"""Checks, attributes and prompt templates: the parts of synthesis that need no model."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from syneg.data import DataError
from syneg.synth import (
    AttributeSet,
    CheckConfig,
    PromptTemplates,
    answer_leak,
    example_path,
    is_echo,
    merge_domain_names,
    run_checks,
)


def unit(*values: float) -> np.ndarray:
    vector = np.array(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def check(negative: str, negative_vector: np.ndarray, kept=(), reasoning: str = "") -> dict[str, bool]:
    results = run_checks(
        negative,
        reasoning,
        negative_vector=negative_vector,
        query="How long does caffeine stay in the body?",
        query_vector=unit(1, 0, 0),
        positive_vector=unit(0.8, 0.6, 0),
        answer_sentence="Caffeine has a half-life of about five hours in healthy adults.",
        target_words=20,
        kept_vectors=list(kept),
        config=CheckConfig(),
    )
    return {r.name: r.passed for r in results}


GOOD = "Coffee beans are roasted at high temperature, which browns them through the Maillard reaction and releases aromatic oils."


def test_a_good_negative_passes_every_check():
    assert all(check(GOOD, unit(0.6, 0, 0.8)).values())


def test_each_check_catches_its_fault():
    assert not check(GOOD, unit(0, 0, 1))["on_topic"]
    assert not check(GOOD, unit(0.8, 0.6, 0.01))["not_paraphrase"]
    assert not check(GOOD, unit(1, 0, 0))["below_positive"]
    leaky = "Caffeine has a half-life of about five hours in healthy adults, and coffee is roasted in large drums."
    assert not check(leaky, unit(0.6, 0, 0.8))["no_answer_leak"]
    assert not check(GOOD, unit(0.6, 0, 0.8), kept=[unit(0.6, 0, 0.8)])["not_duplicate"]
    assert not check("Coffee is brown.", unit(0.6, 0, 0.8))["length"]
    echo = "This passage does not answer the query about caffeine, because it discusses coffee roasting instead of it."
    assert not check(echo, unit(0.6, 0, 0.8))["not_echo"]
    # Real Qwen 0.5B output (model-choice benchmark): a review of the passage, not a passage.
    review = ("The text does not provide enough information about how cells get cells to make a viral protein. "
              "It only describes how this is done through a textbook and does not provide any more details or context.")
    assert not check(review, unit(0.6, 0, 0.8))["not_echo"]


def test_answer_leak_ignores_words_shared_with_the_query():
    # Of the answer's bigrams, "in the" and "the body" are the query's own; "caffeine stays" of the
    # other four (caffeine stays, stays in, body for, for hours) is reused.
    assert answer_leak("Caffeine stays longer in the body of a cat.", "Caffeine stays in the body for hours.",
                       "How long does caffeine stay in the body?") == pytest.approx(1 / 4)


def test_echo_of_the_reasoning_is_caught():
    reasoning = "Roasting is about coffee like the question but says nothing of caffeine half-life"
    assert is_echo("Roasting is about coffee like the question but says nothing of caffeine half-life", reasoning)
    assert not is_echo(GOOD, reasoning)


def test_echo_of_the_instruction_wording_is_caught_and_can_be_turned_off():
    # Real Qwen 0.5B output of the SciFact synthesis, shaped by the write prompt's own words.
    echo = ("The bioinformatic analysis identifies lineage specifiers that replace OCT, in the field of "
            "Transcriptome Analysis, as a textbook would. This is because OCT is a common identifier.")
    pieces = PromptTemplates().fixed_pieces("write")
    assert is_echo(echo, instruction=pieces) == "in the field of"
    assert not is_echo(GOOD, instruction=pieces)
    assert not is_echo(echo, instruction=pieces, instruction_words=0)
    # Words the prompt was given (its placeholders: query, aspect, topic) are not the instruction's.
    assert not is_echo("Transcriptome analysis identifies lineage specifiers that replace OCT.",
                       instruction=PromptTemplates().fixed_pieces("reflect"))


def test_scifact_attributes_ship_with_the_papers_values():
    attributes = AttributeSet.from_spec("scifact")
    assert "Epidemiology" in attributes.domain and "Pharmacology" in attributes.domain and len(attributes.domain) == 9
    assert len(attributes.difficulty) == 2


def test_attribute_draws_are_deterministic_and_cover_extras():
    attributes = AttributeSet(domain=["A", "B", "C"], extra={"tone": ["dry", "warm"]})
    draws = [attributes.draw(0, f"q{i}/d/0") for i in range(30)]
    assert draws == [attributes.draw(0, f"q{i}/d/0") for i in range(30)]
    assert {d["domain"] for d in draws} == {"A", "B", "C"} and {d["tone"] for d in draws} == {"dry", "warm"}


def test_proposed_domains_fold_plurals_and_names_contained_in_a_more_named_one():
    # What Qwen 0.5B proposed for NFCorpus: three spellings of one field.
    named = Counter({"Cardiovascular Disease": 2, "Health": 2, "Cardiovascular Diseases": 1, "Cardiovascular": 1})
    assert merge_domain_names(named) == ["Cardiovascular Disease", "Health"]
    # A narrower name named less often stays beside the broader one; "Glass" keeps its double s.
    named = Counter({"Virology": 3, "Clinical Virology": 1, "Glass": 1, "Glas": 1})
    assert merge_domain_names(named) == ["Virology", "Clinical Virology", "Glass", "Glas"]


def test_attribute_files_round_trip_and_bad_files_name_themselves(tmp_path):
    attributes = AttributeSet(domain=["Virology"], extra={"style": ["news"]})
    attributes.save(tmp_path / "a.yaml")
    assert AttributeSet.load(tmp_path / "a.yaml") == attributes
    (tmp_path / "bad.yaml").write_text("domain: Virology\n")
    with pytest.raises(DataError, match="bad.yaml.*'domain'"):
        AttributeSet.load(tmp_path / "bad.yaml")
    with pytest.raises(FileNotFoundError, match="nosuch"):
        AttributeSet.from_spec("nosuch")
    assert example_path("scifact").is_file()


def test_prompt_templates_can_be_overridden(tmp_path):
    (tmp_path / "write.txt").write_text('Paragraph on "$aspect" ($subject).$attributes JSON please.')
    templates = PromptTemplates(tmp_path)
    assert templates.render("write", aspect="roasting", subject="coffee", attributes="") == 'Paragraph on "roasting" (coffee). JSON please.'
    assert "Question: q" in templates.render("reflect", query="q", positive="p")
    with pytest.raises(KeyError):
        templates.render("write", aspect="x")
    assert templates.fixed_pieces("write") == ['Paragraph on "', "JSON please."]  # pieces without words dropped
