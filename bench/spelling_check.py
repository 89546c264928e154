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

import argparse
import collections
import csv
import json
import random
import re
from pathlib import Path

from syneg.synth.checks import MIN_TERM_LETTERS, MISSPELLING_SIMILARITY, misspelled_terms

AUDITS = sorted(Path(__file__).parent.glob("audit/*-labels.jsonl"))
LABELS = ("hard", "false", "off-topic", "broken")
SIMILARITIES = (MISSPELLING_SIMILARITY - 0.05, MISSPELLING_SIMILARITY, MISSPELLING_SIMILARITY + 0.05)
RARE = 50  # documents: a word written by fewer is on a subject, not a common word


def audited(labels: Path, similarity: float) -> tuple[collections.Counter, list[str]]:
    """Counts by (label, struck), and the strikes of texts not labelled broken (with their audit and label)."""
    sample = {r["id"]: r for r in map(json.loads, labels.with_name(labels.name.replace("-labels", "-sample")).open())}
    counts: collections.Counter = collections.Counter()
    others = []
    for record in map(json.loads, labels.open()):
        drawn = sample[record["id"]]
        problems = misspelled_terms(drawn["negative"], drawn["query"], drawn["positive"], similarity)
        counts[record["label"], bool(problems)] += 1
        if problems and record["label"] != "broken":
            others.append(f"{labels.name.removesuffix('-labels.jsonl')} {record['id']} ({record['label']}): {problems[0]}")
    return counts, others


def words(text: str) -> set[str]:
    return {w.lower() for w in re.findall(r"[A-Za-z]+", text) if len(w) >= MIN_TERM_LETTERS}


def real_strikes(folder: Path, pairs: int, per_pair: int, similarity: float) -> tuple[int, int, list[str]]:
    """(struck, checked, examples) over real abstracts that share a rare word with a train pair."""
    corpus = {r["_id"]: f"{r.get('title', '')}. {r['text']}" for r in map(json.loads, (folder / "corpus.jsonl").open())}
    queries = {r["_id"]: r["text"] for r in map(json.loads, (folder / "queries.jsonl").open())}
    with (folder / "qrels" / "train.tsv").open() as handle:
        rows = [row for row in csv.reader(handle, delimiter="\t")][1:]
    judged = sorted({(q, d) for q, d, score in rows if int(score) > 0 and q in queries and d in corpus})
    writing: dict[str, list[str]] = collections.defaultdict(list)
    for doc_id, text in corpus.items():
        for word in words(text):
            writing[word].append(doc_id)
    rng = random.Random(0)
    struck = checked = 0
    examples: list[str] = []
    for query_id, doc_id in rng.sample(judged, min(pairs, len(judged))):
        query, positive = queries[query_id], corpus[doc_id]
        rare = [word for word in words(f"{query} {positive}") if len(writing[word]) < RARE]
        others = sorted({other for word in rare for other in writing[word] if other != doc_id})
        for other in rng.sample(others, min(per_pair, len(others))):
            checked += 1
            if problems := misspelled_terms(corpus[other], query, positive, similarity):
                struck += 1
                examples.append(problems[0])
    return struck, checked, examples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--pairs", type=int, default=400)
    parser.add_argument("--per-pair", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON document instead")
    args = parser.parse_args()
    figures = {}
    for similarity in SIMILARITIES:
        audits = {path.name.removesuffix("-labels.jsonl"): audited(path, similarity) for path in AUDITS}
        real = {name: real_strikes(args.datasets / name, args.pairs, args.per_pair, similarity) for name in ("scifact", "nfcorpus")}
        figures[f"{similarity:.2f}"] = (audits, real)
    if args.json:
        print(json.dumps({similarity: {
            "audits": {name: {f"{label} {'struck' if hit else 'passed'}": n for (label, hit), n in sorted(counts.items())}
                       for name, (counts, _) in audits.items()},
            "real_abstracts": {name: {"struck": struck, "checked": checked} for name, (struck, checked, _) in real.items()},
        } for similarity, (audits, real) in figures.items()}, indent=1))
        return
    for similarity, (audits, real) in figures.items():
        default = " (the default)" if float(similarity) == MISSPELLING_SIMILARITY else ""
        print(f"\nsimilarity {similarity}{default}\n{'audited negatives':<26}" + "".join(f"{label:>14}" for label in LABELS))
        total: collections.Counter = collections.Counter()
        for name, (counts, _) in audits.items():
            total.update(counts)
            print(f"{name:<26}" + "".join(f"{counts[label, True]:>5} of {counts[label, True] + counts[label, False]:<5}" for label in LABELS))
        print(f"{'all audits':<26}" + "".join(f"{total[label, True]:>5} of {total[label, True] + total[label, False]:<5}" for label in LABELS))
        for name, (struck, checked, examples) in real.items():
            print(f"{name}: real abstracts sharing a rare word with a train pair: {struck} of {checked} struck "
                  f"({struck / max(1, checked):.2%}): {'; '.join(examples[:6])}")
        if default:
            print("struck and not labelled broken:\n  " + "\n  ".join(line for _, others in audits.values() for line in others))


if __name__ == "__main__":
    main()
