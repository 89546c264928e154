"""bench/cut_fields.py on the committed caches and audits: the figures behind trim_cut_fields."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_committed_caches_hold_reflections_cut_at_the_cap_and_the_audits_read_what_came_of_them(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    from cut_fields import cached_reflections

    from syneg.synth.writing import cut_fields

    # The reflection the second SciFact pass wrote "Cancer Mortality in O" from (claim 1126).
    reflection = cached_reflections()["Risk of Immunosuppressive Therapy"]
    assert reflection.topic.endswith(" in O") and cut_fields(reflection) == ["topic", "title"]
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "cut_fields.py"), "--json"],
                         capture_output=True, text=True, check=True)
    figures = json.loads(run.stdout)
    assert figures["reflections"] > 5000 and 0 < figures["cut"]["topic"] < figures["reflections"] / 5
    assert "aspects-compare" in figures["audits"] and "scifact-v4" in figures["audits"]
    for kind in ("cut", "whole"):
        assert figures["all_audits"][kind]["read"] > 50
        assert 0 < figures["all_audits"][kind]["broken"] < figures["all_audits"][kind]["read"]
