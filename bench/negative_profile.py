"""How synthetic negatives compare with mined ones: length, and closeness to the query under a model.

For every pair of the synthetic file with at least one negative, takes its synthetic negatives and
as many of the same pair's mined negatives (best-ranked first), then prints their word counts and
their mean cosine similarity to the query (and the positive's) under the given model. Hard
negatives should be about as close to the query as mined ones; a length gap is a cue a model (or
the shortcut probe) can use to tell the sources apart.

Usage::

    python bench/negative_profile.py bench/experiments/scifact-synthetic.jsonl \\
        bench/experiments/runs/scifact/mined.jsonl
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np

from syneg.data import read_training_set
from syneg.retrieval.encoder import DenseEncoder

RETRIEVED_SOURCES = ("bm25", "dense")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("synthetic", help="synthetic negatives (training-set JSONL)")
    parser.add_argument("mined", help="mined negatives of the same pairs (training-set JSONL)")
    parser.add_argument("--model", default="all-MiniLM-L6-v2", help="the encoder (default: the embedded MiniLM)")
    args = parser.parse_args()

    mined = {(i.query_id, i.pos_ids[0]): i for i in read_training_set(args.mined)}
    queries, positives, synthetic, retrieved = [], [], [], []  # texts; negatives as (pair index, text)
    for instance in read_training_set(args.synthetic):
        own = [n.text for n in instance.negatives if n.source == "synthetic"]
        pool = mined.get((instance.query_id, instance.pos_ids[0]))
        if not own or pool is None:
            continue
        index = len(queries)
        queries.append(instance.query)
        positives.append(instance.pos[0])
        synthetic += [(index, t) for t in own]
        retrieved += [(index, n.text) for n in pool.negatives if n.source in RETRIEVED_SOURCES][: len(own)]

    encoder = DenseEncoder(args.model)
    query_vectors = encoder.encode_queries(queries)
    positive_cosine = np.einsum("ij,ij->i", query_vectors, encoder.encode_documents(positives))
    print(f"{len(queries)} pairs; cosine to the query under {args.model}, positive: {positive_cosine.mean():.3f}")
    for name, negatives in (("synthetic", synthetic), ("mined", retrieved)):
        vectors = encoder.encode_documents([t for _, t in negatives])
        cosine = np.array([query_vectors[i] @ v for (i, _), v in zip(negatives, vectors, strict=True)])
        lengths = [len(t.split()) for _, t in negatives]
        print(f"{name:>9}: {len(negatives)} negatives, cosine {cosine.mean():.3f}, "
              f"words mean {statistics.mean(lengths):.0f} / median {statistics.median(lengths):.0f}")


if __name__ == "__main__":
    main()
