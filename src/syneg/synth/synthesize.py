"""The SyNeg synthesis loop: prompt with attributes, reason, check, revise, keep.

For each (query, positive) pair (:mod:`syneg.synth.pairs`) and each of ``negatives_per_pair`` slots
(:mod:`syneg.synth.revision`):

1. draw attribute values (domain, difficulty, length, extras) for the slot;
2. reflect: ask the LLM, acting as an expert in the domain, for JSON naming the topic, an aspect of it
   that the positive does not cover, and why a reader could mistake it for the answer (the paper's
   reasoning section);
3. write: ask for the text about that aspect, at the drawn difficulty and length (``prompt_style=
   "single"`` asks for reasoning and text in one answer instead, as the paper's prompt does), and put
   it in the corpus's form (:mod:`syneg.synth.writing`, :mod:`syneg.synth.passages`);
4. run the checks (:mod:`syneg.synth.checks`) and, if asked, the LLM's own critique;
5. if any fails, send the reasons back for a revision, up to ``max_rounds`` times.

A kept negative carries its attributes, reasoning, every check's value and verdict, its revision
rounds, the candidates rejected on the way (``rejected``: each round's text, aspect, reasoning and
checks) and the generator in ``details``, and its dense similarity to the query as ``score``. Results
are written here, by :class:`Synthesizer`, as training-set jsonl (:mod:`syneg.data.training_set`), one
record per pair, as each pair finishes; pairs already in the output file are skipped, and answered LLM
requests come from the cache, so a killed run resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, get_args

from syneg.data import Negative, TrainingInstance, read_training_set, write_training_set
from syneg.data.storage import storage_error
from syneg.llm import LLMClient
from syneg.progress import Progress
from syneg.synth.attributes import AttributeSet
from syneg.synth.checks import CheckConfig
from syneg.synth.options import (
    SYNTHESIZE,
    Ablation,
    Critique,
    PromptStyle,
    check_aspects_per_reflection,
    default_aspects_per_reflection,
)
from syneg.synth.pairs import Pair
from syneg.synth.prompts import PromptTemplates
from syneg.synth.revision import RevisionLoop, SynthesisStats
from syneg.synth.writing import CandidateWriter


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
        style_examples: Texts of the collection for a write template that quotes ``$example`` (one per
            candidate, as a model of the corpus's style); required by such a template, unused otherwise.
        aspects_per_reflection: Aspects one reflection proposes (two-step prompt), each with its title;
            the titles are checked at once and the rounds that follow a rejected passage write from the
            spare aspects before asking for a new reflection. Default: 3 where there is a reflection, else 1;
            1 asks as before this option existed.
        refill: Synthesize again the pairs already in the output with fewer than ``negatives_per_pair``
            negatives (see :meth:`arun`).
        trim_cut_fields: Write from the whole words of a reflection field the JSON grammar closed at its cap
            (:func:`syneg.synth.writing.cut_fields`); False trims a cut title alone, as before this option.

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
        style_examples: Sequence[str] = (),
        aspects_per_reflection: int | None = None,
        refill: bool = SYNTHESIZE.refill,
        trim_cut_fields: bool = SYNTHESIZE.trim_cut_fields,
    ) -> None:
        for name, value, choices in (("ablation", ablation, Ablation), ("critique mode", critique, Critique),
                                     ("prompt style", prompt_style, PromptStyle)):
            if value not in get_args(choices):
                raise ValueError(f"Unknown {name} {value!r}; expected one of {', '.join(get_args(choices))}")
        if aspects_per_reflection is None:
            aspects_per_reflection = default_aspects_per_reflection(prompt_style, ablation)
        check_aspects_per_reflection(aspects_per_reflection, prompt_style, ablation)
        self.client = client
        self.concurrency = concurrency
        self.refill = refill
        self.templates = templates or PromptTemplates()
        self.writer = CandidateWriter(client, self.templates, ablation, prompt_style, max_tokens, temperature,
                                      style_examples, trim_cut_fields)
        self.loop = RevisionLoop(
            client,
            self.writer,
            encoder,
            attributes or AttributeSet(domain=["general knowledge"]),
            negatives_per_pair,
            max_rounds,
            ablation,
            critique,
            checks or CheckConfig(),
            max_words,
            seed,
            aspects_per_reflection,
        )

    @property
    def stats(self) -> SynthesisStats:
        return self.loop.stats

    @property
    def generator(self) -> str:
        return self.loop.generator

    async def arun(self, pairs: list[Pair], output: str | Path, show_progress: bool = True) -> dict[str, Any]:
        """Synthesize for every pair not yet in ``output``, appending records as pairs finish.

        With ``refill``, the pairs already in ``output`` with fewer than ``negatives_per_pair`` negatives are
        synthesized again too, into :func:`refill_path` (appended as they finish), and merged into ``output`` once
        every one is done (:func:`merge_refill`). A pass stopped before its merge is merged first when it starts
        again, and the pairs it had left short are asked again, under the options of the new start: what was
        asked before comes from the cache.
        """
        start = time.perf_counter()
        output = Path(output)
        done = completed_pairs(output)
        todo = [(p, output) for p in pairs if (p.query_id, p.pos_id) not in done]
        if self.refill:
            completed_pairs(refill_path(output))  # cuts a torn last line
            self.stats.refill_gained += merge_refill(output)
            short = short_pairs(output, self.loop.negatives_per_pair)
            todo += [(p, refill_path(output)) for p in pairs if (p.query_id, p.pos_id) in short]
        self.stats.skipped_pairs += len(pairs) - len(todo)
        if todo:
            query_vectors = self.loop.encoder.encode_queries([p.query for p, _ in todo])
            positive_vectors = self.loop.encoder.encode_documents([p.positive for p, _ in todo])
        async def worker(indices: Iterator[int], progress: Progress) -> None:
            for index in indices:  # the workers share one iterator: each takes the next pair
                pair, destination = todo[index]
                instance = await self.loop.synthesize_pair(pair, query_vectors[index], positive_vectors[index])
                write_training_set(destination, [instance], append=True)
                self.stats.pairs += 1
                self.stats.refilled_pairs += destination != output
                elapsed = max(1e-9, time.perf_counter() - start)
                progress.advance(1, f"accepted {self.stats.accepted:,} ({self.stats.accepted / max(1, self.stats.candidates):.0%} "
                                    f"of candidates) · {60 * self.stats.accepted / elapsed:.1f} accepted/min")

        try:
            with Progress("Synthesizing", total=len(todo), unit="pairs", enabled=show_progress) as progress:
                # ``concurrency`` workers rather than a task per pair: what a run holds in memory does not grow
                # with its number of pairs.
                indices = iter(range(len(todo)))
                await asyncio.gather(*(worker(indices, progress) for _ in range(min(self.concurrency, len(todo)))))
            if self.refill:
                self.stats.refill_gained += merge_refill(output)
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
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        # A run killed mid-write (or stopped by a full disk) leaves a partial line: cut it so the pair is redone
        # cleanly. Truncating in place needs no free space and cannot lose the lines before it.
        try:
            os.truncate(path, data.rfind(b"\n") + 1)
        except OSError as error:
            raise storage_error(error, path) from None
    return {(i.query_id, i.pos_ids[0]) for i in read_training_set(path)}


def refill_path(output: str | Path) -> Path:
    """Where a refill pass appends its records before they are merged: ``NAME.refill.jsonl`` beside ``output``."""
    return Path(output).with_suffix(".refill.jsonl")


def short_pairs(path: str | Path, negatives_per_pair: int) -> set[tuple[str, str]]:
    """(query id, positive id) of the records in ``path`` with fewer than ``negatives_per_pair`` negatives."""
    if not Path(path).is_file():
        return set()
    return {(i.query_id, i.pos_ids[0]) for i in read_training_set(path) if len(i.negatives) < negatives_per_pair}


def merge_refill(output: str | Path) -> int:
    """Merge a refill pass's records into ``output``: a pair's new record replaces its old one only when it holds
    more negatives (a refill never loses one, nor trades one for another). The output is replaced whole, once
    written, and the refill file removed after, so a kill on the way leaves both readable and a rerun merges
    again. Returns the negatives gained."""
    output, path = Path(output), refill_path(output)
    if not path.is_file():
        return 0
    redone = {(i.query_id, i.pos_ids[0]): i for i in read_training_set(path)}
    merged, gained = [], 0
    for instance in read_training_set(output):
        new = redone.get((instance.query_id, instance.pos_ids[0]))
        if new is not None and len(new.negatives) > len(instance.negatives):
            gained += len(new.negatives) - len(instance.negatives)
            instance = new
        merged.append(instance)
    write_training_set(output, merged)
    path.unlink()
    return gained


def iter_negatives(path: str | Path) -> Iterator[tuple[TrainingInstance, Negative]]:
    """Every synthetic negative of a synthesis output with its instance (for reports and benchmarks)."""
    for instance in read_training_set(path):
        for negative in instance.negatives:
            yield instance, negative
