"""The audits by reading (bench/audit_negatives.py) stay reproducible: the committed samples are drawn again
from the committed synthesis output by the commands BENCHMARKS.md gives, and every label file labels
exactly its sample."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
AUDIT = ROOT / "bench" / "audit"
SCRIPT = ROOT / "bench" / "audit_negatives.py"
# The SciFact run's first 266 pairs as the audits read them: the run was later written again under newer
# checks (BENCHMARKS.md, "The first pairs under today's checks"), which changed some of their negatives.
SYNTHETIC = AUDIT / "scifact-all-synthetic-as-audited.jsonl"


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.mark.parametrize(("name", "arguments"), [
    ("scifact-v2-rule95", ["--rejected", "below_positive", "--pairs", "188", "--n", "40", "--seed", "0"]),
    ("scifact-v3", ["--first-pair", "188", "--pairs", "266", "--n", "100", "--seed", "0"]),
    ("scifact-v4", ["bench/audit/scifact-all-first-pass-438.jsonl", "--first-pair", "246", "--pairs", "354", "--n", "60",
                    "--seed", "0"]),
    ("scifact-v5", ["bench/audit/scifact-all-first-pass-438.jsonl", "--first-pair", "356", "--pairs", "438", "--n", "60",
                    "--seed", "0"]),
    ("model-compare-0.5b", ["bench/out/model-compare/current-qwen2.5-0.5b/negatives.jsonl", "--n", "100", "--seed", "0"]),
    ("model-compare-1.5b", ["bench/out/model-compare/current-qwen2.5-1.5b/negatives.jsonl", "--n", "100", "--seed", "0"]),
    ("scifact-second-pass", ["bench/audit/scifact-all-second-pass-20.jsonl", "--n", "20", "--seed", "0"]),
    ("scifact-second-pass-s16", ["bench/audit/scifact-all-second-pass-session16.jsonl", "--n", "19", "--seed", "0"]),
    ("scifact-second-pass-s17", ["bench/audit/scifact-all-second-pass-session17.jsonl", "--n", "45", "--seed", "0"]),
])
# scifact-v4 and -v5 were drawn from bench/experiments/scifact-all-synthetic.jsonl as its first pass wrote it; the
# second pass (session 14) merges negatives into that file, so they are drawn again from its first 438 pairs, kept.
def test_a_committed_sample_is_drawn_again_by_its_command(tmp_path: Path, name: str, arguments: list[str]) -> None:
    out = tmp_path / "sample.jsonl"
    # The first argument names the file drawn from when it is not the SciFact run's.
    source, arguments = (ROOT / arguments[0], arguments[1:]) if arguments[0].endswith(".jsonl") else (SYNTHETIC, arguments)
    subprocess.run([sys.executable, str(SCRIPT), "sample", str(source), *arguments, "--out", str(out)],
                   check=True, capture_output=True, text=True)
    assert read(out) == read(AUDIT / f"{name}-sample.jsonl")


@pytest.mark.parametrize("name", ["scifact-v1", "scifact-v2", "scifact-v2-rule95", "scifact-v3", "scifact-v4", "scifact-v5",
                                  "model-compare-0.5b", "model-compare-1.5b", "temperature-compare", "aspects-compare",
                                  "aspects-compare-31-50", "scifact-second-pass", "scifact-second-pass-s16",
                                  "scifact-second-pass-s17"])
def test_a_labels_file_labels_exactly_its_sample(name: str) -> None:
    sample = [row["id"] for row in read(AUDIT / f"{name}-sample.jsonl")]
    labels = read(AUDIT / f"{name}-labels.jsonl")
    assert [row["id"] for row in labels] == sample
    rates = json.loads(subprocess.run([sys.executable, str(SCRIPT), "rates", str(AUDIT / f"{name}-labels.jsonl")],
                                      check=True, capture_output=True, text=True).stdout)
    assert rates["labelled"] == len(sample)


def test_the_rule95_rejections_are_candidates_that_failed_that_rule_alone() -> None:
    rows = read(AUDIT / "scifact-v2-rule95-sample.jsonl")
    assert all(row["ratio"] > 0.95 for row in rows)  # the rule rejects above 95% of the positive's similarity


@pytest.mark.parametrize(("name", "folder", "sides", "pair_range"), [
    ("temperature-compare", "temperature-compare", ("current", "current-temperature0.3"), []),
    ("aspects-compare", "aspects-compare", ("current", "current-aspects3"), ["--pairs", "30"]),
    ("aspects-compare-31-50", "aspects-compare", ("current", "current-aspects3"), ["--first-pair", "30", "--pairs", "50"]),
])
def test_a_comparisons_blind_sample_is_drawn_again_by_its_command(tmp_path: Path, name, folder, sides, pair_range) -> None:
    files = [ROOT / "bench/out" / folder / side / "negatives.jsonl" for side in sides]
    sample, key = tmp_path / "sample.jsonl", tmp_path / "key.json"
    subprocess.run([sys.executable, str(SCRIPT), "blind", *map(str, files), "--n", "40", "--seed", "0", "--out", str(sample),
                    "--key", str(key), *pair_range], check=True, capture_output=True, text=True, cwd=ROOT)
    assert read(sample) == read(AUDIT / f"{name}-sample.jsonl")
    committed = json.loads((AUDIT / f"{name}-key.json").read_text())
    assert {i: (ROOT / f).resolve() for i, f in committed.items()} == {i: (ROOT / f).resolve() for i, f in json.loads(key.read_text()).items()}


def test_a_blind_sample_hides_the_file_and_its_key_splits_the_rates(tmp_path: Path) -> None:
    files = [ROOT / "bench/out/model-compare" / name / "negatives.jsonl" for name in ("current-qwen2.5-0.5b", "current-qwen2.5-1.5b")]
    sample, key = tmp_path / "sample.jsonl", tmp_path / "key.json"
    subprocess.run([sys.executable, str(SCRIPT), "blind", *map(str, files), "--n", "5", "--seed", "0", "--out", str(sample),
                    "--key", str(key)], check=True, capture_output=True, text=True)
    rows, owners = read(sample), json.loads(key.read_text())
    assert not any(str(files[0].parent.parent) in json.dumps(row) for row in rows)  # the reader is not told the file
    assert sorted(owners) == sorted(row["id"] for row in rows) and set(owners.values()) == set(map(str, files))
    assert [owners[row["id"]] for row in rows] != sorted(owners[row["id"]] for row in rows)  # shuffled, not file by file
    # Label every negative of the first file broken and the rest hard: the split gives each file its own rates.
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps({"id": row["id"], "label": "broken" if owners[row["id"]] == str(files[0]) else "hard"}) + "\n"
                              for row in rows))
    rates = json.loads(subprocess.run([sys.executable, str(SCRIPT), "rates", str(labels), "--by", str(key)],
                                      check=True, capture_output=True, text=True).stdout)
    assert rates[str(files[0])]["broken"]["rate"] == 1.0 and rates[str(files[1])]["hard"]["rate"] == 1.0
    assert sum(rates[str(file)]["labelled"] for file in files) == len(rows)
