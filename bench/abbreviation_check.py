"""What the ``abbreviations_match`` check strikes: audited negatives by label, and real abstracts (session 13).

Session 7 measured rules on every "(ABBR)" of a text and dropped them: real abstracts break them as often
as one text in ten (``bench/text_rules.py``). The check holds a negative only to its own pair's
abbreviations, those of the query and the positive, and to the positive's own expansions
(:func:`syneg.synth.checks.abbreviation_conflicts`). This script measures what it strikes:

- every audited negative (``bench/audit/*-labels.jsonl``) against its query and positive, by label;
- real abstracts against a pair they are not the positive of, drawn where the check has the most to
  strike: abstracts that write one of the pair's abbreviations (train pairs drawn with seed 0, up to five
  such abstracts each). A real abstract is never a mangled text, so every strike there is a false one.

    python bench/abbreviation_check.py --datasets ../shared/datasets [--json]
"""

from __future__ import annotations

import json
import re

from text_check_strikes import AUDITS, arguments, as_json, audit_name, audited, print_audits, real_strikes

from syneg.synth.checks import abbreviation_conflicts, is_abbreviation

TERM = re.compile(r"[A-Za-z0-9][\w\-+/]*\w")


def abbreviations(text: str) -> set[str]:
    return {t for t in TERM.findall(text) if is_abbreviation(t)}


def main() -> None:
    args = arguments(__doc__)
    audits = {audit_name(path): audited(path, abbreviation_conflicts)[0] for path in AUDITS}
    real = {name: real_strikes(args.datasets / name, abbreviation_conflicts, abbreviations, args.pairs, args.per_pair)
            for name in ("scifact", "nfcorpus")}
    if args.json:
        print(json.dumps({"audits": {name: as_json(counts) for name, counts in audits.items()},
                          "real_abstracts": {name: {"struck": s, "checked": c} for name, (s, c, _) in real.items()}}, indent=1))
        return
    print_audits(audits)
    for name, (struck, checked, examples) in real.items():
        print(f"\n{name}: real abstracts sharing an abbreviation with a train pair: {struck} of {checked} struck "
              f"({struck / max(1, checked):.1%})")
        for example in examples[:8]:
            print(f"  {example}")


if __name__ == "__main__":
    main()
