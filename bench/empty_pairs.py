"""Why a synthesis run's pairs got no negative: replay them from a copy of the run's LLM cache, generating nothing.

Every round of every pair without a negative is asked again through the run's own code; a backend that
refuses whatever the cache does not hold stands in for the model (rounds written under older rules miss,
and are counted). Each title check and each passage's checks are recorded, and the rounds are counted by
what turned them down. From bench/experiments (BENCHMARKS.md, "Why a pair gets none: the 95% rule"):

    python ../empty_pairs.py scifact-all.yaml --out /tmp/empty-pairs
"""

from __future__ import annotations

import argparse
import collections
import json
import sqlite3
import sys
from pathlib import Path

import yaml

import syneg.synth.revision as revision
from syneg.llm.base import LLMError
from syneg.synth import synthesize
from syneg.synth.options import SynthesizeOptions
from syneg.synth.pairs import pairs_from_training_set


class CacheOnly:
    """Stands in for the run's backend under its name and model (the cache key), answering nothing."""

    def __init__(self, real) -> None:
        self.name, self.model = real.name, real.model

    async def complete(self, request):
        raise LLMError("not_cached", "not in the cache")

    async def aclose(self) -> None:
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path, help="the run's YAML (its synthesize section and output folder)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the cache copy and the counts")
    args = parser.parse_args()
    config = yaml.safe_load(args.config.read_text())
    section = config["synthesize"]
    base = args.config.parent
    args.out.mkdir(parents=True, exist_ok=True)
    copy = args.out / "cache.sqlite"
    with sqlite3.connect(base / section["cache"]) as source, sqlite3.connect(copy) as target:
        source.backup(target)  # a consistent copy even while the run writes
    options = SynthesizeOptions.model_validate({k: v for k, v in section.items() if k != "file"} | {"cache": str(copy)})
    rows = [json.loads(line) for line in (base / section["file"]).open()]
    empty = {(row["query_id"], row["pos_ids"][0]) for row in rows if not row["neg"]}
    pairs = [p for p in pairs_from_training_set(base / config["output"] / "mined.jsonl") if (p.query_id, p.pos_id) in empty]

    rounds: list[list[str]] = []
    real_checks, real_title = revision.run_checks, revision.title_below_positive

    def run_checks(text, reasoning, **kwargs):
        results = real_checks(text, reasoning, **kwargs)
        rounds.append([r.name for r in results if not r.passed])
        return results

    def title_check(similarity, positive_score, checks):
        result = real_title(similarity, positive_score, checks)
        if not result.passed:
            rounds.append([result.name])
        return result

    revision.run_checks, revision.title_below_positive = run_checks, title_check
    client = options.client(True)
    client.backend = CacheOnly(client.backend)
    stats = synthesize(pairs, args.out / "replayed.jsonl", options, client=client, show_progress=True)
    by_check = collections.Counter(name for failed in rounds for name in failed)
    too_close = sum(bool({"below_positive", "title_below_positive"} & set(failed)) for failed in rounds)
    summary = {"empty_pairs": len(pairs), "rounds_replayed": len(rounds), "rounds_not_in_cache": stats["llm_errors"],
               "accepted_now": stats["accepted"], "rounds_too_close_to_query": too_close, "failures_by_check": dict(by_check)}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
