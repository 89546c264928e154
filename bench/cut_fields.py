"""How often the JSON grammar cuts a reflection's field at its cap, and how the audits read what was written from it (session 15).

The grammar closes a topic at 60 characters, an aspect at 80 and a title at 150, mid-word ("... Cancer
Mortality in O"), and the 0.5B model copies such an end into its passage. Since session 15 the write prompt
takes the whole words of a cut field (``trim_cut_fields``); before it, only a cut title was trimmed. This
counts, over every reflection in the committed LLM caches, the fields that reached their caps, and over every
audited negative whose reflection is found in a cache (by its aspect: about 2% of the audited aspects were
proposed by more than one reflection, the first one found is taken), the broken share of those written from a
cut topic or aspect against the rest. Pure reading of committed files: no model, no machine dependence.

    python bench/cut_fields.py [--json]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
from collections import Counter
from contextlib import closing
from pathlib import Path

from text_check_strikes import AUDITS, audit_name, labelled

from syneg.synth.writing import Reflection, cut_fields

ROOT = Path(__file__).resolve().parents[1]


def cached_reflections(root: Path = ROOT / "bench") -> dict[str, Reflection]:
    """Every reflection answered in a committed cache under ``root``, by its aspect (the first seen wins)."""
    reflections: dict[str, Reflection] = {}
    for cache in sorted(root.rglob("*.sqlite")):
        with closing(sqlite3.connect(f"file:{cache}?mode=ro", uri=True)) as db:
            try:
                values = [value for (value,) in db.execute("SELECT value FROM completions")]
            except sqlite3.DatabaseError:
                continue  # not an LLM cache
        for value in values:
            text = json.loads(value).get("text", "")
            if not text.startswith("{") or '"topic"' not in text:
                continue
            try:
                answer = json.loads(text)
            except json.JSONDecodeError:
                continue
            for option in answer.get("aspects") or [answer]:
                if isinstance(option, dict) and isinstance(option.get("aspect"), str):
                    reflections.setdefault(option["aspect"].strip(), Reflection(
                        topic=answer.get("topic", ""), aspect=option["aspect"], reasoning=option.get("reasoning", ""),
                        title=option.get("title", "")))
    return reflections


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON document instead")
    args = parser.parse_args()
    reflections = cached_reflections()
    fields = Counter(name for reflection in reflections.values() for name in cut_fields(reflection))
    audits = {}
    for labels in AUDITS:
        counts = Counter()
        for record, drawn in labelled(labels):
            reflection = reflections.get((drawn.get("aspect") or "").strip())
            if reflection is None:
                continue
            kind = "cut" if {"topic", "aspect"} & set(cut_fields(reflection)) else "whole"
            counts[kind, "read"] += 1
            counts[kind, "broken"] += record["label"] == "broken"
        audits[audit_name(labels)] = {
            kind: {"read": counts[kind, "read"], "broken": counts[kind, "broken"]} for kind in ("cut", "whole")}
    total = {kind: {key: sum(audit[kind][key] for audit in audits.values()) for key in ("read", "broken")}
             for kind in ("cut", "whole")}
    figures = {"reflections": len(reflections), "cut": dict(fields), "audits": audits, "all_audits": total}
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"{len(reflections)} reflections in the committed caches; cut at the cap: "
          + ", ".join(f"{name} {fields[name]} ({fields[name] / len(reflections):.1%})" for name in ("topic", "aspect", "title")))
    print("\n| audit | broken, from a cut topic or aspect | broken, from whole fields |\n|---|---:|---:|")
    for name, audit in [*audits.items(), ("all audits", total)]:
        cells = [f"{audit[kind]['broken']} / {audit[kind]['read']}" for kind in ("cut", "whole")]
        print(f"| {name} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
