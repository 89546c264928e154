"""Reports across pipeline runs: comparison tables (markdown, CSV), sweeps and the shortcut diagnostic as plots.

``syneg report RUN [RUN ...] --output DIR`` reads each run folder's ``results.json`` (one row per arm,
seed and split, written by ``syneg run``) and writes into ``DIR``:

- ``results.csv``: every row, for your own analysis;
- ``report.md``: per dataset, the strategy table (mean ± std over seeds of nDCG@10, Recall@10 and
  MRR@10; ×100), whether the hybrid arm beat every other arm and by how much it beat the best
  retrieved-only arm, the R and τ sweeps, and the shortcut probe before and after training;
- ``strategies-<dataset>.png``: the strategy table as grouped bars with seed spread;
- ``ratio-<dataset>.png`` and ``temperature-<dataset>.png``: nDCG@10 against R and against τ, for
  every split present (tune on ``validation``, report ``test``), when the runs hold such a sweep.

A sweep is read from the arms themselves: hybrid arms that differ only in ``ratio`` form the R sweep
(with a retrieved-only arm over both retrievers, at the same τ and number of negatives, as R = 0),
and arms of one strategy that differ only in ``temperature`` form the τ sweep.
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from syneg.data import DataError

SHOWN_METRICS = ("ndcg@10", "recall@10", "mrr@10")
MIN_SWEEP_POINTS = 3


def load_rows(runs: Iterable[str | Path]) -> list[dict[str, Any]]:
    """Result rows of run folders (or ``results.json`` files)."""
    rows = []
    for run in runs:
        path = Path(run)
        path = path / "results.json" if path.is_dir() else path
        if not path.is_file():
            raise DataError(f"{path}: no results.json here; run `syneg run` on this folder first")
        try:
            rows += json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise DataError(f"{path}: not valid JSON ({error})") from None
    return rows


def aggregate(rows: list[dict[str, Any]], metrics: Iterable[str] = SHOWN_METRICS) -> list[dict[str, Any]]:
    """One line per (dataset, arm): mean and sample standard deviation of each metric over seeds, in first-seen order."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row.get("dataset", ""), row["arm"])].append(row)
    lines = []
    for (dataset, arm), members in groups.items():
        first = members[0]
        line = {"dataset": dataset, "arm": arm, "seeds": len(members)}
        line |= {k: first.get(k) for k in ("strategy", "ratio", "temperature", "num_negatives", "retrieved_sources", "split")}
        for metric in [*metrics, "probe_auc_before", "probe_auc_after"]:
            values = [r[metric] for r in members if r.get(metric) is not None]
            if not values:
                continue
            mean = sum(values) / len(values)
            line[metric] = mean
            line[f"{metric}_std"] = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
        lines.append(line)
    return lines


def mean_std_cell(line: dict[str, Any], metric: str) -> str:
    """``mean ± std`` (×100) of an aggregated line; the spread only over more than one seed."""
    if metric not in line:
        return "–"
    text = f"{100 * line[metric]:.2f}"
    return text + (f" ± {100 * line[metric + '_std']:.2f}" if line["seeds"] > 1 else "")


def _sweeps(lines: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The R sweep (hybrid arms at one temperature) and the τ sweep (one strategy and ratio)."""
    sweeps: dict[str, list[dict[str, Any]]] = {}
    # Hybrid arms, plus retrieved-only arms over both retrievers as R = 0, at one τ and one number of negatives.
    candidates = [line for line in lines if line["strategy"] == "hybrid"
                  or (line["strategy"] == "retrieved" and line.get("retrieved_sources") == "both")]
    by_setting_r: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for line in candidates:
        by_setting_r[(line["temperature"], line["num_negatives"])].append(line)
    ratio_sweep = max(by_setting_r.values(), key=lambda group: len({g["ratio"] for g in group}), default=[])
    if len({line["ratio"] for line in ratio_sweep}) >= MIN_SWEEP_POINTS:
        sweeps["ratio"] = sorted(ratio_sweep, key=lambda line: line["ratio"])
    by_setting: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for line in lines:
        if line["temperature"] is not None:
            by_setting[(line["strategy"], line["ratio"], line["num_negatives"])].append(line)
    temperature_sweep = max(by_setting.values(), key=lambda group: len({g["temperature"] for g in group}), default=[])
    if len({line["temperature"] for line in temperature_sweep}) >= MIN_SWEEP_POINTS:
        sweeps["temperature"] = sorted(temperature_sweep, key=lambda line: line["temperature"])
    return sweeps


def hybrid_verdict(lines: list[dict[str, Any]], metric: str = "ndcg@10") -> str:
    """Did the best hybrid arm beat every other arm, and by how much the best retrieved-only arm?"""
    hybrid = [line for line in lines if line["strategy"] == "hybrid" and metric in line]
    others = [line for line in lines if line["strategy"] != "hybrid" and metric in line]
    if not hybrid or not others:
        return "No hybrid arm and other arm to compare."
    best = max(hybrid, key=lambda line: line[metric])
    rival = max(others, key=lambda line: line[metric])
    retrieved = [line for line in others if line["strategy"] in ("retrieved",)]
    text = (f"Best hybrid arm `{best['arm']}`: {100 * best[metric]:.2f}; best other arm `{rival['arm']}`: "
            f"{100 * rival[metric]:.2f}. Hybrid above every other arm: **{'yes' if best[metric] > rival[metric] else 'no'}**.")
    if retrieved:
        top = max(retrieved, key=lambda line: line[metric])
        margin = 100 * (best[metric] - top[metric])
        text += (f" Margin over the best retrieved-only arm (`{top['arm']}`): {margin:+.2f} points "
                 f"(goal ≥ +1.00: **{'met' if margin >= 1.0 else 'not met'}**).")
    return text


def markdown(rows: list[dict[str, Any]], split: str = "test", metrics: Iterable[str] = SHOWN_METRICS) -> str:
    metrics = list(metrics)
    out = ["# syneg report", ""]
    datasets = list(dict.fromkeys(r.get("dataset", "") for r in rows))
    for dataset in datasets:
        chosen = [r for r in rows if r.get("dataset", "") == dataset and r["split"] == split]
        lines = aggregate(chosen, metrics)
        out += [f"## {dataset} ({split} split, ×100, mean ± std over seeds)", ""]
        out += ["| arm | strategy | R | τ | negatives | seeds | " + " | ".join(metrics) + " |",
                "|---|---|---|---|---|---|" + "---|" * len(metrics)]
        for line in lines:
            out.append(
                f"| {line['arm']} | {line['strategy']} | {line['ratio'] if line['ratio'] is not None else ''} | "
                f"{line['temperature'] if line['temperature'] is not None else ''} | {line['num_negatives'] if line['num_negatives'] is not None else ''} | "
                f"{line['seeds']} | " + " | ".join(mean_std_cell(line, m) for m in metrics) + " |"
            )
        out += ["", hybrid_verdict(lines, metrics[0]), ""]
        probed = [line for line in lines if "probe_auc_before" in line]
        if probed:
            out += ["### Shortcut probe (ROC AUC of telling synthetic from retrieved negatives; 0.5 = indistinguishable)", "",
                    "| arm | seeds | before training | after training |", "|---|---|---|---|"]
            for line in probed:
                spread = f" ± {line['probe_auc_after_std']:.3f}" if line["seeds"] > 1 else ""
                out.append(f"| {line['arm']} | {line['seeds']} | {line['probe_auc_before']:.3f} | "
                           f"{line['probe_auc_after']:.3f}{spread} |")
            out.append("")
        for name in _sweeps(lines):
            out += [f"### {'R' if name == 'ratio' else 'τ'} sweep: see `{name}-{dataset}.png`", ""]
    return "\n".join(out)


def _pyplot() -> Any:
    """matplotlib's pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plot_strategies(lines: list[dict[str, Any]], metrics: list[str], path: Path, title: str) -> None:
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(max(6, 1.1 * len(lines)), 4))
    width = 0.8 / len(metrics)
    for index, metric in enumerate(metrics):
        xs = [i + (index - (len(metrics) - 1) / 2) * width for i in range(len(lines))]
        axis.bar(xs, [100 * line.get(metric, float("nan")) for line in lines], width,
                 yerr=[100 * line.get(f"{metric}_std", 0.0) for line in lines], capsize=2, label=metric)
    axis.set_xticks(range(len(lines)), [line["arm"] for line in lines], rotation=30, ha="right")
    values = [100 * line[m] for line in lines for m in metrics if m in line]
    if values:
        axis.set_ylim(max(0, min(values) - 5), min(100, max(values) + 3))
    axis.set_ylabel("×100")
    axis.set_title(title)
    axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _plot_sweep(per_split: dict[str, list[dict[str, Any]]], key: str, metric: str, path: Path, title: str) -> None:
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(5.5, 3.8))
    for split, sweep in per_split.items():
        xs = [line[key] for line in sweep]
        ys = [100 * line[metric] for line in sweep]
        errors = [100 * line.get(f"{metric}_std", 0.0) for line in sweep]
        axis.errorbar(xs, ys, yerr=errors, marker="o", capsize=3, label=split)
    axis.set_xlabel("R (synthetic / retrieved)" if key == "ratio" else "τ (temperature)")
    axis.set_ylabel(f"{metric} ×100")
    if key == "temperature":
        axis.set_xscale("log")
    axis.set_title(title)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_report(runs: Iterable[str | Path], output: str | Path, split: str = "test",
                 metrics: Iterable[str] = SHOWN_METRICS) -> dict[str, Path]:
    """Write ``results.csv``, ``report.md`` and the plots into ``output``; returns what was written."""
    metrics = list(metrics)
    rows = load_rows(runs)
    if not rows:
        raise DataError("The runs hold no result rows")
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    written = {"csv": output / "results.csv", "markdown": output / "report.md"}
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with written["csv"].open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    written["markdown"].write_text(markdown(rows, split, metrics), encoding="utf-8")
    for dataset in dict.fromkeys(r.get("dataset", "") for r in rows):
        chosen = [r for r in rows if r.get("dataset", "") == dataset]
        lines = aggregate([r for r in chosen if r["split"] == split], metrics)
        if lines:
            path = output / f"strategies-{dataset}.png"
            _plot_strategies(lines, metrics, path, f"{dataset}: negative strategies ({split})")
            written[f"strategies-{dataset}"] = path
        splits = list(dict.fromkeys(r["split"] for r in chosen))
        per_split_sweeps = {s: _sweeps(aggregate([r for r in chosen if r["split"] == s], metrics)) for s in splits}
        for key in ("ratio", "temperature"):
            per_split = {s: sweeps[key] for s, sweeps in per_split_sweeps.items() if key in sweeps}
            if per_split:
                path = output / f"{key}-{dataset}.png"
                _plot_sweep(per_split, key, metrics[0], path, f"{dataset}: {'R' if key == 'ratio' else 'τ'} sweep")
                written[f"{key}-{dataset}"] = path
    return written
