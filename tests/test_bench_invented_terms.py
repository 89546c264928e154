"""bench/invented_terms.py on SciFact and the committed audits: the measurement behind not checking for invented words."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_real_abstracts_write_more_unseen_words_than_the_broken_negatives(scifact_path):
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "invented_terms.py"), "--datasets",
                          str(scifact_path.parent), "--json"], capture_output=True, text=True, check=True)
    figures = json.loads(run.stdout)
    real, broken, hard = figures["real_abstracts"], figures["broken"], figures["hard"]
    assert real["read"] == 500 and broken["read"] > 100 and hard["read"] > 200
    assert broken["at_least_1"] > hard["at_least_1"]  # the words do tell a little of broken from hard
    for k in (1, 2, 3):  # but at every threshold a check would strike more real abstracts than broken texts
        assert real[f"at_least_{k}"] > broken[f"at_least_{k}"]
