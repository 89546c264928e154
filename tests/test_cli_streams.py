"""The CLI's streams and exit codes, run as a user runs it: ``python -m syneg`` in a subprocess.

With ``--json``, stdout holds one JSON document and nothing else; logs, warnings and progress go to
stderr, as plain lines when stderr is not a terminal, and only syneg's own. Exit codes: 0 done, 2 bad
input, 130 interrupted, 1 anything else (traceback in a log file).
"""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import typer.main
import yaml

from kill_trials import with_default_sigint
from syneg.cli import app
from syneg.data import Negative, demo_path, read_training_set, write_training_set

SYNEG = [sys.executable, "-m", "syneg"]
# What third-party progress bars and chatter print; none of it may reach a syneg user.
THIRD_PARTY_NOISE = ("Loading weights", "Batches", "Computing widget examples", "Split strings", "BM25S", "Map:",
                     "it/s]", "{'loss'", "huggingface/tokenizers")  # fmt: skip

# A pipeline that trains (so the trainer's logging is exercised) in a few steps, without the LLM.
TINY_RUN = {
    "data": "demo",
    "seeds": [1],
    "mine": {"retriever": "bm25", "num_negatives": 2, "range_max": 10},
    "synthesize": {"enabled": False},
    "mix": {"num_negatives": 1},
    "train": {"batch_size": 8, "max_steps": 2, "save_steps": 10},
    "evaluate": {"bm25": False, "shortcut_probe": False},
    "arms": [{"name": "bm25", "strategy": "retrieved", "retrieved_sources": "bm25"}],
}


def syneg(*args: str, code: int = 0, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    completed = subprocess.run([*SYNEG, *args], capture_output=True, text=True, timeout=900, env=env, cwd=cwd, check=False)
    assert completed.returncode == code, f"syneg {' '.join(args)} exited {completed.returncode}:\n{completed.stderr[-3000:]}"
    return completed


def isolated(tmp_path: Path) -> dict[str, str]:
    """The environment with a cache of the test's own (empty: encoding and synthesis really run)."""
    return {**os.environ, "SYNEG_CACHE_DIR": str(tmp_path / "cache")}


def probe_inputs(tmp_path: Path, pairs: int = 8) -> tuple[Path, Path]:
    """Real synthetic negatives (the committed SciFact run's first pairs that have one) and, as the retrieved
    side, each pair's neighbour's positive: real abstracts for the probe to tell apart."""
    committed = Path(__file__).resolve().parents[1] / "bench" / "experiments" / "scifact-all-synthetic.jsonl"
    synthetic = [i for i in read_training_set(committed) if i.negatives][:pairs]
    retrieved = [replace(instance, negatives=[Negative(synthetic[n - 1].pos[0], "bm25", id=synthetic[n - 1].pos_ids[0])])
                 for n, instance in enumerate(synthetic)]
    write_training_set(tmp_path / "probe-synthetic.jsonl", synthetic)
    write_training_set(tmp_path / "probe-mined.jsonl", retrieved)
    return tmp_path / "probe-synthetic.jsonl", tmp_path / "probe-mined.jsonl"


def json_cases(tmp_path: Path) -> dict[str, list[str]]:
    """The arguments of every command that has --json."""
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(TINY_RUN))
    probed = probe_inputs(tmp_path)
    return {
        "evaluate": ["evaluate", str(demo_path()), "--model", "bm25", "--model", "default", "--json"],
        "mine": ["mine", str(demo_path()), "--retriever", "both", "--num-negatives", "2", "-o", str(tmp_path / "mined.jsonl"), "--json"],
        "synthesize": ["synthesize", str(demo_path()), "--limit", "1", "--model", "smollm2-135m", "--attributes", "demo",
                       "-o", str(tmp_path / "synthetic.jsonl"), "--json"],
        "run": ["run", str(tmp_path / "run.yaml"), "-o", str(tmp_path / "run"), "--json"],
        "doctor": ["doctor", "--json"],
        "probe": ["probe", *map(str, probed), "--json"],
        "cache list": ["cache", "list", "--json"],
        "cache prune": ["cache", "prune", "--older-than", "3650d", "--dry-run", "--json"],
    }  # fmt: skip


SLOW_JSON_COMMANDS = {"synthesize", "run"}


def commands_with_json_option() -> set[str]:
    found = set()

    def walk(command, path: tuple[str, ...]) -> None:
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, (*path, name))
        if any(param.name == "as_json" for param in command.params):
            found.add(" ".join(path))

    walk(typer.main.get_command(app), ())
    return found


def test_every_json_command_has_a_stream_test(tmp_path):
    assert commands_with_json_option() == set(json_cases(tmp_path))


@pytest.mark.parametrize(
    "command",
    [pytest.param(c, marks=pytest.mark.slow) if c in SLOW_JSON_COMMANDS else c
     for c in ("evaluate", "mine", "synthesize", "run", "doctor", "probe", "cache list", "cache prune")],
)  # fmt: skip
def test_json_stdout_is_one_document(tmp_path, command):
    completed = syneg(*json_cases(tmp_path)[command], env=isolated(tmp_path))
    document = json.loads(completed.stdout)  # the whole of stdout, nothing before or after
    expected_key = {"evaluate": "bm25", "mine": "removed", "synthesize": "accepted", "doctor": "cpu", "cache list": "entries",
                    "cache prune": "deleted", "probe": "words_auc"}  # fmt: skip
    if command == "run":
        assert [row["arm"] for row in document] == ["bm25"] and 0 <= document[0]["ndcg@10"] <= 1
        assert "▶ train/bm25/seed-1" in completed.stderr and "Training: " in completed.stderr
    else:
        assert expected_key[command] in document
    assert "\r" not in completed.stderr
    assert not [noise for noise in THIRD_PARTY_NOISE if noise in completed.stderr], completed.stderr


def test_progress_in_a_log_file_is_plain_lines_and_only_syneg(tmp_path):
    completed = syneg("evaluate", str(demo_path()), "--model", "default", env=isolated(tmp_path))
    assert "ndcg@10" in completed.stdout and "Encoding" not in completed.stdout  # results on stdout, progress not
    lines = completed.stderr.splitlines()
    assert "Encoding documents: 0/240 texts" in lines
    assert any(re.fullmatch(r"Encoding documents: 240/240 texts in 0:\d\d:\d\d \([\d.,]+ texts/(s|min)\)", line) for line in lines), lines
    assert "\r" not in completed.stderr
    assert not [noise for noise in THIRD_PARTY_NOISE if noise in completed.stderr], completed.stderr


def test_progress_on_a_terminal_is_a_bar(tmp_path):
    """stderr on a pseudo-terminal: syneg's rich bar with the rate, removed when the step ends."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen([*SYNEG, "evaluate", str(demo_path()), "--model", "default"], stdout=subprocess.PIPE,
                               stderr=terminal, env=isolated(tmp_path) | {"COLUMNS": "120"})  # fmt: skip
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        shown += chunk
    assert process.wait(timeout=300) == 0 and b"ndcg@10" in process.stdout.read()
    assert b"Encoding documents" in shown and b"texts/s" in shown and "━".encode() in shown
    assert not [noise for noise in THIRD_PARTY_NOISE if noise.encode() in shown]


def test_quiet_shows_results_only_and_verbose_shows_library_logs(tmp_path):
    # Each with an empty cache of its own, so that the model is loaded and the corpus encoded.
    quiet = syneg("--quiet", "evaluate", str(demo_path()), "--model", "default", env=isolated(tmp_path / "quiet"))
    assert "ndcg@10" in quiet.stdout and quiet.stderr == ""
    verbose = syneg("-v", "evaluate", str(demo_path()), "--model", "default", env=isolated(tmp_path / "verbose"))
    assert "ndcg@10" in verbose.stdout and "Loading SentenceTransformer model from" in verbose.stderr
    assert "Encoding documents: 240/240 texts" in verbose.stderr


def test_bad_input_exits_2_with_one_line(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump({"data": "demo", "mine": {"retriever": "google"}}))
    completed = syneg("run", str(config), "--json", code=2)
    assert completed.stdout == "" and "Traceback" not in completed.stderr
    assert re.search(r"bad\.yaml: mine\.retriever: .*'bm25', 'dense' or 'both'", completed.stderr), completed.stderr
    usage = syneg("evaluate", code=2)
    assert "Missing argument 'data_dir'" in usage.stderr
    age = syneg("cache", "prune", "--older-than", "soon", code=2)
    assert "--older-than 'soon': expected a number and a unit" in age.stderr and "Traceback" not in age.stderr


def test_anything_else_exits_1_with_one_line_and_a_log_file(tmp_path):
    env = isolated(tmp_path)
    corrupt = tmp_path / "corrupt.sqlite"
    corrupt.write_bytes(b"this is not a database" * 100)
    completed = syneg("synthesize", str(demo_path()), "--limit", "1", "--model", "smollm2-135m", "--cache", str(corrupt),
                      "-o", str(tmp_path / "out.jsonl"), "--json", code=1, env=env)  # fmt: skip
    assert completed.stdout == ""
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and "DatabaseError: file is not a database" in lines[0] and "Traceback" not in completed.stderr
    log = Path(re.search(r"traceback in (\S+\.log)\)", lines[0]).group(1))
    assert log.parent == tmp_path / "cache" / "logs"
    assert "Traceback (most recent call last)" in log.read_text() and "syneg synthesize" in log.read_text()


@pytest.mark.slow
def test_ctrl_c_during_synthesis_exits_130_and_the_rerun_resumes(tmp_path):
    env = isolated(tmp_path)
    output = tmp_path / "synthetic.jsonl"
    args = ["synthesize", str(demo_path()), "--limit", "4", "--model", "smollm2-135m", "--attributes", "demo", "-o", str(output)]
    with (tmp_path / "stderr.txt").open("w") as stderr:
        process = subprocess.Popen([*SYNEG, *args], stdout=subprocess.PIPE, stderr=stderr, text=True, env=env,
                                   preexec_fn=with_default_sigint)
        deadline = time.monotonic() + 600
        while not (output.is_file() and output.read_text().endswith("\n")):  # the first pair is written: mid-synthesis
            assert process.poll() is None, (tmp_path / "stderr.txt").read_text()
            assert time.monotonic() < deadline, "no pair written in 10 minutes"
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=300) == 130
    printed = (tmp_path / "stderr.txt").read_text()
    assert re.search(r"Interrupted in Synthesizing at [1-3]/4 pairs\.", printed), printed
    assert f"syneg synthesize {demo_path()} --limit 4" in printed and "Traceback" not in printed
    assert process.stdout.read() == ""
    written = len(list(read_training_set(output)))
    resumed = json.loads(syneg(*args, "--json", env=env).stdout)
    assert resumed["skipped_pairs"] == written and resumed["pairs"] == 4 - written
    assert len(list(read_training_set(output))) == 4
