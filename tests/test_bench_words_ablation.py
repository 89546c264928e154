"""bench/words_ablation.py on the committed SciFact negatives: the measurement behind not post-processing words."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_striking_the_most_telling_words_leaves_the_words_probe_above_chance():
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "words_ablation.py"),
                          str(ROOT / "bench" / "experiments" / "scifact-all-synthetic.jsonl"), "--json"],
                         capture_output=True, text=True, check=True)
    figures = json.loads(run.stdout)
    aucs = {row["words_struck"]: row["auc"] for row in figures["rows"]}
    assert figures["pairs"] > 500 and aucs[0] > 0.99
    assert aucs[3000] < aucs[0]  # striking words does take something away
    assert aucs[100] > 0.95  # but no list a post-processor could hold takes the register away
