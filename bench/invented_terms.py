"""Could a check strike invented terms? Words neither English nor in the corpus, in real abstracts and in the audits (session 15).

Most broken texts of the audits are a 0.5B model's inventions around the pair's subject: "Nadherin",
"Chydrin Kinase 5", "Deoxyriose", "Postmenoprostosis". A check could strike a negative that writes words no
English word list knows (wordfreq, as ``terms_spelled`` uses it), that no other document of the corpus
writes and that its own pair does not write. This counts such words (four characters or more) in the audited
negatives by label, and in real abstracts of the corpus, each held against the rest of the corpus (leave one
out), to see whether any threshold strikes broken texts without striking real abstracts. Pure text, no
model, so not machine-dependent:

    python bench/invented_terms.py --datasets ../shared/datasets [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections import Counter
from pathlib import Path

from text_check_strikes import AUDITS, labelled

from syneg.synth.checks import is_known_word

ROOT = Path(__file__).resolve().parents[1]
TERM = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*")
MIN_TERM_LENGTH = 4
REAL_ABSTRACTS = 500
AT_LEAST = (1, 2, 3)


def terms(text: str) -> set[str]:
    return {term.lower() for term in TERM.findall(text) if len(term) >= MIN_TERM_LENGTH}


def unseen(text: str, document_frequency: Counter, pair_text: str = "", own: bool = False) -> list[str]:
    """The words of ``text`` that neither wordfreq, nor any other document of the corpus, nor ``pair_text`` has;
    ``own``: ``text`` is a document of the corpus, whose own count is set aside."""
    pair = terms(pair_text)
    return sorted(term for term in terms(text) if term not in pair and not is_known_word(term)
                  and document_frequency[term] - own <= 0)


def shares(counts: list[int]) -> dict[str, float]:
    return {f"at_least_{k}": sum(count >= k for count in counts) / len(counts) for k in AT_LEAST}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON document instead")
    args = parser.parse_args()
    documents = [json.loads(line) for line in (args.datasets / "scifact" / "corpus.jsonl").open()]
    texts = [f"{document.get('title', '')} {document['text']}" for document in documents]
    document_frequency = Counter(term for text in texts for term in terms(text))
    drawn = random.Random(0).sample(range(len(texts)), REAL_ABSTRACTS)
    real = [len(unseen(texts[i], document_frequency, own=True)) for i in drawn]
    by_label: dict[str, list[int]] = {}
    for labels in AUDITS:  # all SciFact (the model comparisons and the aspect runs too)
        for record, drawn in labelled(labels):
            found = unseen(drawn["negative"], document_frequency, f"{drawn['query']} {drawn['positive']}")
            by_label.setdefault(record["label"], []).append(len(found))
    figures = {"real_abstracts": {"read": len(real)} | shares(real)}
    figures |= {label: {"read": len(counts)} | shares(counts) for label, counts in sorted(by_label.items())}
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print("| texts | read | ≥ 1 unseen word | ≥ 2 | ≥ 3 |\n|---|---:|---:|---:|---:|")
    for name, row in figures.items():
        print(f"| {name.replace('_', ' ')} | {row['read']} | " + " | ".join(f"{row[f'at_least_{k}']:.0%}" for k in AT_LEAST) + " |")


if __name__ == "__main__":
    main()
