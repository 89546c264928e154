"""Kill it at any moment (issue 21, part 1): SIGKILL each stage at seeded random moments, restart it, and
find the uninterrupted run's output (see ``tests/kill_trials.py`` for the harness and what it counts;
``bench/kill_trials.py`` runs more kills). Then the defects the trials found, each pinned by a test."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import kill_trials
from syneg.data.storage import atomic_write_text
from syneg.evaluation import write_trec_run
from syneg.retrieval.embedding_cache import EmbeddingCache
from syneg.synth.attributes import AttributeSet
from syneg.training import write_model_card

# 20 kills in all, spread over the stages; a stage's share grows with how much it has to lose.
KILLS = {"mine": 3, "synthesize": 6, "mix": 6, "train": 3, "run": 2}
SOURCE = Path(__file__).resolve().parents[1] / "src" / "syneg"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for the module: the later stages' inputs are the earlier stages' reference outputs."""
    return tmp_path_factory.mktemp("kill-trials")


@pytest.mark.slow
@pytest.mark.parametrize("stage", list(KILLS))
def test_killed_and_restarted_stage_ends_as_the_uninterrupted_run(root: Path, stage: str) -> None:
    chosen = next(s for s in kill_trials.stages(root) if s.name == stage)
    outcome = kill_trials.trial(chosen, root, KILLS[stage], seed=1)
    print(f"\n{kill_trials.table([outcome])}")
    assert outcome.kills == KILLS[stage]
    assert outcome.differing_outputs == [] and outcome.stale_temporaries == []
    assert (outcome.records_lost, outcome.duplicate_records, outcome.torn_lines, outcome.requests_repeated) == (0, 0, 0, 0)
    assert outcome.sound()


@pytest.mark.slow
@pytest.mark.parametrize("killed", ["writing-the-last-checkpoint", "saving-the-model"])
def test_training_killed_near_its_end_restarts_to_the_same_model(root: Path, tmp_path: Path, killed: str) -> None:
    """Two moments the kill trials found. While a checkpoint is written (it lacks ``trainer_state.json``,
    written last, and holds a torn file), the restart drops it and resumes from the one before; after the
    last checkpoint, while the model is saved, transformers resumed from that checkpoint trained one step
    beyond the end: the restart takes the checkpoint's weights. Either way, the reference's model, byte for byte."""
    train = next(s for s in kill_trials.stages(root) if s.name == "train")
    kill_trials.reference(train, root)
    folder = tmp_path / "train"
    shutil.copytree(root / "train-reference", folder)
    for leftover in ("model.safetensors", "syneg_training.json"):
        (folder / "model" / leftover).unlink()
    last = folder / "model" / "checkpoints" / f"checkpoint-{kill_trials.TRAIN_STEPS}"
    if killed == "writing-the-last-checkpoint":
        (last / "trainer_state.json").unlink()
        os.truncate(last / "optimizer.pt", 1000)
    completed = subprocess.run([*kill_trials.SYNEG, *train.command(folder, "")], cwd=folder, capture_output=True, text=True,
                               env=kill_trials.environment(folder), timeout=600, check=False)  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    kill_trials.check_trained(folder, root / "train-reference", steps=kill_trials.TRAIN_STEPS)
    reference = root / "train-reference" / "model" / "model.safetensors"
    assert (folder / "model" / "model.safetensors").read_bytes() == reference.read_bytes()
    if killed == "writing-the-last-checkpoint":
        assert re.search(rf"Removing \S*{last.name}: a checkpoint a stopped run left", completed.stderr)
        assert f"Resuming from model/checkpoints/checkpoint-{kill_trials.TRAIN_STEPS - 1}." in completed.stderr
    else:
        assert f"{last.name} holds the last step" in completed.stderr


def test_a_killed_writers_temporary_file_is_removed(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    stale = tmp_path / f".mined.jsonl.{dead.stdout.strip()}.tmp"
    living = tmp_path / f".mined.jsonl.{os.getppid()}.tmp"  # a writer still at work
    stale.write_text('{"query": "torn')
    living.write_text("{")
    atomic_write_text(tmp_path / "mined.jsonl", "{}\n")
    assert not stale.exists() and living.exists() and (tmp_path / "mined.jsonl").read_text() == "{}\n"


def test_embedding_shards_of_a_killed_writer_are_removed(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, "toy")
    cache.put(["a", "b"], np.eye(2, dtype=np.float32))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    orphan = cache.folder / f"000001-{dead.stdout.strip()}-abcdef12"
    np.save(f"{orphan}.npy", np.eye(2, dtype=np.float32))  # killed before its keys were written
    Path(f"{orphan}.keys.tmp").write_text("ab")  # or while they were
    assert len(EmbeddingCache(tmp_path, "toy")) == 2
    assert not Path(f"{orphan}.npy").exists() and not Path(f"{orphan}.keys.tmp").exists()
    assert len(list(cache.folder.glob("*.npy"))) == len(list(cache.folder.glob("*.keys"))) == 1


# Writes that replace a file in place: a kill (or a full disk) mid-write leaves it torn.
IN_PLACE = re.compile(r"\.write_text\(|\.write_bytes\(|open\([^)]*[\"'][wx]b?[\"']|\.savefig\(\s*path|np\.save\(|json\.dump\(")
# What may write in place: a new file per process (a traceback log), a download renamed when whole, the
# embedding cache's vectors (read only once their keys file is renamed into place), the atomic writer itself.
IN_PLACE_ALLOWED = {("cli.py", "path.write_text(text"), ("llm/models.py", "partial.open"),
                    ("retrieval/embedding_cache.py", "np.save(vectors_path"), ("retrieval/embedding_cache.py", "temporary.write_text"),
                    ("data/storage.py", "temporary.open"), ("llm/cpu_backend.py", "os.devnull"), ("llm/llamacpp.py", "os.devnull")}  # fmt: skip


def test_every_file_is_replaced_atomically_or_appended() -> None:
    """An audit of the source: whole files go through ``syneg.data.storage.atomic_writer``, records are appended."""
    found = []
    for path in sorted(SOURCE.rglob("*.py")):
        name = str(path.relative_to(SOURCE))
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if IN_PLACE.search(line) and not any(name == allowed and marker in line for allowed, marker in IN_PLACE_ALLOWED):
                found.append(f"{name}:{number}: {line.strip()}")
    assert found == []


def test_a_rewritten_file_keeps_its_previous_version_whole_until_replaced(tmp_path: Path) -> None:
    """A hard link to the old file still holds the old content after a rewrite: the new one was written beside
    it and renamed over it, never written into it (as a kill mid-write would otherwise show)."""
    model = tmp_path / "model"
    model.mkdir()
    attributes = tmp_path / "attributes.yaml"
    run = tmp_path / "run.trec"
    facts = {"training_set": "train.jsonl", "instances": 1, "rows": 1, "num_negatives": 1, "base_model": "default",
             "loss": "infonce", "temperature": 0.02, "source_counts": {"bm25": 1}, "hyperparameters": {}}
    writes = [
        (model / "syneg_training.json", lambda: write_model_card(model, facts),
         lambda: write_model_card(model, evaluation={"demo test ndcg@10": 0.5})),
        (attributes, lambda: AttributeSet(domain=["a"]).save(attributes), lambda: AttributeSet(domain=["b"]).save(attributes)),
        (run, lambda: write_trec_run(run, {"q": {"d": 1.0}}), lambda: write_trec_run(run, {"q": {"e": 2.0}})),
    ]  # fmt: skip
    for path, first, second in writes:
        first()
        before = path.read_bytes()
        os.link(path, tmp_path / "old")
        second()
        assert (tmp_path / "old").read_bytes() == before and path.read_bytes() != before, path
        (tmp_path / "old").unlink()
