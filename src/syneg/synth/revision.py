"""The per-pair loop of synthesis: draw attributes, write, check, critique, revise, keep; and its counts.

For each of a pair's ``negatives_per_pair`` slots, a candidate is written (:mod:`syneg.synth.writing`)
and checked (:mod:`syneg.synth.checks`); one that fails goes back to the LLM with the reasons, up to
``max_rounds`` times. A failure of the writing alone (its length, a degenerate text) rewrites from the
same reflection; any other asks for a new aspect: the next one a reflection of several aspects proposed
(``aspects_per_reflection``), or a new reflection. Every request's seed derives from the base seed, the
pair, the slot and the round, so a rerun asks the same requests and the request cache answers them.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel

from syneg.data import Negative, TrainingInstance
from syneg.llm import ChatRequest, LLMClient, LLMError
from syneg.synth.attributes import AttributeSet
from syneg.synth.checks import (
    CheckConfig,
    CheckResult,
    run_checks,
    sentences,
    similarity_window,
    title_below_positive,
    words,
)
from syneg.synth.options import Ablation, Critique
from syneg.synth.pairs import Pair
from syneg.synth.prompts import quoted
from syneg.synth.writing import CandidateWriter, Reflection, clamped_sections, quoted_pair, sections_for

# Sentences of a positive among which its answer sentence is looked for.
ANSWER_SENTENCES = 64
# Failures of the writing, not of the aspect: the next round rewrites from the same reflection.
REWRITE_ONLY_FAILURES = {"length", "not_degenerate"}


class CritiqueAnswer(BaseModel):
    reason: str = ""
    answers_query: bool


CRITIQUE_SCHEMA = {
    "type": "object",
    "properties": {"reason": {"type": "string", "maxLength": 200}, "answers_query": {"type": "boolean"}},
    "required": ["reason", "answers_query"],
}


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
    # Aspects whose title alone scored too close to the query: no passage was asked for.
    title_rejections: int = 0
    llm_errors: int = 0
    check_failures: Counter[str] = field(default_factory=Counter)
    rounds: Counter[int] = field(default_factory=Counter)
    # What quoting changed in the pairs' texts (control characters, markup, cut), by text and change.
    quoted_texts: Counter[str] = field(default_factory=Counter)
    # A refill pass (Synthesizer's ``refill``): pairs synthesized again, and the negatives they gained.
    refilled_pairs: int = 0
    refill_gained: int = 0
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
            "title_rejections": self.title_rejections,
            "llm_errors": self.llm_errors,
            "acceptance_rate": round(self.accepted / self.candidates, 4) if self.candidates else None,
            "check_failures": dict(self.check_failures),
            "rounds_of_accepted": {str(k): v for k, v in sorted(self.rounds.items())},
            "quoted_texts": dict(sorted(self.quoted_texts.items())),
            "refilled_pairs": self.refilled_pairs,
            "refill_gained": self.refill_gained,
            "seconds": round(self.seconds, 2),
            "accepted_per_minute": round(60 * self.accepted / self.seconds, 2) if self.seconds > 0 else None,
        }


@dataclass
class PairContext:
    """What every slot of a pair is checked against."""

    pair: Pair
    shown: Pair  # the pair as the prompts quote it
    query_vector: np.ndarray
    positive_vector: np.ndarray
    answer_sentence: str
    target_words: int
    kept_vectors: list[np.ndarray] = field(default_factory=list)


class RevisionLoop:
    """The checked negatives of one pair at a time (see :class:`syneg.synth.Synthesizer` for the options)."""

    def __init__(
        self,
        client: LLMClient,
        writer: CandidateWriter,
        encoder: Any,
        attributes: AttributeSet,
        negatives_per_pair: int,
        max_rounds: int,
        ablation: Ablation,
        critique: Critique,
        checks: CheckConfig,
        max_words: int,
        seed: int,
        aspects_per_reflection: int = 1,
    ) -> None:
        self.client = client
        self.writer = writer
        self._encoder = encoder
        self.attributes = attributes
        self.negatives_per_pair = negatives_per_pair
        self.max_rounds = max_rounds if writer.reflection else 0
        self.ablation = ablation
        self.critique = critique
        self.checks = checks
        self.max_words = max_words
        self.seed = seed
        self.aspects_per_reflection = aspects_per_reflection
        self.stats = SynthesisStats()

    @property
    def encoder(self) -> Any:
        if self._encoder is None:
            from syneg.retrieval.encoder import DenseEncoder

            # Candidates are seen once each; caching them on disk would only litter the cache. fp32 on every
            # machine: a check's verdict near its threshold must not depend on the CPU, or a rerun from the
            # committed LLM cache would accept other texts than the run that wrote it.
            self._encoder = DenseEncoder("default", backend="torch", use_cache=False, show_progress=False)
        return self._encoder

    @property
    def generator(self) -> str:
        return f"{self.client.backend.name}:{self.client.model}"

    def _seed(self, *parts: object) -> int:
        return int(hashlib.sha1("/".join(map(str, (self.seed, *parts))).encode()).hexdigest()[:7], 16)

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
        shown, notes = quoted_pair(pair)
        self.stats.quoted_texts.update(notes)
        context = PairContext(
            pair,
            shown,
            query_vector,
            positive_vector,
            answer_sentence=self._answer_sentence(pair, query_vector),
            target_words=min(self.max_words, max(self.checks.min_words, len(words(pair.positive)))),
        )
        for slot in range(self.negatives_per_pair):
            negative = await self._slot(context, slot)
            if negative is not None:
                instance.negatives.append(negative)
        return instance

    async def _slot(self, context: PairContext, slot: int) -> Negative | None:
        """One slot's negative, revised up to ``max_rounds`` times; None when every round failed."""
        pair, target_words = context.pair, context.target_words
        attributes = self.attributes.draw(self.seed, f"{pair.query_id}/{pair.pos_id}/{slot}") if self.writer.use_attributes else {}
        instruction = self.writer.instruction(attributes, target_words)  # the same for every round of the slot
        follow_up = ""
        reflection: Reflection | None = None
        spare: list[Reflection] = []  # aspects a reflection proposed whose titles passed, not yet written
        sections = sections_for(target_words)
        rejected: list[dict[str, Any]] = []
        for round_number in range(self.max_rounds + 1):
            seed = self._seed(pair.query_id, pair.pos_id, slot, round_number)
            try:
                if reflection is None and self.writer.reflection and self.writer.prompt_style == "two-step":
                    if not spare:
                        proposed = await self.writer.reflect_aspects(context.shown, attributes, seed, follow_up,
                                                                     self.aspects_per_reflection)
                        spare, turned_down = self._by_title(context, proposed)
                        for title_reflection, title_check in turned_down:
                            self.stats.title_rejections += 1
                            rejected.append({"round": round_number, "text": title_reflection.title,
                                             "aspect": title_reflection.aspect.strip(),
                                             "reasoning": title_reflection.reasoning.strip(), "title_only": True,
                                             "checks": {title_check.name: title_check.to_dict()}})
                        if not spare:
                            title_reflection, title_check = turned_down[0]
                            follow_up = self._revision_request(title_check.reason, title_reflection.title)
                            continue
                    reflection = spare.pop(0)
                candidate = await self.writer.write(context.shown, attributes, target_words, seed, follow_up, reflection, sections)
            except LLMError as error:
                if error.fatal:
                    raise
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
                query_vector=context.query_vector,
                positive_vector=context.positive_vector,
                answer_sentence=context.answer_sentence,
                target_words=target_words,
                positive=pair.positive,
                kept_vectors=context.kept_vectors,
                config=self.checks,
                instruction=instruction,
            )
            critique = await self._critique(context.shown, text, slot, round_number, results)
            failed = [r for r in results if not r.passed]
            if not failed:
                context.kept_vectors.append(vector)
                self.stats.accepted += 1
                self.stats.rounds[round_number] += 1
                return self._negative(pair, text, reasoning, aspect, attributes, results, critique, round_number,
                                      candidate.notes, rejected)
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
            follow_up = self._revision_request(reasons, text)
        self.stats.failed_slots += 1
        return None

    async def _critique(
        self, pair: Pair, text: str, slot: int, round_number: int, results: list[CheckResult]
    ) -> dict[str, Any] | None:
        if self.critique == "off":
            return None
        request = ChatRequest.chat(
            None,
            self.writer.templates.render("critique", query=pair.query, negative=quoted(text, 400, 4000)[0]),
            schema=CRITIQUE_SCHEMA,
            max_tokens=80,
            temperature=0.0,
            seed=self._seed("critique", pair.query_id, pair.pos_id, slot, round_number),
        )
        try:
            answer, _ = await self.client.generate(request, CritiqueAnswer)
        except LLMError as error:
            if error.fatal:
                raise
            self.stats.llm_errors += 1
            return None
        if self.critique == "enforce":
            results.append(CheckResult("llm_critique", float(answer.answers_query), 0.0, not answer.answers_query,
                                       f"it answers the query ({answer.reason})"))
        return {"answers_query": answer.answers_query, "reason": answer.reason}

    def _by_title(
        self, context: PairContext, proposed: list[Reflection]
    ) -> tuple[list[Reflection], list[tuple[Reflection, CheckResult]]]:
        """The proposed aspects whose titles pass ``title_below_positive``, in the order to write them, and
        those turned down with their checks.

        Most passages of a pair whose positive scores low against its query fail by scoring too close to
        the query, so the title furthest below the cap that is still on topic is written first; titles
        under the on-topic floor come after, the highest first. An aspect without a title cannot be
        checked and comes last.
        """
        positive_score = float(context.query_vector @ context.positive_vector)
        floor = similarity_window(positive_score, self.checks)[0]
        titled = [reflection.title for reflection in proposed if reflection.title.strip()]
        vectors = iter(self.encoder.encode_documents(titled) if titled else [])  # all titles in one call
        passed: list[tuple[tuple[int, float], Reflection]] = []
        turned_down: list[tuple[Reflection, CheckResult]] = []
        for reflection in proposed:
            if not reflection.title.strip():
                passed.append(((2, 0.0), reflection))
                continue
            check = title_below_positive(float(next(vectors) @ context.query_vector), positive_score, self.checks)
            if not check.passed:
                turned_down.append((reflection, check))
            else:
                passed.append(((0, check.value) if check.value >= floor else (1, -check.value), reflection))
        passed.sort(key=lambda item: item[0])  # stable: equal keys keep the model's order
        return [reflection for _, reflection in passed], turned_down

    def _revision_request(self, reasons: str, previous: str) -> str:
        """What the next reflection is asked after a rejected round: the reasons and the start of what failed."""
        return "\n\n" + self.writer.templates.render("revise", reasons=reasons, previous=" ".join(previous.split()[:60]))

    def _answer_sentence(self, pair: Pair, query_vector: np.ndarray) -> str:
        # The first sentences only: a real passage's answer is among them, and a 100,000-character text of
        # short sentences would cost thousands of encodings.
        parts = sentences(pair.positive)[:ANSWER_SENTENCES] or [pair.positive]
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
        return synthetic_negative(pair, text, results, details)


def synthetic_negative(pair: Pair, text: str, results: list[CheckResult], details: dict[str, Any]) -> Negative:
    """A kept text as a training-set negative: an id from the pair and the text, its similarities from the checks."""
    by_name = {r.name: r for r in results}
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
