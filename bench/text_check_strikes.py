"""What a text check of syneg.synth.checks strikes: audited negatives by label, and real abstracts.

Shared by the scripts that measure one check each (``abbreviation_check.py``, ``spelling_check.py``). A
check is ``check(negative, query, positive) -> reasons`` (empty when it passes). Real abstracts are held
to a train pair they are not the positive of, drawn where the check has the most to strike: abstracts that
write one of the pair's ``terms`` (train pairs drawn with seed 0, up to ``per_pair`` such abstracts each).
A real abstract is not the broken text a check looks for, so what it strikes there is a false strike.
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path

AUDITS = sorted(Path(__file__).parent.glob("audit/*-labels.jsonl"))
LABELS = ("hard", "false", "off-topic", "broken")

Check = Callable[[str, str, str], list[str]]


def arguments(doc: str) -> argparse.Namespace:
    """The options every such script takes: where the datasets are, how many pairs and abstracts, --json."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--pairs", type=int, default=400)
    parser.add_argument("--per-pair", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON document instead")
    return parser.parse_args()


def labelled(labels: Path) -> Iterator[tuple[dict, dict]]:
    """Each label of an audit (id, label, note) with the drawn row it labels (query, positive, negative, aspect)."""
    sample = {r["id"]: r for r in map(json.loads, labels.with_name(labels.name.replace("-labels", "-sample")).open())}
    for record in map(json.loads, labels.open()):
        yield record, sample[record["id"]]


def audited(labels: Path, check: Check) -> tuple[collections.Counter, list[str]]:
    """Counts by (label, struck) of one audit, and its strikes of texts not labelled broken (id, label, reason)."""
    counts: collections.Counter = collections.Counter()
    others = []
    for record, drawn in labelled(labels):
        reasons = check(drawn["negative"], drawn["query"], drawn["positive"])
        counts[record["label"], bool(reasons)] += 1
        if reasons and record["label"] != "broken":
            others.append(f"{audit_name(labels)} {record['id']} ({record['label']}): {reasons[0]}")
    return counts, others


def audit_name(labels: Path) -> str:
    return labels.name.removesuffix("-labels.jsonl")


def real_strikes(folder: Path, check: Check, terms: Callable[[str], set[str]], pairs: int, per_pair: int,
                 rarer_than: int | None = None) -> tuple[int, int, list[str]]:
    """(struck, checked, examples) over real abstracts that write one of a train pair's ``terms`` (of those
    written by fewer than ``rarer_than`` documents, when given)."""
    corpus = {r["_id"]: f"{r.get('title', '')}. {r['text']}" for r in map(json.loads, (folder / "corpus.jsonl").open())}
    queries = {r["_id"]: r["text"] for r in map(json.loads, (folder / "queries.jsonl").open())}
    with (folder / "qrels" / "train.tsv").open() as handle:
        rows = [row for row in csv.reader(handle, delimiter="\t")][1:]
    judged = sorted({(q, d) for q, d, score in rows if int(score) > 0 and q in queries and d in corpus})
    writing: dict[str, list[str]] = collections.defaultdict(list)
    for doc_id, text in corpus.items():
        for term in terms(text):
            writing[term].append(doc_id)
    rng = random.Random(0)
    struck = checked = 0
    examples: list[str] = []
    for query_id, doc_id in rng.sample(judged, min(pairs, len(judged))):
        query, positive = queries[query_id], corpus[doc_id]
        shared = [t for t in terms(f"{query} {positive}") if rarer_than is None or len(writing[t]) < rarer_than]
        others = sorted({other for term in shared for other in writing[term] if other != doc_id})
        for other in rng.sample(others, min(per_pair, len(others))):
            checked += 1
            if reasons := check(corpus[other], query, positive):
                struck += 1
                examples.append(reasons[0])
    return struck, checked, examples


def as_json(counts: collections.Counter) -> dict[str, int]:
    return {f"{label} {'struck' if hit else 'passed'}": n for (label, hit), n in sorted(counts.items())}


def print_audits(audits: dict[str, collections.Counter]) -> None:
    """One row an audit, "struck of labelled" by label, and the total."""
    print(f"{'audited negatives':<34}" + "".join(f"{label:>14}" for label in LABELS))
    total: collections.Counter = collections.Counter()
    for name, counts in audits.items():
        total.update(counts)
        print(f"{name:<34}" + "".join(f"{counts[label, True]:>5} of {counts[label, True] + counts[label, False]:<5}" for label in LABELS))
    print(f"{'all audits':<34}" + "".join(f"{total[label, True]:>5} of {total[label, True] + total[label, False]:<5}" for label in LABELS))
