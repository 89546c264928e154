"""Reports across pipeline runs: comparison tables (markdown, CSV), sweeps and the shortcut diagnostic as plots.

``syneg report RUN [RUN ...] --output DIR`` reads each run folder's ``results.json`` (one row per arm,
seed and split, written by ``syneg run``) and writes into ``DIR``:

- ``results.csv``: every row, for your own analysis (stale rows too, with their ``stale`` reason);
- ``report.md``: per dataset, the strategy table of the main arms (mean ± std over seeds of nDCG@10,
  Recall@10 and MRR@10; ×100), whether the hybrid arm beat every other main arm and by how much it
  beat the best retrieved-only arm, what each main arm trained on (hard negatives per instance by source,
  and how many filled a short pool), how the synthetic negatives were made (generator, prompt,
  attributes, what the file holds; from a run folder's ``stages/synthesize.json``), the tuning and
  sweep arms, the R and τ sweeps, and the shortcut probe before and after training, with the plots;
- ``report.html``: the same report as one page that stands alone, the plots embedded in it;
- ``strategies-<dataset>.png``: the main arms as grouped bars with seed spread;
- ``ratio-<dataset>.png`` and ``temperature-<dataset>.png``: nDCG@10 against R and against τ, for
  every split present (tune on ``validation``, report ``test``), when the runs hold such a sweep.

Rows marked ``stale`` (evaluated with settings the config no longer has, or of an arm or seed it
no longer holds; see :mod:`syneg.pipeline`) are left out of every table and plot and listed in a note.

Main arms are the untrained baselines and the arms planned on the run's full list of seeds; arms
planned on fewer (``seeds: [1]`` in the config: tuning and sweep points) are side arms, shown apart
so that one-seed figures are not ranked against means over seeds.

A sweep is read from the arms themselves: hybrid arms that differ only in ``ratio`` form the R sweep
(with the retrieved-only arm over the same retrievers, τ, number of negatives and length as R = 0),
and arms of one strategy that differ only in ``temperature`` form the τ sweep. Each sweep is
averaged over the seeds all its points share, so every point has the same seeds.
"""

from __future__ import annotations

import base64
import csv
import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from rich.table import Table

from syneg.data import DataError, negatives_per_instance
from syneg.data.storage import atomic_write_text, atomic_writer
from syneg.pages import asset, standalone_page
from syneg.pipeline.markers import marker_file
from syneg.pipeline.results import COMPOSITION_PREFIX, load_rows

SHOWN_METRICS = ("ndcg@10", "recall@10", "mrr@10")
MIN_SWEEP_POINTS = 3
UNTRAINED = ("zero-shot", "bm25")
REPORT_STYLE = "main.report { max-width: 1040px; margin: 0 auto; padding: 12px 28px 40px; }\n"
PROMPT_STYLES = {"two-step": "a reflection call, then a writing call under the attributes",
                 "single": "reflection and text in one call"}


def plot_name(kind: str, dataset: str) -> str:
    """The file name of a plot: ``strategies-<dataset>.png``, ``ratio-<dataset>.png`` or ``temperature-<dataset>.png``."""
    return f"{kind}-{dataset}.png"


def _synthesize_stage(run: Path) -> tuple[dict[str, Any], dict[str, Any], Path] | None:
    """(generation settings, the stage's info, the file it wrote) from a run folder's synthesize stage
    marker; None when the run has no finished synthesis."""
    marker = marker_file(run, "synthesize")
    if not marker.is_file():
        return None
    try:
        stage = json.loads(marker.read_text(encoding="utf-8"))
        return stage["settings"]["generation"], stage.get("info", {}), run / stage["settings"].get("file", "synthetic.jsonl")
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise DataError(f"{marker}: not a synthesize stage marker ({error!r})") from None


def synthesis_file(run: str | Path) -> Path | None:
    """The synthetic negatives of a run folder: the file its synthesize stage wrote, else the file its
    ``config.yaml`` names (a synthesis still running has no marker yet), else ``synthetic.jsonl``;
    None when none of them exists."""
    run = Path(run)
    stage = _synthesize_stage(run)
    candidates = [stage[2]] if stage else []
    config = run / "config.yaml"
    if config.is_file():
        import yaml

        try:
            configured = (yaml.safe_load(config.read_text(encoding="utf-8")).get("synthesize") or {}).get("file")
        except (yaml.YAMLError, AttributeError) as error:
            raise DataError(f"{config}: not a run config ({error})") from None
        candidates += [run / configured] if configured else []
    candidates.append(run / "synthetic.jsonl")
    return next((path for path in candidates if path.is_file()), None)


def synthesis_summary(run: str | Path) -> dict[str, Any] | None:
    """How a run folder's synthetic negatives were made, from its synthesize stage marker, and what the
    file it wrote holds (counted from the file itself, so a synthesis resumed over sittings counts whole).
    None when the run has no synthesis."""
    run = Path(run)
    stage = _synthesize_stage(run)
    if stage is None:
        return None
    generation, info, path = stage
    per_pair = negatives_per_instance(path) if path.is_file() else []
    ablation = generation.get("ablation", "none")
    # The stage records the attribute values it used; markers written before it did (every committed run's
    # as of issue 19) fall back to deciding them again from the recorded settings, as those runs did.
    attributes = info.get("attributes") or _attributes_from_settings(generation.get("attributes"), ablation, run)
    return {
        "generator": info.get("generator") or f"{generation['backend']}:{generation['model']}",
        "generation": generation,
        "attributes": (_attribute_origin(attributes, ablation), attributes["values"] or {}),
        "file": path.name,
        "pairs": len(per_pair),
        "negatives": sum(per_pair),
        "pairs_by_negatives": dict(sorted(Counter(per_pair).items(), reverse=True)),
    }


def _attribute_origin(record: dict[str, Any], ablation: str) -> str:
    """Where a synthesis's attribute values came from, in words, from its record (:func:`syneg.synth.choose_attributes`)."""
    source, name = record["source"], record.get("name")
    if source == "none":
        return f"none (ablation `{ablation}`)"
    if source == "proposed":
        return f"proposed by the LLM from a corpus sample (`{name}`)"
    if source not in ("shipped", "file"):
        return "not recorded"
    origin = f"`{name}`" + (" (shipped with syneg)" if source == "shipped" else "")
    return origin if record["values"] is not None else f"{origin} (no longer found)"


def _attributes_from_settings(spec: str | None, ablation: str, run: Path) -> dict[str, Any]:
    """The attribute record of a synthesis whose marker has none, from its settings: how the pipeline
    chose the values before the stage recorded them (a given file first, then the ablation)."""
    from syneg.synth.attributes import AttributeSet, spec_record

    if spec is not None:
        try:  # the pipeline records an attribute file relative to the run folder
            return spec_record(spec) | {"values": AttributeSet.from_spec(spec, base=run).values()}
        except (DataError, FileNotFoundError):  # moved or deleted since the run: say so, keep the report
            return spec_record(spec) | {"values": None}
    if ablation != "none":
        return {"source": "none", "values": {}}
    if (run / "attributes.yaml").is_file():
        return {"source": "proposed", "name": "attributes.yaml", "values": AttributeSet.load(run / "attributes.yaml").values()}
    return {"source": "not recorded", "values": {}}


def aggregate(rows: list[dict[str, Any]], metrics: Iterable[str] = SHOWN_METRICS) -> list[dict[str, Any]]:
    """One line per (dataset, arm): mean and sample standard deviation of each metric over seeds, in first-seen order."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row.get("dataset", ""), row["arm"])].append(row)
    lines = []
    for (dataset, arm), members in groups.items():
        first = members[0]
        line = {"dataset": dataset, "arm": arm, "seeds": len(members)}
        line |= {k: first.get(k) for k in ("strategy", "ratio", "temperature", "num_negatives", "retrieved_sources",
                                           "max_seq_length", "split")}
        line["seeds_planned"] = first.get("seeds_planned") or len(members)
        line["seed_list"] = sorted(r["seed"] for r in members if r.get("seed") is not None)
        composed = [r for r in members if any(k.startswith(COMPOSITION_PREFIX) for k in r)]
        composition = [key for key in dict.fromkeys(k for r in composed for k in r) if key.startswith(COMPOSITION_PREFIX)]
        for metric in [*metrics, "probe_auc_before", "probe_auc_after", "probe_length_auc", "probe_words_auc", *composition]:
            if metric in composition:  # a source a seed's mix did not draw on counts as 0 there
                values = [r.get(metric, 0.0) for r in composed]
            else:
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


def summary_table(rows: list[dict[str, Any]], split: str, metrics: Iterable[str] | None = None) -> Table:
    """Before/after table of ``syneg run``: one line per arm (mean ± std over seeds) on one split."""
    metrics = list(metrics or SHOWN_METRICS)
    table = Table(title=f"{split} split (×100; mean ± std over seeds)")
    for column in ("arm", "strategy", "seeds", *metrics):
        table.add_column(column, justify="left" if column in ("arm", "strategy") else "right")
    for line in aggregate([r for r in rows if r["split"] == split], metrics):
        table.add_row(line["arm"], line["strategy"], str(line["seeds"]), *(mean_std_cell(line, m) for m in metrics))
    return table


def main_and_side(lines: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(main arms, side arms): the untrained baselines and the arms planned on the run's full seed list,
    then the tuning and sweep arms planned on fewer seeds."""
    full = max((line["seeds_planned"] for line in lines if line["strategy"] not in UNTRAINED), default=0)
    main = [line for line in lines if line["strategy"] in UNTRAINED or line["seeds_planned"] == full]
    main_arms = {line["arm"] for line in main}
    return main, [line for line in lines if line["arm"] not in main_arms]


def _sweep_groups(lines: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The R sweep (hybrid arms at one setting) and the τ sweep (one strategy at one setting), as lines."""
    groups: dict[str, list[dict[str, Any]]] = {}
    setting = ("num_negatives", "retrieved_sources", "max_seq_length")
    # Hybrid arms, plus the retrieved-only arm over the same retrievers as R = 0.
    by_setting_r: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for line in lines:
        if line["strategy"] in ("hybrid", "retrieved") and line["ratio"] is not None:
            by_setting_r[(line["temperature"], *(line.get(k) for k in setting))].append(line)
    ratio_sweep = max(by_setting_r.values(), key=lambda group: len({g["ratio"] for g in group}), default=[])
    if len({line["ratio"] for line in ratio_sweep}) >= MIN_SWEEP_POINTS:
        groups["ratio"] = ratio_sweep
    by_setting: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for line in lines:
        if line["temperature"] is not None:
            by_setting[(line["strategy"], line["ratio"], *(line.get(k) for k in setting))].append(line)
    temperature_sweep = max(by_setting.values(), key=lambda group: len({g["temperature"] for g in group}), default=[])
    if len({line["temperature"] for line in temperature_sweep}) >= MIN_SWEEP_POINTS:
        groups["temperature"] = temperature_sweep
    return groups


def sweeps(rows: list[dict[str, Any]], metrics: Iterable[str] = SHOWN_METRICS) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """{"ratio" | "temperature": {split: lines sorted by the swept value}}, each sweep averaged over the
    seeds all its points share (a one-seed sweep point beside the main arm compares seed 1 with seed 1)."""
    metrics = list(metrics)
    found: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(dict)
    for split in dict.fromkeys(r["split"] for r in rows):
        split_rows = [r for r in rows if r["split"] == split]
        for key, group in _sweep_groups(aggregate(split_rows, metrics)).items():
            arms = {line["arm"] for line in group}
            seeds = set.intersection(*({r.get("seed") for r in split_rows if r["arm"] == arm} for arm in arms))
            matched = aggregate([r for r in split_rows if r["arm"] in arms and r.get("seed") in seeds], metrics)
            if len({line[key] for line in matched}) >= MIN_SWEEP_POINTS:
                found[key][split] = sorted(matched, key=lambda line: line[key])
    return dict(found)


def hybrid_verdict(lines: list[dict[str, Any]], metric: str = "ndcg@10",
                   validation: list[dict[str, Any]] | None = None) -> str:
    """Did the hybrid arm beat every other arm, and by how much the best retrieved-only arm?

    ``lines`` are the main arms of one split. With several hybrid arms, the one reported is chosen on
    ``validation`` (lines of the validation split) when given, so the test split is never tuned on.
    """
    hybrid = [line for line in lines if line["strategy"] == "hybrid" and metric in line]
    others = [line for line in lines if line["strategy"] != "hybrid" and metric in line]
    if not hybrid or not others:
        return "No hybrid arm and other arm to compare."
    chosen_on = {line["arm"]: line[metric] for line in validation or [] if metric in line}
    if len(hybrid) > 1 and all(line["arm"] in chosen_on for line in hybrid):
        best, how = max(hybrid, key=lambda line: chosen_on[line["arm"]]), " (chosen on validation)"
    else:
        best, how = max(hybrid, key=lambda line: line[metric]), ""
    rival = max(others, key=lambda line: line[metric])
    text = (f"Hybrid arm `{best['arm']}`{how}: {mean_std_cell(best, metric)}; best other arm `{rival['arm']}`: "
            f"{mean_std_cell(rival, metric)}. Hybrid above every other arm: **{'yes' if best[metric] > rival[metric] else 'no'}**.")
    retrieved = [line for line in others if line["strategy"] == "retrieved"]
    if retrieved:
        top = max(retrieved, key=lambda line: line[metric])
        margin = 100 * (best[metric] - top[metric])
        text += (f" Margin over the best retrieved-only arm (`{top['arm']}`): {margin:+.2f} points "
                 f"(goal ≥ +1.00: **{'met' if margin >= 1.0 else 'not met'}**).")
    return text


def _arm_table(lines: list[dict[str, Any]], metrics: list[str]) -> list[str]:
    out = ["| arm | strategy | R | τ | negatives | seeds | " + " | ".join(metrics) + " |",
           "|---|---|---|---|---|---|" + "---|" * len(metrics)]
    for line in lines:
        cells = [line["arm"], line["strategy"]] + ["" if line[k] is None else str(line[k]) for k in ("ratio", "temperature", "num_negatives")]
        out.append("| " + " | ".join(cells + [str(line["seeds"])] + [mean_std_cell(line, m) for m in metrics]) + " |")
    return out


def _composition_table(lines: list[dict[str, Any]]) -> list[str]:
    """Hard negatives per training instance by source (mean over seeds), with the slots filled from another
    source because the arm's own pool was short: what each arm actually trained on."""
    lines = [line for line in lines if any(key.startswith(COMPOSITION_PREFIX) for key in line)]
    if not lines:
        return []
    keys = [k for k in dict.fromkeys(k for line in lines for k in line)
            if k.startswith(COMPOSITION_PREFIX) and not k.endswith("_std") and k != COMPOSITION_PREFIX + "filled"]
    sources = [key.removeprefix(COMPOSITION_PREFIX) for key in sorted(keys)]
    out = ["### Hard negatives per training instance, by source (mean over seeds; `of which filled`: slots a "
           "short pool left to another source)", "",
           "| arm | " + " | ".join(sources) + " | of which filled |", "|---|" + "---|" * (len(sources) + 1)]
    for line in lines:
        cells = [f"{line.get(COMPOSITION_PREFIX + source, 0.0):.2f}" for source in sources]
        out.append(f"| {line['arm']} | " + " | ".join(cells) + f" | {line.get(COMPOSITION_PREFIX + 'filled', 0.0):.2f} |")
    return out + [""]


def _synthesis_table(summary: dict[str, Any]) -> list[str]:
    """Generator, prompt, attributes and the file's counts: the synthesis side of what was tried."""
    generation = summary["generation"]
    origin, values = summary["attributes"]
    style = generation.get("prompt_style", "two-step")
    prompt = (f"`{style}` ({PROMPT_STYLES.get(style, style)}), ablation `{generation.get('ablation', 'none')}`, "
              f"up to {generation.get('max_rounds')} revision rounds")
    if generation.get("aspects_per_reflection", 1) > 1:  # recorded only away from 1 (pipeline.plan.LEGACY_VALUES)
        prompt += f", {generation['aspects_per_reflection']} aspects per reflection"
    held = ", ".join(f"{count} with {negatives}" for negatives, count in summary["pairs_by_negatives"].items())
    out = ["### How the synthetic negatives were made", "", "| setting | value |", "|---|---|",
           f"| generator | {summary['generator']}, temperature {generation.get('temperature')}, seed {generation.get('seed')}"
           f"{', JSON grammar' if generation.get('grammar') else ''} |",
           f"| prompt | {prompt} |",
           f"| attributes | {origin} |"]
    out += [f"| {name} | {'; '.join(choices)} |" for name, choices in values.items()]
    out += [f"| asked per pair | {generation.get('negatives_per_pair')} negatives of at most {generation.get('max_words')} words |",
            f"| checks changed from the defaults | {generation.get('checks') or 'none'} |",
            f"| `{summary['file']}` | {summary['pairs']} pairs, {summary['negatives']} negatives (pairs: {held or '–'}) |", ""]
    return out


def _sweep_table(dataset: str, key: str, per_split: dict[str, list[dict[str, Any]]], metric: str) -> list[str]:
    splits = list(per_split)
    values = {(split, line["arm"]): line for split, lines in per_split.items() for line in lines}
    arms = list(dict.fromkeys(line["arm"] for lines in per_split.values() for line in lines))
    seeds = sorted({seed for lines in per_split.values() for line in lines for seed in line["seed_list"]})
    symbol = "R" if key == "ratio" else "τ"
    plot = plot_name(key, dataset)
    out = [f"### {symbol} sweep ({metric} ×100, seeds {', '.join(map(str, seeds)) or '–'}; plot `{plot}`)", "",
           f"| arm | {symbol} | " + " | ".join(splits) + " |", "|---|---|" + "---|" * len(splits)]
    for arm in arms:
        first = next(values[(split, arm)] for split in splits if (split, arm) in values)
        cells = [mean_std_cell(values[(split, arm)], metric) if (split, arm) in values else "–" for split in splits]
        out.append(f"| {arm} | {first[key]} | " + " | ".join(cells) + " |")
    return out + ["", f"![{dataset}: {symbol} sweep]({quote(plot)})", ""]


@dataclass
class _DatasetView:
    """What the report shows of one dataset: computed once, then written as markdown and plots."""

    dataset: str
    main: list[dict[str, Any]]  # aggregated lines of the reported split
    side: list[dict[str, Any]]
    validation: list[dict[str, Any]] | None  # main lines of the validation split, to choose a hybrid arm on
    sweeps: dict[str, dict[str, list[dict[str, Any]]]]
    synthesis: dict[str, Any] | None = None  # synthesis_summary of the dataset's run folder


def _views(rows: list[dict[str, Any]], split: str, metrics: list[str],
           synthesis: dict[str, dict[str, Any]] | None = None) -> list[_DatasetView]:
    views = []
    for dataset in dict.fromkeys(r.get("dataset", "") for r in rows):
        chosen = [r for r in rows if r.get("dataset", "") == dataset]
        main, side = main_and_side(aggregate([r for r in chosen if r["split"] == split], metrics))
        validation = (main_and_side(aggregate([r for r in chosen if r["split"] == "validation"], metrics))[0]
                      if split != "validation" else None)
        views.append(_DatasetView(dataset, main, side, validation, sweeps(chosen, metrics), (synthesis or {}).get(dataset)))
    return views


def _stale_note(stale: list[dict[str, Any]]) -> list[str]:
    """The rows left out because they are stale: which arms and seeds, and why."""
    if not stale:
        return []
    groups: dict[tuple[str, str, str], set[Any]] = defaultdict(set)
    for row in stale:
        groups[(row.get("dataset", ""), row["arm"], row["stale"])].add(row.get("seed"))
    out = [f"**Left out: {len(stale)} stale result rows.** They were evaluated with settings the config no longer "
           "has, or belong to an arm or seed it no longer holds; `syneg run` on the config redoes the arms and seeds it holds.",
           "", "| dataset | arm | seeds | why |", "|---|---|---|---|"]
    for (dataset, arm, reason), seeds in groups.items():
        listed = ", ".join(str(seed) for seed in sorted(seed for seed in seeds if seed is not None)) or "–"
        out.append(f"| {dataset} | {arm} | {listed} | {reason} |")
    return out + [""]


def markdown(views: list[_DatasetView], split: str, metrics: list[str], stale: list[dict[str, Any]] | None = None) -> str:
    out = ["# syneg report", "", *_stale_note(stale or [])]
    for view in views:
        out += [f"## {view.dataset} ({split} split, ×100, mean ± std over seeds)", ""]
        out += _arm_table(view.main, metrics)
        out += ["", hybrid_verdict(view.main, metrics[0], view.validation), ""]
        if view.main:
            out += [f"![{view.dataset}: negative strategies ({split})]({quote(plot_name('strategies', view.dataset))})", ""]
        out += _composition_table(view.main)
        out += _synthesis_table(view.synthesis) if view.synthesis else []
        if view.side:
            out += ["### Tuning and sweep arms (fewer seeds)", ""] + _arm_table(view.side, metrics) + [""]
        probed = [line for line in view.main + view.side if "probe_auc_before" in line]
        if probed:
            cues = [(key, name) for key, name in (("probe_length_auc", "word count"), ("probe_words_auc", "words used"))
                    if any(key in line for line in probed)]  # runs evaluated before these cues recorded embeddings only
            out += ["### Shortcut probe (ROC AUC of telling synthetic from retrieved negatives; 0.5 = indistinguishable)", "",
                    "| arm | seeds | before training | after training |" + "".join(f" {name} |" for _, name in cues),
                    "|---|---|---|---|" + "---|" * len(cues)]
            for line in probed:
                spread = f" ± {line['probe_auc_after_std']:.3f}" if line["seeds"] > 1 else ""
                out.append(f"| {line['arm']} | {line['seeds']} | {line['probe_auc_before']:.3f} | "
                           f"{line['probe_auc_after']:.3f}{spread} |"
                           + "".join(f" {line[key]:.3f} |" if key in line else " - |" for key, _ in cues))
            out.append("")
        for key, per_split in view.sweeps.items():
            out += _sweep_table(view.dataset, key, per_split, metrics[0])
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
    if values:  # headroom above the bars for the legend
        axis.set_ylim(max(0, min(values) - 5), min(100, max(values) + 8))
    axis.set_ylabel("×100")
    axis.set_title(title)
    axis.legend(loc="upper left", ncol=len(metrics), fontsize=8)
    figure.tight_layout()
    _save_figure(figure, path)
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
    _save_figure(figure, path)
    plt.close(figure)


def write_report(runs: Iterable[str | Path], output: str | Path, split: str = "test",
                 metrics: Iterable[str] = SHOWN_METRICS) -> dict[str, Path]:
    """Write ``results.csv``, ``report.md``, ``report.html`` and the plots into ``output``; returns what was written."""
    metrics = list(metrics)
    rows_by_run = [(Path(run), load_rows([run])) for run in runs]
    rows = [row for _, run_rows in rows_by_run for row in run_rows]
    if not rows:
        raise DataError("The runs hold no result rows")
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    written = {"csv": output / "results.csv", "markdown": output / "report.md", "html": output / "report.html"}
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with atomic_writer(written["csv"]) as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    synthesis = {}
    for run, run_rows in rows_by_run:
        summary = synthesis_summary(run) if run.is_dir() else None
        if summary:
            synthesis |= {row.get("dataset", ""): summary for row in run_rows}
    views = _views([row for row in rows if not row.get("stale")], split, metrics, synthesis)
    text = markdown(views, split, metrics, [row for row in rows if row.get("stale")])
    atomic_write_text(written["markdown"], text)
    for view in views:
        if view.main:
            path = output / plot_name("strategies", view.dataset)
            _plot_strategies(view.main, metrics, path, f"{view.dataset}: negative strategies ({split})")
            written[f"strategies-{view.dataset}"] = path
        for key, per_split in view.sweeps.items():
            path = output / plot_name(key, view.dataset)
            _plot_sweep(per_split, key, metrics[0], path, f"{view.dataset}: {'R' if key == 'ratio' else 'τ'} sweep")
            written[f"{key}-{view.dataset}"] = path
    atomic_write_text(written["html"], html_report(text, output))
    return written


def _save_figure(figure: Any, path: Path) -> None:
    with atomic_writer(path, "wb") as handle:  # the format from the name: the temporary file's is .tmp
        figure.savefig(handle, format=path.suffix.lstrip("."), dpi=120)


def html_report(text: str, folder: Path) -> str:
    """The markdown report as a page that stands alone: the same tables, verdict, composition and probe,
    with the plots it links embedded as data URIs (read from ``folder``), so the page needs no file
    beside it. HTML in the text (an arm or attribute name) shows as text.

    >>> page = html_report("| arm | ndcg@10 |\\n|---|---|\\n| <b>x</b> | 66.17 |\\n\\n**no**", Path("."))
    >>> "<td>&lt;b&gt;x&lt;/b&gt;</td>" in page and "<strong>no</strong>" in page
    True
    """
    from markdown_it import MarkdownIt

    parser = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = parser.parse(text)
    for token in tokens:
        for image in (child for child in token.children or [] if child.type == "image"):
            plot = folder / Path(unquote(str(image.attrGet("src")))).name
            if plot.is_file():
                image.attrSet("src", "data:image/png;base64," + base64.b64encode(plot.read_bytes()).decode())
    body = '<main class="report">\n' + parser.renderer.render(tokens, parser.options, {}) + "</main>"
    return standalone_page("syneg report", body, asset("page.css") + REPORT_STYLE)
