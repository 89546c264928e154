"""What the ``abbreviations_match`` check strikes: audited negatives by label, and real abstracts (session 13).

Session 7 measured rules on every "(ABBR)" of a text and dropped them: real abstracts break them as often
as one text in ten (``bench/text_rules.py``). The check holds a negative only to its own pair's
abbreviations, those of the query and the positive, and to the positive's own expansions
(:func:`syneg.synth.checks.abbreviation_conflicts`). This script measures what it strikes:

- every audited negative (``bench/audit/*-labels.jsonl``) against its query and positive, by label;
- real abstracts against a pair they are not the positive of, drawn where the check has the most to
  strike: abstracts that write one of the pair's abbreviations (train pairs drawn with seed 0, up to five
  such abstracts each). A real abstract is never a mangled text, so every strike there is a false one.

    python bench/abbreviation_check.py --datasets ../shared/datasets [--json]
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import random
import re
from pathlib import Path

from syneg.synth.checks import abbreviation_conflicts, is_abbreviation

AUDITS = sorted(Path(__file__).parent.glob("audit/*-labels.jsonl"))
TERM = re.compile(r"[A-Za-z0-9][\w\-+/]*\w")


def audited(labels: Path) -> collections.Counter:
    sample = {r["id"]: r for r in map(json.loads, labels.with_name(labels.name.replace("-labels", "-sample")).open())}
    counts: collections.Counter = collections.Counter()
    for record in map(json.loads, labels.open()):
        drawn = sample[record["id"]]
        counts[record["label"], bool(abbreviation_conflicts(drawn["negative"], drawn["query"], drawn["positive"]))] += 1
    return counts


def real_strikes(folder: Path, pairs: int, per_pair: int) -> tuple[int, int, list[str]]:
    """(struck, checked, examples) over real abstracts that share an abbreviation with a train pair."""
    corpus = {r["_id"]: f"{r.get('title', '')}. {r['text']}" for r in map(json.loads, (folder / "corpus.jsonl").open())}
    queries = {r["_id"]: r["text"] for r in map(json.loads, (folder / "queries.jsonl").open())}
    with (folder / "qrels" / "train.tsv").open() as handle:
        rows = [row for row in csv.reader(handle, delimiter="\t")][1:]
    judged = sorted({(q, d) for q, d, score in rows if int(score) > 0 and q in queries and d in corpus})
    writing: dict[str, list[str]] = collections.defaultdict(list)
    for doc_id, text in corpus.items():
        for term in {t for t in TERM.findall(text) if is_abbreviation(t)}:
            writing[term].append(doc_id)
    rng = random.Random(0)
    struck = checked = 0
    examples: list[str] = []
    for query_id, doc_id in rng.sample(judged, min(pairs, len(judged))):
        query, positive = queries[query_id], corpus[doc_id]
        terms = {t for t in TERM.findall(f"{query} {positive}") if is_abbreviation(t)}
        others = sorted({other for term in terms for other in writing[term] if other != doc_id})
        for other in rng.sample(others, min(per_pair, len(others))):
            checked += 1
            if problems := abbreviation_conflicts(corpus[other], query, positive):
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
    if args.json:
        audits = {path.name.removesuffix("-labels.jsonl"): {f"{label} {'struck' if hit else 'passed'}": n
                                                             for (label, hit), n in sorted(audited(path).items())}
                  for path in AUDITS}
        real = {name: dict(zip(("struck", "checked"), real_strikes(args.datasets / name, args.pairs, args.per_pair)[:2]))
                for name in ("scifact", "nfcorpus")}
        print(json.dumps({"audits": audits, "real_abstracts": real}, indent=1))
        return
    labels = ("hard", "false", "off-topic", "broken")
    print(f"{'audited negatives':<34}" + "".join(f"{label:>14}" for label in labels))
    total: collections.Counter = collections.Counter()
    for path in AUDITS:
        counts = audited(path)
        total.update(counts)
        cells = "".join(f"{counts[label, True]:>5} of {counts[label, True] + counts[label, False]:<5}" for label in labels)
        print(f"{path.name.removesuffix('-labels.jsonl'):<34}{cells}")
    cells = "".join(f"{total[label, True]:>5} of {total[label, True] + total[label, False]:<5}" for label in labels)
    print(f"{'all audits':<34}{cells}")
    for name in ("scifact", "nfcorpus"):
        struck, checked, examples = real_strikes(args.datasets / name, args.pairs, args.per_pair)
        print(f"\n{name}: real abstracts sharing an abbreviation with a train pair: {struck} of {checked} struck "
              f"({struck / max(1, checked):.1%})")
        for example in examples[:8]:
            print(f"  {example}")


if __name__ == "__main__":
    main()
