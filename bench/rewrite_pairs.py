"""Write chosen pairs of a committed synthesis output again from its LLM cache, under today's text repairs (session 15).

A repair of ``as_passage`` (a section label in mixed case, "ConCLUSIONS", is a label) changes the texts a run
kept, not the requests it sent. The pairs whose records match ``--matching`` (a regular expression over their
kept and rejected texts) are synthesized again with the options of the pipeline config's synthesize section
as its first pass wrote (one aspect, no cut-field trim, whatever the config says for the passes after it;
``--aspects-per-reflection`` and ``--trim-cut-fields`` for the pairs a refill wrote), with the checks added after its first pass
turned off (abbreviations_match and terms_spelled: the replay test, ``tests/synth/test_synth_requests.py``,
needs only the first off for the pairs it replays) unless ``--later-checks`` says the pairs were written with
them (the second pass), so that the same rounds are kept; the cache answers, and
a request it lacks is generated. Each new record replaces the old one in place (the file is written whole, then
renamed), unless it holds fewer negatives: a repaired text can turn a check another way and a later round
with it, and a rewrite never loses a negative. Prints what changed.

    python bench/rewrite_pairs.py bench/experiments/scifact-all.yaml --matching 'REGEX' [--only QUERY_ID ...]
        [--skip QUERY_ID ...] [--aspects-per-reflection N] [--trim-cut-fields] [--later-checks]
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from syneg.data import read_training_set, write_training_set
from syneg.pipeline import RunConfig
from syneg.synth import SynthesizeOptions, pairs_from_training_set, synthesize

# Checks added after the committed SciFact file's first pass, off in a replay.
LATER_CHECKS_OFF = {"max_abbreviation_conflicts": 99, "max_misspelled_terms": 99}
# The first pass's options where scifact-all.yaml now records the second pass's (a refill of the empty pairs).
FIRST_PASS = {"aspects_per_reflection": 1, "trim_cut_fields": False, "refill": False}


def rewrite_options(options: SynthesizeOptions, aspects_per_reflection: int | None = None, trim_cut_fields: bool = False,
                    later_checks: bool = False) -> SynthesizeOptions:
    """The config's synthesis options as the pairs to rewrite were written: the first pass without the later
    checks, a refill with its own aspects, its cut-field trim and (``later_checks``) the checks it ran."""
    update: dict = FIRST_PASS | ({} if later_checks else {"checks": {**options.checks, **LATER_CHECKS_OFF}})
    if aspects_per_reflection is not None:
        update["aspects_per_reflection"] = aspects_per_reflection
    if trim_cut_fields:
        update["trim_cut_fields"] = True
    return options.model_copy(update=update)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--matching", required=True, help="regular expression over a record's kept and rejected texts")
    parser.add_argument("--only", nargs="*", default=(), help="only these query ids")
    parser.add_argument("--skip", nargs="*", default=(), help="not these query ids")
    parser.add_argument("--aspects-per-reflection", type=int, default=None)
    parser.add_argument("--trim-cut-fields", action="store_true", help="for the pairs written with trim_cut_fields on")
    parser.add_argument("--later-checks", action="store_true",
                        help="for the pairs written with abbreviations_match and terms_spelled on (the second pass)")
    args = parser.parse_args()
    options = rewrite_options(RunConfig.load(args.config).synthesize, args.aspects_per_reflection, args.trim_cut_fields,
                              args.later_checks)
    pattern = re.compile(args.matching)
    instances = list(read_training_set(options.file))

    def texts(instance):
        yield from (negative.text for negative in instance.negatives)
        for negative in instance.negatives:
            yield from (rejected.get("text", "") for rejected in negative.details.get("rejected", []))

    chosen = {(i.query_id, i.pos_ids[0]) for i in instances
              if any(pattern.search(text) for text in texts(i))
              and (not args.only or i.query_id in args.only) and i.query_id not in args.skip}
    if not chosen:
        print("no record matches")
        return
    pairs = [p for p in pairs_from_training_set(options.file) if (p.query_id, p.pos_id) in chosen]
    scratch = options.file.with_suffix(".rewrite.jsonl")
    scratch.unlink(missing_ok=True)
    stats = synthesize(pairs, scratch, options, show_progress=True)
    new = {(i.query_id, i.pos_ids[0]): i for i in read_training_set(scratch)}
    for index, instance in enumerate(instances):
        key = (instance.query_id, instance.pos_ids[0])
        if key in new:
            before = [n.text for n in instance.negatives]
            after = [n.text for n in new[key].negatives]
            if len(after) < len(before):  # a changed text can turn a later round another way: never lose a negative
                print(f"pair {index} (query {key[0]}): {len(before)} -> {len(after)} negatives; the old record is kept")
                continue
            print(f"pair {index} (query {key[0]}): {len(before)} -> {len(after)} negatives; "
                  f"{'text changed' if before != after else 'same text'}; still matching: "
                  f"{any(pattern.search(text) for text in texts(new[key]))}")
            instances[index] = new[key]
    write_training_set(options.file, instances)  # replaces the file only once written whole
    scratch.unlink()
    print(f"{len(new)} records written again; requests {stats['requests']}, cache hits {stats['cache_hits']}")


if __name__ == "__main__":
    main()
