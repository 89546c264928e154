"""bench/coverage.py on the real SciFact train qrels and pairs of the committed synthetic file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "bench" / "experiments" / "scifact-all-synthetic.jsonl"


def run_coverage(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "bench" / "coverage.py"), *map(str, args)],
                          capture_output=True, text=True)


def test_a_pair_counts_once_when_any_file_gives_it_a_negative(tmp_path, scifact_path):
    """Ten committed pairs with a negative, three of them emptied in the output and given one again in a
    refill file; one pair of another split, its negative twice its positive's length. The split holds all 919
    train pairs, so 909 are in no file."""
    records = [json.loads(line) for line in COMMITTED.read_text().splitlines()]
    # Ten pairs whose negative is well within the length bounds (0.7-1.3x the positive's words).
    served = [r for r in records if r["neg"] and 0.8 <= len(r["neg"][0].split()) / len(r["pos"][0].split()) <= 1.2][:10]
    output, refill = tmp_path / "out.jsonl", tmp_path / "out.refill.jsonl"
    emptied = [r | {"neg": [], "neg_ids": [], "neg_sources": [], "neg_details": [], "neg_scores": [], "neg_all_scores": []}
               if i < 3 else r for i, r in enumerate(served)]
    output.write_text("".join(json.dumps(r) + "\n" for r in emptied))
    stranger = served[3] | {"query_id": "not-a-train-query", "neg": [served[3]["pos"][0] + " " + served[3]["pos"][0]]}
    refill.write_text("".join(json.dumps(r) + "\n" for r in served[:3] + [stranger]))

    run = run_coverage(scifact_path, output, refill, "--json")
    assert run.returncode == 0, run.stderr
    figures = json.loads(run.stdout)
    assert figures["split"] == {"pairs": 919, "in_a_file": 10, "with_one": 10, "with_two": 0, "share": 10 / 919,
                                "with_one_length_matched": 10, "length_matched_share": 10 / 919, "goal": 828}
    assert figures["files"][str(output)]["with_one"] == 7
    assert figures["files"][str(refill)] == {"pairs": 4, "with_one": 4, "with_two": 0, "negatives": 4,
                                             "length_matched": 3, "outside_the_split": 1}  # twice the positive: not matched

    alone = json.loads(run_coverage(scifact_path, output, "--json").stdout)["split"]
    assert alone["with_one"] == 7 and alone["in_a_file"] == 10

    # The refill's negative for the first pair made twice its positive's length: the pair holds a negative from
    # the refill but a length-matched one from no file.
    served[0] |= {"neg": [served[0]["pos"][0] + " " + served[0]["pos"][0]]}
    refill.write_text("".join(json.dumps(r) + "\n" for r in served[:3]))
    longer = json.loads(run_coverage(scifact_path, output, refill, "--json").stdout)["split"]
    assert (longer["with_one"], longer["with_one_length_matched"]) == (10, 9)


def test_a_missing_file_is_one_line_and_exit_2(tmp_path, scifact_path):
    run = run_coverage(scifact_path, tmp_path / "absent.jsonl")
    assert run.returncode == 2
    assert run.stderr.strip().count("\n") == 0 and "absent.jsonl" in run.stderr and "Traceback" not in run.stderr
