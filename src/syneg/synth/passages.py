"""A written answer in the corpus's own form: markdown, labels and restated sentences removed.

A generated passage must not give its source away by its form, so what only generated text has is
removed (:func:`as_passage`), and every change is noted for the negative's details.
"""

from __future__ import annotations

import re

from syneg.synth.checks import SENTENCE_FINAL, ngrams, sentences, words

# A label in capitals, or capitalized and not followed by a lower-case word: "Results indicate that ..." is
# the sentence's subject, and taking it for a label left ". indicate that ..." in three accepted negatives.
# Second group: a label in mixed case ("ConCLUSIONS", 27 answers of the SciFact cache) alone on its line, with
# what punctuation follows it, or before a colon; a lower-case word there ends a wrapped sentence.
_SECTION_LABEL = re.compile(
    r"^\s*(?:#+\s*)?(?:\*\*|__)?\s*(?:(BACKGROUND|OBJECTIVES?|METHODS?|RESULTS?|CONCLUSIONS?|(?:Background|Objectives?|"
    r"Methods?|Results?|Conclusions?)(?!\s*[a-z]))|(?=[A-Z])((?i:background|objectives?|methods?|results?|conclusions?))"
    r"(?:[\W_]*$|(?=\s*:)))\s*(?:\*\*|__)?\s*[:.]?\s*(?:\*\*|__)?\s*"
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
# A reference list ("References: [1] Nature, 2016 ..."): 10 of the first 198 accepted SciFact negatives end
# with one, no abstract of the corpus has one, and the model invents it (or writes "[insert references
# here]"): cut from its heading to the end.
# The third audit found "References - [1] S. T. Schmidt, ..." and "References No additional references are
# provided": a "References" that opens a sentence, then a capital or "[1]", is a heading. Upper case too
# (session 16: "... demographic changes. REFERENCES This research was conducted by the WHO's ...").
# Session 17: "... and inflammation. References 1." (a numbered list begun) and "... strategies. Bibliography J.D. Lee,
# A.C. Johnson, ..." as well.
_REFERENCES_WORD = r"(?:References?|REFERENCES?|Bibliography|BIBLIOGRAPHY)"
_REFERENCES = re.compile(rf"\s*\b{_REFERENCES_WORD}\s*:.*$|(?<=[.!?])\s+{_REFERENCES_WORD}\s*[-\u2013\u2014]?\s+(?=\[\d|[A-Z]|\d{{1,2}}\.).*$",
                         re.DOTALL)
# An outline's next marker left at the end ("... statistical software such as R or SPSS. C."): a lone capital and
# a full stop after a finished sentence, which no SciFact or NFCorpus abstract ends with (mid-text, author initials do).
_TRAILING_MARKERS = re.compile(r"(?<=[.!?])(?:\s+[A-Z]\.)+\s*$")
# Section labels inside an abstract, as structured corpus abstracts have them ("... CONTEXT High ...").
_INLINE_LABELS = re.compile(r"\b(?:BACKGROUND|OBJECTIVES?|METHODS?|RESULTS?|CONCLUSIONS?|CONTEXT|DESIGN|AIMS?|PURPOSE)\b")


def is_structured(text: str) -> bool:
    """Whether a passage is a structured abstract (two or more capitalized section labels), as 18% of SciFact's are.

        >>> is_structured("CONTEXT Homocysteine is a risk factor. OBJECTIVE To test folic acid."), is_structured("Plain text.")
        (True, False)
    """
    return len(_INLINE_LABELS.findall(text)) >= 2


def as_passage(raw: str, keep_section_labels: bool = False) -> tuple[str, list[str]]:
    """A model's title-and-abstract answer in the corpus's own form, with notes of what was changed.

    Corpus passages are ``title text`` in plain prose (:attr:`syneg.data.Document.full_text`), so
    markdown, "Title:" / "Abstract:" labels, list markers and reference lists, which only generated text
    has, are removed; section labels are kept inline in capitals, as structured corpus abstracts have them, only
    when ``keep_section_labels`` (the positive is structured too); an unfinished last sentence (the
    token budget ran out) is cut. Each change is noted, and the notes are kept in the negative's details.

        >>> as_passage("**Title:** Telomere length\\n\\nAbstract: Telomeres shorten. Cells then stop dividing and")
        ('Telomere length Telomeres shorten.', ['labels removed', 'markdown removed', 'unfinished sentence cut (5 words)'])
        >>> as_passage("Telomere length. Telomeres shorten. References: [1] Nature, 2016, pp. 1-9.")
        ('Telomere length. Telomeres shorten.', ['reference list removed (6 words)'])
        >>> as_passage("Telomere length\\nBACKGROUND\\nTelomeres shorten.\\n**Results:** They do.", keep_section_labels=True)[0]
        'Telomere length BACKGROUND Telomeres shorten. RESULTS They do.'
        >>> as_passage("Telomere length\\nBACKGROUND\\nTelomeres shorten.\\nConCLUSIONS.\\nThey do.", keep_section_labels=True)[0]
        'Telomere length BACKGROUND Telomeres shorten. CONCLUSIONS They do.'
        >>> as_passage("Telomere length\\nMethods.\\nWe measured telomeres.\\nResults. They shorten.")[0]
        'Telomere length We measured telomeres. They shorten.'
        >>> as_passage("Telomere length. Telomeres shorten. References 1.")
        ('Telomere length. Telomeres shorten.', ['reference list removed (2 words)'])
        >>> as_passage("Telomere length. Telomeres shorten. Bibliography J.D. Lee, A.C. Johnson, Science, 2015.")[0]
        'Telomere length. Telomeres shorten.'
        >>> as_passage("Telomere length. A. Telomeres shorten in group A. B. C.")
        ('Telomere length. A. Telomeres shorten in group A.', ['list markers removed at the end'])
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
            (f"{(match.group(1) or match.group(2)).upper()} " if keep_section_labels else "") + line[match.end() :] if match else line
            for line, match in zip(lines, labelled, strict=True)
        ]
    if any(_MARKUP.search(line) for line in lines):
        notes.append("markdown removed")
        lines = [_MARKUP.sub("", line) for line in lines]
    if sum(bool(_LIST_MARKER.match(line)) for line in lines) > 1:
        notes.append("list markers removed")
        lines = [_LIST_MARKER.sub("", line) for line in lines]
    text = " ".join(" ".join(lines).split())
    references = _REFERENCES.search(text)
    if references and references.start() > 0:
        notes.append(f"reference list removed ({len(references.group(0).split())} words)")
        text = text[: references.start()]
    finished = _LAST_SENTENCE_END.match(text)
    if finished and finished.end() < len(text):
        cut = len(text[finished.end() :].split())
        notes.append(f"unfinished sentence cut ({cut} words)")
        text = finished.group(0)
    text, repeats = without_repeated_sentences(text)
    if repeats:
        notes.append(f"{repeats} repeated sentence{'s' if repeats > 1 else ''} removed")
    # After the repeats: a marker can open a part whose only sentence restates an earlier one ("SPSS. C. Results The
    # study found ...", the last sentence removed as a repeat).
    markers = _TRAILING_MARKERS.search(text)
    if markers:
        notes.append("list markers removed at the end")
        text = text[: markers.start()]
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
