"""What the ``terms_spelled`` check strikes: audited negatives by label, and real abstracts (session 14).

The rubric-v5 audits label a negative broken when a key word is "mangled into a wrong form and used that way
throughout" ("Macromia" for macrosomia, "adjuant tamoxifen"). The check strikes a word that reads as a word of
the pair misspelt inside and that wordfreq's English list does not know (:func:`syneg.synth.checks.misspelled_terms`).
This script measures, at the default similarity and one step either side of it:

- every audited negative (``bench/audit/*-labels.jsonl``) against its query and positive, by label;
- real abstracts against a pair they are not the positive of, drawn where the check has the most to strike:
  abstracts that write one of the pair's rare words (six letters or more, written by fewer than 50 documents;
  train pairs drawn with seed 0, up to five abstracts each). A real abstract's word is rarely a misspelling,
  so nearly every strike there is a false one.

    python bench/spelling_check.py --datasets ../shared/datasets [--json]
"""

from __future__ import annotations

import functools
import json
import re

from text_check_strikes import AUDITS, arguments, as_json, audit_name, audited, print_audits, real_strikes

from syneg.synth.checks import MIN_TERM_LETTERS, MISSPELLING_SIMILARITY, misspelled_terms

SIMILARITIES = tuple(round(MISSPELLING_SIMILARITY + step, 2) for step in (-0.05, 0.0, 0.05))
RARE = 50  # documents: a word written by fewer is on a subject, not a common word


def long_words(text: str) -> set[str]:
    return {w.lower() for w in re.findall(r"[A-Za-z]+", text) if len(w) >= MIN_TERM_LETTERS}


def main() -> None:
    args = arguments(__doc__)
    figures = {}
    for similarity in SIMILARITIES:
        check = functools.partial(misspelled_terms, similarity=similarity)
        audits = {audit_name(path): audited(path, check) for path in AUDITS}
        real = {name: real_strikes(args.datasets / name, check, long_words, args.pairs, args.per_pair, rarer_than=RARE)
                for name in ("scifact", "nfcorpus")}
        figures[f"{similarity:.2f}"] = (audits, real)
    if args.json:
        print(json.dumps({similarity: {
            "audits": {name: as_json(counts) for name, (counts, _) in audits.items()},
            "real_abstracts": {name: {"struck": struck, "checked": checked} for name, (struck, checked, _) in real.items()},
        } for similarity, (audits, real) in figures.items()}, indent=1))
        return
    for similarity, (audits, real) in figures.items():
        default = float(similarity) == MISSPELLING_SIMILARITY
        print(f"\nsimilarity {similarity}{' (the default)' if default else ''}")
        print_audits({name: counts for name, (counts, _) in audits.items()})
        for name, (struck, checked, examples) in real.items():
            print(f"{name}: real abstracts sharing a rare word with a train pair: {struck} of {checked} struck "
                  f"({struck / max(1, checked):.2%}): {'; '.join(examples[:6])}")
        if default:
            print("struck and not labelled broken:\n  " + "\n  ".join(line for _, others in audits.values() for line in others))


if __name__ == "__main__":
    main()
