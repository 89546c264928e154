"""How synthetic negatives compare with mined ones: length, and closeness to the query under a model.

Takes the shortcut probe's sample (:func:`syneg.diagnostics.probe_samples`: every pair's synthetic
negatives and as many of its mined ones, best-ranked first), then prints their word counts and
their mean cosine similarity to the query (and the positive's) under the given model. Hard
negatives should be about as close to the query as mined ones; a length gap is a cue a model (or
the shortcut probe) can use to tell the sources apart. Before that, from the files alone: the share
of synthetic negatives within the length check's bounds of their positive, and what the mined pool
holds per retriever (a thin pool leaves an arm's slots to random filler).

Usage::

    python bench/negative_profile.py bench/experiments/scifact-synthetic.jsonl \\
        bench/experiments/runs/scifact/mined.jsonl
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np

from syneg.data import RETRIEVED_SOURCES, read_training_set
from syneg.diagnostics import probe_samples
from syneg.retrieval.encoder import DenseEncoder
from syneg.synth.checks import CheckConfig


def print_file_counts(synthetic: str, mined: str) -> None:
    """Length parity of the synthetic negatives and the mined pool by retriever, from the files alone."""
    bounds = CheckConfig()
    ratios = [len(n.text.split()) / len(i.pos[0].split()) for i in read_training_set(synthetic) for n in i.negatives]
    within = sum(bounds.min_length_ratio <= r <= bounds.max_length_ratio for r in ratios)
    if ratios:
        print(f"synthetic: {len(ratios)} negatives, {within} within {bounds.min_length_ratio}-"
              f"{bounds.max_length_ratio}x their positive's words, median ratio {statistics.median(ratios):.2f}")
    instances = list(read_training_set(mined))
    for source in RETRIEVED_SOURCES:
        count = sum(n.source == source for i in instances for n in i.negatives)
        without = sum(all(n.source != source for n in i.negatives) for i in instances)
        print(f"mined pool, {source}: {count} negatives; {without} of {len(instances)} pairs have none")
    scores = [i.pos_scores[0] for i in instances if i.pos_scores]
    if scores:
        print(f"positive's mining score: median {statistics.median(scores):.2f}, "
              f"{sum(s <= 0 for s in scores) / len(scores):.0%} at 0 or less")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("synthetic", help="synthetic negatives (training-set JSONL)")
    parser.add_argument("mined", help="mined negatives of the same pairs (training-set JSONL)")
    parser.add_argument("--model", default="all-MiniLM-L6-v2", help="the encoder (default: the embedded MiniLM)")
    args = parser.parse_args()

    print_file_counts(args.synthetic, args.mined)
    texts, labels, groups = probe_samples(args.synthetic, args.mined)
    pairs = {i.query_id: (i.query, i.pos[0]) for i in read_training_set(args.synthetic)}
    query_ids = list(dict.fromkeys(groups))
    row = {query_id: index for index, query_id in enumerate(query_ids)}
    queries, positives = zip(*(pairs[q] for q in query_ids), strict=True)
    sources = {"synthetic": labels == 1, "mined": labels == 0}

    encoder = DenseEncoder(args.model)
    query_vectors = encoder.encode_queries(list(queries))
    positive_cosine = np.einsum("ij,ij->i", query_vectors, encoder.encode_documents(list(positives)))
    print(f"{len(queries)} pairs; cosine to the query under {args.model}, positive: {positive_cosine.mean():.3f}")
    for name, chosen in sources.items():
        chosen_texts = [t for t, keep in zip(texts, chosen, strict=True) if keep]
        vectors = encoder.encode_documents(chosen_texts)
        cosine = np.einsum("ij,ij->i", query_vectors[[row[q] for q in groups[chosen]]], vectors)
        lengths = [len(t.split()) for t in chosen_texts]
        print(f"{name:>9}: {len(chosen_texts)} negatives, cosine {cosine.mean():.3f}, "
              f"words mean {statistics.mean(lengths):.0f} / median {statistics.median(lengths):.0f}")

if __name__ == "__main__":
    main()
