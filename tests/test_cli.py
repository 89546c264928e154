"""The command-line contract, run as a user runs it: the installed ``syneg`` program in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from syneg.data import demo_path, read_training_set

SYNEG = Path(sys.executable).with_name("syneg")


def syneg(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    completed = subprocess.run([str(SYNEG), *args], capture_output=True, text=True, timeout=900, check=False)
    if check and completed.returncode != 0:
        raise AssertionError(f"syneg {' '.join(args)} exited {completed.returncode}:\n{completed.stderr[-3000:]}")
    return completed


def test_evaluate_bm25_json():
    metrics = json.loads(syneg("evaluate", str(demo_path()), "--split", "test", "--model", "bm25", "--json").stdout)
    for key in ("ndcg@10", "recall@10", "recall@100", "mrr@10"):
        assert 0.0 <= metrics[key] <= 1.0
    assert metrics["ndcg@10"] > 0.5


def test_evaluate_compares_models_and_writes_run_files(tmp_path):
    out = syneg("evaluate", str(demo_path()), "--model", "bm25", "--model", "default", "--run-dir", str(tmp_path), "--json")
    both = json.loads(out.stdout)
    assert set(both) == {"bm25", "default"}
    assert (tmp_path / "bm25.test.trec").read_text().split("\n")[0].split()[1] == "Q0"
    table = syneg("evaluate", str(demo_path()), "--model", "bm25", "--model", "default").stdout
    assert "ndcg@10" in table and "bm25" in table


@pytest.mark.parametrize("retriever", ["bm25", "dense", "both"])
def test_mine_writes_the_training_set(tmp_path, retriever):
    output = tmp_path / f"{retriever}.jsonl"
    syneg("mine", str(demo_path()), "--split", "train", "--retriever", retriever, "--num-negatives", "2", "--output", str(output))
    instances = list(read_training_set(output))
    assert len(instances) == 35 and all(len(i.negatives) == 2 for i in instances)
    record = json.loads(output.read_text().splitlines()[0])
    assert {"query", "pos", "neg", "pos_scores", "neg_scores", "query_id", "pos_ids", "neg_ids", "neg_sources"} <= set(record)


def test_bad_input_is_one_clear_line(tmp_path):
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text('{"_id": "d1", "text": "ok"}\n{"_id": "d2", "text": oops}\n')
    (tmp_path / "queries.jsonl").write_text('{"_id": "q1", "text": "q"}\n')
    (tmp_path / "qrels" / "test.tsv").write_text("q1\td1\t1\n")
    completed = syneg("evaluate", str(tmp_path), "--model", "bm25", check=False)
    assert completed.returncode == 2
    assert "corpus.jsonl:2: invalid JSON" in completed.stderr and "Traceback" not in completed.stderr
    missing = syneg("mine", str(tmp_path / "nope"), "--output", str(tmp_path / "x.jsonl"), check=False)
    assert missing.returncode == 2 and "not a folder" in missing.stderr


@pytest.mark.parametrize(("option", "line"), [
    (["--max-rounds", "-1"], "error: --max-rounds: Input should be greater than or equal to 0"),
    (["--aspects-per-reflection", "7"], "error: --aspects-per-reflection: Input should be less than or equal to 5"),
    (["--aspects-per-reflection", "3", "--prompt-style", "single"], "error: aspects_per_reflection above 1 needs a reflection"),
])
def test_an_option_out_of_its_schema_is_one_line(tmp_path, option, line):
    """A value the stage's option schema refuses is told as the option it came from, on one line, before any work."""
    completed = syneg("synthesize", str(demo_path()), "-o", str(tmp_path / "x.jsonl"), *option, check=False)
    assert completed.returncode == 2 and completed.stderr.startswith(line), completed.stderr
    assert len(completed.stderr.strip().splitlines()) == 1 and not (tmp_path / "x.jsonl").exists()


def test_view_writes_the_page(tmp_path):
    synthetic = Path(__file__).resolve().parents[1] / "bench" / "experiments" / "scifact-synthetic.jsonl"
    completed = syneg("view", str(synthetic), "-o", str(tmp_path / "page.html"))
    assert "page.html" in completed.stderr and (tmp_path / "page.html").read_text().startswith("<!DOCTYPE html>")


def test_view_bad_input_is_one_clear_line(tmp_path):
    """A missing file, a folder that is not a run folder, a malformed or non-UTF-8 line: one line naming it, exit 2."""
    (tmp_path / "folder").mkdir()
    (tmp_path / "bad.jsonl").write_text('{"query": "q", "pos": ["p"]}\n{"query": "q", "pos": ["p"], "neg": [oops]}\n')
    (tmp_path / "binary.jsonl").write_bytes(b'{"query": "q", "pos": ["p"]}\n\xff\xfe\x00')
    expected = {"nope.jsonl": "nope.jsonl: file not found",
                "folder": "folder: neither a training-set jsonl nor a run folder of `syneg run`",
                "bad.jsonl": "bad.jsonl:2: invalid JSON",
                "binary.jsonl": "binary.jsonl:2: not UTF-8 text"}
    for name, message in expected.items():
        completed = syneg("view", str(tmp_path / name), check=False)
        assert completed.returncode == 2, completed.stderr
        assert message in completed.stderr and "Traceback" not in completed.stderr
        assert len(completed.stderr.strip().splitlines()) == 1
