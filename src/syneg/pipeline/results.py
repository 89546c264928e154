"""``results.json``: one row per arm, seed and split evaluated with the config's current settings, plus
the earlier rows no longer the config's, kept with a ``stale`` field saying why. ``syneg report``
reads these rows (:func:`load_rows`)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from syneg.data import DataError
from syneg.pipeline.config import BM25_BASELINE, ArmConfig, RunConfig

RESULTS_FILE = "results.json"
COMPOSITION_PREFIX = "negatives_"  # hard negatives per instance by source, from the mix stage's counts


def load_rows(runs: Iterable[str | Path]) -> list[dict[str, Any]]:
    """Result rows of run folders (or ``results.json`` files)."""
    rows = []
    for run in runs:
        path = Path(run)
        path = path / RESULTS_FILE if path.is_dir() else path
        if not path.is_file():
            raise DataError(f"{path}: no results.json here; run `syneg run` on this folder first")
        try:
            loaded = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise DataError(f"{path}: not valid JSON ({error})") from None
        if not isinstance(loaded, list) or not all(isinstance(row, dict) and {"arm", "split"} <= row.keys() for row in loaded):
            raise DataError(f"{path}: not a list of result rows (each with arm and split), as syneg run writes")
        rows += loaded
    return rows


def describe(arm: ArmConfig, config: RunConfig) -> dict[str, Any]:
    """The arm's settings as result columns."""
    return {
        "arm": arm.name,
        "strategy": arm.strategy,
        # R = synthetic / retrieved: 0 for a retrieved-only arm, the end of an R sweep.
        "ratio": 0.0 if arm.strategy == "retrieved" else (arm.ratio or config.mix.ratio) if arm.strategy in ("hybrid", "direct") else None,
        "retrieved_sources": (arm.retrieved_sources or config.mix.retrieved_sources) if arm.strategy in ("hybrid", "direct", "retrieved") else None,
        "temperature": (arm.temperature or config.train.temperature) if arm.strategy != "zero-shot" else None,
        "num_negatives": (arm.num_negatives or config.mix.num_negatives) if arm.strategy not in ("zero-shot", "in-batch") else 0,
        "max_seq_length": (arm.max_seq_length or config.train.max_seq_length) if arm.strategy != "zero-shot" else None,
        # Arms planned on fewer seeds than the run's (tuning and sweep points) are side arms in the report.
        "seeds_planned": 1 if arm.strategy == "zero-shot" else len(arm.seeds or config.seeds),
    }


def composition(mixed: dict[str, Any]) -> dict[str, float]:
    """Hard negatives per training instance by source, from the mix stage's counts; ``negatives_filled``
    are the slots a short pool left to another source (a reader needs it to know what an arm trained on)."""
    instances = mixed["instances"] or 1
    per_source = {f"{COMPOSITION_PREFIX}{source}": count / instances for source, count in sorted(mixed["per_source"].items())}
    return per_source | {f"{COMPOSITION_PREFIX}filled": mixed["filled"] / instances}


def rows_of(described: dict[str, Any], info: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of one evaluation (its stage info): one per split, with the shortcut probe's AUCs."""
    rows = []
    for split, metrics in info["metrics"].items():
        row = described | {"split": split} | metrics
        if "shortcut_probe" in info:
            row["probe_auc_before"] = info["shortcut_probe"]["before"]["auc"]
            row["probe_auc_after"] = info["shortcut_probe"]["after"]["auc"]
            before = info["shortcut_probe"]["before"]
            # The model-free cues (the same before and after training), from probes that measure the words
            # too: rows of earlier probes stay as they were written, so committed results rebuild unchanged.
            if before.get("words_auc") is not None:
                row["probe_length_auc"], row["probe_words_auc"] = before["length_auc"], before["words_auc"]
        rows.append(row)
    return rows


def row_key(row: dict[str, Any]) -> tuple[str, int | None, str]:
    """What a results row is the figure of: arm, seed and split."""
    return row["arm"], row.get("seed"), row["split"]


def stale_rows(path: Path, current: list[dict[str, Any]], config: RunConfig) -> list[dict[str, Any]]:
    """The rows of an earlier ``results.json`` that ``current`` does not replace, each with ``stale`` saying
    why it is no longer the config's: an arm not run now never loses its results, and a changed arm's old
    results stay readable (``syneg report`` lists them apart)."""
    if not path.is_file():
        return []
    replaced = {row_key(row) for row in current}
    arms = {arm.name: arm for arm in config.arms}
    baselines = {BM25_BASELINE} if config.evaluate.bm25 else set()
    stale = []
    for row in load_rows([path]):
        if row_key(row) in replaced:
            continue
        arm = arms.get(row["arm"])
        if arm is None and row["arm"] not in baselines:
            reason = "arm removed from the config"
        elif arm is not None and row.get("seed") is not None and row["seed"] not in (arm.seeds or config.seeds):
            reason = "seed removed from the config"
        else:
            reason = "settings changed"
        stale.append(row | {"stale": reason})
    return stale
