"""Choice of the default generator: the embedded GGUF models side by side on the same pairs.

For each model, synthesizes ``--negatives-per-pair`` negatives for the first ``--pairs`` train pairs of
a dataset (the demo by default) with the shipped prompt, checks and attributes, a fresh request cache
per model (so every answer is really generated), and reports candidates, accepted negatives,
acceptance rate, accepted negatives per minute and completion tokens per second. The models run one
after the other in the same process, so they see the same machine load as nearly as possible.

Usage::

    python bench/model_choice_bench.py --out bench/out/model_choice
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
from pathlib import Path

from syneg.data import demo_path, load_beir
from syneg.llm import make_client
from syneg.synth import AttributeSet, Synthesizer, pairs_from_beir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=None, help="BEIR folder (default: the demo dataset)")
    parser.add_argument("--attributes", default="demo")
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--negatives-per-pair", type=int, default=1)
    parser.add_argument("--max-rounds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", default="smollm2-135m,qwen2.5-0.5b")
    parser.add_argument("--out", type=Path, default=Path("bench/out/model_choice"))
    args = parser.parse_args()

    dataset = load_beir(args.data or demo_path(), split="train")
    pairs = pairs_from_beir(dataset, limit=args.pairs)
    results: dict = {"command": " ".join(sys.argv), "pairs": len(pairs), "models": {}}
    for model in args.models.split(","):
        folder = args.out / model
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        client = make_client("llama.cpp", model, cache=folder / "llm-cache.sqlite", n_threads=args.threads)
        synthesizer = Synthesizer(
            client,
            attributes=AttributeSet.from_spec(args.attributes),
            negatives_per_pair=args.negatives_per_pair,
            max_rounds=args.max_rounds,
        )
        print(f"{model}: synthesizing for {len(pairs)} pairs ...", file=sys.stderr, flush=True)
        stats = synthesizer.run(pairs, folder / "negatives.jsonl", show_progress=False)
        asyncio.run(client.aclose())
        results["models"][model] = {
            "candidates": stats["candidates"],
            "accepted": stats["accepted"],
            "acceptance_rate": stats["acceptance_rate"],
            "accepted_per_minute": stats["accepted_per_minute"],
            "seconds": stats["seconds"],
            "completion_tokens_per_second": stats["completion_tokens_per_second"],
            "check_failures": stats["check_failures"],
            "llm_failures": stats["failures"],
        }
        print(json.dumps({model: results["models"][model]}), file=sys.stderr, flush=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
