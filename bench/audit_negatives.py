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
    # Two syntheses read blind: one sample of both, shuffled, without saying which wrote what; the rates per file
    python bench/audit_negatives.py blind out/a/negatives.jsonl out/b/negatives.jsonl --n 40 --seed 0 \\
        --out bench/audit/ab-sample.jsonl --key bench/audit/ab-key.json
    python bench/audit_negatives.py rates bench/audit/ab-labels.jsonl --by bench/audit/ab-key.json
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections import Counter
from itertools import islice
from pathlib import Path

from syneg.data import read_training_set

LABELS = ("hard", "false", "off-topic", "broken")


def sample(path: Path, n: int, seed: int, pairs: int | None = None, first_pair: int = 0) -> list[dict]:
    """``n`` negatives drawn uniformly from every synthetic negative of a training-set file (its pairs
    ``first_pair`` to ``pairs``: a later audit reads only what an earlier one did not)."""
    instances = list(islice(read_training_set(path), first_pair, pairs))
    negatives = [(instance, negative) for instance in instances for negative in instance.negatives
                 if negative.source == "synthetic"]
    drawn = random.Random(seed).sample(negatives, min(n, len(negatives)))
    return [
        {"id": negative.id, "query_id": instance.query_id, "query": instance.query, "positive": instance.pos[0],
         "negative": negative.text, "aspect": negative.details.get("aspect", "")}
        for instance, negative in drawn
    ]


def blind(paths: list[Path], n: int, seed: int, pairs: int | None = None, first_pair: int = 0) -> tuple[list[dict], dict[str, str]]:
    """Up to ``n`` negatives of each file (of its pairs ``first_pair`` to ``pairs``), shuffled together, and
    the key: which file each id came from. The reader gets the rows alone (an id is the negative's content
    hash, which does not tell the files apart); :func:`rates` splits the labels by the key."""
    drawn = [(row, str(path)) for path in paths for row in sample(path, n, seed, pairs, first_pair)]
    random.Random(seed).shuffle(drawn)
    return [row for row, _ in drawn], {row["id"]: path for row, path in drawn}


def sample_rejected(path: Path, n: int, seed: int, check: str, pairs: int | None = None) -> list[dict]:
    """``n`` candidates that synthesis rejected for ``check`` alone, drawn from the revision rounds recorded
    with each accepted negative (``details["rejected"]``) of the first ``pairs``: what that check costs.
    ``ratio`` is the candidate's similarity to the query over the positive's (the 95% rule rejects above 0.95)."""
    candidates = []
    for instance in islice(read_training_set(path), pairs):
        for negative in instance.negatives:
            for rejected in negative.details.get("rejected", []):
                failed = [name for name, verdict in rejected.get("checks", {}).items() if not verdict.get("passed")]
                if failed == [check]:
                    similarity = rejected["checks"].get("on_topic", {}).get("value")
                    candidates.append({
                        "id": f"{negative.id}-r{rejected['round']}", "query_id": instance.query_id, "query": instance.query,
                        "positive": instance.pos[0], "negative": rejected["text"], "aspect": rejected.get("aspect", ""),
                        "ratio": round(similarity / instance.pos_scores[0], 3) if similarity is not None else None})
    random.Random(seed).shuffle(candidates)
    return candidates[:n]


def rates(path: Path, by: Path | None = None) -> dict:
    """Share of each label in a labels file; a line with an unknown label stops with its line number.
    ``by``: the key of a :func:`blind` sample (id to file): the rates of each file apart."""
    labelled: list[tuple[str, str]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        if row.get("label") not in LABELS:
            sys.exit(f"{path}:{number}: label {row.get('label')!r} is not one of {', '.join(LABELS)}")
        labelled.append((row.get("id"), row["label"]))
    if by is None:
        return _label_rates([label for _, label in labelled])
    files = json.loads(by.read_text(encoding="utf-8"))
    unknown = [id_ for id_, _ in labelled if id_ not in files]
    if unknown:
        sys.exit(f"{path}: id {unknown[0]!r} is not in {by}")
    return {file: _label_rates([label for id_, label in labelled if files[id_] == file]) for file in dict.fromkeys(files.values())}


def _label_rates(labels: list[str]) -> dict:
    counts, total = Counter(labels), len(labels)
    return {"labelled": total} | {label: {"count": counts[label], "rate": round(counts[label] / total, 3) if total else None}
                                  for label in LABELS}


STOPWORDS = frozenset("the a an of in on and or to is are was were be by with for as at from that this these those it its "
                      "into than more less not no has have had can may which their there been being also during between "
                      "both".split())


def content_words(text: str) -> set[str]:
    return {word for word in re.findall(r"[\w+-]+", text.lower()) if word not in STOPWORDS and len(word) > 1}


def sentences(text: str) -> list[str]:
    return [sentence for sentence in re.split(r"(?<=[.!?])\s+", text) if sentence.strip()]


def claim_overlap(query: str, negative: str) -> float:
    """The largest share of the query's content words that one sentence of the negative repeats: a false
    negative often restates the claim in a sentence or its title."""
    claim = content_words(query)
    return max((len(claim & content_words(sentence)) / max(1, len(claim)) for sentence in sentences(negative)), default=0.0)


def sentence_similarity(query: str, negative: str, encoder) -> float:
    """The guide model's largest cosine between the query and one sentence of the negative: a restatement
    in other words, which word overlap misses."""
    return float((encoder.encode_documents(sentences(negative)) @ encoder.encode_queries([query])[0]).max())


def restatement(sample_path: Path, labels_path: Path) -> dict:
    """Do two restatement checks that need no judge tell the false negatives from the hard ones of a labelled
    sample? Word overlap (``claim_overlap``) and sentence similarity under the guide model (all-MiniLM-L6-v2)."""
    from sklearn.metrics import roc_auc_score

    from syneg.retrieval.encoder import DenseEncoder

    encoder = DenseEncoder("all-MiniLM-L6-v2", backend="torch", show_progress=False)
    drawn = {row["id"]: row for row in map(json.loads, sample_path.read_text(encoding="utf-8").splitlines())}
    labelled = [(row["label"], drawn[row["id"]]) for row in map(json.loads, labels_path.read_text(encoding="utf-8").splitlines())
                if row["label"] in ("hard", "false")]
    false = [label == "false" for label, _ in labelled]
    measures = {"word_overlap": (claim_overlap, (0.5, 0.6, 0.7, 0.8)),
                "sentence_similarity": (lambda q, n: sentence_similarity(q, n, encoder), (0.6, 0.7, 0.75, 0.8, 0.85))}
    report: dict = {"hard": false.count(False), "false": sum(false)}
    for name, (measure, thresholds) in measures.items():
        scores = [measure(row["query"], row["negative"]) for _, row in labelled]
        report[name] = {
            "auc": round(roc_auc_score(false, scores), 3) if 0 < sum(false) < len(false) else None,
            "flagged_at": {str(t): {"false": sum(1 for f, s in zip(false, scores) if s >= t and f),
                                    "hard": sum(1 for f, s in zip(false, scores) if s >= t and not f)} for t in thresholds}}
    return report


def cached_titles(cache: Path) -> set[str]:
    """Every title the reflections of an LLM cache gave (its answers with a ``title`` field)."""
    import sqlite3

    titles = set()
    with sqlite3.connect(f"file:{cache}?mode=ro", uri=True) as connection:
        for (value,) in connection.execute("select value from completions"):
            try:
                title = json.loads(json.loads(value)["text"]).get("title")
            except (ValueError, KeyError, AttributeError):
                continue  # a passage (free text), or another kind of answer
            if title:
                titles.add(" ".join(title.split()))
    return titles


def title_foresight(path: Path, cache: Path, pairs: int | None = None,
                    thresholds: tuple[float, ...] = (1.0, 1.1, 1.2, 1.3)) -> dict:
    """Does a reflection's title alone foretell the 95% rule's verdict on the passage written from it?

    For every candidate recorded in a synthesis output (accepted ones and the rounds rejected before
    them), its title (the cached reflection's title the text starts with) is scored against the query
    by the guide model, relative to the positive's score. Reported: how well that ratio separates the
    passages the rule rejected (ROC AUC), and what skipping titles above each threshold would skip."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from syneg.retrieval.encoder import DenseEncoder

    titles = sorted(cached_titles(cache), key=len, reverse=True)
    rows = []  # (query, positive score, title, failed the rule, accepted)
    for instance in islice(read_training_set(path), pairs):
        for negative in instance.negatives:
            candidates = [(negative.text, negative.details.get("checks", {}), True)]
            candidates += [(r["text"], r.get("checks", {}), False) for r in negative.details.get("rejected", [])
                           if not r.get("title_only")]
            for text, checks, accepted in candidates:
                verdict = checks.get("below_positive", {}).get("passed")
                title = next((t for t in titles if text.startswith(t[:60])), None)
                if verdict is not None and title:
                    rows.append((instance.query, instance.pos_scores[0], title, not verdict, accepted))
    encoder = DenseEncoder("all-MiniLM-L6-v2", backend="torch", show_progress=False)
    similarity = (encoder.encode_queries([r[0] for r in rows]) * encoder.encode_documents([r[2] for r in rows])).sum(1)
    ratio = similarity / np.array([r[1] for r in rows])
    failed, accepted = np.array([r[3] for r in rows]), np.array([r[4] for r in rows])
    return {"candidates": len(rows), "failed_the_rule": int(failed.sum()), "accepted": int(accepted.sum()),
            "auc": round(float(roc_auc_score(failed, ratio)), 3),
            "skipped_above": {str(t): {"skipped": int((ratio > t).sum()), "of_them_failed_the_rule": int(failed[ratio > t].sum()),
                                       "accepted_lost": int(accepted[ratio > t].sum())} for t in thresholds}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    draw = commands.add_parser("sample", help="Draw the negatives to read")
    draw.add_argument("file", type=Path)
    draw.add_argument("--n", type=int, default=100)
    draw.add_argument("--seed", type=int, default=0)
    draw.add_argument("--out", type=Path, required=True)
    draw.add_argument("--pairs", type=int, help="Only the file's first PAIRS pairs (a file that still grows).")
    draw.add_argument("--first-pair", type=int, default=0,
                      help="Skip the file's first pairs (those an earlier audit read), counted from 0.")
    draw.add_argument("--rejected", metavar="CHECK", help="Draw candidates rejected for this check alone (e.g. below_positive).")
    mixed = commands.add_parser("blind", help="Draw from several files into one shuffled sample that hides the file")
    mixed.add_argument("files", type=Path, nargs="+")
    mixed.add_argument("--n", type=int, default=40, help="Negatives drawn from each file")
    mixed.add_argument("--seed", type=int, default=0)
    mixed.add_argument("--out", type=Path, required=True)
    mixed.add_argument("--key", type=Path, required=True, help="Where to write which file each drawn id came from")
    mixed.add_argument("--pairs", type=int, help="Only each file's first PAIRS pairs.")
    mixed.add_argument("--first-pair", type=int, default=0, help="Skip each file's first pairs, counted from 0.")
    count = commands.add_parser("rates", help="Rates of the labels of a labels file")
    count.add_argument("labels", type=Path)
    count.add_argument("--by", type=Path, help="The key of the blind sample the labels read: the rates of each file")
    overlap = commands.add_parser("restatement", help="How well a sentence that restates the claim flags false negatives")
    overlap.add_argument("sample", type=Path)
    overlap.add_argument("labels", type=Path)
    foresight = commands.add_parser("titles", help="How well a reflection's title foretells the 95%% rule's verdict")
    foresight.add_argument("file", type=Path)
    foresight.add_argument("cache", type=Path)
    foresight.add_argument("--pairs", type=int, help="Only the file's first PAIRS pairs (a file that still grows).")
    args = parser.parse_args()
    if args.command == "titles":
        print(json.dumps(title_foresight(args.file, args.cache, args.pairs), indent=2))
        return
    if args.command in ("sample", "blind"):
        if args.command == "blind":
            rows, key = blind(args.files, args.n, args.seed, args.pairs, args.first_pair)
            args.key.parent.mkdir(parents=True, exist_ok=True)
            args.key.write_text(json.dumps(key, indent=1), encoding="utf-8")
        else:
            rows = (sample_rejected(args.file, args.n, args.seed, args.rejected, args.pairs) if args.rejected
                    else sample(args.file, args.n, args.seed, args.pairs, args.first_pair))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
        print(f"{len(rows)} negatives drawn into {args.out}")
    elif args.command == "restatement":
        print(json.dumps(restatement(args.sample, args.labels), indent=2))
    else:
        print(json.dumps(rates(args.labels, args.by), indent=2))


if __name__ == "__main__":
    main()
