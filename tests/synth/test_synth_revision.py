"""The reflect-write-check-revise loop, with a scripted backend whose answers are known in advance.

Tests of what a revision request carries ask for one aspect per reflection: with the default three, the
rounds after a rejection write the spare aspects first (the tests with ``AspectsBackend``)."""

from __future__ import annotations

import json
import re

from syneg.llm import ChatRequest, Completion, LLMClient
from syneg.synth import AttributeSet, CheckConfig, Pair, Synthesizer

PAIR = Pair(
    "q1",
    "How long does caffeine stay in the body?",
    "d1",
    "Caffeine metabolism. Caffeine has a half-life of about five hours in healthy adults, so a quarter of a dose "
    "is still present ten hours later. Pregnancy and some medicines slow its clearance.",
)
ECHO = ("This passage does not answer the query about caffeine in the body because it is about something else "
        "entirely, namely the history of coffee houses in Europe and the trade routes that brought the beans there.")
GOOD = ("Caffeine is found in coffee, tea, cocoa and many soft drinks. A cup of brewed coffee holds about ninety "
        "milligrams of caffeine, while black tea holds roughly half as much, and decaffeinated coffee still keeps a few milligrams.")


class ScriptedBackend:
    name = "scripted"
    model = "script"

    def __init__(self, negatives: list[str]) -> None:
        self.negatives = list(negatives)
        self.prompts: list[str] = []

    async def complete(self, request: ChatRequest) -> Completion:
        self.prompts.append(request.messages[-1][1])
        properties = (request.schema or {}).get("properties", {})
        if "answers_query" in properties:
            text = json.dumps({"reason": "it names caffeine", "answers_query": True})
        elif "aspect" in properties:
            text = json.dumps({"topic": "caffeine", "aspect": "caffeine in drinks", "reasoning": "Same substance, no half-life."})
        elif "aspects" in properties:  # several aspects from one reflection (the default): the same one, untitled
            aspect = {"aspect": "caffeine in drinks", "reasoning": "Same substance, no half-life.", "title": ""}
            text = json.dumps({"topic": "caffeine", "aspects": [aspect] * properties["aspects"]["minItems"]})
        elif request.schema is None:  # the passage is asked for as free text
            text = self.negatives.pop(0)
        else:
            text = json.dumps({"negative": self.negatives.pop(0)})
        return Completion(text=text, prompt_tokens=10, completion_tokens=10, latency=0.01)

    async def aclose(self) -> None:
        pass


def test_failed_candidate_is_revised_with_the_reasons(tmp_path, encoder):
    backend = ScriptedBackend([ECHO, GOOD])
    synthesizer = Synthesizer(LLMClient(backend), attributes=AttributeSet(domain=["Pharmacology"]), max_rounds=2,
                              encoder=encoder, aspects_per_reflection=1)
    stats = synthesizer.run([PAIR], tmp_path / "out.jsonl", show_progress=False)
    assert stats["candidates"] == 2 and stats["accepted"] == 1 and stats["rejected"] == 1
    assert stats["check_failures"] == {"not_echo": 1} and stats["rounds_of_accepted"] == {"1": 1}
    _reflect, write, revised_reflect, revised_write = backend.prompts
    assert "rejected because" in revised_reflect and "talks about the task" in revised_reflect
    assert "rejected" not in revised_write and revised_write == write  # small models copy what they are shown
    assert ECHO not in revised_reflect
    line = json.loads((tmp_path / "out.jsonl").read_text())
    details = line["neg_details"][0]
    assert line["neg"] == [GOOD] and line["neg_sources"] == ["synthetic"]
    assert details["rounds"] == 1 and details["aspect"] == "caffeine in drinks"
    assert details["attributes"]["domain"] == "Pharmacology" and details["generator"] == "scripted:script"
    # The candidate turned down on the way is kept with its checks, for `syneg view`.
    [rejected] = details["rejected"]
    assert rejected["round"] == 0 and rejected["text"] == ECHO and rejected["aspect"] == "caffeine in drinks"
    assert rejected["checks"]["not_echo"]["passed"] is False and rejected["checks"]["on_topic"]["passed"] is True
    assert "You are an expert in Pharmacology." in json.dumps(synthesizer.templates.render("system", domain="Pharmacology"))


def test_slot_fails_after_max_rounds(tmp_path, encoder):
    synthesizer = Synthesizer(LLMClient(ScriptedBackend([ECHO] * 3)), max_rounds=2, encoder=encoder)
    stats = synthesizer.run([PAIR], tmp_path / "out.jsonl", show_progress=False)
    assert stats["candidates"] == 3 and stats["accepted"] == 0 and stats["failed_slots"] == 1
    assert json.loads((tmp_path / "out.jsonl").read_text())["neg"] == []  # the pair is recorded as done


def test_torn_last_line_is_redone(tmp_path, encoder):
    output = tmp_path / "out.jsonl"
    Synthesizer(LLMClient(ScriptedBackend([GOOD])), encoder=encoder).run([PAIR], output, show_progress=False)
    complete = output.read_text()
    output.write_text(complete + complete[:40])  # a run killed mid-write
    stats = Synthesizer(LLMClient(ScriptedBackend([GOOD])), encoder=encoder).run([PAIR], output, show_progress=False)
    assert stats["skipped_pairs"] == 1 and output.read_text() == complete


def test_enforced_critique_fails_a_candidate_the_llm_says_answers(tmp_path, encoder):
    synthesizer = Synthesizer(LLMClient(ScriptedBackend([GOOD])), max_rounds=0, critique="enforce", encoder=encoder)
    stats = synthesizer.run([PAIR], tmp_path / "out.jsonl", show_progress=False)
    assert stats["accepted"] == 0 and stats["check_failures"] == {"llm_critique": 1}


def test_recorded_critique_is_kept_in_details(tmp_path, encoder):
    synthesizer = Synthesizer(LLMClient(ScriptedBackend([GOOD])), max_rounds=0, critique="record", encoder=encoder)
    synthesizer.run([PAIR], tmp_path / "out.jsonl", show_progress=False)
    details = json.loads((tmp_path / "out.jsonl").read_text())["neg_details"][0]
    assert details["critique"] == {"answers_query": True, "reason": "it names caffeine"}
    assert "llm_critique" not in details["checks"]


def test_pair_whose_positive_scores_below_zero_costs_no_llm_call(tmp_path, encoder):
    # NFCorpus judges "delta waves" answered by an abstract on soy and green tea: no text can be on
    # topic (half the positive's score) and below the positive (95% of it) at once.
    unrelated = Pair("q2", "delta waves", "d2", "Soy and green tea lowered total cholesterol in dyslipidemic subjects "
                     "over ninety days, and both raised the total antioxidant potential of their plasma.")
    backend = ScriptedBackend([GOOD])
    synthesizer = Synthesizer(LLMClient(backend), encoder=encoder)
    query_vector = encoder.encode_queries([unrelated.query])[0]
    assert float(query_vector @ encoder.encode_documents([unrelated.positive])[0]) <= 0
    stats = synthesizer.run([unrelated, PAIR], tmp_path / "out.jsonl", show_progress=False)
    assert stats["empty_window_pairs"] == 1 and stats["pairs"] == 2 and stats["accepted"] == 1
    assert all("delta waves" not in prompt for prompt in backend.prompts)
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert {r["query_id"]: r["neg"] for r in records} == {"q2": [], "q1": [GOOD]}


def test_a_text_of_the_wrong_length_is_rewritten_from_the_same_reflection_with_one_part_more(tmp_path, encoder):
    short = "Caffeine is found in coffee, tea and cocoa, and in many soft drinks sold worldwide."
    backend = ScriptedBackend([short, GOOD])
    stats = Synthesizer(LLMClient(backend), max_rounds=2, encoder=encoder).run([PAIR], tmp_path / "out.jsonl",
                                                                              show_progress=False)
    assert stats["accepted"] == 1 and stats["check_failures"] == {"length": 1}
    reflect, write, rewrite = backend.prompts  # no second reflection: the aspect was sound
    assert "JSON" in reflect and "one plain paragraph" in write and "in 2 parts" in rewrite
    assert "rejected" not in rewrite


def test_a_misspelt_word_of_the_pair_goes_back_to_the_reflection_with_the_word_it_misspells(tmp_path, encoder):
    """Not rewritten from the same reflection: a 0.5B model's misspelling is often in its aspect already."""
    misspelt = GOOD.replace("Caffeine is found", "Cafeine is found")
    backend = ScriptedBackend([misspelt, GOOD])
    stats = Synthesizer(LLMClient(backend), max_rounds=2, encoder=encoder, aspects_per_reflection=1).run(
        [PAIR], tmp_path / "out.jsonl", show_progress=False)
    assert stats["accepted"] == 1 and stats["check_failures"] == {"terms_spelled": 1}
    _reflect, _write, revised_reflect, _rewrite = backend.prompts
    assert "it writes 'Cafeine' where the reference text has 'caffeine'" in revised_reflect


class TitlesBackend(ScriptedBackend):
    """Answers each reflection with the next of ``titles``."""

    def __init__(self, negatives: list[str], titles: list[str]) -> None:
        super().__init__(negatives)
        self.titles = list(titles)

    async def complete(self, request: ChatRequest) -> Completion:
        if "title" in (request.schema or {}).get("properties", {}):
            self.prompts.append(request.messages[-1][1])
            text = json.dumps({"topic": "caffeine", "aspect": "caffeine in drinks", "reasoning": "Same substance.",
                               "title": self.titles.pop(0)})
            return Completion(text=text, prompt_tokens=10, completion_tokens=10, latency=0.01)
        return await super().complete(request)


def test_a_title_cut_at_the_grammars_cap_keeps_its_whole_words_only():
    import asyncio

    from syneg.synth.prompts import PromptTemplates
    from syneg.synth.writing import TITLE_MAX_CHARS, CandidateWriter

    whole = "Caffeine content of coffee, tea, cocoa and soft drinks across brands, brewing methods and serving sizes in the"
    title = (whole + " European markets and their main determinants")[:TITLE_MAX_CHARS]
    assert len(title) == TITLE_MAX_CHARS and title.endswith(" determi")
    backend = TitlesBackend([GOOD], [title])
    writer = CandidateWriter(LLMClient(backend), PromptTemplates(), "none", "two-step", max_tokens=400, temperature=0.7)
    attributes = {"domain": "Pharmacology", "difficulty": "expert", "length": "a short paragraph"}
    candidate = asyncio.run(writer.write(PAIR, attributes, target_words=40, seed=0, follow_up=""))
    write = backend.prompts[-1]
    assert "European markets and their main" in write and "determi" not in write
    assert candidate.text.startswith(title.removesuffix(" determi") + " ") and "determi" not in candidate.text
    assert candidate.notes[0] == "title cut to its whole words"
    # A title under the cap is left whole.
    backend = TitlesBackend([GOOD], [whole])
    writer = CandidateWriter(LLMClient(backend), PromptTemplates(), "none", "two-step", max_tokens=400, temperature=0.7)
    candidate = asyncio.run(writer.write(PAIR, attributes, target_words=40, seed=0, follow_up=""))
    assert candidate.text.startswith(whole + " ") and "title cut to its whole words" not in candidate.notes


def test_a_reflection_whose_title_already_matches_the_query_is_not_written_out(tmp_path, encoder):
    """A title that alone scores above max_title_ratio times the positive's query similarity foretells a
    passage the 95% rule rejects: the passage is not asked for, and the next round reflects again."""
    backend = TitlesBackend([GOOD], [PAIR.query, "Caffeine in drinks"])
    synthesizer = Synthesizer(LLMClient(backend), attributes=AttributeSet(domain=["Pharmacology"]), max_rounds=1,
                              encoder=encoder, aspects_per_reflection=1)
    stats = synthesizer.run([PAIR], tmp_path / "out.jsonl", show_progress=False)
    assert stats["title_rejections"] == 1 and stats["candidates"] == 1 and stats["accepted"] == 1, stats["check_failures"]
    first_reflect, second_reflect, write = backend.prompts
    assert "rejected because" in second_reflect and "matches the query as well as the answer" in second_reflect
    assert "Caffeine in drinks" in write and PAIR.query not in write
    details = json.loads((tmp_path / "out.jsonl").read_text())["neg_details"][0]
    [rejected] = details["rejected"]
    assert rejected["title_only"] is True and rejected["text"] == PAIR.query
    check = rejected["checks"]["title_below_positive"]
    assert check["passed"] is False and check["value"] > check["threshold"]
    # With the check turned off (a large ratio) the first title is written out.
    backend = TitlesBackend([GOOD, GOOD], [PAIR.query, "Caffeine in drinks"])
    synthesizer = Synthesizer(LLMClient(backend), attributes=AttributeSet(domain=["Pharmacology"]), max_rounds=1,
                              encoder=encoder, checks=CheckConfig(max_title_ratio=100.0))
    stats = synthesizer.run([PAIR], tmp_path / "off.jsonl", show_progress=False)
    assert stats["title_rejections"] == 0 and stats["candidates"] >= 1


def test_a_title_cut_at_the_cap_does_not_end_on_a_word_that_leaves_it_hanging():
    """The third audit read a title cut at the cap that ended "... the prioritisation process of patients with"."""
    import asyncio

    from syneg.synth.prompts import PromptTemplates
    from syneg.synth.writing import TITLE_MAX_CHARS, CandidateWriter

    kept = ("The effectiveness and cost effectiveness of using information from circulating biomarkers to inform the "
            "prioritisation process of patients")
    hanging = kept + " with the"
    title = f"{hanging} {'corona'[: TITLE_MAX_CHARS - len(hanging) - 1]}"  # the grammar stops mid-word at the cap
    assert len(title) == TITLE_MAX_CHARS
    backend = TitlesBackend([GOOD], [title])
    writer = CandidateWriter(LLMClient(backend), PromptTemplates(), "none", "two-step", max_tokens=400, temperature=0.7)
    attributes = {"domain": "Pharmacology", "difficulty": "expert", "length": "a short paragraph"}
    candidate = asyncio.run(writer.write(PAIR, attributes, target_words=40, seed=0, follow_up=""))
    assert candidate.text.startswith(kept + " " + GOOD[:10])


class FieldsBackend(ScriptedBackend):
    """Answers the reflection with the given topic, aspect and title."""

    def __init__(self, negatives: list[str], topic: str, aspect: str, title: str) -> None:
        super().__init__(negatives)
        self.fields = {"topic": topic, "aspect": aspect, "reasoning": "Same field.", "title": title}

    async def complete(self, request: ChatRequest) -> Completion:
        if "title" in (request.schema or {}).get("properties", {}):
            return Completion(text=json.dumps(self.fields), prompt_tokens=10, completion_tokens=10, latency=0.01)
        return await super().complete(request)  # keeps the write prompt


def test_a_topic_or_aspect_cut_at_the_cap_and_the_title_that_copies_its_end_keep_their_whole_words():
    """The second SciFact pass read "Risk of Immunosuppressive Therapy in Cancer Mortality in O": the grammar
    closed the topic at 60 characters mid-word, the title copied its broken end, the passage copied the title."""
    import asyncio

    from syneg.synth.prompts import PromptTemplates
    from syneg.synth.writing import ASPECT_MAX_CHARS, TOPIC_MAX_CHARS, CandidateWriter

    topic = "Impact of Immunosuppressive Therapy on Cancer Mortality in Ocular"[:TOPIC_MAX_CHARS]
    aspect = ("The topic is related to the study of neurology and the effects of caffeine on adenosine")[:ASPECT_MAX_CHARS]
    assert topic.endswith(" in O") and aspect.endswith(" on ad")
    attributes = {"domain": "Pharmacology", "difficulty": "expert", "length": "a short paragraph"}
    backend = FieldsBackend([GOOD], topic, aspect, "Risk of Immunosuppressive Therapy in Cancer Mortality in O")
    writer = CandidateWriter(LLMClient(backend), PromptTemplates(), "none", "two-step", max_tokens=400, temperature=0.7)
    candidate = asyncio.run(writer.write(PAIR, attributes, target_words=40, seed=0, follow_up=""))
    [write] = backend.prompts
    assert "Cancer Mortality" in write and "effects of caffeine" in write
    assert " in O" not in write and " on ad" not in write
    assert candidate.text.startswith("Risk of Immunosuppressive Therapy in Cancer Mortality " + GOOD[:10])
    assert candidate.notes[:3] == ["topic cut to its whole words", "aspect cut to its whole words",
                                   "title cut to its whole words"]
    # trim_cut_fields=False asks as runs before it did (the committed caches hold those requests): the title alone.
    backend = FieldsBackend([GOOD], topic, aspect, "Risk of Immunosuppressive Therapy in Cancer Mortality in O")
    writer = CandidateWriter(LLMClient(backend), PromptTemplates(), "none", "two-step", max_tokens=400, temperature=0.7,
                             trim_cut_fields=False)
    candidate = asyncio.run(writer.write(PAIR, attributes, target_words=40, seed=0, follow_up=""))
    assert " in O" in backend.prompts[0] and " on ad" in backend.prompts[0]
    assert not any("cut to its whole words" in note for note in candidate.notes)
    # A cap that falls right after a whole word: the capped field keeps its whole words, but a title that ends
    # like it ends with a whole word too and is left alone; a field over its cap was not held to it (no grammar).
    from syneg.synth.writing import Reflection, cut_fields

    whole_end = "Strict glycaemic control and cardiovascular outcomes in type 2 diabetes mellitus"
    assert len(whole_end) == ASPECT_MAX_CHARS and whole_end.endswith(" diabetes mellitus")
    assert cut_fields(Reflection(topic="Diabetes", aspect=whole_end, reasoning="", title="Insulin in type 2 diabetes mellitus")) == [
        "aspect"]
    over = "A topic the model wrote without a grammar, longer than sixty characters in all"
    assert len(over) > TOPIC_MAX_CHARS and cut_fields(Reflection(topic=over, aspect="Risk", reasoning="", title="Risk")) == []
    # Fields under their caps are written as they are, even when a title ends like a topic.
    backend = FieldsBackend([GOOD], "Immunosuppressive Therapy in O", "Risk", "Risk of Therapy in O")
    writer = CandidateWriter(LLMClient(backend), PromptTemplates(), "none", "two-step", max_tokens=400, temperature=0.7)
    candidate = asyncio.run(writer.write(PAIR, attributes, target_words=40, seed=0, follow_up=""))
    assert candidate.text.startswith("Risk of Therapy in O " + GOOD[:10])
    assert not any("cut to its whole words" in note for note in candidate.notes)


class AspectsBackend(ScriptedBackend):
    """Answers each ``reflect_many`` request with one aspect per title of the next list of ``reflections``."""

    def __init__(self, negatives: list[str], reflections: list[list[str]]) -> None:
        super().__init__(negatives)
        self.answers = list(reflections)
        self.reflections = 0

    async def complete(self, request: ChatRequest) -> Completion:
        if "aspects" in (request.schema or {}).get("properties", {}):
            self.reflections += 1
            self.prompts.append(request.messages[-1][1])
            aspects = [{"aspect": f"aspect {i}", "reasoning": "Same substance.", "title": title}
                       for i, title in enumerate(self.answers.pop(0))]
            return Completion(text=json.dumps({"topic": "caffeine", "aspects": aspects}), prompt_tokens=10,
                              completion_tokens=10, latency=0.01)
        return await super().complete(request)


def aspects_synthesizer(backend: AspectsBackend, encoder, **options) -> Synthesizer:
    return Synthesizer(LLMClient(backend), attributes=AttributeSet(domain=["Pharmacology"]), encoder=encoder,
                       aspects_per_reflection=3, **({"max_rounds": 2} | options))


def test_one_reflection_of_several_aspects_serves_the_rounds_after_a_rejected_passage(tmp_path, encoder):
    """``aspects_per_reflection``: the titles are checked at once, one that matches the query is never written
    out, and a passage turned down for its aspect is followed by the next spare aspect, not a new reflection;
    the on-topic title furthest below the cap goes first."""
    titles = [PAIR.query, "Caffeine in tea", "Caffeine in cocoa"]  # short: the passage stays within 1.3x its positive
    backend = AspectsBackend([ECHO, GOOD], [titles])
    stats = aspects_synthesizer(backend, encoder).run([PAIR], tmp_path / "out.jsonl", show_progress=False)
    assert backend.reflections == 1 and stats["requests"] == 3, stats
    assert stats["title_rejections"] == 1 and stats["candidates"] == 2 and stats["accepted"] == 1
    [reflect, first_write, second_write] = backend.prompts
    assert "3 other aspects" in reflect
    query = encoder.encode_queries([PAIR.query])[0]
    similarity = {title: float(encoder.encode_documents([title])[0] @ query) for title in titles[1:]}
    lower, higher = sorted(titles[1:], key=similarity.get)
    assert lower in first_write and higher in second_write and PAIR.query not in first_write + second_write
    details = json.loads((tmp_path / "out.jsonl").read_text())["neg_details"][0]
    title_rejection, echo = details["rejected"]
    assert title_rejection["title_only"] is True and title_rejection["text"] == PAIR.query
    assert echo["text"].endswith(ECHO) and details["rounds"] == 1


def test_when_every_proposed_title_matches_the_query_the_next_round_reflects_again(tmp_path, encoder):
    backend = AspectsBackend([GOOD], [[PAIR.query, PAIR.query + " Yes.", PAIR.query], ["Caffeine in tea"] * 3])
    stats = aspects_synthesizer(backend, encoder).run([PAIR], tmp_path / "out.jsonl", show_progress=False)
    assert backend.reflections == 2 and stats["title_rejections"] == 3 and stats["accepted"] == 1
    first_reflect, second_reflect, _write = backend.prompts
    assert "rejected because" not in first_reflect and "matches the query as well as the answer" in second_reflect


def test_a_passage_of_the_wrong_length_is_rewritten_before_a_spare_aspect_is_used(tmp_path, encoder):
    """A length failure is the writing's, not the aspect's: the same aspect is written again, the spares wait."""
    too_long = GOOD + (" Green tea leaves are steamed, rolled and dried within hours of picking, which keeps their colour,"
                       " while black tea leaves are left to oxidise until they darken and lose most of their grassy taste.")
    backend = AspectsBackend([too_long, ECHO, GOOD], [["Caffeine in tea", "Caffeine in cocoa", "Caffeine in cola"]])
    stats = aspects_synthesizer(backend, encoder, max_rounds=3).run([PAIR], tmp_path / "out.jsonl", show_progress=False)
    assert backend.reflections == 1 and stats["candidates"] == 3 and stats["accepted"] == 1, stats
    assert stats["check_failures"]["length"] == 1 and stats["check_failures"]["not_echo"] == 1
    first, rewrite, next_aspect = (re.search(r'article "([^"]+)"', write).group(1) for write in backend.prompts[1:])
    assert first == rewrite and next_aspect != first  # the echo was the aspect's failure: the next spare aspect


def test_a_reflection_that_proposes_no_aspect_costs_its_round_not_the_run(tmp_path, encoder):
    """Without a grammar a backend may answer an empty list: an LLM error of that round, not a crash."""
    backend = AspectsBackend([GOOD], [[], ["Caffeine in tea"] * 3])
    stats = aspects_synthesizer(backend, encoder).run([PAIR], tmp_path / "out.jsonl", show_progress=False)
    assert stats["llm_errors"] == 1 and backend.reflections == 2 and stats["accepted"] == 1


def test_aspects_per_reflection_is_bounded():
    import pytest

    from syneg.synth import SynthesizeOptions

    with pytest.raises(ValueError, match="aspects_per_reflection must be 1 to 5, not 6"):
        Synthesizer(LLMClient(ScriptedBackend([])), aspects_per_reflection=6)
    with pytest.raises(ValueError, match="less than or equal to 5"):
        SynthesizeOptions(aspects_per_reflection=6)
    for unreflected in ({"prompt_style": "single"}, {"ablation": "no-attributes-no-reflection"}):
        with pytest.raises(ValueError, match="needs a reflection"):
            SynthesizeOptions(aspects_per_reflection=2, **unreflected)
        with pytest.raises(ValueError, match="needs a reflection"):
            Synthesizer(LLMClient(ScriptedBackend([])), aspects_per_reflection=2, **unreflected)


def test_a_mangled_abbreviation_goes_back_to_the_reflection_with_the_positives_own(tmp_path, encoder):
    """Small models gloss the pair's abbreviations with invented expansions; the revision request names it."""
    pair = Pair(PAIR.query_id, PAIR.query, PAIR.pos_id, PAIR.positive.replace(
        "Caffeine has a half-life", "Cytochrome P450 1A2 (CYP1A2) clears it: caffeine has a half-life"))
    mangled = GOOD.replace("Caffeine is found", "Caffeine, cleared by CYP1A2 (Caffeine Yield Protein), is found")
    backend = ScriptedBackend([mangled, GOOD])
    stats = Synthesizer(LLMClient(backend), max_rounds=2, encoder=encoder, aspects_per_reflection=1).run([pair], tmp_path / "out.jsonl",
                                                                                 show_progress=False)
    assert stats["check_failures"] == {"abbreviations_match": 1} and stats["accepted"] == 1
    revised_reflect = backend.prompts[2]
    assert "it expands CYP1A2 as 'Caffeine Yield Protein', which does not spell it" in revised_reflect
