"""How the audits read the negatives written under each drawn domain (session 15).

Each SciFact negative is written by the LLM cast as an expert in a domain drawn from the paper's nine
(``syneg.synth.AttributeSet``, the shipped ``scifact`` attributes). This joins every audited negative to the
domain recorded in its details (found by its id in the committed synthesis outputs under ``bench/``) and
counts the labels by domain, with whether the text names the domain itself ("Infectious Diseases (ID) are a
major threat ..."). Pure reading of committed files; not machine-dependent.

    python bench/labels_by_domain.py [--json]
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter, defaultdict
from pathlib import Path

from text_check_strikes import AUDITS, LABELS, labelled

ROOT = Path(__file__).resolve().parents[1]


def domains_by_negative(root: Path = ROOT / "bench") -> dict[str, str]:
    """The drawn domain of every synthetic negative in the committed synthesis outputs, by negative id."""
    found: dict[str, str] = {}
    for path in sorted(root.rglob("*.jsonl")):
        with path.open() as lines:
            for line in lines:
                record = json.loads(line)
                if not isinstance(record, dict) or "neg_ids" not in record:
                    break  # not a training set (an audit sample, labels)
                for negative_id, details in zip(record["neg_ids"], record.get("neg_details") or [], strict=False):
                    if details and "attributes" in details:
                        found.setdefault(negative_id, details["attributes"].get("domain", ""))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON document instead")
    args = parser.parse_args()
    domains = domains_by_negative()
    by_domain: dict[str, Counter] = defaultdict(Counter)
    by_naming: dict[str, Counter] = defaultdict(Counter)
    for labels in AUDITS:
        for record, drawn in labelled(labels):
            domain = domains.get(record["id"])
            if not domain:
                continue
            by_domain[domain][record["label"]] += 1
            named = "names its domain" if re.search(re.escape(domain), drawn["negative"], re.IGNORECASE) else "does not"
            by_naming[named][record["label"]] += 1
    figures = {"by_domain": {d: dict(c) for d, c in sorted(by_domain.items())},
               "by_naming": {n: dict(c) for n, c in sorted(by_naming.items())}}
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print("| drawn domain | read | " + " | ".join(LABELS) + " |\n|---|---:|" + "---:|" * len(LABELS))
    for name, counts in [*figures["by_domain"].items(), *figures["by_naming"].items()]:
        counts = Counter(counts)
        read = sum(counts.values())
        print(f"| {name} | {read} | " + " | ".join(f"{counts[label]} ({counts[label] / read:.0%})" for label in LABELS) + " |")


if __name__ == "__main__":
    main()
