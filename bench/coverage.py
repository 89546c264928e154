"""How many (query, positive) pairs of a qrels split hold a synthetic negative, over one or more files.

Issue 17's goal counts the pairs of the whole split (SciFact train: 919), while a run's file holds its
training pairs only (``scifact-all``: 801, its 100 validation queries held out), so a split's coverage
may take several files. A pair counts as covered when any file gives it a negative (a ``.refill.jsonl``
not merged yet can be named beside its output); a negative counts as length-matched within the length
check's bounds of its positive's word count (0.7-1.3x). The issue asks for an accepted, length-matched
negative, so the split's figures count the pairs holding one of those as well: the length check measures
against a target of at least ``min_words``, so a negative can pass it and still miss the positive's bounds.

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


def file_counts(path: str | Path) -> tuple[dict[str, int], dict[tuple[str, str], int], dict[tuple[str, str], int]]:
    """A file's figures, and the negatives, and the length-matched ones, it gives each (query id, positive id) pair."""
    bounds = CheckConfig()
    negatives: dict[tuple[str, str], int] = {}
    matched: dict[tuple[str, str], int] = {}
    within = written = 0
    for instance in read_training_set(path):
        ratios = [len(negative.text.split()) / max(1, len(instance.pos[0].split())) for negative in instance.negatives]
        in_bounds = sum(bounds.min_length_ratio <= ratio <= bounds.max_length_ratio for ratio in ratios)
        for pos_id in instance.pos_ids:
            pair = (instance.query_id, pos_id)
            negatives[pair] = max(negatives.get(pair, 0), len(instance.negatives))
            matched[pair] = max(matched.get(pair, 0), in_bounds)
        written += len(ratios)
        within += in_bounds
    figures = {"pairs": len(negatives), "with_one": sum(n >= 1 for n in negatives.values()),
               "with_two": sum(n >= 2 for n in negatives.values()), "negatives": written, "length_matched": within}
    return figures, negatives, matched


def coverage(data: str | Path, split: str, files: list[str | Path]) -> dict:
    """Per file and over the split: pairs, pairs with one and with two negatives, and the goal's count."""
    pairs = set(load_beir(data, split).pairs())
    by_file: dict[str, dict[str, int]] = {}
    best: dict[tuple[str, str], int] = {}
    best_matched: dict[tuple[str, str], int] = {}
    for path in files:
        figures, negatives, matched = file_counts(path)
        figures["outside_the_split"] = len(negatives.keys() - pairs)
        by_file[str(path)] = figures
        for pair, count in negatives.items():
            best[pair] = max(best.get(pair, 0), count)
            best_matched[pair] = max(best_matched.get(pair, 0), matched[pair])
    covered = sum(best.get(pair, 0) >= 1 for pair in pairs)
    length_matched = sum(best_matched.get(pair, 0) >= 1 for pair in pairs)
    return {"split": {"pairs": len(pairs), "in_a_file": len(pairs & best.keys()), "with_one": covered,
                      "with_two": sum(best.get(pair, 0) >= 2 for pair in pairs), "share": covered / len(pairs) if pairs else 0.0,
                      "with_one_length_matched": length_matched,
                      "length_matched_share": length_matched / len(pairs) if pairs else 0.0,
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
          f"{total['with_one_length_matched']} ({total['length_matched_share']:.1%}) a length-matched one, "
          f"{total['with_two']} hold two; the goal is {total['goal']}; {total['pairs'] - total['in_a_file']} pairs are in no file")


if __name__ == "__main__":
    main()
