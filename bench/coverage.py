"""How many (query, positive) pairs of a qrels split hold a synthetic negative, over one or more files.

Issue 17's goal counts the pairs of the whole split (SciFact train: 919), while a run's file holds its
training pairs only (``scifact-all``: 801, its 100 validation queries held out), so a split's coverage
may take several files. A pair counts as covered when any file gives it a negative (a ``.refill.jsonl``
not merged yet can be named beside its output); a negative counts as length-matched within the length
check's bounds of its positive.

Usage::

    python bench/coverage.py ../shared/datasets/scifact --split train \\
        bench/experiments/scifact-all-synthetic.jsonl bench/experiments/scifact-validation-synthetic.jsonl
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from syneg.data import DataError, load_beir, read_training_set
from syneg.synth.checks import CheckConfig

GOAL_SHARE = 0.9  # issue 17: a negative for at least 90% of the split's pairs


def file_counts(path: str | Path) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
    """A file's figures, and the negatives it gives each (query id, positive id) pair."""
    bounds = CheckConfig()
    negatives: dict[tuple[str, str], int] = {}
    within = written = 0
    for instance in read_training_set(path):
        for pos_id in instance.pos_ids:
            negatives[(instance.query_id, pos_id)] = max(negatives.get((instance.query_id, pos_id), 0), len(instance.negatives))
        for negative in instance.negatives:
            ratio = len(negative.text.split()) / max(1, len(instance.pos[0].split()))
            written += 1
            within += bounds.min_length_ratio <= ratio <= bounds.max_length_ratio
    figures = {"pairs": len(negatives), "with_one": sum(n >= 1 for n in negatives.values()),
               "with_two": sum(n >= 2 for n in negatives.values()), "negatives": written, "length_matched": within}
    return figures, negatives


def coverage(data: str | Path, split: str, files: list[str | Path]) -> dict:
    """Per file and over the split: pairs, pairs with one and with two negatives, and the goal's count."""
    pairs = set(load_beir(data, split).pairs())
    by_file: dict[str, dict[str, int]] = {}
    best: dict[tuple[str, str], int] = {}
    for path in files:
        figures, negatives = file_counts(path)
        figures["outside_the_split"] = len(negatives.keys() - pairs)
        by_file[str(path)] = figures
        for pair, count in negatives.items():
            best[pair] = max(best.get(pair, 0), count)
    covered = sum(best.get(pair, 0) >= 1 for pair in pairs)
    return {"split": {"pairs": len(pairs), "in_a_file": len(pairs & best.keys()), "with_one": covered,
                      "with_two": sum(best.get(pair, 0) >= 2 for pair in pairs), "share": covered / len(pairs) if pairs else 0.0,
                      "goal": math.ceil(GOAL_SHARE * len(pairs))},
            "files": by_file}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="BEIR dataset folder")
    parser.add_argument("files", nargs="+", help="synthetic negatives (training-set JSONL), one or more")
    parser.add_argument("--split", default="train", help="the qrels split whose pairs are counted (default: train)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    try:
        figures = coverage(args.data, args.split, args.files)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    for path, counts in figures["files"].items():
        print(f"{path}: {counts['pairs']} pairs, {counts['with_one']} with a negative, {counts['with_two']} with two; "
              f"{counts['length_matched']} of {counts['negatives']} negatives length-matched"
              + (f"; {counts['outside_the_split']} pairs outside the split" if counts["outside_the_split"] else ""))
    total = figures["split"]
    print(f"{args.split} split: {total['with_one']} of {total['pairs']} pairs ({total['share']:.1%}) hold a negative, "
          f"{total['with_two']} hold two; the goal is {total['goal']}; {total['pairs'] - total['in_a_file']} pairs are in no file")


if __name__ == "__main__":
    main()
