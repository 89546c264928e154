"""BM25 with and without the documents that share no term with the query.

bm25s returns k documents for every query, padding with documents that score 0 when fewer match.
syneg drops those (as Lucene and Elasticsearch return only matching documents); REFERENCE.md's
figures keep them. The padding is arbitrary, but on NFCorpus, whose short queries often match fewer
than 10 documents and whose queries have dozens of positives, it lands on some positives by chance.

    python bench/bm25_zero_scores.py --data ../shared/datasets/nfcorpus --split test
"""

from __future__ import annotations

import argparse

from syneg.data.beir import load_beir
from syneg.evaluation import evaluate_run
from syneg.retrieval.bm25 import BM25Retriever

METRICS = ["ndcg@10", "recall@100", "mrr@10"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a BEIR dataset folder")
    parser.add_argument("--split", default="test")
    parser.add_argument("--k", type=int, default=100)
    args = parser.parse_args()

    dataset = load_beir(args.data, split=args.split)
    query_ids = list(dataset.queries)
    texts = [dataset.queries[q] for q in query_ids]
    retriever = BM25Retriever(dataset.corpus)

    # syneg's own run: only the documents with a positive score.
    matching = retriever.search(texts, k=args.k + 1).as_run(query_ids)
    # bm25s's raw top k, zero-score padding included.
    tokens = retriever.tokenizer.tokenize(texts, update_vocab=False, show_progress=False)
    indices, scores = retriever.index.retrieve(tokens, k=args.k + 1, show_progress=False)
    padded = {q: {retriever.doc_ids[i]: float(s) for i, s in zip(row, row_scores, strict=True)}
              for q, row, row_scores in zip(query_ids, indices, scores, strict=True)}

    short = int(sum((row_scores > 0).sum() < 10 for row_scores in scores))
    print(f"{args.data} {args.split}: {len(query_ids)} queries, {short} match fewer than 10 documents")
    print(f"{'run':<34}" + "".join(f"{m:>12}" for m in METRICS))
    for name, run in [("matching documents only (syneg)", matching), ("zero-score padding kept (bm25s)", padded)]:
        values = evaluate_run(dataset.qrels, run, METRICS).metrics
        print(f"{name:<34}" + "".join(f"{100 * values[m]:>12.2f}" for m in METRICS))


if __name__ == "__main__":
    main()
