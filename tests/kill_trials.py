"""Kill trials (issue 21, part 1): run a stage as a real ``syneg`` process, SIGKILL it at seeded random
moments, restart it, and compare what it wrote with an uninterrupted run.

Shared by ``tests/test_kill_trials.py`` (20 kills, in CI) and ``bench/kill_trials.py`` (as many as asked).
Each stage runs twice from the same inputs, each in a folder of its own with its own syneg cache: once
straight through (the reference, timed), and once killed again and again, each kill at a moment drawn
uniformly from the reference's duration (seeded), until the stage's share of kills is spent or a restart
finishes first; the last restart runs to the end. Then:

- the outputs are the reference's, byte for byte (training: the model loads, trained to the last step
  from its last checkpoint, and no half-written checkpoint is left);
- no record is lost or written twice, no line is torn, no temporary file of a killed writer is left;
- synthesis talks to a real loopback OpenAI-compatible server that counts the requests it answers by
  their body: no request whose answer the cache had committed is asked again.

The one request that can be asked twice is the one in flight at the kill: the server answered it (a paid
API bills it) but the process died before the cache committed the answer. It cannot be avoided from the
client (chat completions have no idempotency key), so it is counted apart: after each kill, once the
server is idle, the requests it answered minus the rows the cache holds are the answers lost in flight,
at most one per request in flight (``--concurrency 1`` here). The cache commits each answer before the
pair's output line is written, so an output line never exists without its answers in the cache.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from loopback_chat import PASSAGE, EchoingChatServer, request_tag
from syneg.data import demo_path

SYNEG = [sys.executable, "-m", "syneg"]
DEMO = str(demo_path())
# Long enough for the demo's length check, so that some candidates are kept with their checks and reasoning.
LONG_PASSAGE = PASSAGE + " " + PASSAGE.replace("Vaccine cold chains", "Cold chains for vaccines")
SERVER_DELAY = 0.15  # seconds per answer, as a remote model takes: kills land mid-request too


@dataclass
class Stage:
    """A stage as a command run in a work folder, with what to compare."""

    name: str
    command: Callable[[Path, str], list[str]]  # (work folder, LLM base URL) -> arguments of syneg
    outputs: list[str]  # compared byte for byte with the reference
    inputs: dict[str, Path] = field(default_factory=dict)  # copied into the work folder first
    check: Callable[[Path, Path], None] | None = None  # (work folder, reference folder): further checks


@dataclass
class Outcome:
    """What the trials of one stage found."""

    stage: str
    kills: int = 0
    killed_in: Counter[str] = field(default_factory=Counter)  # pipeline step of each kill (``syneg run``)
    restarts_finished: int = 0  # restarts that ended before their kill moment came
    records: int = 0
    records_lost: int = 0
    duplicate_records: int = 0
    torn_lines: int = 0
    differing_outputs: list[str] = field(default_factory=list)
    stale_temporaries: list[str] = field(default_factory=list)
    requests: int = 0  # distinct LLM requests of the reference
    requests_repeated: int = 0  # requests asked again although no answer of theirs was lost in flight
    lost_in_flight: int = 0  # answered while the process died, before the cache committed them (asked again)
    reference_seconds: float = 0.0
    seconds: float = 0.0

    def sound(self) -> bool:
        return not (self.records_lost or self.duplicate_records or self.torn_lines or self.differing_outputs
                    or self.stale_temporaries or self.requests_repeated)


def environment(folder: Path) -> dict[str, str]:
    # Wide enough that no log line is wrapped (a path split over two lines is not found).
    return os.environ | {"SYNEG_CACHE_DIR": str(folder / "cache"), "OMP_NUM_THREADS": "1", "COLUMNS": "1000"}


def prepare(stage: Stage, folder: Path) -> None:
    if folder.exists():  # what an earlier, stopped trial left
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for name, source in stage.inputs.items():
        shutil.copy(source, folder / name)


def finish(stage: Stage, folder: Path, base_url: str) -> None:
    """Run the stage to its end; a failure shows its stderr."""
    completed = subprocess.run([*SYNEG, *stage.command(folder, base_url)], cwd=folder, env=environment(folder),
                               capture_output=True, text=True, timeout=900, check=False)
    assert completed.returncode == 0, f"{stage.name} exited {completed.returncode}:\n{completed.stderr[-3000:]}"


def reference(stage: Stage, root: Path) -> tuple[float, int]:
    """The uninterrupted run in ``ROOT/STAGE-reference``, run once (after the references its inputs come
    from): (seconds, distinct LLM requests)."""
    folder = root / f"{stage.name}-reference"
    facts = folder / "reference.json"
    if not facts.exists():
        for source in stage.inputs.values():
            if not source.exists():
                reference(next(s for s in stages(root) if f"{s.name}-reference" == source.parent.name), root)
        prepare(stage, folder)
        server = EchoingChatServer(failing={}, delay=SERVER_DELAY, passage=LONG_PASSAGE)
        try:
            start = time.monotonic()
            finish(stage, folder, server.base_url)
            facts.write_text(json.dumps([time.monotonic() - start, len(server.answered)]))
        finally:
            server.close()
    seconds, requests = json.loads(facts.read_text())
    return seconds, requests


def kill_at(stage: Stage, folder: Path, base_url: str, moment: float) -> str | None:
    """Start the stage and SIGKILL it ``moment`` seconds later: the step it was in (the last ``▶`` line, or
    the stage's name), or None when it finished first."""
    log = folder / "stderr.log"
    start = log.stat().st_size if log.exists() else 0
    with log.open("a") as stderr:  # every attempt's, one after the other
        process = subprocess.Popen([*SYNEG, *stage.command(folder, base_url)], cwd=folder, env=environment(folder),
                                   stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            process.wait(timeout=moment)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
            printed = log.read_bytes()[start:].decode(errors="replace")
            steps = [line[2:].strip() for line in printed.splitlines() if line.startswith("▶ ")]
            return steps[-1] if steps else stage.name
    assert process.returncode == 0, f"{stage.name} exited {process.returncode}:\n{log.read_text(errors='replace')[-3000:]}"
    return None


def cached_requests(folder: Path) -> set[int]:
    """The requests whose answers the stage's cache holds, by their :func:`request_tag`."""
    path = folder / "cache" / "llm-cache.sqlite"
    if not path.exists():
        return set()
    db = sqlite3.connect(path)  # what a killed writer committed (its WAL is read too)
    try:
        return {json.loads(value)["prompt_tokens"] for (value,) in db.execute("SELECT value FROM completions")}
    finally:
        db.close()


def repeats_beyond(answered: Counter[str], lost: Counter[int]) -> int:
    """Answers to requests asked again though none of their earlier answers was lost in flight."""
    return sum(max(0, count - 1 - lost[request_tag(body)]) for body, count in answered.items())


def trial(stage: Stage, root: Path, kills: int, seed: int) -> Outcome:
    """``kills`` SIGKILLs of ``stage`` at seeded random moments, with restarts, compared with a reference run."""
    outcome = Outcome(stage.name)
    baseline = root / f"{stage.name}-reference"
    outcome.reference_seconds, outcome.requests = reference(stage, root)
    rng = random.Random(f"{stage.name}-{seed}")
    start = time.monotonic()
    chain = 0
    while outcome.kills < kills:
        chain += 1
        folder = root / f"{stage.name}-killed-{chain}"
        prepare(stage, folder)
        server = EchoingChatServer(failing={}, delay=SERVER_DELAY, passage=LONG_PASSAGE)
        lost: Counter[int] = Counter()  # answers lost in flight, by request
        try:
            while outcome.kills < kills:
                before = Counter(server.answered)
                step = kill_at(stage, folder, server.base_url, rng.uniform(0.5, outcome.reference_seconds))
                if step is None:  # this restart finished before its kill: the chain is done
                    outcome.restarts_finished += 1
                    break
                outcome.kills += 1
                outcome.killed_in[step] += 1
                idle = time.monotonic() + 10
                while server.busy and time.monotonic() < idle:  # the answer in flight, sent to a dead process
                    time.sleep(0.05)
                asked = {request_tag(body) for body in server.answered - before}
                lost_now = asked - cached_requests(folder)
                assert len(lost_now) <= 1, f"one kill lost {len(lost_now)} answers with one request in flight"
                lost.update(lost_now)
            else:
                finish(stage, folder, server.base_url)
            assert len(server.answered) == outcome.requests, "the restarts asked other requests than the reference"
            outcome.requests_repeated += repeats_beyond(server.answered, lost)
            outcome.lost_in_flight += sum(lost.values())
        finally:
            server.close()
        compare(stage, folder, baseline, outcome)
    outcome.seconds = time.monotonic() - start
    return outcome


def compare(stage: Stage, folder: Path, baseline: Path, outcome: Outcome) -> None:
    """Add to ``outcome`` what differs between a killed-and-restarted run and the reference."""
    for name in stage.outputs:
        produced, expected = folder / name, baseline / name
        if not produced.is_file() or produced.read_bytes() != expected.read_bytes():
            outcome.differing_outputs.append(f"{folder.name}/{name}")
        if name.endswith(".jsonl") and produced.is_file():
            lines = Counter(produced.read_bytes().splitlines(keepends=True))
            wanted = Counter(expected.read_bytes().splitlines(keepends=True))
            outcome.records += sum(lines.values())
            outcome.records_lost += sum((wanted - lines).values())
            outcome.duplicate_records += sum(count - 1 for count in lines.values())
            outcome.torn_lines += sum(count for line, count in lines.items() if not _whole(line))
    outcome.stale_temporaries += [str(path.relative_to(folder)) for path in folder.rglob("*.tmp")]
    for shards in folder.glob("cache/embeddings/*"):  # vectors written without their keys by a killed writer
        keys = {path.stem for path in shards.glob("*.keys")}
        outcome.stale_temporaries += [str(p.relative_to(folder)) for p in shards.glob("*.npy") if p.stem not in keys]
    if stage.check is not None:
        stage.check(folder, baseline)


def _whole(line: bytes) -> bool:
    try:
        return line.endswith(b"\n") and isinstance(json.loads(line), dict)
    except ValueError:
        return False


def check_trained(folder: Path, baseline: Path, model: str = "model", steps: int | None = None) -> None:
    """The model loads and encodes, was trained to the reference's step count, and no checkpoint is torn."""
    from sentence_transformers import SentenceTransformer

    facts = json.loads((folder / model / "syneg_training.json").read_text())
    expected = json.loads((baseline / model / "syneg_training.json").read_text())
    assert facts["hyperparameters"]["steps_trained"] == expected["hyperparameters"]["steps_trained"]
    assert steps is None or facts["hyperparameters"]["steps_trained"] == steps
    encoder = SentenceTransformer(str(folder / model), device="cpu")
    assert encoder.encode(["a query"]).shape == (1, 384)
    for checkpoint in (folder / model / "checkpoints").glob("checkpoint-*"):
        assert (checkpoint / "trainer_state.json").is_file(), f"{checkpoint} is incomplete"


def run_config(base_url: str) -> dict:
    """The demo config (``syneg run --demo``) with the loopback LLM, one arm and a few short training steps."""
    config = yaml.safe_load((Path(DEMO).parents[1] / "configs" / "demo.yaml").read_text())
    config["synthesize"] |= {"backend": "openai", "base_url": base_url, "model": "loopback", "pairs": 2, "concurrency": 1}
    config["train"] |= {"max_steps": RUN_STEPS, "save_steps": 1, "batch_size": 8, "max_seq_length": 128}
    config["evaluate"] = {"bm25": False, "shortcut_probe": False, "max_seq_length": 128}
    config["arms"] = [{"name": "hybrid", "strategy": "hybrid"}]
    return config


def run_command(folder: Path, base_url: str) -> list[str]:
    config = folder / "demo.yaml"
    if not config.exists():  # the URL is the trial's server's, kept across restarts
        config.write_text(yaml.safe_dump(run_config(base_url)))
    return ["run", str(config), "-o", "run", "--json"]


ARM = "run/arms/hybrid/seed-42"
RUN_STEPS = 2
TRAIN_STEPS = 3


def check_run(folder: Path, baseline: Path) -> None:
    check_trained(folder, baseline, f"{ARM}/model", steps=RUN_STEPS)
    rows, expected = (json.loads((where / "run" / "results.json").read_text()) for where in (folder, baseline))
    assert sorted(row["arm"] for row in rows) == sorted(row["arm"] for row in expected) and not any("stale" in r for r in rows)


def stages(root: Path) -> list[Stage]:
    """The stages in pipeline order; each stage's inputs are the outputs of the earlier stages' references."""
    synthesize = ["--attributes", "demo", "--max-rounds", "1", "--backend", "openai", "--model", "loopback",
                  "--concurrency", "1", "--limit", "8", "-o", "synthetic.jsonl"]  # fmt: skip
    mined, synthetic, mixed = (root / "mine-reference" / "mined.jsonl", root / "synthesize-reference" / "synthetic.jsonl",
                               root / "mix-reference" / "mixed.jsonl")  # fmt: skip
    return [
        Stage("mine", lambda f, url: ["mine", DEMO, "--retriever", "both", "--num-negatives", "4", "-o", "mined.jsonl"],
              ["mined.jsonl"]),
        Stage("synthesize", lambda f, url: ["synthesize", DEMO, "--base-url", url, *synthesize], ["synthetic.jsonl"]),
        Stage("mix", lambda f, url: ["mix", "-o", "mixed.jsonl", "--retrieved", "mined.jsonl", "--synthetic", "synthetic.jsonl",
                                     "--data", DEMO, "--num-negatives", "3"],
              ["mixed.jsonl"], inputs={"mined.jsonl": mined, "synthetic.jsonl": synthetic}),
        # A checkpoint at every step: kills land while one is written, too.
        Stage("train", lambda f, url: ["train", "mixed.jsonl", "-o", "model", "--max-steps", str(TRAIN_STEPS), "--save-steps", "1",
                                       "--batch-size", "4", "--max-seq-length", "64", "--resume"],
              ["model/model.safetensors"], inputs={"mixed.jsonl": mixed}, check=check_trained),
        Stage("run", run_command, ["run/mined.jsonl", "run/synthetic.jsonl", f"{ARM}/train.jsonl", "run/splits.json",
                                   f"{ARM}/model/model.safetensors"],
              check=check_run),
    ]  # fmt: skip


def table(outcomes: list[Outcome]) -> str:
    """The BENCHMARKS.md rows."""
    lines = ["| stage | kills | restarts that finished first | records | records lost | duplicate records | torn lines "
             "| outputs differing | LLM requests (reference) | repeated | lost in flight | seconds |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for o in outcomes:
        where = f" ({', '.join(f'{step}: {n}' for step, n in sorted(o.killed_in.items()))})" if o.stage == "run" else ""
        lines.append(f"| {o.stage}{where} | {o.kills} | {o.restarts_finished} | {o.records} | {o.records_lost} | "
                     f"{o.duplicate_records} | {o.torn_lines} | {len(o.differing_outputs)} | {o.requests} | "
                     f"{o.requests_repeated} | {o.lost_in_flight} | {o.seconds:.0f} |")
    return "\n".join(lines)


def with_default_sigint() -> None:
    """``preexec_fn`` for a child that a test stops with SIGINT: the default handling, unblocked.

    A child inherits an ignored or blocked SIGINT from the process that starts it, and Python then
    leaves it so; in the full suite some earlier test leaves the pytest process that way (the Ctrl-C
    tests passed alone and failed in the suite: the child never saw the signal and exited 0), while a
    user's shell gives syneg the default."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
