"""Audit of synthetic negatives by reading: draw a seeded sample, then report the rates of the labels.

A small model's own judgement of its negatives is near random, so their quality is measured by a
reader: each drawn negative is read beside its query and positive and given one label:

- ``hard``: on the query's topic, and does not answer it (does not support or refute the claim);
- ``false``: a false negative: it answers the query, or supports or refutes the claim;
- ``off-topic``: about something else than the query's subject;
- ``broken``: not a usable passage (repetition loop, truncated, another language, talks about the task).

Usage::

    # 1. the sample, one JSON line per negative with its query and positive, for the reader
    python bench/audit_negatives.py sample bench/experiments/scifact-synthetic.jsonl --n 100 --seed 0 \\
        --out bench/audit/scifact-v1-sample.jsonl
    # 2. the reader writes bench/audit/scifact-v1-labels.jsonl: {"id": ..., "label": ..., "note": ...} per line
    # 3. the rates
    python bench/audit_negatives.py rates bench/audit/scifact-v1-labels.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter
from pathlib import Path

from syneg.data import read_training_set

LABELS = ("hard", "false", "off-topic", "broken")


def sample(path: Path, n: int, seed: int) -> list[dict]:
    """``n`` negatives drawn uniformly from every synthetic negative of a training-set file."""
    negatives = [(instance, negative) for instance in read_training_set(path) for negative in instance.negatives
                 if negative.source == "synthetic"]
    drawn = random.Random(seed).sample(negatives, min(n, len(negatives)))
    return [
        {"id": negative.id, "query_id": instance.query_id, "query": instance.query, "positive": instance.pos[0],
         "negative": negative.text, "aspect": negative.details.get("aspect", "")}
        for instance, negative in drawn
    ]


def rates(path: Path) -> dict:
    """Share of each label in a labels file; a line with an unknown label stops with its line number."""
    counts: Counter[str] = Counter()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        label = json.loads(line).get("label")
        if label not in LABELS:
            sys.exit(f"{path}:{number}: label {label!r} is not one of {', '.join(LABELS)}")
        counts[label] += 1
    total = sum(counts.values())
    return {"labelled": total} | {label: {"count": counts[label], "rate": round(counts[label] / total, 3) if total else None}
                                  for label in LABELS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    draw = commands.add_parser("sample", help="Draw the negatives to read")
    draw.add_argument("file", type=Path)
    draw.add_argument("--n", type=int, default=100)
    draw.add_argument("--seed", type=int, default=0)
    draw.add_argument("--out", type=Path, required=True)
    count = commands.add_parser("rates", help="Rates of the labels of a labels file")
    count.add_argument("labels", type=Path)
    args = parser.parse_args()
    if args.command == "sample":
        rows = sample(args.file, args.n, args.seed)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
        print(f"{len(rows)} negatives drawn into {args.out}")
    else:
        print(json.dumps(rates(args.labels), indent=2))


if __name__ == "__main__":
    main()
