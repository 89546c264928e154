"""Checks, attributes and prompt templates: the parts of synthesis that need no model."""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from syneg.data import DataError
from syneg.synth import (
    AttributeSet,
    CheckConfig,
    PromptTemplates,
    abbreviation_conflicts,
    answer_leak,
    as_passage,
    degeneration,
    example_path,
    is_echo,
    merge_domain_names,
    misspelled_terms,
    run_checks,
)
from syneg.synth.checks import MISSPELLING_SIMILARITY


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
    # Real Qwen 0.5B output of the first SciFact synthesis, shaped by that write prompt's own words.
    echo = ("The bioinformatic analysis identifies lineage specifiers that replace OCT, in the field of "
            "Transcriptome Analysis, as a textbook would. This is because OCT is a common identifier.")
    pieces = ["Write three factual sentences about", ", in the field of", ", as a textbook would."]
    assert is_echo(echo, instruction=pieces) == "in the field of"
    assert is_echo("Here is the abstract of the research article on OCT.",
                   instruction=PromptTemplates().fixed_pieces("write")) == "the abstract of the"
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


# Real Qwen2.5-0.5B output from the first SciFact synthesis (bench/experiments/scifact-synthetic.jsonl),
# accepted before the degeneration check existed: repetition loops, a truncated list, a switch to Chinese.
BROKEN_COMMITTED_NEGATIVES = {
    "syn-cc570648eee10d04": "repeats itself",  # "...a textbook would be a textbook would be..."
    "syn-faa546a90c5b88c7": "repeats itself",  # "...which is a clinical diagnosis of T-AL, which is..."
    "syn-f0f5458cf9c52d55": "repeats itself",
    "syn-2aab626f8d57f627": "mid-sentence",  # "...plays a crucial role in the development,4"
    "syn-8d077c866bdb4204": "repeats itself",  # repeats, and ends in "...optimizing the production of these基因"
}


def committed_negatives() -> dict[str, tuple[str, str]]:
    from syneg.data import read_training_set

    path = Path(__file__).parents[2] / "bench" / "experiments" / "scifact-synthetic.jsonl"
    return {n.id: (n.text, i.pos[0]) for i in read_training_set(path) for n in i.negatives}


def test_the_committed_broken_negatives_are_rejected_as_degenerate():
    negatives = committed_negatives()
    for negative_id, reason in BROKEN_COMMITTED_NEGATIVES.items():
        text, positive = negatives[negative_id]
        assert reason in degeneration(text, positive), negative_id
        results = {r.name: r for r in run_checks(
            text, "", negative_vector=unit(0.6, 0, 0.8), query="q", query_vector=unit(1, 0, 0),
            positive_vector=unit(0.8, 0.6, 0), answer_sentence="", target_words=len(text.split()),
            positive=positive, kept_vectors=[], config=CheckConfig())}
        assert not results["not_degenerate"].passed and results["not_degenerate"].reason


def test_degeneration_passes_real_abstracts(scifact_path):
    """Written text repeats itself too: SciFact's own abstracts must almost all pass."""
    from syneg.data import load_beir

    corpus = load_beir(scifact_path, "test").corpus
    flagged = [d for d in corpus.values() if degeneration(d.full_text, d.full_text).startswith("it repeats")]
    assert len(flagged) < 0.01 * len(corpus)


def test_degeneration_catches_each_fault():
    assert degeneration("Telomeres shorten with each division. Telomerase adds repeats back.") == ""
    assert "three times" in degeneration("Cells divide and divide and divide and divide until they stop.")
    assert "mid-sentence" in degeneration("Telomeres shorten with each division and")
    assert "script" in degeneration("Telomeres shorten (端粒) with age.")
    assert degeneration("Telomeres shorten (端粒) with age.", reference="端粒 are caps.") == ""


def test_as_passage_gives_the_corpus_form_and_notes_each_change():
    text, notes = as_passage("# Telomere length in aging\n\n**Abstract:** Telomeres shorten. Cells stop dividing and")
    assert text == "Telomere length in aging Telomeres shorten."
    assert notes == ["labels removed", "markdown removed", "unfinished sentence cut (4 words)"]
    text, notes = as_passage("Telomere length in aging\nTelomeres shorten with every division.")
    assert (text, notes) == ("Telomere length in aging Telomeres shorten with every division.", [])
    text, notes = as_passage("Risk factors\n1. Smoking raises risk.\n2. Age raises risk.")
    assert text == "Risk factors Smoking raises risk. Age raises risk." and notes == ["list markers removed"]


def test_the_length_check_asks_for_the_positive_length():
    config = CheckConfig()
    for count, passed in ((69, False), (70, True), (130, True), (131, False)):
        text = " ".join(["word"] * count)
        results = {r.name: r.passed for r in run_checks(
            text, "", negative_vector=unit(0.6, 0, 0.8), query="q", query_vector=unit(1, 0, 0),
            positive_vector=unit(0.8, 0.6, 0), answer_sentence="", target_words=100, kept_vectors=[], config=config)}
        assert results["length"] is passed, count


def test_real_abstracts_that_start_again_lose_the_restated_sentences():
    """Qwen2.5-0.5B answers from the SciFact generation's cache that, out of things to say, wrote the
    abstract again under the next part's label ("Part 1: Background ..."): broken as written, a passage
    once the restated sentences and the part numbers are gone."""
    from syneg.synth.checks import ngrams, sentences, words

    path = Path(__file__).parents[1] / "fixtures" / "restated-abstracts.jsonl"
    answers = [json.loads(line)["raw"] for line in path.read_text().splitlines()]
    assert len(answers) == 3
    for raw in answers:
        assert degeneration(" ".join(raw.split())).startswith("it repeats itself")
        text, notes = as_passage(raw)
        assert degeneration(text) == "" and any(note.endswith(("repeated sentence removed", "repeated sentences removed")) for note in notes)
        assert "part 1" not in text.lower() and len(words(text)) >= 100
        seen: set[tuple[str, ...]] = set()
        for sentence in sentences(text):
            trigrams = set(ngrams(words(sentence), 3))
            assert len(trigrams & seen) < 0.5 * len(trigrams), sentence
            seen |= trigrams


def test_the_audited_texts_that_talk_about_the_task_are_rejected_and_the_hard_ones_pass():
    """The audit of 100 new SciFact negatives (bench/audit/scifact-v2-*) labelled 10 texts that carry the
    prompts' words ("An earlier attempt was rejected", ", which is a placeholder for the article's
    title"); the checks must now turn each down, and still pass every text the reader found hard."""
    audit = Path(__file__).parents[2] / "bench" / "audit"
    texts = {r["id"]: r["negative"] for r in map(json.loads, (audit / "scifact-v2-sample.jsonl").read_text().splitlines())}
    labels = [json.loads(line) for line in (audit / "scifact-v2-labels.jsonl").read_text().splitlines()]
    task_talk = [label["id"] for label in labels if "talks about the task" in label["note"]]
    hard = [label["id"] for label in labels if label["label"] == "hard"]
    assert len(task_talk) == 10 and len(hard) == 73
    for negative_id in task_talk:
        text = texts[negative_id]
        assert is_echo(text) or degeneration(text).startswith("it starts"), negative_id
    for negative_id in hard:
        assert not is_echo(texts[negative_id]) and not degeneration(texts[negative_id], texts[negative_id]), negative_id


@pytest.mark.parametrize("dataset", ["scifact", "nfcorpus"])
def test_no_real_abstract_looks_like_task_talk(dataset, scifact_path, nfcorpus_path):
    from syneg.data import load_beir
    from syneg.synth.checks import TASK_WORDS

    corpus = load_beir({"scifact": scifact_path, "nfcorpus": nfcorpus_path}[dataset], "test").corpus
    assert not [d.id for d in corpus.values() if TASK_WORDS.search(d.full_text) or degeneration(d.full_text).startswith("it starts")]


def test_a_revision_reason_reworded_into_the_title_is_task_talk():
    """The NFCorpus synthesis (session 10) accepted "Rejection due to copying answer wording Lifestyle
    changes ...": the model turned the revision request's reason ("it copies the answer's wording") into its
    title, in words the four-word echo rule does not see. The committed negative must now be turned down."""
    path = Path(__file__).parents[2] / "bench" / "experiments" / "nfcorpus-matched-synthetic.jsonl"
    record = next(r for r in map(json.loads, path.read_text().splitlines()) if r["query"] == "lentils")
    assert record["neg"][0].startswith("Rejection due to copying answer wording")
    assert is_echo(record["neg"][0]) == "rejection due to"
    assert is_echo("Kidney graft rejection was lower in the tacrolimus group (p = 0.02).") == ""


def test_the_second_audits_broken_texts_are_rejected_and_its_hard_ones_pass():
    """The second audit (bench/audit/scifact-v3-*, 54 negatives of pairs 189-266) found texts that talk
    about themselves as the task's abstract ("This abstract provides a foundational overview", "[insert
    references here]", "INTROducting the article") and a list of empty labels; the checks must now turn
    each down, and still pass every text the reader found hard."""
    audit = Path(__file__).parents[2] / "bench" / "audit"
    texts = {r["id"]: r["negative"] for r in map(json.loads, (audit / "scifact-v3-sample.jsonl").read_text().splitlines())}
    labels = [json.loads(line) for line in (audit / "scifact-v3-labels.jsonl").read_text().splitlines()]
    task_talk = [label["id"] for label in labels if "talks about the task" in label["note"]]
    empty_labels = [label["id"] for label in labels if "list of empty labels" in label["note"]]
    hard = [label["id"] for label in labels if label["label"] == "hard"]
    assert (len(task_talk), len(empty_labels), len(hard)) == (3, 1, 35)
    for negative_id in task_talk:
        assert is_echo(texts[negative_id]), negative_id
    assert degeneration(texts[empty_labels[0]]).startswith("it lists labels with nothing after them")
    for negative_id in hard:
        assert not is_echo(texts[negative_id]) and not degeneration(texts[negative_id], texts[negative_id]), negative_id


def test_invented_reference_lists_are_cut_from_real_answers():
    """Accepted SciFact negatives that end in a reference list the model invented ("References: [1]
    Journal of Public Health, 2016 ..."), which no abstract of the corpus has: as_passage cuts it, notes
    it, and leaves a passage that ends a sentence."""
    audit = Path(__file__).parents[2] / "bench" / "audit"
    rows = [json.loads(line) for name in ("scifact-v2-sample.jsonl", "scifact-v3-sample.jsonl")
            for line in (audit / name).read_text().splitlines()]
    with_references = [row["negative"] for row in rows if "References:" in row["negative"]]
    assert len(with_references) >= 5
    for text in with_references:
        passage, notes = as_passage(text)
        assert "References" not in passage and any(note.startswith("reference list removed") for note in notes)
        assert len(passage.split()) >= 40 and not degeneration(passage).startswith("it stops")


def test_an_upper_case_references_heading_is_cut_from_every_cached_answer_that_writes_one():
    """Qwen2.5-0.5B also writes the heading in capitals ("... demographic changes. REFERENCES This research was
    conducted by the WHO's Child Health Service ..."; 5 kept SciFact negatives had it before session 16): cut
    from every answer of the SciFact generation's cache that writes one, as "References" is."""
    import sqlite3

    cache = Path(__file__).parents[2] / "bench" / "experiments" / "scifact-all-llm-cache.sqlite"
    with sqlite3.connect(f"file:{cache}?mode=ro", uri=True) as db:
        answers = [json.loads(value)["text"] for (value,) in db.execute("SELECT value FROM completions")]
    heading = re.compile(r"(?:^|[.!?:]\s+)REFERENCES?\b\s*(?::|[-\u2013\u2014]?\s*(?:\[\d|[A-Z]))", re.MULTILINE)
    written = [raw for raw in answers if heading.search(raw) and heading.search(raw).start() > 0]
    assert len(written) >= 5
    for raw in written:
        passage, notes = as_passage(raw)
        assert "REFERENCE" not in passage and any(note.startswith("reference list removed") for note in notes), raw[-300:]
    assert as_passage("Telomere length. Telomeres shorten. REFERENCES This work was funded by the WHO.")[0] == (
        "Telomere length. Telomeres shorten.")


def test_numbered_references_a_bibliography_and_trailing_outline_markers_are_cut_from_every_cached_answer():
    """Session 17's blind reading found "... and inflammation. References 1." and "... such as R or SPSS. C." kept, and
    the first pass kept "... strategies. Bibliography J.D. Lee, A.C. Johnson, ...": cut from every answer of the
    SciFact generation's cache that writes one (no SciFact or NFCorpus abstract ends in a lone capital and a full stop,
    ``test_no_real_abstract_has_a_list_of_empty_labels_or_a_reference_list``)."""
    import sqlite3

    cache = Path(__file__).parents[2] / "bench" / "experiments" / "scifact-all-llm-cache.sqlite"
    with sqlite3.connect(f"file:{cache}?mode=ro", uri=True) as db:
        answers = [" ".join(json.loads(value)["text"].split()) for (value,) in db.execute("SELECT value FROM completions")]
    kinds = {"numbered references": re.compile(r"[.!?]\s+(?:References?|REFERENCES?)\s+\d{1,2}\."),
             "bibliography": re.compile(r"[.!?]\s+(?:Bibliography|BIBLIOGRAPHY)\b"),
             "outline markers at the end": re.compile(r"[.!?](?:\s+[A-Z]\.)+\s*$")}
    for kind, pattern in kinds.items():
        written = [raw for raw in answers if pattern.search(raw)]
        assert written, kind
        for raw in written:
            passage, notes = as_passage(raw)
            assert not pattern.search(passage) and notes, (kind, raw[-300:])
    assert as_passage("Telomere length. Telomeres shorten. References 1. Smith J, Nature, 2016.")[0] == (
        "Telomere length. Telomeres shorten.")
    # The marker left once the part it opened turned out to restate an earlier sentence (session 17's "SPSS. C.").
    assert as_passage("Telomere length. Telomeres shorten with age in all cells. B. Telomeres shorten with age in all "
                      "cells.")[0] == "Telomere length. Telomeres shorten with age in all cells."


def test_a_section_label_in_mixed_case_alone_on_its_line_is_a_label():
    """Qwen2.5-0.5B writes "ConCLUSIONS" on a line of its own (27 answers in the SciFact generation's cache, 9
    accepted negatives of its first pass kept it): a label, removed or put in capitals like the others, while
    "Results indicate that ..." stays the sentence it is."""
    import sqlite3

    cache = Path(__file__).parents[2] / "bench" / "experiments" / "scifact-all-llm-cache.sqlite"
    with sqlite3.connect(f"file:{cache}?mode=ro", uri=True) as db:
        answers = [json.loads(value)["text"] for (value,) in db.execute("SELECT value FROM completions")]
    mixed = re.compile(r"^\s*(?!CONCLUSIONS\b|Conclusions\b)[Cc][Oo][Nn][Cc][Ll][Uu][Ss][Ii][Oo][Nn][Ss]?\s*$", re.MULTILINE)
    slipped = [raw for raw in answers if mixed.search(raw)]
    assert len(slipped) >= 20
    capitals = 0
    for raw in slipped:
        removed, notes = as_passage(raw)
        kept, _ = as_passage(raw, keep_section_labels=True)
        assert "section labels removed" in notes and not re.search(r"\bCon[a-z]*[A-Z]{3,}", removed + kept)
        capitals += "CONCLUSIONS" in kept
    assert capitals > len(slipped) / 2  # the others lost the part's sentences as restated ones, label and all
    assert as_passage("Telomeres\nResults indicate that they shorten.", keep_section_labels=True)[0] == (
        "Telomeres Results indicate that they shorten.")


def test_no_real_abstract_has_a_list_of_empty_labels_or_a_reference_list(scifact_path, nfcorpus_path):
    from syneg.data import load_beir

    for path in (scifact_path, nfcorpus_path):
        corpus = load_beir(path, "test").corpus
        assert not [d.id for d in corpus.values() if degeneration(d.full_text).startswith("it lists labels")]
        repairs = [" ".join(as_passage(d.full_text)[1]) for d in corpus.values()]
        assert not [r for r in repairs if "reference list removed" in r or "list markers removed at the end" in r]


def test_the_third_audits_broken_texts_are_rejected_or_repaired_and_its_hard_ones_pass():
    """The third audit (bench/audit/scifact-v4-*, 60 negatives of pairs 247-354) found texts describing their
    own parts or themselves ("METHODS This section includes ...", "Note: This is a simplified example of the
    abstract", "The Task of the Abstract", "References No additional references are provided") and a
    reference list under a dash ("References - [1] S. T. Schmidt, ..."); the checks must now turn the first
    down and as_passage cut the second, and every text the reader found hard must still pass."""
    audit = Path(__file__).parents[2] / "bench" / "audit"
    texts = {r["id"]: r["negative"] for r in map(json.loads, (audit / "scifact-v4-sample.jsonl").read_text().splitlines())}
    labels = {r["id"]: r for r in map(json.loads, (audit / "scifact-v4-labels.jsonl").read_text().splitlines())}
    talking_about_themselves = ["syn-493e74d18a45b37a", "syn-226a4c5d8c63afec", "syn-ae00d226361169ee", "syn-3307a77bf4f8a9cf"]
    with_references = ["syn-59ce41e32356bae1", "syn-ae00d226361169ee"]
    for negative_id in talking_about_themselves + with_references:
        assert labels[negative_id]["label"] == "broken", negative_id
    for negative_id in talking_about_themselves:
        assert is_echo(texts[negative_id]), negative_id
    for negative_id in with_references:
        passage, notes = as_passage(texts[negative_id])
        assert "References" not in passage and any(note.startswith("reference list removed") for note in notes), negative_id
    hard = [negative_id for negative_id, label in labels.items() if label["label"] == "hard"]
    assert len(hard) == 35
    for negative_id in hard:
        text = texts[negative_id]
        assert not is_echo(text) and not degeneration(text, text), negative_id
        assert not any(note.startswith("reference list removed") for note in as_passage(text)[1]), negative_id


def test_a_capitalized_word_that_opens_a_sentence_is_not_taken_for_a_section_label():
    """"Results indicate that ..." is a sentence, not a label: stripping "Results" left ". indicate that"
    in three accepted SciFact negatives (bench/audit/scifact-v4-labels.jsonl)."""
    raw = "Title\nBackground\nWFS1 is a protein.\nResults indicate that WFS1 binds AC8.\nConclusions: It does."
    assert as_passage(raw)[0] == "Title WFS1 is a protein. Results indicate that WFS1 binds AC8. It does."
    assert as_passage(raw, keep_section_labels=True)[0] == (
        "Title BACKGROUND WFS1 is a protein. Results indicate that WFS1 binds AC8. CONCLUSIONS It does.")


def test_the_fourth_audits_task_talk_is_rejected_and_its_hard_ones_pass():
    """The fourth audit (bench/audit/scifact-v5-*) and the temperature comparison's blind reading
    (bench/audit/temperature-compare-*) found a study "by Dr. Jane Doe" (a placeholder) and a title "A Previous
    Attempt Failed" (the revision request's words); the checks must now turn both down, and every text the
    readers found hard must still pass."""
    audit = Path(__file__).parents[2] / "bench" / "audit"
    texts, labels = {}, {}
    for name in ("scifact-v5", "temperature-compare"):
        texts |= {r["id"]: r["negative"] for r in map(json.loads, (audit / f"{name}-sample.jsonl").read_text().splitlines())}
        labels |= {r["id"]: r["label"] for r in map(json.loads, (audit / f"{name}-labels.jsonl").read_text().splitlines())}
    for negative_id, phrase in (("syn-e6f6b0d7d9d28854", "jane doe"), ("syn-ddb8447c46140825", "attempt failed")):
        assert labels[negative_id] == "broken" and is_echo(texts[negative_id]) == phrase, negative_id
    hard = [negative_id for negative_id, label in labels.items() if label == "hard"]
    assert len(hard) == 56  # 40 + 19 read, 3 in both samples: the bench's first pairs replay the run's own requests
    assert not [negative_id for negative_id in hard if is_echo(texts[negative_id])]


SCNT_POSITIVE = ("Somatic cell nuclear transfer (SCNT) reprograms a nucleus. Wolfram syndrome 1 (WFS1) and estrogen "
                 "receptor (ER) levels were measured in cloned embryos.")


def abbreviation_check(negative: str, positive: str = SCNT_POSITIVE):
    results = run_checks(negative, "", negative_vector=unit(0.6, 0, 0.8), query="Does SCNT efficiency depend on WFS1?",
                         query_vector=unit(1, 0, 0), positive_vector=unit(0.8, 0.6, 0), answer_sentence="",
                         target_words=len(negative.split()), positive=positive, kept_vectors=[], config=CheckConfig())
    return {r.name: r for r in results}["abbreviations_match"]


@pytest.mark.parametrize(("negative", "reason"), [
    ("Scanning chromatin transfer (SCNT) is slow in sheep.", "where the reference text has 'Somatic cell nuclear transfer'"),
    ("SCNT (Single Cell Transgenic Expression) is slow in sheep.", "which does not spell it"),
    ("Wolfram syndrome 1 (WS1) is rare in sheep.", "as WS1 where the reference text has WFS1"),
])
def test_a_gloss_that_contradicts_the_pairs_abbreviations_is_rejected_with_the_positives_expansion(negative, reason):
    check = abbreviation_check(negative)
    assert not check.passed and check.value == 1 and reason in check.reason


@pytest.mark.parametrize("negative", [
    "Somatic cell nuclear transfers (SCNTs) are slow in sheep.",  # a plural of the positive's own gloss
    "SCNT was slow in sheep, and the embryos (SCNT) died early.",  # a parenthesis that refers back
    "Wolfram syndrome 1 (WFS1) is rare in sheep.",
])
def test_glosses_that_agree_or_refer_back_pass(negative):
    check = abbreviation_check(negative)
    assert check.passed and check.value == 0, check.reason


def test_only_the_pairs_abbreviations_are_held_to_the_positive():
    """Abbreviations mean many things (ER: estrogen receptor, endoplasmic reticulum): a negative is held only to
    those its pair writes."""
    assert not abbreviation_check("Endoplasmic reticulum (ER) stress was raised in sheep.").passed
    assert abbreviation_check("Endoplasmic reticulum (ER) stress was raised in sheep.", positive="Cloned sheep.").passed


# Broken negatives of the rubric-v5 audits whose central abbreviation is glossed wrong ("AMH (amino acid
# transaminase)", "Single Nucleotide Intervals (SIDS)", WS1 for WFS1, "Scanning Chromatin Transfer (SCNT)", ...).
MANGLED_ABBREVIATIONS = {
    "aspects-compare": ["syn-f63bc33dd9878861", "syn-5afcbb23d711c53e", "syn-4b297c79d56ba0b4"],
    "scifact-v4": ["syn-bee287911c6c51cd", "syn-b2d133e2187f2854", "syn-799caab9dc0455a5", "syn-043f75e6cfd565c5",
                   "syn-7bd2facd12c512f3"],
    "scifact-v5": ["syn-e149a4fa1d1beae4", "syn-064dc2bd110900b9"],
}


def read_audit(name: str) -> tuple[dict[str, dict], dict[str, str]]:
    """One audit of bench/audit: its drawn negatives by id, and their labels by id."""
    audit = Path(__file__).parents[2] / "bench" / "audit"
    drawn = {r["id"]: r for r in map(json.loads, (audit / f"{name}-sample.jsonl").read_text().splitlines())}
    labels = {r["id"]: r["label"] for r in map(json.loads, (audit / f"{name}-labels.jsonl").read_text().splitlines())}
    return drawn, labels


def test_the_audited_mangled_abbreviations_are_rejected_and_the_hard_ones_pass():
    """The rubric-v5 audits label a negative broken when its central term is mangled and used that way throughout;
    most of their broken texts are glossed abbreviations. Each listed one must be rejected, and every text their
    readers found hard must pass but one: "Neutrophil Extracellular Traps (NEATs)" where the positive has NET, read
    as hard in v4 and mangled all the same."""
    hard_struck = []
    for name in ("aspects-compare", "scifact-v4", "scifact-v5", "temperature-compare"):
        drawn, labels = read_audit(name)
        for negative_id in MANGLED_ABBREVIATIONS.get(name, []):
            record = drawn[negative_id]
            assert labels[negative_id] == "broken"
            assert abbreviation_conflicts(record["negative"], record["query"], record["positive"]), negative_id
        hard_struck += [i for i, label in labels.items() if label == "hard" and abbreviation_conflicts(
            drawn[i]["negative"], drawn[i]["query"], drawn[i]["positive"])]
    assert hard_struck == ["syn-4eeca2d70684042c"]


@pytest.mark.parametrize("dataset", ["scifact", "nfcorpus"])
def test_every_real_positive_agrees_with_its_own_pair(dataset, scifact_path, nfcorpus_path):
    from syneg.data import load_beir

    data = load_beir({"scifact": scifact_path, "nfcorpus": nfcorpus_path}[dataset], "train")
    positives = sorted((query_id, doc_id) for query_id, judged in data.qrels.items() for doc_id, score in judged.items()
                       if score > 0 and doc_id in data.corpus)
    positives = random.Random(0).sample(positives, min(3000, len(positives)))  # NFCorpus judges 110,575 pairs
    assert not [pair for pair in positives if abbreviation_conflicts(
        data.corpus[pair[1]].full_text, data.queries[pair[0]], data.corpus[pair[1]].full_text)]


def test_few_real_abstracts_clash_with_a_pairs_abbreviations(scifact_path):
    """bench/abbreviation_check.py on the real datasets: real abstracts that write one of a train pair's
    abbreviations, held to that pair, are struck rarely (they use ER for another receptor; 1.7% and 1.9%)."""
    import subprocess
    import sys

    root = Path(__file__).parents[2]
    run = subprocess.run([sys.executable, str(root / "bench" / "abbreviation_check.py"), "--datasets",
                          str(scifact_path.parent), "--json", "--pairs", "200"], capture_output=True, text=True, check=True)
    figures = json.loads(run.stdout)
    for name, counts in figures["real_abstracts"].items():
        assert counts["checked"] > 500 and counts["struck"] < 0.03 * counts["checked"], (name, counts)
    assert figures["audits"]["scifact-v4"]["broken struck"] >= 5


@pytest.mark.parametrize(("negative", "reason"), [
    ("Macromia, a macronutrient excess, in infants.", "it writes 'Macromia' where the reference text has 'macrosomia'"),
    ("Adjuant tamoxifen and CYP2D6 polomorphisms.", "it writes 'Adjuant' where the reference text has 'adjuvant'"),
    ("Telomeres and the Tetromere complex.", "it writes 'Tetromere' where the reference text has 'telomere'"),
])
def test_a_misspelt_word_of_the_pair_is_rejected_with_the_word_it_misspells(negative, reason):
    positive = "Fetal macrosomia after adjuvant tamoxifen: CYP2D6 polymorphisms and the telomere of the mother."
    problems = misspelled_terms(negative, "", positive)
    assert problems and problems[0] == reason


@pytest.mark.parametrize(("negative", "positive"), [
    ("Hyperthyroidism in older adults.", "Hypothyroidism in older adults."),  # another disease, a hard negative
    ("Macrosomic infants of diabetic mothers.", "Fetal macrosomia."),  # another ending of the same word
    ("Haemoglobin levels in anaemia.", "Hemoglobin levels in anemia."),  # British spelling
    ("Autoinflammatory disease markers.", "Proinflammatory cytokine markers."),  # another prefix
    ("Inhospital mortality after stroke.", "Hospital mortality after stroke."),  # a compound of the word
    ("Osteonaecrotic lesions of the jaw.", "Osteonecrotic lesions of the jaw."),  # British ae in a word no list knows
])
def test_real_words_near_the_pairs_words_pass(negative, positive):
    assert misspelled_terms(negative, "", positive) == []


# Broken negatives of the rubric-v5 audits whose key word is misspelt throughout.
MISSPELT_TERMS = {
    "aspects-compare-31-50": ["syn-6796b87472f33e6b", "syn-35250e1c7d8caa08"],  # Macromia
    "scifact-v5": ["syn-75e16eb275d69c92"],  # adjuant, polomorphisms
    "temperature-compare": ["syn-c10c68b1f47802af", "syn-75e16eb275d69c92", "syn-28cdd4ddffca886e"],
}


def test_the_audited_misspelt_key_words_are_rejected_and_nothing_else_of_the_rubric_v5_audits():
    """Each listed broken text is rejected; of the texts the rubric-v5 readers did not label broken, the check
    strikes two, both misspellings of the pair's word all the same ("sydromes", "Glucon")."""
    struck_other = []
    for name in ("aspects-compare", "aspects-compare-31-50", "scifact-v4", "scifact-v5", "temperature-compare"):
        drawn, labels = read_audit(name)
        for negative_id in MISSPELT_TERMS.get(name, []):
            record = drawn[negative_id]
            assert labels[negative_id] == "broken"
            assert misspelled_terms(record["negative"], record["query"], record["positive"]), negative_id
        struck_other += [misspelled_terms(drawn[i]["negative"], drawn[i]["query"], drawn[i]["positive"])[0].split("'")[1]
                         for i, label in labels.items() if label != "broken"
                         and misspelled_terms(drawn[i]["negative"], drawn[i]["query"], drawn[i]["positive"])]
    assert sorted(struck_other) == ["Glucon", "sydromes"]


def test_few_real_abstracts_on_a_pairs_subject_read_as_its_words_misspelt(scifact_path):
    """bench/spelling_check.py on the real datasets: real abstracts that write one of a train pair's rare words,
    held to that pair, are struck rarely (homocystine against homocysteine; 0.2%), and the audited misspellings are."""
    import subprocess
    import sys

    root = Path(__file__).parents[2]
    run = subprocess.run([sys.executable, str(root / "bench" / "spelling_check.py"), "--datasets",
                          str(scifact_path.parent), "--json", "--pairs", "200"], capture_output=True, text=True, check=True)
    figures = json.loads(run.stdout)[f"{MISSPELLING_SIMILARITY:.2f}"]
    for name, counts in figures["real_abstracts"].items():
        assert counts["checked"] > 500 and counts["struck"] < 0.01 * counts["checked"], (name, counts)
    assert figures["audits"]["temperature-compare"]["broken struck"] >= 3
