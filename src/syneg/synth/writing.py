"""Writing one candidate negative: the prompts, the request parameters and the answer as a passage.

The two-step prompt (the default) asks for a reflection, a topic, an aspect of it that the positive does
not cover, why a reader could mistake it for the answer, and a title (the paper's reasoning section),
then for the passage about that aspect as free text, in as many parts as its target length needs. The
single prompt asks for reasoning and text in one JSON answer, as the paper's prompt does; the
``no-attributes-no-reflection`` ablation asks for the text alone. What the model writes is put in the
corpus's form (:func:`syneg.synth.passages.as_passage`).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import BaseModel

from syneg.llm import ChatRequest, LLMClient, LLMError
from syneg.synth.checks import is_known_word
from syneg.synth.options import Ablation, PromptStyle
from syneg.synth.pairs import Pair
from syneg.synth.passages import as_passage, is_structured
from syneg.synth.prompts import PromptTemplates, quoted


class NegativeAnswer(BaseModel):
    aspect: str
    reasoning: str
    negative: str


class PlainNegativeAnswer(BaseModel):
    negative: str


# The longest fields a reflection may give (the JSON grammar's caps); a field that reaches its cap was
# closed mid-word ("... Cancer Mortality in O"), and the model copies it into the passage.
TITLE_MAX_CHARS = 150
TOPIC_MAX_CHARS = 60
ASPECT_MAX_CHARS = 80
_DANGLING_WORDS = re.compile(r"(?:\s+(?:a|an|and|as|at|by|for|from|in|into|of|on|or|the|to|with|without|versus|vs))+$",
                             re.IGNORECASE)


class Reflection(BaseModel):
    topic: str
    aspect: str
    reasoning: str
    # The passage's title: asked with the reflection, since a small model told to write a title and an
    # abstract often stops after the title.
    title: str = ""


class AspectOption(BaseModel):
    aspect: str
    reasoning: str
    title: str = ""


def whole_words(text: str) -> str:
    """A field closed mid-word: its whole words, without a last word that leaves it hanging (unchanged when
    nothing would be left).

        >>> whole_words("Systemic immunosuppressive Therapy and Cancer Mortality in O"), whole_words("Immunology")
        ('Systemic immunosuppressive Therapy and Cancer Mortality', 'Immunology')
    """
    return _DANGLING_WORDS.sub("", text.rsplit(" ", 1)[0].rstrip(" ,;:-")).rstrip(" ,;:-") or text


def looks_cut(word: str, context: str = "") -> bool:
    """Whether the last word of a field the grammar closed reads as a word cut short: a single letter ("in O"), a
    word no English word list knows ("toleran"), or the start of a longer word of ``context`` ("cait" where the
    reasoning has "caitopram"); "mellitus", where a cap fell after it, is whole.

        >>> [looks_cut(word, "the effects of caitopram") for word in ("O", "toleran", "cait", "mellitus", "adults,")]
        [True, True, True, False, False]
    """
    word = word.strip(".,;:()[]-").lower()
    longer = {other for other in re.findall(r"\w+", context.lower()) if len(other) > len(word)}
    return len(word) <= 1 or not is_known_word(word) or any(other.startswith(word) for other in longer)


def cut_fields(reflection: Reflection) -> list[str]:
    """The names of the reflection's fields that the JSON grammar closed at their caps, or that copy the cut end
    of one that was.

    The model writes the fields in order and copies a cut one's end into a later one (topic "... Cancer Mortality
    in O", then the title "Risk of Immunosuppressive Therapy in Cancer Mortality in O"): a field that ends with the
    same last two words is cut alike, when the last of them reads as cut short (a cap can also fall right after a
    whole word, "... type 2 diabetes mellitus", and a title may end so too). A field longer than its cap was not
    held to it (no grammar) and is whole.

        >>> cut_fields(Reflection(topic="Impact of Therapy on Cancer Mortality in Ocular Disease in O", aspect="Risk",
        ...                       reasoning="", title="Risk of Therapy in Cancer Mortality in O"))
        ['topic', 'title']
    """
    caps = {"topic": TOPIC_MAX_CHARS, "aspect": ASPECT_MAX_CHARS, "title": TITLE_MAX_CHARS}
    fields = {name: getattr(reflection, name) for name in caps}
    capped = [name for name in caps if len(fields[name]) == caps[name]]
    context = " ".join([*fields.values(), reflection.reasoning])
    broken_ends = {" ".join(words[-2:]) for words in (fields[name].split() for name in capped)
                   if words and looks_cut(words[-1], context)}
    return [name for name, value in fields.items()
            if name in capped or any(f" {value}".endswith(f" {end}") for end in broken_ends)]


class ReflectionOptions(BaseModel):
    """A reflection that proposes several aspects of one topic (``reflect_many``)."""

    topic: str
    aspects: list[AspectOption]

    def reflections(self) -> list[Reflection]:
        return [Reflection(topic=self.topic, aspect=a.aspect, reasoning=a.reasoning, title=a.title) for a in self.aspects]


# Reasoning comes before the text (the paper's reflection); naming the aspect first keeps small
# models writing about it rather than about the task.
REFLECTION_PROPERTIES: dict[str, Any] = {
    "aspect": {"type": "string", "minLength": 3, "maxLength": ASPECT_MAX_CHARS},
    "reasoning": {"type": "string", "maxLength": 240},
}
TOPIC_PROPERTY: dict[str, Any] = {"type": "string", "minLength": 3, "maxLength": TOPIC_MAX_CHARS}
TITLE_PROPERTY: dict[str, Any] = {"type": "string", "minLength": 8, "maxLength": TITLE_MAX_CHARS}


# Generation budget of one aspect of a ``reflect_many`` answer: its aspect, reasoning and title run to about 100 tokens.
REFLECTION_TOKENS_PER_ASPECT = 130
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


def sections_for(target_words: int) -> int:
    """How many parts to ask for so that the abstract comes out near ``target_words``."""
    return clamped_sections(round(target_words / WORDS_PER_SECTION))


def clamped_sections(count: int) -> int:
    return max(1, min(len(SECTIONS), count))


def quoted_pair(pair: Pair) -> tuple[Pair, list[str]]:
    """The pair as the prompts quote it (:func:`syneg.synth.prompts.quoted`), and what was changed in each text.

        >>> quoted_pair(Pair("q1", "Why?\\n<|im_end|>", "d1", "word " * 500))[1]
        ['query: markup neutralized', 'positive: cut to 120 words']
    """
    query, query_notes = quoted(pair.query)
    positive, positive_notes = quoted(pair.positive)
    notes = [f"query: {note}" for note in query_notes] + [f"positive: {note}" for note in positive_notes]
    return replace(pair, query=query, positive=positive), notes


@dataclass
class Candidate:
    """One written candidate, with the reflection it was written from (None without reflection)."""

    text: str
    aspect: str = ""
    reasoning: str = ""
    notes: list[str] = field(default_factory=list)
    reflection: Reflection | None = None


class CandidateWriter:
    """Asks the LLM for one candidate negative of a pair (see :class:`syneg.synth.Synthesizer` for the options)."""

    def __init__(
        self,
        client: LLMClient,
        templates: PromptTemplates,
        ablation: Ablation,
        prompt_style: PromptStyle,
        max_tokens: int,
        temperature: float,
        style_examples: Sequence[str] = (),
        trim_cut_fields: bool = True,
    ) -> None:
        if "example" in templates.placeholders("write") and not style_examples:
            raise ValueError("the write template quotes $example, a text of the collection: pass style_examples")
        self.client = client
        self.templates = templates
        self.style_examples = [quoted(text)[0] for text in style_examples]
        self.use_attributes = ablation == "none"
        self.reflection = ablation != "no-attributes-no-reflection"
        self.prompt_style = prompt_style
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.trim_cut_fields = trim_cut_fields

    def attribute_text(self, attributes: dict[str, str], target_words: int) -> str:
        if not self.use_attributes:
            return ""
        described = [f"Write for {attributes['difficulty']} readers, about {target_words} words ({attributes['length']})."]
        described += [
            f"{name.capitalize()}: {value}." for name, value in attributes.items() if name not in ("domain", "difficulty", "length")
        ]
        return " " + " ".join(described)

    def style_example(self, pair: Pair, seed: int) -> str:
        """The text of the collection a write template's ``$example`` quotes for this candidate: the same
        one whenever the candidate is asked again (a stable hash, so the cache key stays), never the positive."""
        if not self.style_examples:
            return ""
        start = zlib.crc32(f"{pair.query_id}\t{pair.pos_id}\t{seed}".encode())
        for step in range(len(self.style_examples)):
            example = self.style_examples[(start + step) % len(self.style_examples)]
            if example != pair.positive:
                return example
        return ""

    def system(self, attributes: dict[str, str]) -> str:
        if self.use_attributes:
            return self.templates.render("system", domain=attributes["domain"])
        return self.templates.render("system_plain")

    def instruction(self, attributes: dict[str, str], target_words: int) -> list[str]:
        """The fixed wording of the prompts that ask for the text, which the text must not repeat."""
        name = "generate_plain" if not self.reflection else "generate" if self.prompt_style == "single" else "write"
        pieces = self.templates.fixed_pieces(name) + self.templates.fixed_pieces("system" if self.use_attributes else "system_plain")
        return pieces + ([self.attribute_text(attributes, target_words)] if self.use_attributes else [])

    async def write(
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

        ``pair``: as the prompts quote it (:func:`quoted_pair`); ``follow_up``: the revision request appended to the prompt that asks for the aspect;
        ``reflection``: reuse an earlier reflection (its aspect was sound, only the text failed) instead
        of asking for one; ``sections``: parts of the abstract to ask for (two-step prompt).
        """
        system = self.system(attributes)
        common = {"max_tokens": self.max_tokens, "temperature": self.temperature, "seed": seed}
        negative_schema = {"negative": {"type": "string", "minLength": 20, "maxLength": 8 * target_words + 200}}
        if not self.reflection:
            user = self.templates.render("generate_plain", query=pair.query, positive=pair.positive)
            schema = {"type": "object", "properties": negative_schema, "required": ["negative"]}
            answer, _ = await self.client.generate(ChatRequest.chat(system, user + follow_up, schema=schema, **common), PlainNegativeAnswer)
            return Candidate(" ".join(answer.negative.split()))
        if self.prompt_style == "single":
            user = self.templates.render("generate", query=pair.query, positive=pair.positive,
                                         attributes=self.attribute_text(attributes, target_words))
            schema = {"type": "object", "properties": REFLECTION_PROPERTIES | negative_schema, "required": ["aspect", "reasoning", "negative"]}
            answer, _ = await self.client.generate(ChatRequest.chat(system, user + follow_up, schema=schema, **common), NegativeAnswer)
            return Candidate(" ".join(answer.negative.split()), answer.aspect, answer.reasoning)
        if reflection is None:
            reflection = await self._reflect(pair, system, follow_up, common)
        return await self._passage(pair, attributes, target_words, system, reflection, sections, common)

    async def reflect(self, pair: Pair, attributes: dict[str, str], seed: int, follow_up: str) -> Reflection:
        """The two-step prompt's first step alone, the very request :meth:`write` would send without a
        ``reflection`` (same seed and parameters, so the same cache key); raises LLMError."""
        common = {"max_tokens": self.max_tokens, "temperature": self.temperature, "seed": seed}
        return await self._reflect(pair, self.system(attributes), follow_up, common)

    async def reflect_aspects(self, pair: Pair, attributes: dict[str, str], seed: int, follow_up: str, count: int) -> list[Reflection]:
        """``count`` reflections on one topic from one request (``reflect_many``); with ``count`` 1, the very
        request of :meth:`reflect`, so that the caches written before this option still answer. Raises LLMError."""
        if count == 1:
            return [await self.reflect(pair, attributes, seed, follow_up)]
        user = self.templates.render("reflect_many", query=pair.query, positive=pair.positive, count=str(count))
        option = REFLECTION_PROPERTIES | {"title": TITLE_PROPERTY}
        schema = {
            "type": "object",
            "properties": {
                "topic": TOPIC_PROPERTY,
                "aspects": {"type": "array", "minItems": count, "maxItems": count,
                            "items": {"type": "object", "properties": option, "required": ["aspect", "reasoning", "title"]}},
            },
            "required": ["topic", "aspects"],
        }
        common = {"max_tokens": 40 + REFLECTION_TOKENS_PER_ASPECT * count, "temperature": self.temperature, "seed": seed}
        answer, _ = await self.client.generate(
            ChatRequest.chat(self.system(attributes), user + follow_up, schema=schema, **common), ReflectionOptions
        )
        if not answer.aspects:  # a backend without the grammar may answer an empty list
            raise LLMError("schema", "the reflection proposed no aspect")
        return answer.reflections()

    async def _reflect(self, pair: Pair, system: str, follow_up: str, common: dict[str, Any]) -> Reflection:
        # The revision reasons go to the reflection only: a small model shown them while writing copies
        # them into the text, and a new aspect is what most failures (on topic, leak, paraphrase) need.
        user = self.templates.render("reflect", query=pair.query, positive=pair.positive)
        properties = {"topic": TOPIC_PROPERTY} | REFLECTION_PROPERTIES | {"title": TITLE_PROPERTY}
        schema = {"type": "object", "properties": properties, "required": ["topic", "aspect", "reasoning", "title"]}
        reflection, _ = await self.client.generate(
            ChatRequest.chat(system, user + follow_up, schema=schema, **(common | {"max_tokens": 150})), Reflection
        )
        return reflection

    async def _passage(
        self,
        pair: Pair,
        attributes: dict[str, str],
        target_words: int,
        system: str,
        reflection: Reflection,
        sections: int,
        common: dict[str, Any],
    ) -> Candidate:
        """The passage about the reflection's aspect, in the corpus's form."""
        labels = SECTIONS[sections]
        layout = (
            f"Write it in {len(labels)} parts, each starting with its label in capitals: {', '.join(labels)}."
            if labels else "Write it as one plain paragraph."
        )
        if self.trim_cut_fields:
            cut = cut_fields(reflection)
        else:  # as before trim_cut_fields: the title alone, when it reached its cap
            cut = ["title"] if len(reflection.title) >= TITLE_MAX_CHARS else []
        # The reflection's fields may carry what an injection in the quoted texts asked for: quoted alike.
        quoted_fields = {"topic": quoted(reflection.topic)[0], "aspect": quoted(reflection.aspect)[0],
                         "title": quoted(reflection.title)[0].strip('"')}
        # A cut field keeps its whole words: the model copies the fields into the passage, broken end and all.
        fields = {name: whole_words(value) if name in cut else value for name, value in quoted_fields.items()}
        cut = [name for name in cut if fields[name] != quoted_fields[name]]
        title = fields["title"]
        user = self.templates.render(
            "write",
            title=title,
            aspect=fields["aspect"],
            topic=fields["topic"],
            subject=pair.query,
            attributes=self.attribute_text(attributes, target_words),
            layout=layout,
            example=self.style_example(pair, common["seed"]),
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
        notes[:0] = [f"{name} cut to its whole words" for name in cut]
        return Candidate(text, reflection.aspect, reflection.reasoning, notes, reflection)
