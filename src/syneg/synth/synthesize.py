"""The SyNeg synthesis loop: prompt with attributes, reason, check, revise, keep.

For each (query, positive) pair and each of ``negatives_per_pair`` slots:

1. draw attribute values (domain, difficulty, length, extras) for the slot;
2. reflect: ask the LLM, acting as an expert in the domain, for JSON naming the topic, an aspect of it
   that the positive does not cover, and why a reader could mistake it for the answer (the paper's
   reasoning section);
3. write: ask for the text about that aspect, at the drawn difficulty and length (``prompt_style=
   "single"`` asks for reasoning and text in one answer instead, as the paper's prompt does);
4. run the checks (:mod:`syneg.synth.checks`) and, if asked, the LLM's own critique;
5. if any fails, send the reasons back for a revision, up to ``max_rounds`` times.

A kept negative carries its attributes, reasoning, every check's value and verdict, its revision
rounds, the candidates rejected on the way (``rejected``: each round's text, aspect, reasoning and
checks) and the generator in ``details``, and its dense similarity to the query as ``score``. Results
are written as training-set jsonl (:mod:`syneg.data.training_set`), one record per pair, as each pair
finishes; pairs already in the output file are skipped, and answered LLM requests come from the cache,
so a killed run resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

import numpy as np
from pydantic import BaseModel

from syneg.data import (
    BeirDataset,
    DataError,
    Negative,
    TrainingInstance,
    read_training_set,
    write_training_set,
)
from syneg.llm import ChatRequest, LLMClient, LLMError
from syneg.progress import Progress
from syneg.synth.attributes import AttributeSet
from syneg.synth.checks import (
    SENTENCE_FINAL,
    CheckConfig,
    CheckResult,
    ngrams,
    run_checks,
    sentences,
    similarity_window,
    words,
)
from syneg.synth.options import SYNTHESIZE, Ablation, Critique, PromptStyle
from syneg.synth.prompts import PromptTemplates


@dataclass(frozen=True)
class Pair:
    query_id: str
    query: str
    pos_id: str
    positive: str


class NegativeAnswer(BaseModel):
    aspect: str
    reasoning: str
    negative: str


class PlainNegativeAnswer(BaseModel):
    negative: str


class CritiqueAnswer(BaseModel):
    reason: str = ""
    answers_query: bool


class Reflection(BaseModel):
    topic: str
    aspect: str
    reasoning: str
    # The passage's title: asked with the reflection, since a small model told to write a title and an
    # abstract often stops after the title.
    title: str = ""


# Reasoning comes before the text (the paper's reflection); naming the aspect first keeps small
# models writing about it rather than about the task.
REFLECTION_PROPERTIES: dict[str, Any] = {
    "aspect": {"type": "string", "minLength": 3, "maxLength": 80},
    "reasoning": {"type": "string", "maxLength": 240},
}


# Failures of the writing, not of the aspect: the next round rewrites from the same reflection.
REWRITE_ONLY_FAILURES = {"length", "not_degenerate"}


CRITIQUE_SCHEMA = {
    "type": "object",
    "properties": {"reason": {"type": "string", "maxLength": 200}, "answers_query": {"type": "boolean"}},
    "required": ["reason", "answers_query"],
}


# The positive as the prompts show it: its title and first sentences name the subject, and a CPU model
# reads a prompt token at a time.
PROMPT_POSITIVE_WORDS = 120
# Generation budget of a passage per target word: English scientific prose runs 1.3-1.5 tokens a word.
TOKENS_PER_WORD = 1.6
# A 0.5B model writes 60-70 words per part of a structured abstract whatever length it is asked for,
# so the length attribute is met by asking for as many parts as the positive's length needs.
WORDS_PER_SECTION = 65
# llama.cpp's long-standing default: without it, 3 of the 7 passages of the second SciFact pilot looped.
REPEAT_PENALTY = 1.1
SECTIONS = {
    1: (),
    2: ("BACKGROUND", "CONCLUSIONS"),
    3: ("BACKGROUND", "RESULTS", "CONCLUSIONS"),
    4: ("BACKGROUND", "METHODS", "RESULTS", "CONCLUSIONS"),
    5: ("BACKGROUND", "OBJECTIVE", "METHODS", "RESULTS", "CONCLUSIONS"),
}
_SECTION_LABEL = re.compile(
    r"^\s*(?:#+\s*)?(?:\*\*|__)?\s*(BACKGROUND|OBJECTIVES?|METHODS?|RESULTS?|CONCLUSIONS?|Background|Objectives?|Methods?|"
    r"Results?|Conclusions?)\s*(?:\*\*|__)?\s*:?\s*(?:\*\*|__)?\s*"
)
_LABEL = re.compile(r"^\s*(?:#+\s*)?(?:\*\*|__)?\s*(?:title|abstract|summary)\s*(?:\*\*|__)?\s*[:.-]\s*", re.IGNORECASE)
# "Part 2: Conclusions": the model numbers the parts the prompt asks for, which no corpus abstract does.
_PART_NUMBER = re.compile(r"^\s*(?:#+\s*)?(?:\*\*|__)?\s*(?:part|section)\s+\d+\s*[:.-]?\s*(?:\*\*|__)?\s*", re.IGNORECASE)
# A sentence whose word trigrams were mostly written before restates earlier text: the 0.5B model, out
# of things to say, starts the abstract again under the next part's label.
REPEATED_SENTENCE_SHARE = 0.5
_LIST_MARKER = re.compile(r"^\s*(?:[-*+\u2022]|\d+[.)])\s+")
_MARKUP = re.compile(r"\*\*|__|^\s*#+\s*|`", re.MULTILINE)
_LAST_SENTENCE_END = re.compile(".*" + SENTENCE_FINAL + r"(?=\s|$)", re.DOTALL)
# Section labels inside an abstract, as structured corpus abstracts have them ("... CONTEXT High ...").
_INLINE_LABELS = re.compile(r"\b(?:BACKGROUND|OBJECTIVES?|METHODS?|RESULTS?|CONCLUSIONS?|CONTEXT|DESIGN|AIMS?|PURPOSE)\b")


def is_structured(text: str) -> bool:
    """Whether a passage is a structured abstract (two or more capitalized section labels), as 18% of SciFact's are.

        >>> is_structured("CONTEXT Homocysteine is a risk factor. OBJECTIVE To test folic acid."), is_structured("Plain text.")
        (True, False)
    """
    return len(_INLINE_LABELS.findall(text)) >= 2


def sections_for(target_words: int) -> int:
    """How many parts to ask for so that the abstract comes out near ``target_words``."""
    return clamped_sections(round(target_words / WORDS_PER_SECTION))


def clamped_sections(count: int) -> int:
    return max(1, min(len(SECTIONS), count))


def as_passage(raw: str, keep_section_labels: bool = False) -> tuple[str, list[str]]:
    """A model's title-and-abstract answer in the corpus's own form, with notes of what was changed.

    Corpus passages are ``title text`` in plain prose (:attr:`syneg.data.Document.full_text`), so
    markdown, "Title:" / "Abstract:" labels and list markers, which only generated text has, are
    removed; section labels are kept inline in capitals, as structured corpus abstracts have them, only
    when ``keep_section_labels`` (the positive is structured too); an unfinished last sentence (the
    token budget ran out) is cut. Each change is noted, and the notes are kept in the negative's details.

        >>> as_passage("**Title:** Telomere length\\n\\nAbstract: Telomeres shorten. Cells then stop dividing and")
        ('Telomere length Telomeres shorten.', ['labels removed', 'markdown removed', 'unfinished sentence cut (5 words)'])
        >>> as_passage("Telomere length\\nBACKGROUND\\nTelomeres shorten.\\n**Results:** They do.", keep_section_labels=True)[0]
        'Telomere length BACKGROUND Telomeres shorten. RESULTS They do.'
    """
    notes: list[str] = []
    lines = [line for line in raw.strip().splitlines() if line.strip()]
    if any(_LABEL.match(line) for line in lines):
        notes.append("labels removed")
        lines = [_LABEL.sub("", line) for line in lines]
    if any(_PART_NUMBER.match(line) for line in lines):
        notes.append("part numbers removed")
        lines = [_PART_NUMBER.sub("", line) for line in lines]
        lines = [line for line in lines if line.strip()]
    labelled = [_SECTION_LABEL.match(line) for line in lines]
    if any(labelled):
        notes.append("section labels in capitals" if keep_section_labels else "section labels removed")
        lines = [
            (f"{match.group(1).upper()} " if keep_section_labels else "") + line[match.end() :] if match else line
            for line, match in zip(lines, labelled, strict=True)
        ]
    if any(_MARKUP.search(line) for line in lines):
        notes.append("markdown removed")
        lines = [_MARKUP.sub("", line) for line in lines]
    if sum(bool(_LIST_MARKER.match(line)) for line in lines) > 1:
        notes.append("list markers removed")
        lines = [_LIST_MARKER.sub("", line) for line in lines]
    text = " ".join(" ".join(lines).split())
    finished = _LAST_SENTENCE_END.match(text)
    if finished and finished.end() < len(text):
        cut = len(text[finished.end() :].split())
        notes.append(f"unfinished sentence cut ({cut} words)")
        text = finished.group(0)
    text, repeats = without_repeated_sentences(text)
    if repeats:
        notes.append(f"{repeats} repeated sentence{'s' if repeats > 1 else ''} removed")
    return text, notes


def without_repeated_sentences(text: str) -> tuple[str, int]:
    """``text`` without the sentences that restate earlier ones (most of their word trigrams seen before),
    and how many were removed. What remains is checked like any text: for its length, and for repetition.

        >>> without_repeated_sentences("Telomeres shorten with age. Cells stop dividing. Telomeres shorten with age, as shown.")
        ('Telomeres shorten with age. Cells stop dividing.', 1)
    """
    kept: list[str] = []
    seen: set[tuple[str, ...]] = set()
    for sentence in sentences(text):
        trigrams = set(ngrams(words(sentence), 3))
        if trigrams and len(trigrams & seen) >= REPEATED_SENTENCE_SHARE * len(trigrams):
            continue
        kept.append(sentence)
        seen |= trigrams
    removed = len(sentences(text)) - len(kept)
    return (" ".join(kept), removed) if removed else (text, 0)


@dataclass
class Candidate:
    """One written candidate, with the reflection it was written from (None without reflection)."""

    text: str
    aspect: str = ""
    reasoning: str = ""
    notes: list[str] = field(default_factory=list)
    reflection: Reflection | None = None


def pairs_from_beir(dataset: BeirDataset, limit: int | None = None) -> list[Pair]:
    """Every (query, relevant document) pair of the dataset's qrels, in qrels order."""
    pairs = []
    for query_id, doc_id in dataset.pairs():
        if query_id not in dataset.queries or doc_id not in dataset.corpus:
            raise DataError(f"qrels pair ({query_id}, {doc_id}) names a query or document that does not exist")
        pairs.append(Pair(query_id, dataset.queries[query_id], doc_id, dataset.corpus[doc_id].full_text))
        if limit is not None and len(pairs) >= limit:
            break
    return pairs


def pairs_from_training_set(path: str | Path, limit: int | None = None) -> list[Pair]:
    """The (query, positive) pairs of a training-set jsonl (e.g. the output of ``syneg mine``)."""
    pairs = []
    for instance in read_training_set(path):
        for pos_id, positive in zip(instance.pos_ids, instance.pos, strict=True):
            pairs.append(Pair(instance.query_id, instance.query, pos_id, positive))
            if limit is not None and len(pairs) >= limit:
                return pairs
    return pairs


@dataclass
class SynthesisStats:
    """Outcome counts of a run, beside the LLM's own usage statistics."""

    pairs: int = 0
    skipped_pairs: int = 0
    empty_window_pairs: int = 0
    candidates: int = 0
    accepted: int = 0
    rejected: int = 0
    failed_slots: int = 0
    llm_errors: int = 0
    check_failures: Counter[str] = field(default_factory=Counter)
    rounds: Counter[int] = field(default_factory=Counter)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "pairs": self.pairs,
            "skipped_pairs": self.skipped_pairs,
            "empty_window_pairs": self.empty_window_pairs,
            "candidates": self.candidates,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "failed_slots": self.failed_slots,
            "llm_errors": self.llm_errors,
            "acceptance_rate": round(self.accepted / self.candidates, 4) if self.candidates else None,
            "check_failures": dict(self.check_failures),
            "rounds_of_accepted": {str(k): v for k, v in sorted(self.rounds.items())},
            "seconds": round(self.seconds, 2),
            "accepted_per_minute": round(60 * self.accepted / self.seconds, 2) if self.seconds > 0 else None,
        }


class Synthesizer:
    """Writes hard negatives for (query, positive) pairs with an LLM, checks them and revises them.

    Args:
        client: The LLM client (any backend, with its cache).
        encoder: A :class:`syneg.retrieval.encoder.DenseEncoder` for the similarity checks; None
            loads the default (all-MiniLM-L6-v2) on first use.
        attributes: Attribute values to draw from; None uses generic ones ("general knowledge").
        negatives_per_pair: Negatives to keep per pair (K).
        max_rounds: Revisions after the first attempt for a candidate that fails a check.
        ablation: ``none`` (full SyNeg prompt), ``no-attributes`` (no expert domain, difficulty or
            length), ``no-attributes-no-reflection`` (neither, no reasoning and no revision).
        critique: The LLM's own "does it answer the query?" judgement: ``off``, ``record`` (stored in
            details, not used) or ``enforce`` (a YES fails the candidate). Sub-1B models answer such
            yes/no questions near randomly, so the default spends no call on it.
        checks: Check thresholds.
        max_words: Cap on the target length in words. The target is the positive's own length (the
            paper's length attribute), so that length tells nothing of a text's source; the cap
            (SciFact's 90th percentile) bounds the cost of the longest abstracts on a CPU model.
        max_tokens: Generation budget of the reflection (the passage's own budget follows its
            target length).
        temperature: Sampling temperature.
        seed: Base seed; attribute draws and request seeds derive from it.
        concurrency: Pairs in flight; above 1 only helps backends that serve requests concurrently.
        templates: Prompt templates (see :class:`syneg.synth.prompts.PromptTemplates`).
        prompt_style: ``two-step`` asks for the reflection (an aspect of the subject the positive does
            not cover, and why it could be mistaken for the answer) and then for the text about that
            aspect; ``single`` asks for reasoning and text in one JSON answer, as the paper's prompt
            does. Small models given the single prompt write about the task instead of the topic
            (0 of 6 candidates accepted with Qwen2.5-0.5B on the demo), hence the two-step default.

    Example::

        >>> from syneg.data import load_beir, demo_path
        >>> from syneg.llm import make_client
        >>> synthesizer = Synthesizer(make_client("llama.cpp", "qwen2.5-0.5b"), negatives_per_pair=1)  # doctest: +SKIP
        >>> pairs = pairs_from_beir(load_beir(demo_path(), "train"), limit=2)  # doctest: +SKIP
        >>> stats = synthesizer.run(pairs, "negatives.jsonl")  # doctest: +SKIP
        >>> stats["accepted"], stats["requests"]  # doctest: +SKIP
        (2, 3)
    """

    def __init__(
        self,
        client: LLMClient,
        encoder: Any = None,
        attributes: AttributeSet | None = None,
        negatives_per_pair: int = SYNTHESIZE.negatives_per_pair,
        max_rounds: int = SYNTHESIZE.max_rounds,
        ablation: Ablation = SYNTHESIZE.ablation,
        critique: Critique = SYNTHESIZE.critique,
        checks: CheckConfig | None = None,
        max_words: int = SYNTHESIZE.max_words,
        max_tokens: int = SYNTHESIZE.max_tokens,
        temperature: float = SYNTHESIZE.temperature,
        seed: int = SYNTHESIZE.seed,
        concurrency: int = 1,
        templates: PromptTemplates | None = None,
        prompt_style: PromptStyle = SYNTHESIZE.prompt_style,
    ) -> None:
        for name, value, choices in (("ablation", ablation, Ablation), ("critique mode", critique, Critique),
                                     ("prompt style", prompt_style, PromptStyle)):
            if value not in get_args(choices):
                raise ValueError(f"Unknown {name} {value!r}; expected one of {', '.join(get_args(choices))}")
        self.client = client
        self._encoder = encoder
        self.attributes = attributes or AttributeSet(domain=["general knowledge"])
        self.negatives_per_pair = negatives_per_pair
        self.use_attributes = ablation == "none"
        self.reflection = ablation != "no-attributes-no-reflection"
        self.max_rounds = max_rounds if self.reflection else 0
        self.ablation = ablation
        self.critique = critique
        self.checks = checks or CheckConfig()
        self.max_words = max_words
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.seed = seed
        self.concurrency = concurrency
        self.templates = templates or PromptTemplates()
        self.prompt_style = prompt_style
        self.stats = SynthesisStats()

    @property
    def encoder(self) -> Any:
        if self._encoder is None:
            from syneg.retrieval.encoder import DenseEncoder

            # Candidates are seen once each; caching them on disk would only litter the cache.
            self._encoder = DenseEncoder("default", use_cache=False, show_progress=False)
        return self._encoder

    @property
    def generator(self) -> str:
        return f"{self.client.backend.name}:{self.client.model}"

    def _seed(self, *parts: object) -> int:
        return int(hashlib.sha1("/".join(map(str, (self.seed, *parts))).encode()).hexdigest()[:7], 16)

    def _attribute_text(self, attributes: dict[str, str], target_words: int) -> str:
        if not self.use_attributes:
            return ""
        described = [f"Write for {attributes['difficulty']} readers, about {target_words} words ({attributes['length']})."]
        described += [
            f"{name.capitalize()}: {value}." for name, value in attributes.items() if name not in ("domain", "difficulty", "length")
        ]
        return " " + " ".join(described)

    def _system(self, attributes: dict[str, str]) -> str:
        if self.use_attributes:
            return self.templates.render("system", domain=attributes["domain"])
        return self.templates.render("system_plain")

    def _instruction(self, attributes: dict[str, str], target_words: int) -> list[str]:
        """The fixed wording of the prompts that ask for the text, which the text must not repeat."""
        name = "generate_plain" if not self.reflection else "generate" if self.prompt_style == "single" else "write"
        pieces = self.templates.fixed_pieces(name) + self.templates.fixed_pieces("system" if self.use_attributes else "system_plain")
        return pieces + ([self._attribute_text(attributes, target_words)] if self.use_attributes else [])

    async def _candidate(
        self,
        pair: Pair,
        attributes: dict[str, str],
        target_words: int,
        seed: int,
        follow_up: str,
        reflection: Reflection | None = None,
        sections: int = 1,
    ) -> Candidate:
        """One candidate; raises LLMError when the LLM fails.

        ``reflection``: reuse an earlier reflection (its aspect was sound, only the text failed) instead
        of asking for one; ``sections``: parts of the abstract to ask for (two-step prompt).
        """
        positive = " ".join(pair.positive.split()[:PROMPT_POSITIVE_WORDS])  # keep prompts short on CPU
        system = self._system(attributes)
        common = {"max_tokens": self.max_tokens, "temperature": self.temperature, "seed": seed}
        negative_schema = {"negative": {"type": "string", "minLength": 20, "maxLength": 8 * target_words + 200}}
        if not self.reflection:
            user = self.templates.render("generate_plain", query=pair.query, positive=positive)
            schema = {"type": "object", "properties": negative_schema, "required": ["negative"]}
            answer, _ = await self.client.generate(ChatRequest.chat(system, user + follow_up, schema=schema, **common), PlainNegativeAnswer)
            return Candidate(" ".join(answer.negative.split()))
        if self.prompt_style == "single":
            user = self.templates.render(
                "generate", query=pair.query, positive=positive, attributes=self._attribute_text(attributes, target_words)
            )
            schema = {"type": "object", "properties": REFLECTION_PROPERTIES | negative_schema, "required": ["aspect", "reasoning", "negative"]}
            answer, _ = await self.client.generate(ChatRequest.chat(system, user + follow_up, schema=schema, **common), NegativeAnswer)
            return Candidate(" ".join(answer.negative.split()), answer.aspect, answer.reasoning)
        if reflection is None:
            # The revision reasons go to the reflection only: a small model shown them while writing copies
            # them into the text, and a new aspect is what most failures (on topic, leak, paraphrase) need.
            user = self.templates.render("reflect", query=pair.query, positive=positive)
            properties = ({"topic": {"type": "string", "minLength": 3, "maxLength": 60}} | REFLECTION_PROPERTIES
                          | {"title": {"type": "string", "minLength": 8, "maxLength": 150}})
            schema = {"type": "object", "properties": properties, "required": ["topic", "aspect", "reasoning", "title"]}
            reflection, _ = await self.client.generate(
                ChatRequest.chat(system, user + follow_up, schema=schema, **(common | {"max_tokens": 150})), Reflection
            )
        labels = SECTIONS[sections]
        layout = (
            f"Write it in {len(labels)} parts, each starting with its label in capitals: {', '.join(labels)}."
            if labels else "Write it as one plain paragraph."
        )
        title = " ".join(reflection.title.split()).strip('"')
        user = self.templates.render(
            "write",
            title=title,
            aspect=reflection.aspect.strip(),
            topic=reflection.topic.strip(),
            subject=pair.query,
            attributes=self._attribute_text(attributes, target_words),
            layout=layout,
        )
        # Free text, not JSON: the passage is long, and a grammar would cost more than the model per token.
        budget = int(TOKENS_PER_WORD * max(target_words, WORDS_PER_SECTION * sections)) + 40
        completion = await self.client.generate_text(
            ChatRequest.chat(system, user, **(common | {"max_tokens": budget, "repeat_penalty": REPEAT_PENALTY}))
        )
        text, notes = as_passage(completion.text, keep_section_labels=is_structured(pair.positive))
        if title and not text.lower().startswith(title.lower()):
            text = f"{title} {text}"  # the corpus's form: title, then text (Document.full_text)
        if sections > 1:
            notes.insert(0, f"asked for {sections} parts")
        return Candidate(text, reflection.aspect, reflection.reasoning, notes, reflection)

    async def synthesize_pair(self, pair: Pair, query_vector: np.ndarray, positive_vector: np.ndarray) -> TrainingInstance:
        """Up to ``negatives_per_pair`` checked negatives for one pair (fewer if candidates keep failing).

        A pair whose positive scores 0 or less against the query gets none, without an LLM call: no
        candidate could be both on topic and below the positive (:func:`similarity_window`).
        """
        positive_score = float(query_vector @ positive_vector)
        instance = TrainingInstance(
            query_id=pair.query_id,
            query=pair.query,
            pos_ids=[pair.pos_id],
            pos=[pair.positive],
            negatives=[],
            pos_scores=[round(positive_score, 4)],
        )
        floor, cap = similarity_window(positive_score, self.checks)
        if floor >= cap:
            self.stats.empty_window_pairs += 1
            return instance
        answer_sentence = self._answer_sentence(pair, query_vector)
        target_words = min(self.max_words, max(self.checks.min_words, len(words(pair.positive))))
        kept: list[Negative] = []
        kept_vectors: list[np.ndarray] = []
        for slot in range(self.negatives_per_pair):
            attributes = self.attributes.draw(self.seed, f"{pair.query_id}/{pair.pos_id}/{slot}") if self.use_attributes else {}
            instruction = self._instruction(attributes, target_words)  # the same for every round of the slot
            follow_up = ""
            reflection: Reflection | None = None
            sections = sections_for(target_words)
            rejected: list[dict[str, Any]] = []
            for round_number in range(self.max_rounds + 1):
                seed = self._seed(pair.query_id, pair.pos_id, slot, round_number)
                try:
                    candidate = await self._candidate(pair, attributes, target_words, seed, follow_up, reflection, sections)
                except LLMError:
                    self.stats.llm_errors += 1
                    continue
                text, aspect, reasoning = candidate.text, candidate.aspect.strip(), candidate.reasoning.strip()
                self.stats.candidates += 1
                vector = self.encoder.encode_documents([text])[0]
                results = run_checks(
                    text,
                    reasoning,
                    negative_vector=vector,
                    query=pair.query,
                    query_vector=query_vector,
                    positive_vector=positive_vector,
                    answer_sentence=answer_sentence,
                    target_words=target_words,
                    positive=pair.positive,
                    kept_vectors=kept_vectors,
                    config=self.checks,
                    instruction=instruction,
                )
                critique = await self._critique(pair, text, slot, round_number, results)
                failed = [r for r in results if not r.passed]
                if not failed:
                    kept.append(self._negative(pair, text, reasoning, aspect, attributes, results, critique, round_number,
                                               candidate.notes, rejected))
                    kept_vectors.append(vector)
                    self.stats.accepted += 1
                    self.stats.rounds[round_number] += 1
                    break
                self.stats.rejected += 1
                self.stats.check_failures.update(r.name for r in failed)
                rejected.append({"round": round_number, "text": text, "aspect": aspect, "reasoning": reasoning,
                                 "checks": {r.name: r.to_dict() for r in results}})
                by_name = {r.name: r for r in failed}
                if "length" in by_name:
                    # The model writes a near-constant length per part: ask for one part more or fewer.
                    short = by_name["length"].value < self.checks.min_length_ratio
                    sections = clamped_sections(sections + (1 if short else -1))
                if set(by_name) <= REWRITE_ONLY_FAILURES and candidate.reflection is not None:
                    reflection = candidate.reflection  # the aspect was sound: write it again, without a new reflection
                    continue
                reflection = None
                reasons = "; ".join(r.reason for r in failed if r.name not in REWRITE_ONLY_FAILURES) or failed[0].reason
                previous = " ".join(text.split()[:60])
                follow_up = "\n\n" + self.templates.render("revise", reasons=reasons, previous=previous)
            else:
                self.stats.failed_slots += 1
        instance.negatives = kept
        return instance

    async def _critique(
        self, pair: Pair, text: str, slot: int, round_number: int, results: list[CheckResult]
    ) -> dict[str, Any] | None:
        if self.critique == "off":
            return None
        request = ChatRequest.chat(
            None,
            self.templates.render("critique", query=pair.query, negative=text),
            schema=CRITIQUE_SCHEMA,
            max_tokens=80,
            temperature=0.0,
            seed=self._seed("critique", pair.query_id, pair.pos_id, slot, round_number),
        )
        try:
            answer, _ = await self.client.generate(request, CritiqueAnswer)
        except LLMError:
            self.stats.llm_errors += 1
            return None
        if self.critique == "enforce":
            results.append(CheckResult("llm_critique", float(answer.answers_query), 0.0, not answer.answers_query,
                                       f"it answers the query ({answer.reason})"))
        return {"answers_query": answer.answers_query, "reason": answer.reason}

    def _answer_sentence(self, pair: Pair, query_vector: np.ndarray) -> str:
        parts = sentences(pair.positive) or [pair.positive]
        if len(parts) == 1:
            return parts[0]
        vectors = self.encoder.encode_documents(parts)
        return parts[int(np.argmax(vectors @ query_vector))]

    def _negative(
        self,
        pair: Pair,
        text: str,
        reasoning: str,
        aspect: str,
        attributes: dict[str, str],
        results: list[CheckResult],
        critique: dict[str, Any] | None,
        rounds: int,
        notes: list[str],
        rejected: list[dict[str, Any]],
    ) -> Negative:
        by_name = {r.name: r for r in results}
        details: dict[str, Any] = {
            "attributes": attributes,
            "aspect": aspect,
            "reasoning": reasoning,
            "checks": {r.name: r.to_dict() for r in results},
            "rounds": rounds,
            "generator": self.generator,
            "ablation": self.ablation,
        }
        if notes:
            details["postprocessing"] = notes
        if rejected:  # what the checks turned down before this text, for `syneg view`
            details["rejected"] = rejected
        if critique is not None:
            details["critique"] = critique
        digest = hashlib.sha1(f"{pair.query_id}\x00{pair.pos_id}\x00{text}".encode()).hexdigest()[:16]
        query_similarity = round(float(by_name["on_topic"].value), 4)
        return Negative(
            text=text,
            source="synthetic",
            id=f"syn-{digest}",
            score=query_similarity,
            scores={
                "query_similarity": query_similarity,
                "positive_similarity": round(float(by_name["not_paraphrase"].value), 4),
                "answer_leak": round(float(by_name["no_answer_leak"].value), 4),
            },
            details=details,
        )

    async def arun(self, pairs: list[Pair], output: str | Path, show_progress: bool = True) -> dict[str, Any]:
        """Synthesize for every pair not yet in ``output``, appending records as pairs finish."""
        start = time.perf_counter()
        done = completed_pairs(output)
        todo = [p for p in pairs if (p.query_id, p.pos_id) not in done]
        self.stats.skipped_pairs += len(pairs) - len(todo)
        if todo:
            query_vectors = self.encoder.encode_queries([p.query for p in todo])
            positive_vectors = self.encoder.encode_documents([p.positive for p in todo])
        semaphore = asyncio.Semaphore(self.concurrency)

        async def one(index: int, progress: Progress) -> None:
            async with semaphore:
                instance = await self.synthesize_pair(todo[index], query_vectors[index], positive_vectors[index])
            write_training_set(output, [instance], append=True)
            self.stats.pairs += 1
            elapsed = max(1e-9, time.perf_counter() - start)
            progress.advance(1, f"accepted {self.stats.accepted:,} ({self.stats.accepted / max(1, self.stats.candidates):.0%} "
                                f"of candidates) · {60 * self.stats.accepted / elapsed:.1f} accepted/min")

        try:
            with Progress("Synthesizing", total=len(todo), unit="pairs", enabled=show_progress) as progress:
                await asyncio.gather(*(one(i, progress) for i in range(len(todo))))
        finally:
            self.stats.seconds += time.perf_counter() - start
        return self.report()

    def run(self, pairs: list[Pair], output: str | Path, show_progress: bool = True) -> dict[str, Any]:
        """Synchronous :meth:`arun`; returns the run statistics (synthesis and LLM usage)."""
        return asyncio.run(self.arun(pairs, output, show_progress))

    def report(self) -> dict[str, Any]:
        return self.stats.to_dict() | self.client.stats.to_dict() | {"generator": self.generator}


def completed_pairs(path: str | Path) -> set[tuple[str, str]]:
    """(query id, positive id) of every record already in ``path``; a torn last line is dropped."""
    path = Path(path)
    if not path.is_file():
        return set()
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        # A run killed mid-write leaves a partial line: cut it so the pair is redone cleanly.
        path.write_text("".join(lines[:-1]), encoding="utf-8")
    return {(i.query_id, i.pos_ids[0]) for i in read_training_set(path)}


def iter_negatives(path: str | Path) -> Iterator[tuple[TrainingInstance, Negative]]:
    """Every synthetic negative of a synthesis output with its instance (for reports and benchmarks)."""
    for instance in read_training_set(path):
        for negative in instance.negatives:
            yield instance, negative
