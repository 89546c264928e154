"""Kill trials at a larger count than CI's (issue 21, part 1): every stage SIGKILLed ``--kills`` times at
seeded random moments and restarted, compared with an uninterrupted run (see ``tests/kill_trials.py``).

    OMP_NUM_THREADS=1 .venv/bin/python bench/kill_trials.py --kills 10 --seed 1 -o bench/out/kill-trials

prints the BENCHMARKS.md table and writes it, with every outcome, to ``OUTPUT/results.json``; exits 1
when a trial found a lost, duplicate or torn record, a differing output, a temporary file left behind or a
repeated LLM request.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import kill_trials  # noqa: E402 - the harness lives with the tests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10, help="SIGKILLs per stage")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--stages", default="mine,synthesize,mix,train,run", help="comma-separated, in pipeline order")
    parser.add_argument("-o", "--output", type=Path, default=Path("bench/out/kill-trials"))
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="syneg-kill-trials-"))
    outcomes = []
    try:
        for stage in kill_trials.stages(root):
            if stage.name in args.stages.split(","):
                outcomes.append(kill_trials.trial(stage, root, args.kills, args.seed))
                print(kill_trials.table(outcomes[-1:]).splitlines()[-1], flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    table = kill_trials.table(outcomes)
    print(table)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "results.json").write_text(json.dumps(
        {"command": " ".join(sys.argv), "cpu": platform.processor() or platform.machine(), "table": table,
         # asdict rebuilds a Counter from its items, counting (key, count) pairs: kept as a dict instead.
         "outcomes": [asdict(outcome) | {"killed_in": dict(outcome.killed_in)} for outcome in outcomes]},
        indent=1, default=str) + "\n")  # fmt: skip
    sys.exit(0 if all(outcome.sound() for outcome in outcomes) else 1)


if __name__ == "__main__":
    main()
