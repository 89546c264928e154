"""Could post-processing strike the words that give LLM negatives away? (session 14)

The bag-of-words probe tells the 0.5B model's negatives from real abstracts almost perfectly (AUC 0.999:
"crucial", "various", "aims" against "here", "p", "although"). A post-processor that rewrites such words is
the last lever the issue names for it. This measures whether any list of words could do: it drops the k
words whose share of texts differs most between the sources, from both sides (chosen on all the texts, which
favours the removal), and probes again. The real side is each pair's own positive, an abstract on the
same subject, one text per side and pair; the probe is syneg's (a logistic regression on the words a text
uses), cross-validated in five folds grouped by query.

    python bench/words_ablation.py bench/experiments/scifact-all-synthetic.jsonl [--json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold, cross_val_predict

from syneg.data import read_training_set
from syneg.diagnostics import WORD_PATTERN

STRUCK = (0, 10, 30, 100, 300, 1000, 3000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("synthetic", type=Path, help="a synthesis output (its first synthetic negative per pair)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON document instead")
    args = parser.parse_args()
    texts, labels, groups = [], [], []
    for instance in read_training_set(args.synthetic):
        synthetic = [n.text for n in instance.negatives if n.source == "synthetic"]
        if synthetic:
            texts += [synthetic[0], instance.pos[0]]
            labels += [1, 0]
            groups += [instance.query_id] * 2
    labels_array, groups_array = np.array(labels), np.array(groups)
    vectorizer = CountVectorizer(binary=True, token_pattern=WORD_PATTERN)
    present = vectorizer.fit_transform(texts).tocsc()
    vocabulary = vectorizer.get_feature_names_out()
    synthetic_share = np.asarray(present[labels_array == 1].mean(axis=0)).ravel()
    real_share = np.asarray(present[labels_array == 0].mean(axis=0)).ravel()
    telling = np.argsort(-np.abs(np.log((synthetic_share + 0.01) / (real_share + 0.01))), kind="stable")
    rows = []
    for count in STRUCK:
        kept = np.setdiff1d(np.arange(present.shape[1]), telling[:count])
        probabilities = cross_val_predict(LogisticRegression(max_iter=3000), present[:, kept], labels_array,
                                          groups=groups_array, cv=GroupKFold(n_splits=5), method="predict_proba")[:, 1]
        rows.append({"words_struck": count, "auc": round(float(roc_auc_score(labels_array, probabilities)), 4),
                     "last_struck": [str(w) for w in vocabulary[telling[max(0, count - 5):count]]]})
    if args.json:
        print(json.dumps({"pairs": len(texts) // 2, "words": int(present.shape[1]), "rows": rows}, indent=1))
        return
    print(f"{len(texts) // 2} pairs, {present.shape[1]:,} words; words probe AUC, negatives against their own positives:")
    for row in rows:
        print(f"  {row['words_struck']:>5} words struck: {row['auc']:.4f}   {', '.join(row['last_struck'])}")


if __name__ == "__main__":
    main()
