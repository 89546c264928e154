"""bench/rewrite_pairs.py on a real pair of the committed SciFact file: written again from the committed cache."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "bench" / "experiments"


def test_a_pair_whose_text_kept_a_mixed_case_label_is_written_again_from_the_cache_without_it(tmp_path, scifact_path):
    """Query 1001 as the first pass wrote it, before as_passage took "ConCLUSIONS" for a label
    (tests/fixtures/conclusions-label-pair.jsonl): every request is answered by the committed cache, and the
    text comes back without the label and otherwise word for word."""
    cache = EXPERIMENTS / "scifact-all-llm-cache.sqlite"
    if not cache.is_file():
        pytest.skip("bench/experiments/scifact-all-llm-cache.sqlite is not in this checkout")
    record = (ROOT / "tests" / "fixtures" / "conclusions-label-pair.jsonl").read_text()
    (tmp_path / "negatives.jsonl").write_text(record)
    with closing(sqlite3.connect(f"file:{cache}?mode=ro", uri=True)) as reader, closing(sqlite3.connect(tmp_path / "cache.sqlite")) as writer:
        reader.backup(writer)  # a consistent copy: a running synthesis may be writing to the committed cache
    config = yaml.safe_load((EXPERIMENTS / "scifact-all.yaml").read_text())
    config["data"] = str(scifact_path)
    # The config records the second pass's options; rewrite_pairs writes a first-pass pair under the first pass's.
    config["synthesize"] |= {"file": "negatives.jsonl", "cache": "cache.sqlite"}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "rewrite_pairs.py"), str(tmp_path / "config.yaml"),
                          "--matching", r"\bConCLUSIONS\b"], capture_output=True, text=True, check=True)
    assert "requests 0," in run.stdout and "1 records written again" in run.stdout, run.stdout
    before = json.loads(record)["neg"][0]
    [after] = json.loads((tmp_path / "negatives.jsonl").read_text())["neg"]
    assert "ConCLUSIONS" in before and after.split() == [word for word in before.split() if word != "ConCLUSIONS"]
    # Nothing matches any more: a second run has nothing to do.
    again = subprocess.run([sys.executable, str(ROOT / "bench" / "rewrite_pairs.py"), str(tmp_path / "config.yaml"),
                            "--matching", r"\bConCLUSIONS\b"], capture_output=True, text=True, check=True)
    assert again.stdout.strip() == "no record matches"


def test_the_later_checks_are_off_for_the_first_pass_only(monkeypatch):
    """The first pass ran without abbreviations_match and terms_spelled, the second pass with them: a rewrite
    of a second-pass pair under the first pass's checks could keep a text that pass rejected. Without flags, the
    first pass's options, though the config records the second pass's."""
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    from rewrite_pairs import LATER_CHECKS_OFF, rewrite_options

    from syneg.pipeline import RunConfig

    options = RunConfig.load(EXPERIMENTS / "scifact-all.yaml").synthesize
    first = rewrite_options(options)
    assert all(first.checks[name] == value for name, value in LATER_CHECKS_OFF.items())
    assert (first.aspects_per_reflection, first.trim_cut_fields, first.refill) == (1, False, False)
    second = rewrite_options(options, aspects_per_reflection=3, trim_cut_fields=True, later_checks=True)
    assert second.checks == options.checks and second.aspects_per_reflection == 3 and second.trim_cut_fields
    assert options.checks.get("max_abbreviation_conflicts") != 99  # the config itself is left as it was
