"""Why a synthesis run's pairs got no negative: replay them from a copy of the run's LLM cache, generating nothing.

Every round of every pair without a negative is asked again through the run's own code; a backend that
refuses whatever the cache does not hold stands in for the model (rounds written under older rules miss,
and are counted). The synthesis statistics then count the rounds by what turned them down. From bench/experiments (BENCHMARKS.md, "Why a pair gets none: the 95% rule"):

    python ../empty_pairs.py scifact-all.yaml --out /tmp/empty-pairs
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path

from syneg.data import DataError, read_training_set
from syneg.llm.base import LLMError
from syneg.pipeline.config import RunConfig
from syneg.synth import synthesize
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
    try:
        config = RunConfig.load(args.config)
    except DataError as error:  # a missing file or a bad key: one line, not a traceback
        print(f"empty_pairs.py: {error}", file=sys.stderr)
        return 2
    options = config.synthesize
    args.out.mkdir(parents=True, exist_ok=True)
    copy = args.out / "cache.sqlite"
    with sqlite3.connect(options.cache) as source, sqlite3.connect(copy) as target:
        source.backup(target)  # a consistent copy even while the run writes
    empty = {(row.query_id, row.pos_ids[0]) for row in read_training_set(options.file) if not row.negatives}
    pairs = [p for p in pairs_from_training_set(config.output / "mined.jsonl") if (p.query_id, p.pos_id) in empty]
    client = options.model_copy(update={"cache": copy}).client(True)
    client.backend = CacheOnly(client.backend)
    stats = synthesize(pairs, args.out / "replayed.jsonl", options, client=client, show_progress=True)
    failures = stats["check_failures"]
    # A round turned down by its title writes no passage, so the two counts of "too close" do not overlap.
    summary = {"empty_pairs": len(pairs), "rounds_replayed": stats["candidates"] + stats["title_rejections"],
               "rounds_not_in_cache": stats["llm_errors"], "accepted_now": stats["accepted"],
               "rounds_too_close_to_query": stats["title_rejections"] + failures.get("below_positive", 0),
               "failures_by_check": {"title_below_positive": stats["title_rejections"]} | dict(failures)}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
