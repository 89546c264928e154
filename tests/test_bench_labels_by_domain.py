"""bench/labels_by_domain.py on the committed audits and synthesis outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from syneg.synth import AttributeSet

ROOT = Path(__file__).resolve().parents[1]


def test_every_drawn_domain_of_the_scifact_attributes_has_audited_negatives():
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "labels_by_domain.py"), "--json"],
                         capture_output=True, text=True, check=True)
    figures = json.loads(run.stdout)
    assert set(figures["by_domain"]) == set(AttributeSet.example("scifact").values()["domain"])
    read = sum(sum(counts.values()) for counts in figures["by_domain"].values())
    assert read > 400 and read == sum(sum(counts.values()) for counts in figures["by_naming"].values())
    assert all(counts.get("broken", 0) < sum(counts.values()) for counts in figures["by_domain"].values())
