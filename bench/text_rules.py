"""Would a rule on the text alone catch the mangled names the audits read? (session 7)

The third audit found fluent negatives with wrong expansions ("AML (adenosine methylation kinase)",
"National Sexual Attitudes Survey (SSA)") or a key word misspelt throughout ("adjuant"). This script
measures three rules that would reject such texts on what matters for a check: how many real texts they
would strike (a check must strike almost none), and how they split the audits' labelled negatives
(broken against hard):

- ``initials``: the initials of the content words before "(ABBR)", from the nearest word that starts
  with the abbreviation's first letter, appear in order among its letters (strict).
- ``schwartz-hearst``: the abbreviation's letters appear in order in the words before it, its first
  letter starting a word (the lenient matching of Schwartz & Hearst, 2003).
- ``repeated-misspelling``: a word of 6 letters or more, used at least twice, that no other abstract of
  SciFact has and that is one or two edits (Damerau-Levenshtein; ``rapidfuzz``) from a word of the query
  or positive ("adjuant" for "adjuvant", "Macromia" for "Macrosomia"). The real texts it is measured on
  are the run's mined negatives (300 pairs drawn with seed 0, three negatives each), against their own
  query and positive, the text itself left out of the vocabulary.

    pip install rapidfuzz   # for the third rule
    python bench/text_rules.py --datasets ../shared/datasets --mined bench/experiments/runs/scifact-all/mined.jsonl
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import re
from pathlib import Path

AUDITS = sorted(Path(__file__).parent.glob("audit/scifact-v[234]*-labels.jsonl"))  # read before the rules were measured
FUNCTION_WORDS = {"of", "and", "the", "in", "for", "to", "with", "on", "by", "a", "an", "or", "at", "from", "as", "via", "into"}
ABBREVIATION = re.compile(r"^(?=(?:[^A-Z]*[A-Z]){2})[A-Za-z0-9][A-Za-z0-9-]{1,9}$")  # two capitals at least
IN_PARENTHESES = re.compile(r"\(([^()\s]{2,10})\)")


def alphanumerics(text: str) -> list[str]:
    return [c.lower() for c in text if c.isalnum()]


def in_order(needed: list[str], available: list[str]) -> bool:
    rest = iter(available)
    return all(c in rest for c in needed)


def fits_initials(abbreviation: str, before: list[str]) -> bool:
    for back in range(1, min(len(before), len(alphanumerics(abbreviation)) + 3) + 1):
        if before[-back][0].lower() == abbreviation[0].lower():
            initials = [w[0].lower() for w in before[-back:] if w.lower() not in FUNCTION_WORDS]
            return in_order(initials, alphanumerics(abbreviation))
    return True  # no word to expand it from: not a definition


def fits_schwartz_hearst(abbreviation: str, before: list[str]) -> bool:
    letters, text = [c.lower() for c in abbreviation if c.isalpha()], " ".join(before).lower()
    at = len(text) - 1
    for index in range(len(letters) - 1, -1, -1):
        while at >= 0 and (text[at] != letters[index] or (index == 0 and at > 0 and text[at - 1].isalnum())):
            at -= 1
        if at < 0:
            return False
        at -= 1
    return True


ABBREVIATION_RULES = {"initials": fits_initials, "schwartz-hearst": fits_schwartz_hearst}
TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9]*")


def misspelt(text: str, reference: str, frequencies: collections.Counter, own: bool) -> bool:
    """Whether ``text`` repeats a word the corpus does not know that is one or two edits from a word of
    ``reference``; ``own``: ``text`` is itself in the corpus, so its own words are left out."""
    from rapidfuzz.distance import DamerauLevenshtein

    known = {w.lower() for w in TOKEN.findall(reference) if len(w) >= 4}
    tokens = [w.lower() for w in TOKEN.findall(text)]
    counts = collections.Counter(tokens)
    for word, count in counts.items():
        if len(word) < 6 or count < 2 or word in known or frequencies[word] - own > 0:
            continue
        if any(abs(len(v) - len(word)) <= 2 and DamerauLevenshtein.distance(word, v, score_cutoff=2) <= 2 for v in known):
            return True
    return False


def struck(text: str, fits) -> bool:
    """Whether some "(ABBR)" of ``text`` does not fit the words of its clause before it."""
    for match in IN_PARENTHESES.finditer(text):
        abbreviation = match.group(1)
        if not ABBREVIATION.match(abbreviation):
            continue
        clause = re.split(r"[.;:,()\[\]]", text[: match.start()])[-1]
        before = [part for word in clause.split() for part in re.split(r"[-/]", word) if part.strip("'")]
        if before and not fits(abbreviation, before[-(len(abbreviation) + 4):]):
            return True
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--mined", type=Path, help="A run's mined.jsonl: real negatives beside their query and positive")
    args = parser.parse_args()
    corpora = {name: [json.loads(line) for line in (args.datasets / name / "corpus.jsonl").read_text().splitlines()]
               for name in ("scifact", "nfcorpus")}
    groups = {f"{name} abstracts": [document["text"] for document in documents] for name, documents in corpora.items()}
    labelled = collections.defaultdict(list)
    for labels in AUDITS:
        drawn = {r["id"]: r for r in map(json.loads, labels.with_name(labels.name.replace("-labels", "-sample")).open())}
        for record in map(json.loads, labels.open()):
            labelled[f"audited {record['label']}"].append(drawn[record["id"]])
    print(f"{'texts':<22}{'n':>6}" + "".join(f"{name:>18}" for name in ABBREVIATION_RULES))
    for group, texts in (groups | {g: [r["negative"] for r in rows] for g, rows in sorted(labelled.items())}).items():
        cells = "".join(f"{sum(struck(t, fits) for t in texts) / len(texts):>17.1%} " for fits in ABBREVIATION_RULES.values())
        print(f"{group:<22}{len(texts):>6}{cells}")
    if args.mined is None:
        return
    try:
        import rapidfuzz  # noqa: F401
    except ImportError:
        raise SystemExit("text_rules.py: the repeated-misspelling rule needs rapidfuzz (pip install rapidfuzz)") from None
    frequencies: collections.Counter = collections.Counter()
    for document in corpora["scifact"]:
        frequencies.update({w.lower() for w in TOKEN.findall(f"{document['title']} {document['text']}")})
    mined = random.Random(0).sample([json.loads(line) for line in args.mined.read_text().splitlines()], 300)
    print(f"\n{'texts':<22}{'n':>6}{'repeated-misspelling':>22}")
    real = [(text, f"{row['query']} {row['pos'][0]}") for row in mined for text in row["neg"][:3]]
    print(f"{'mined negatives':<22}{len(real):>6}{sum(misspelt(t, r, frequencies, True) for t, r in real) / len(real):>21.1%}")
    for group, rows in sorted(labelled.items()):
        share = sum(misspelt(r["negative"], f"{r['query']} {r['positive']}", frequencies, False) for r in rows) / len(rows)
        print(f"{group:<22}{len(rows):>6}{share:>21.1%}")


if __name__ == "__main__":
    main()
