"""Checks of a candidate negative that do not depend on a small model's judgement.

Each check returns a :class:`CheckResult` with its value, threshold and verdict, recorded with every
kept negative; failed ones become the reasons sent back to the LLM for a revision.

- ``on_topic``: dense similarity to the query at least ``min_query_similarity``, or
  ``min_relative_similarity`` times the positive's own similarity when that is lower (off-topic text
  is an easy negative, not a hard one). The relative floor matters where positives themselves score
  low: SciFact claims score 0.29-0.42 against their abstracts with all-MiniLM-L6-v2, so an absolute
  floor of 0.3 above the 95% cap would leave no room at all.
- ``not_paraphrase``: dense similarity to the positive at most ``max_positive_similarity``.
- ``below_positive``: similarity to the query at most ``positive_ratio`` times the positive's (the
  positive-aware 95% rule of NV-Retriever: above it, the text probably answers the query too).
- ``no_answer_leak``: share of the positive's answer-bearing sentence (the sentence most similar to
  the query) whose word bigrams reappear in the negative, bigrams found in the query excepted.
- ``not_duplicate``: similarity to every negative already kept for the pair below ``max_duplicate_similarity``.
- ``length``: word count within ``[min_length_ratio, max_length_ratio]`` times the target, and at
  least ``min_words``. The target is the positive's own word count (the paper's "about the same
  length as the passage"): a negative much shorter than the passages it competes with lets the
  model learn "short text = negative" instead of relevance.
- ``not_degenerate``: small models fall into repetition loops ("...a textbook would be a textbook
  would be..."), start or stop mid-sentence, or slip into another script (Qwen writes Chinese words into
  English text); such text is rejected (:func:`degeneration`).
- ``title_below_positive`` (before the passage is written): the reflection's title alone scoring above
  ``max_title_ratio`` times the positive's query similarity foretells a passage that fails
  ``below_positive``; the passage is not asked for, which saves most of a candidate's cost.
- ``not_echo``: small models asked for a negative often write about the task instead ("this passage
  does not answer the query..."), repeat their reasoning, or copy the instruction's own wording
  ("..., in the field of genetics, as a textbook would.") or the words of the revision request
  ("An earlier attempt was rejected ..."); such text is rejected. The instruction's wording is a
  run of ``instruction_echo_words`` words from the instruction's fixed text (not from the query,
  passage or aspect it was given); 0 turns it off.
- ``abbreviations_match``: small models gloss the pair's own abbreviations with invented expansions
  ("AMH (amino acid transaminase)", "Scanning Chromatin Transfer (SCNT)" where the positive has somatic
  cell nuclear transfer) or shorten the positive's terms into another abbreviation (WS1 for WFS1), and
  then use them that way throughout; such text is rejected (:func:`abbreviation_conflicts`). Only the
  abbreviations of the query and positive are held to them: other abbreviations may mean anything.
- ``terms_spelled``: small models misspell the pair's key words and keep the misspelling ("Macromia" for
  macrosomia, "adjuant" for adjuvant); a word that reads as one of the query's or positive's words spelt
  wrong inside, and that no English word list knows, is rejected (:func:`misspelled_terms`).
"""

from __future__ import annotations

import functools
import itertools
import os
import re
from dataclasses import asdict, dataclass
from difflib import SequenceMatcher

import numpy as np

_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9])")
ECHO_PHRASES = (
    "answer the query",
    "answers the query",
    "answer the search query",
    "answering the query",
    "the query",
    "search query",
    "this passage",
    "the passage",
    "new passage",
    "hard negative",
    "negative passage",
    "the given passage",
    "the paragraph",
    "this paragraph",
    "reference text",
    # Seen in the model-choice benchmark: Qwen 0.5B reviewing the passage instead of writing one.
    "the text does not",
    "the text only",
    "does not provide enough information",
    "the answer",
    "does not give the answer",
    "doesn't answer",
    "does not answer",
    "not relevant to",
    "as an expert",
    "json",
)
# The prompts' own words carried into the text, mostly through the reflection's title: the revision
# request ("An earlier attempt was rejected because ..."), the JSON template ("<the article's title>")
# and the reflection ("why a reader could mistake it for the answer"). The audit of 100 new SciFact
# negatives found 10 such texts; none of SciFact's 5,183 or NFCorpus's 3,633 abstracts matches.
# The second audit (54 negatives of pairs 189-266) found the text talking about itself as the task's
# abstract: "This abstract provides a foundational overview", "The abstract begins with a brief
# background", "[insert references here]", "INTROducting the article"; no corpus abstract matches either.
# The third (60 of pairs 247-354) found it describing its parts ("METHODS This section includes ...") or
# itself ("Note: This is a simplified example of the abstract", "The Task of the Abstract", "No additional
# references are provided"); no corpus abstract matches these either. The fourth (58 of lines 357-438) and the
# temperature comparison's found a title "A Previous Attempt Failed" (the revision request's words) and a study
# "by Dr. Jane Doe" (a placeholder name); no corpus abstract has either.
TASK_WORDS = re.compile(
    r"\battempts?\b[^.]{0,40}\breject|\breject\w*\b[^.]{0,20}\battempts?\b|\bfailed attempts?\b"
    r"|\bplaceholder\b|\bcorrect answer\b|\bkey lines\b|\barticle'?s title\b"
    r"|\[insert\b|\bthis abstract\b|\bthe abstract (?:begins|provides|is|will)\b|\bintro\w*ing the article\b"
    r"|\bthis section (?:includes|summarizes|describes|provides|presents|outlines)\b|\bsimplified example\b"
    r"|\bno (?:additional |further )?references\b|\btask of the abstract\b|\bnote: this\b"
    r"|\battempts? failed\b|\b(?:jane|john) doe\b"
    # The revision request's own reasons, reworded into a title ("Rejection due to copying answer wording").
    r"|\brejection due to\b|\banswer'?s? wording\b|\bcopying (?:the )?answer\b",
    re.IGNORECASE,
)


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE.split(text.strip()) if s]


def bigrams(tokens: list[str]) -> set[tuple[str, str]]:
    return set(itertools.pairwise(tokens))


def ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    """Runs of ``n`` consecutive tokens, in order."""
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


@dataclass
class CheckResult:
    name: str
    value: float
    threshold: float
    passed: bool
    reason: str = ""

    def to_dict(self) -> dict[str, float | bool]:
        data = asdict(self)
        del data["name"], data["reason"]
        data["value"] = round(float(self.value), 4)
        return data


@dataclass
class CheckConfig:
    """Thresholds of the checks (defaults tuned for all-MiniLM-L6-v2 cosine similarities)."""

    min_query_similarity: float = 0.3
    min_relative_similarity: float = 0.5
    max_positive_similarity: float = 0.9
    positive_ratio: float = 0.95
    max_answer_leak: float = 0.3
    max_duplicate_similarity: float = 0.95
    # Length parity with the positive: within 0.7-1.3 times its word count.
    min_length_ratio: float = 0.7
    max_length_ratio: float = 1.3
    min_words: int = 12
    # Share of word 4-grams that repeat an earlier one: 0.14 is the 99.9th percentile of SciFact's
    # abstracts, while a third of the first SciFact synthesis's negatives were above it.
    max_repeated_ngrams: float = 0.15
    # Added after the SciFact synthesis: 62 of its 298 negatives repeat four words of the write
    # instruction, a cue that only synthetic negatives have.
    instruction_echo_words: int = 4
    # A reflection whose title alone scores above this many times the positive's query similarity is
    # not written out: 94% of such passages failed the 95% rule in the SciFact run (BENCHMARKS.md,
    # "The title tells"). A large value writes every reflection out.
    max_title_ratio: float = 1.2
    # Glosses of the pair's abbreviations that contradict the positive or their own letters: rubric v5's
    # audits found them behind most broken negatives, and 1.9% of real SciFact abstracts that share an
    # abbreviation with a pair clash with its positive (BENCHMARKS.md, "Abbreviations"). A large value
    # turns the check off.
    max_abbreviation_conflicts: int = 0
    # Words that read as the pair's own words misspelt (BENCHMARKS.md, "Misspelt key words"): found in 7 of
    # 142 broken audited negatives, and in 0.2% of real abstracts on a pair's subject. A large value turns it off.
    max_misspelled_terms: int = 0


def answer_leak(negative: str, answer_sentence: str, query: str) -> float:
    """Share of the answer sentence's bigrams (those not in the query) that appear in the negative.

    Example::

        >>> answer_leak("Coffee keeps you awake for about five hours.",
        ...             "Caffeine has a half-life of about five hours.", "How long does caffeine last?")  # 2 of 7
        0.2857142857142857
    """
    answer = bigrams(words(answer_sentence)) - bigrams(words(query))
    if not answer:
        return 0.0
    return len(answer & bigrams(words(negative))) / len(answer)


def is_echo(
    negative: str, reasoning: str = "", instruction: list[str] | None = None, instruction_words: int = CheckConfig.instruction_echo_words
) -> str:
    """The phrase showing the text talks about the task, repeats the reasoning or copies the instruction; empty if none.

    ``instruction`` holds the fixed pieces of the prompt that asked for the text (its wording between
    the placeholders): a run of ``instruction_words`` of their words in the text is an echo.

    Example::

        >>> is_echo("Telomeres, in the field of genetics, as a textbook would.", instruction=["Write about", "as a textbook would."])
        'as a textbook would'
        >>> is_echo("Telomere biology: an earlier attempt was rejected because it is off topic.")
        'attempt was reject'
    """
    lowered = negative.lower()
    for phrase in ECHO_PHRASES:
        if phrase in lowered:
            return phrase
    task_words = TASK_WORDS.search(negative)
    if task_words:
        return task_words.group(0).lower()
    if reasoning and len(bigrams(words(negative)) & bigrams(words(reasoning))) > 0.5 * max(1, len(bigrams(words(negative)))):
        return "repeats its reasoning"
    if instruction and instruction_words > 0:
        runs = set(ngrams(words(negative), instruction_words))
        for piece in instruction:
            for run in ngrams(words(piece), instruction_words):
                if run in runs:
                    return " ".join(run)
    return ""


# Scripts an English passage has no reason to switch to; a character of one absent from the positive
# marks a model that lost the thread.
_FOREIGN_SCRIPT = re.compile(r"[\u0400-\u04ff\u0590-\u06ff\u0e00-\u0e7f\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")
# Sentence-final punctuation, closing quotes and brackets included; as_passage cuts text back to it too.
SENTENCE_FINAL = r"[.!?][\"')\]]*"
_SENTENCE_END = re.compile(SENTENCE_FINAL + "$")
# ", which is a placeholder for ...": the end of a sentence whose start the model left out (no abstract
# of SciFact or NFCorpus starts with one of these).
_FRAGMENT_START = re.compile(r"\s*[,;:.)\]]")
# "The human quadriceps: The human femur: The human glute: The human thigh:": labels of a list the model
# never filled in (second audit); no abstract of SciFact or NFCorpus has four labels in a row.
_EMPTY_LABELS = re.compile(r"(?:(?:^|(?<=[.:]\s))[A-Z][\w\s()/-]{0,40}:\s+){4,}")


def repeated_ngram_share(tokens: list[str], n: int = 4) -> float:
    """Share of the word ``n``-grams that repeat an earlier one (0 for text that never repeats itself).

        >>> repeated_ngram_share("a textbook would be a textbook would be a textbook would be".split())
        0.5555555555555556
    """
    grams = ngrams(tokens, n)
    return (len(grams) - len(set(grams))) / len(grams) if grams else 0.0


def repetition_loop(tokens: list[str], longest_period: int = 12) -> str:
    """The first run of words repeated three times in a row, or an empty string.

        >>> repetition_loop("it is a clinical diagnosis which is a clinical diagnosis which is a clinical diagnosis which".split())
        'is a clinical diagnosis which'
    """
    for start in range(len(tokens)):
        for period in range(1, longest_period + 1):
            end = start + 3 * period
            if end > len(tokens):
                break
            run = tokens[start : start + period]
            if run == tokens[start + period : start + 2 * period] == tokens[start + 2 * period : end]:
                return " ".join(run)
    return ""


def degeneration(text: str, reference: str = "", max_repeated_ngrams: float = CheckConfig.max_repeated_ngrams) -> str:
    """Why ``text`` is broken output rather than a passage, or an empty string if it is not.

    Repetition (a loop of words three times in a row, or more than ``max_repeated_ngrams`` of its
    4-grams repeated), a truncated ending (no sentence-final punctuation), a list of labels with nothing
    after them, or characters of a script that ``reference`` (the positive) does not use.

        >>> degeneration("Telomeres shorten with age. Telomerase restores them.")
        ''
        >>> degeneration("Telomeres shorten with age and the")
        'it stops mid-sentence'
        >>> degeneration(", which is crucial. Telomeres shorten.")
        'it starts mid-sentence'
        >>> degeneration("Muscles differ. Types: The quadriceps: The femur: The glute: The thigh: all studied.")
        "it lists labels with nothing after them ('Types: The quadriceps: The femur: The gl')"
        >>> degeneration("Infant health matters for 婴儿 growth.")
        "it switches to another script ('婴')"
    """
    tokens = words(text)
    loop = repetition_loop(tokens)
    if loop:
        return f"it repeats itself ({loop!r} three times in a row)"
    share = repeated_ngram_share(tokens)
    if share > max_repeated_ngrams:
        return f"it repeats itself ({share:.0%} of its 4-word runs are repeats)"
    if not _SENTENCE_END.search(text.strip()):
        return "it stops mid-sentence"
    if _FRAGMENT_START.match(text):
        return "it starts mid-sentence"
    if labels := _EMPTY_LABELS.search(text):
        return f"it lists labels with nothing after them ({labels.group(0).strip()[:40]!r})"
    foreign = [c for c in _FOREIGN_SCRIPT.findall(text) if c not in reference]
    if foreign:
        return f"it switches to another script ({foreign[0]!r})"
    return ""


# "long form (SHORT)" and "SHORT (long form)", as in Schwartz & Hearst, "A simple algorithm for identifying
# abbreviation definitions in biomedical text" (PSB 2003); written here because the one PyPI package of it
# (abbreviations, last released 2019) configures the root logger on import.
_PARENTHESIS = re.compile(r"\(([^()]{1,80})\)")
_TERM = re.compile(r"[A-Za-z0-9][\w\-+/]*\w|\w")
_LONG_FORM_WORD = re.compile(r"[A-Za-z][\w'\-]*,?")
_LONG_FORM_KEY = re.compile(r"\w+")
_CLAUSE_END = re.compile(r"[.;:,!?()\[\]](?:\s|$)")
_LONG_FORM_STOPWORDS = frozenset({"of", "the", "and", "in", "a", "an", "for", "to", "with", "on", "by"})


def is_abbreviation(term: str) -> bool:
    """2 to 10 characters without spaces, starting with a letter or digit, with two capitals at least.

        >>> [is_abbreviation(t) for t in ("SCNT", "NF-κB", "miRNAs", "Telomeres", "p53", "n = 19")]
        [True, True, True, False, False, False]
    """
    return 2 <= len(term) <= 10 and " " not in term and term[0].isalnum() and sum(c.isupper() for c in term) >= 2


def singular(short: str) -> str:
    """An abbreviation without its plural ending: "MRIs" is "MRI", "miRNAs" "miRNA"."""
    return short[:-1] if len(short) > 2 and short.endswith("s") and short[-2].isupper() else short


def spells(short: str, long: str) -> bool:
    """Whether the letters and digits of ``short`` appear in ``long`` in order, the first at a word start.

        >>> spells("SCNT", "somatic cell nuclear transfer"), spells("AMH", "amino acid transaminase")
        (True, False)
        >>> spells("MRIs", "magnetic resonance imaging")
        True
    """
    wanted = [c.lower() for c in singular(short) if c.isalnum()]
    text = long.lower()
    at = len(text) - 1
    for index in range(len(wanted) - 1, -1, -1):
        while at >= 0 and (text[at] != wanted[index] or (index == 0 and at > 0 and text[at - 1].isalnum())):
            at -= 1
        if at < 0:
            return False
        at -= 1
    return True


@dataclass(frozen=True)
class Gloss:
    """An abbreviation a text defines: ``short`` for ``long``; ``spelled`` when ``long`` holds its letters."""

    short: str
    long: str
    spelled: bool

    @property
    def key(self) -> frozenset[str]:
        """The long form's words, lowercased, singular ("microRNAs" is "microRNA"), without function words."""
        found = _LONG_FORM_KEY.findall(self.long.lower().replace("-", " "))
        return frozenset(w[:-1] if len(w) > 3 and w.endswith("s") else w for w in found) - _LONG_FORM_STOPWORDS

    def agrees(self, other: Gloss) -> bool:
        """Whether the two long forms share half the words of the shorter one ("Bovine spongiform encephalopathy"
        and "spongiform encephalopathy" do; "Scanning Chromatin Transfer" and "somatic cell nuclear transfer" do not)."""
        return len(self.key & other.key) >= max(1, min(len(self.key), len(other.key))) / 2


def abbreviation_glosses(text: str) -> list[Gloss]:
    """The abbreviations ``text`` defines, in order.

    "long form (SHORT)": the long form is the shortest run of the words before the parenthesis that starts
    with the short form's first letter and spells it; without one the parenthesis refers back ("raised
    (IL-6)") and is not a gloss. "SHORT (long form)": a parenthesis of words only, after an abbreviation and
    starting with its first letter (an expansion, not a description such as "DDE (a soil metabolite)"), kept
    even when it does not spell it, which is the tell of an invented expansion.

        >>> [(g.short, g.long, g.spelled) for g in abbreviation_glosses(
        ...     "Somatic cell nuclear transfer (SCNT) was used. AMH (amino acid transaminase) rose (IL-6).")]
        [('SCNT', 'Somatic cell nuclear transfer', True), ('AMH', 'amino acid transaminase', False)]
    """
    found = []
    for match in _PARENTHESIS.finditer(text):
        inside = match.group(1).strip()
        before = _CLAUSE_END.split(text[: match.start()])[-1].split()  # a long form does not cross its clause
        if is_abbreviation(inside):
            window = before[-min(len(inside) + 5, 2 * len(inside)) :]
            for start in range(len(window) - 1, -1, -1):
                long = " ".join(window[start:]).strip("\"'(,;:")
                if window[start].strip("\"'(").lower().startswith(inside[0].lower()) and spells(inside, long):
                    found.append(Gloss(inside, long, True))
                    break
        elif before and is_abbreviation(short := before[-1].strip("\"',;:")) and len(inside.split()) >= 2 \
                and inside[0].lower() == short[0].lower() and short.lower() not in inside.lower() \
                and all(_LONG_FORM_WORD.fullmatch(word) for word in inside.split()):
            found.append(Gloss(short, inside, spells(short, inside)))
    return found


def abbreviation_conflicts(negative: str, query: str, positive: str) -> list[str]:
    """How ``negative`` contradicts the abbreviations of its pair (the query's and the positive's): glossing one
    with words that do not spell it, or otherwise than the positive does, or two ways; or shortening a term the
    positive defines into another abbreviation. Empty when it does none of these.

        >>> positive = "Somatic cell nuclear transfer (SCNT) of Wolfram syndrome 1 (WFS1) cells."
        >>> for problem in abbreviation_conflicts("Scanning Chromatin Transfer (SCNT) of Wolfram syndrome 1 (WS1).", "", positive):
        ...     print(problem)
        it expands SCNT as 'Scanning Chromatin Transfer' where the reference text has 'Somatic cell nuclear transfer'
        it abbreviates 'Wolfram syndrome 1' as WS1 where the reference text has WFS1
        >>> abbreviation_conflicts("Somatic cell nuclear transfer (SCNT) in sheep.", "", positive)
        []
    """
    terms = {singular(term) for term in _TERM.findall(f"{query} {positive}") if is_abbreviation(term)}
    defined: dict[str, list[Gloss]] = {}  # a positive may write an abbreviation out twice ("HLA": English, German)
    written = set()  # every gloss of the pair, spelled or not: what the positive writes is never a clash
    for gloss in abbreviation_glosses(f"{positive}\n{query}"):
        written.add((singular(gloss.short), gloss.key))
        if gloss.spelled:
            defined.setdefault(singular(gloss.short), []).append(gloss)
    short_by_key = {gloss.key: short for short, glosses in defined.items() for gloss in glosses}
    problems: list[str] = []
    first: dict[str, Gloss] = {}
    for gloss in abbreviation_glosses(negative):
        short = singular(gloss.short)
        if (short, gloss.key) in written:
            continue
        if short in terms:
            references = defined.get(short, [])
            if not gloss.spelled:
                problems.append(f"it expands {gloss.short} as {gloss.long!r}, which does not spell it")
                continue
            if references and not any(gloss.agrees(reference) for reference in references):
                problems.append(f"it expands {gloss.short} as {gloss.long!r} where the reference text has {references[0].long!r}")
            elif not references and short in first and not gloss.agrees(first[short]):
                problems.append(f"it expands {gloss.short} two ways, {first[short].long!r} and {gloss.long!r}")
            first.setdefault(short, gloss)
        other = short_by_key.get(gloss.key)
        if gloss.spelled and other is not None and singular(other) != short and short not in defined:
            problems.append(f"it abbreviates {gloss.long!r} as {gloss.short} where the reference text has {other}")
    return problems


# The revision reason of ``below_positive`` and of ``title_below_positive`` alike: a round turned down by its
# title sends the very revision request its passage would have (so replays of older runs stay in the cache).
BELOW_POSITIVE_REASON = "it matches the query as well as the answer does"


# A misspelling is told from a word by three things: an English word list does not know it (wordfreq's
# large list knows most biomedical words: macrosomia, telomerase, hypospadias, hyperthyroidism), it is
# close to a word of the pair (difflib's ratio), and it differs from that word inside, not at the start
# (auto-/pro-inflammatory are two words) nor at the end (macrosomic, macrosomia).
_LETTERS = re.compile(r"[A-Za-z]+")
MIN_TERM_LETTERS = 6
MISSPELLING_SIMILARITY = 0.8


@functools.lru_cache(maxsize=65536)
def is_known_word(word: str) -> bool:
    """Whether wordfreq's large English list has ``word`` (lowercase)."""
    from wordfreq import zipf_frequency

    return zipf_frequency(word, "en", "large") > 0


def _spelling_key(word: str) -> str:
    """``word`` without what real spellings vary in: British ae/oe, a plural s."""
    word = word.replace("ae", "e").replace("oe", "e")
    return word[:-1] if word.endswith("s") else word


def misspells(word: str, term: str, similarity: float = MISSPELLING_SIMILARITY) -> bool:
    """Whether lowercase ``word`` reads as ``term`` spelt wrong: close to it, and differing only inside it.

        >>> [misspells(w, t) for w, t in (("macromia", "macrosomia"), ("macrosomic", "macrosomia"),
        ...                               ("autoinflammatory", "proinflammatory"), ("osteonaecrotic", "osteonecrotic"))]
        [True, False, False, False]
    """
    a, b = _spelling_key(word), _spelling_key(term)
    if a == b or a in b or b in a or abs(len(a) - len(b)) > 3:
        return False
    start = len(os.path.commonprefix([a, b]))
    end = len(os.path.commonprefix([a[start:][::-1], b[start:][::-1]]))
    return start >= 2 and end >= 2 and SequenceMatcher(None, a, b).ratio() >= similarity


def misspelled_terms(negative: str, query: str, positive: str, similarity: float = MISSPELLING_SIMILARITY) -> list[str]:
    """The words of ``negative`` that misspell a word of its query or positive (of at least six letters), one
    reason each; empty when there are none.

        >>> misspelled_terms("Macromia, a macronutrient excess, and macrosomic infants.", "", "Fetal macrosomia.")
        ["it writes 'Macromia' where the reference text has 'macrosomia'"]
    """
    pair_words = {w.lower() for w in _LETTERS.findall(f"{query} {positive}") if len(w) >= MIN_TERM_LETTERS}
    terms = sorted(pair_words)
    problems, seen = [], set()
    for written in _LETTERS.findall(negative):
        word = written.lower()
        if len(word) < MIN_TERM_LETTERS or word in seen or word in pair_words:
            continue
        seen.add(word)
        if is_known_word(word):
            continue
        close = [t for t in terms if misspells(word, t, similarity)]
        if close:  # the closest, when it is near several of the pair's words
            term = max(close, key=lambda t: SequenceMatcher(None, word, t).ratio())
            problems.append(f"it writes {written!r} where the reference text has {term!r}")
    return problems


def title_below_positive(title_similarity: float, positive_score: float, config: CheckConfig) -> CheckResult:
    """The check of a reflection's title before its passage is written: at most ``max_title_ratio`` times
    the positive's query similarity.

        >>> title_below_positive(0.5, 0.4, CheckConfig()).passed, title_below_positive(0.47, 0.4, CheckConfig()).passed
        (False, True)
    """
    cap = config.max_title_ratio * positive_score
    return CheckResult("title_below_positive", title_similarity, cap, title_similarity <= cap, BELOW_POSITIVE_REASON)


def similarity_window(positive_score: float, config: CheckConfig) -> tuple[float, float]:
    """The query similarities a negative may have: at least ``on_topic``'s floor, at most ``below_positive``'s cap.

    The window is empty when the positive itself scores 0 or less against the query (NFCorpus has
    such pairs: "delta waves" is judged answered by an abstract on soy and green tea), and then no
    text can pass both checks.

        >>> similarity_window(0.4, CheckConfig())
        (0.2, 0.38)
        >>> floor, cap = similarity_window(-0.1, CheckConfig())
        >>> floor >= cap
        True
    """
    floor = min(config.min_query_similarity, config.min_relative_similarity * positive_score)
    return floor, config.positive_ratio * positive_score


def run_checks(
    negative: str,
    reasoning: str,
    *,
    negative_vector: np.ndarray,
    query: str,
    query_vector: np.ndarray,
    positive_vector: np.ndarray,
    answer_sentence: str,
    target_words: int,
    positive: str = "",
    kept_vectors: list[np.ndarray],
    config: CheckConfig,
    instruction: list[str] | None = None,
) -> list[CheckResult]:
    """Run every check on one candidate; vectors are L2-normalized, so dot products are cosines.

    ``instruction``: the fixed pieces of the prompt that asked for the text (see :func:`is_echo`).
    """
    query_similarity = float(negative_vector @ query_vector)
    positive_similarity = float(negative_vector @ positive_vector)
    positive_score = float(positive_vector @ query_vector)
    leak = answer_leak(negative, answer_sentence, query)
    duplicate = max((float(negative_vector @ v) for v in kept_vectors), default=0.0)
    count = len(words(negative))
    low, high = max(config.min_words, config.min_length_ratio * target_words), config.max_length_ratio * target_words
    length_value = count / max(1, target_words)
    echo = is_echo(negative, reasoning, instruction, config.instruction_echo_words)
    broken = degeneration(negative, positive, config.max_repeated_ngrams)
    clashes = abbreviation_conflicts(negative, query, positive)
    misspelled = misspelled_terms(negative, query, positive)
    floor, ratio_cap = similarity_window(positive_score, config)
    return [
        CheckResult("on_topic", query_similarity, floor, query_similarity >= floor,
                    "it is off topic: write about the query's subject"),
        CheckResult("not_paraphrase", positive_similarity, config.max_positive_similarity,
                    positive_similarity <= config.max_positive_similarity,
                    "it repeats the passage that answers the query"),
        CheckResult("below_positive", query_similarity, ratio_cap, query_similarity <= ratio_cap, BELOW_POSITIVE_REASON),
        CheckResult("no_answer_leak", leak, config.max_answer_leak, leak <= config.max_answer_leak,
                    "it copies the answer's wording"),
        CheckResult("not_duplicate", duplicate, config.max_duplicate_similarity, duplicate <= config.max_duplicate_similarity,
                    "it repeats another passage you wrote"),
        CheckResult("length", length_value, config.min_length_ratio, low <= count <= high,
                    f"it has {count} words; write about {target_words}"),
        CheckResult("not_echo", float(bool(echo)), 0.0, not echo,
                    f"it talks about the task ({echo!r}) instead of being a passage on the topic"),
        CheckResult("not_degenerate", float(bool(broken)), 0.0, not broken, broken),
        CheckResult("abbreviations_match", float(len(clashes)), config.max_abbreviation_conflicts,
                    len(clashes) <= config.max_abbreviation_conflicts, "; ".join(clashes)),
        CheckResult("terms_spelled", float(len(misspelled)), config.max_misspelled_terms,
                    len(misspelled) <= config.max_misspelled_terms, "; ".join(misspelled)),
    ]
