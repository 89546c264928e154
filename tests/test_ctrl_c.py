"""Ctrl-C (issue 21, part 2): SIGINT during synthesis and training stops within seconds, says where it
stopped and how to resume, and leaves the cache and the outputs whole; the printed command resumes.

Each test runs the real CLI as a subprocess and measures the time from the signal to the exit.
"""

from __future__ import annotations

import json
import re
import shlex
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from kill_trials import DEMO, LONG_PASSAGE, SYNEG, cached_requests, environment, repeats_beyond, with_default_sigint
from loopback_chat import EchoingChatServer, request_tag
from syneg.data import read_training_set

STOP_SECONDS = 10  # "within a few seconds", with room for a busy machine (the measured times are far below)


def interrupt(arguments: list[str], folder: Path, ready) -> tuple[float, str]:
    """Start ``syneg ARGUMENTS``, send SIGINT once ``ready()`` holds: (seconds from the signal to the exit, stderr)."""
    log = folder / "stderr.log"
    with log.open("w") as stderr:
        process = subprocess.Popen([*SYNEG, *arguments], cwd=folder, env=environment(folder), stdout=subprocess.DEVNULL,
                                   stderr=stderr, preexec_fn=with_default_sigint)  # fmt: skip
        try:
            deadline = time.monotonic() + 600
            while not ready():
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "not ready in 10 minutes"
                time.sleep(0.1)
            sent = time.monotonic()
            process.send_signal(signal.SIGINT)
            code = process.wait(timeout=120)
            stopped = time.monotonic() - sent
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    printed = log.read_text()
    assert code == 130, printed
    assert "Traceback" not in printed, printed
    print(f"\nstopped {stopped:.2f} s after SIGINT")
    return stopped, printed


def resume_line(printed: str) -> list[str]:
    """The command the interruption message says to run again."""
    lines = printed.splitlines()
    index = next(i for i, line in enumerate(lines) if "to resume, run the same command again" in line)
    return shlex.split(lines[index + 1].strip())[1:]  # without "syneg"


@pytest.mark.slow
def test_ctrl_c_during_synthesis_stops_at_once_and_resumes(tmp_path: Path) -> None:
    server = EchoingChatServer(failing={}, delay=0.3, passage=LONG_PASSAGE)
    output = tmp_path / "synthetic.jsonl"
    arguments = ["synthesize", DEMO, "--attributes", "demo", "--max-rounds", "1", "--backend", "openai", "--base-url",
                 server.base_url, "--model", "loopback", "--concurrency", "1", "--limit", "8", "-o", output.name]  # fmt: skip
    try:
        stopped, printed = interrupt(arguments, tmp_path, lambda: output.is_file() and output.read_bytes().count(b"\n") >= 2)
        assert stopped < STOP_SECONDS
        assert re.search(r"Interrupted in Synthesizing at [2-7]/8 pairs\.", printed), printed
        assert resume_line(printed) == arguments
        # What is on disk is whole: lines that parse, and a cache SQLite finds sound.
        written = output.read_bytes()
        assert written.endswith(b"\n") and len(list(read_training_set(output))) == written.count(b"\n")
        cache = tmp_path / "cache" / "llm-cache.sqlite"
        with sqlite3.connect(cache) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        while server.busy:  # the answer in flight at the signal, if any, reaches a process that has stopped
            time.sleep(0.05)
        lost = Counter({tag: 1 for tag in {request_tag(body) for body in server.answered} - cached_requests(tmp_path)})
        assert sum(lost.values()) <= 1
        completed = subprocess.run([*SYNEG, *resume_line(printed), "--json"], cwd=tmp_path, env=environment(tmp_path),
                                   capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
        assert completed.returncode == 0, completed.stderr
        stats = json.loads(completed.stdout)
        assert stats["skipped_pairs"] == written.count(b"\n") and stats["pairs"] == 8 - written.count(b"\n")
        pairs = [(instance.query_id, instance.pos_ids[0]) for instance in read_training_set(output)]
        assert len(pairs) == len(set(pairs)) == 8
        assert repeats_beyond(server.answered, lost) == 0  # no answered request asked again but the one in flight
    finally:
        server.close()


@pytest.mark.slow
def test_ctrl_c_during_training_stops_at_once_and_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    mixed = subprocess.run([*SYNEG, "mix", "-o", "train.jsonl", "--strategy", "random", "--data", DEMO, "--num-negatives", "1"],
                           cwd=tmp_path, env=environment(tmp_path), capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert mixed.returncode == 0, mixed.stderr
    arguments = ["train", "train.jsonl", "-o", "model", "--max-steps", "400", "--save-steps", "2", "--batch-size", "8",
                 "--max-seq-length", "64"]  # fmt: skip
    state = tmp_path / "model" / "checkpoints" / "checkpoint-2" / "trainer_state.json"
    stopped, printed = interrupt(arguments, tmp_path, state.is_file)
    assert stopped < STOP_SECONDS
    step = int(re.search(r"Interrupted in Training at (\d+)/400 steps\.", printed, re.DOTALL).group(1))
    assert step >= 2
    assert resume_line(printed) == [*arguments, "--resume"]  # train starts afresh unless told to resume
    last = max(int(path.name.split("-")[1]) for path in (tmp_path / "model" / "checkpoints").glob("checkpoint-*")
               if (path / "trainer_state.json").is_file())  # fmt: skip
    # The printed command, with an end near the checkpoint so that the test stays short.
    resumed = [*resume_line(printed)]
    resumed[resumed.index("--max-steps") + 1] = str(last + 1)
    completed = subprocess.run([*SYNEG, *resumed], cwd=tmp_path, env=environment(tmp_path), capture_output=True, text=True,
                               timeout=600, check=False)  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert f"checkpoint-{last}." in completed.stderr  # "Resuming from .../checkpoint-N."
    facts = json.loads((tmp_path / "model" / "syneg_training.json").read_text())
    assert facts["hyperparameters"]["steps_trained"] == last + 1
