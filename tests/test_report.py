"""Reports across runs and the shortcut probe (real MiniLM on real SciFact text)."""

from __future__ import annotations

import base64
import csv
import html
import json
import random
import re
from dataclasses import replace
from pathlib import Path

import pytest

from syneg.data import DataError, Negative, TrainingInstance, write_training_set
from syneg.diagnostics import probe_samples, shortcut_probe
from syneg.report import aggregate, hybrid_verdict, load_rows, main_and_side, sweeps, synthesis_summary, write_report

EXPERIMENT_RUNS = Path(__file__).resolve().parents[1] / "bench" / "experiments" / "runs"


def result_rows(one_seed_sweeps: bool = False) -> list[dict]:
    """Rows as `syneg run` writes them: three seeds of four arms, an R sweep and a τ sweep (the sweep
    points on three seeds too, or planned on seed 1 only as in the experiment configs)."""
    rows = [{"dataset": "toy", "run": "r", "arm": "zero-shot", "strategy": "zero-shot", "ratio": None, "temperature": None,
             "num_negatives": 0, "seeds_planned": 1, "seed": None, "split": split, "ndcg@10": 0.60, "recall@10": 0.7,
             "mrr@10": 0.55} for split in ("validation", "test")]
    arms = {"both": ("retrieved", 0.0, 0.02, 0.62), "hybrid": ("hybrid", 0.7, 0.02, 0.65),
            "hybrid-R0.3": ("hybrid", 0.3, 0.02, 0.63), "hybrid-R2": ("hybrid", 2.0, 0.02, 0.61),
            "hybrid-t0.05": ("hybrid", 0.7, 0.05, 0.64), "hybrid-t0.01": ("hybrid", 0.7, 0.01, 0.62)}
    for arm, (strategy, ratio, temperature, base) in arms.items():
        sweep_point = arm.startswith("hybrid-") and one_seed_sweeps
        for seed, delta in zip((1, 2, 3), (-0.01, 0.0, 0.01)):
            if sweep_point and seed != 1:
                continue
            for split in ("validation", "test"):
                row = {"dataset": "toy", "run": "r", "arm": arm, "strategy": strategy, "ratio": ratio, "temperature": temperature,
                       "num_negatives": 3, "retrieved_sources": "both", "max_seq_length": 256,
                       "seeds_planned": 1 if sweep_point else 3, "seed": seed, "split": split, "ndcg@10": base + delta,
                       "recall@10": base + 0.1, "mrr@10": base - 0.05}
                if strategy == "hybrid":
                    row |= {"probe_auc_before": 0.8, "probe_auc_after": 0.9 + delta, "probe_length_auc": 0.54, "probe_words_auc": 0.99}
                # What the mix stage counted: seed 3 of `both` ran short of BM25 negatives and was filled at random.
                if arm == "both":
                    row |= ({"negatives_bm25": 1.5, "negatives_dense": 1.5, "negatives_filled": 0.0} if seed != 3 else
                            {"negatives_bm25": 1.2, "negatives_dense": 1.5, "negatives_random": 0.3, "negatives_filled": 0.3})
                elif arm == "hybrid":
                    row |= {"negatives_bm25": 0.9, "negatives_dense": 0.9, "negatives_synthetic": 1.2, "negatives_filled": 0.0}
                rows.append(row)
    return rows


def test_aggregate_gives_mean_and_spread_over_seeds():
    lines = {line["arm"]: line for line in aggregate([r for r in result_rows() if r["split"] == "test"])}
    assert lines["hybrid"]["seeds"] == 3
    assert lines["hybrid"]["ndcg@10"] == pytest.approx(0.65)
    assert lines["hybrid"]["ndcg@10_std"] == pytest.approx(0.01)
    assert lines["zero-shot"]["seeds"] == 1 and lines["zero-shot"]["ndcg@10_std"] == 0.0


def test_verdict_compares_hybrid_with_every_other_arm():
    lines = aggregate([r for r in result_rows() if r["split"] == "test"])
    verdict = hybrid_verdict(lines)
    assert "Hybrid above every other arm: **yes**" in verdict
    assert "(`both`): +3.00 points" in verdict and "**met**" in verdict
    worse = [line | {"ndcg@10": 0.5} if line["strategy"] == "hybrid" else line for line in lines]
    assert "**no**" in hybrid_verdict(worse) and "not met" in hybrid_verdict(worse)


def test_verdict_chooses_among_hybrid_arms_on_validation_not_test():
    rows = result_rows()
    # hybrid-t0.05 is the better hybrid arm on validation, hybrid the better on test.
    rows = [r | {"ndcg@10": 0.70} if r["arm"] == "hybrid-t0.05" and r["split"] == "validation" else r for r in rows]
    test = aggregate([r for r in rows if r["split"] == "test"])
    validation = aggregate([r for r in rows if r["split"] == "validation"])
    verdict = hybrid_verdict(test, validation=validation)
    assert verdict.startswith("Hybrid arm `hybrid-t0.05` (chosen on validation): 64.00 ± 1.00")
    assert hybrid_verdict(test).startswith("Hybrid arm `hybrid`: 65.00 ± 1.00")


def test_one_seed_arms_are_side_arms_outside_the_verdict():
    rows = result_rows(one_seed_sweeps=True)
    # A one-seed sweep point that happens to score best must not become the hybrid arm or the rival.
    rows = [r | {"ndcg@10": 0.90} if r["arm"] == "hybrid-R2" else r for r in rows]
    main, side = main_and_side(aggregate([r for r in rows if r["split"] == "test"]))
    assert [line["arm"] for line in main] == ["zero-shot", "both", "hybrid"]
    assert {line["arm"] for line in side} == {"hybrid-R0.3", "hybrid-R2", "hybrid-t0.05", "hybrid-t0.01"}
    assert hybrid_verdict(main).startswith("Hybrid arm `hybrid`: 65.00 ± 1.00; best other arm `both`: 62.00 ± 1.00")


def test_sweeps_average_over_the_seeds_all_points_share():
    found = sweeps(result_rows(one_seed_sweeps=True))
    assert set(found) == {"ratio", "temperature"} and set(found["ratio"]) == {"validation", "test"}
    ratio = {line["arm"]: line for line in found["ratio"]["test"]}
    assert [line["ratio"] for line in found["ratio"]["test"]] == [0.0, 0.3, 0.7, 2.0]
    # The main arms have 3 seeds; the sweep compares their seed 1 (base − 0.01) with the sweep points' seed 1.
    assert ratio["hybrid"]["ndcg@10"] == pytest.approx(0.64) and ratio["hybrid"]["seeds"] == 1
    assert ratio["both"]["ndcg@10"] == pytest.approx(0.61)
    assert [line["temperature"] for line in found["temperature"]["test"]] == [0.01, 0.02, 0.05]


def test_report_writes_tables_and_plots(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "results.json").write_text(json.dumps(result_rows()))
    written = write_report([run_dir], tmp_path / "report")
    assert {"csv", "markdown", "strategies-toy", "ratio-toy", "temperature-toy"} <= set(written)
    with written["csv"].open() as handle:
        assert len(list(csv.DictReader(handle))) == len(result_rows())
    text = written["markdown"].read_text()
    assert "| hybrid | hybrid | 0.7 | 0.02 | 3 | 3 | 65.00 ± 1.00 |" in text
    assert "Shortcut probe" in text and "| hybrid | 3 | 0.800 | 0.900 ± 0.010 | 0.540 | 0.990 |" in text
    assert "| arm | seeds | before training | after training | word count | words used |" in text
    # Composition, averaged over seeds; a source an arm's seed lacks counts as none.
    assert "| arm | bm25 | dense | random | synthetic | of which filled |" in text
    assert "| both | 1.40 | 1.50 | 0.10 | 0.00 | 0.10 |" in text
    assert "| hybrid | 0.90 | 0.90 | 0.00 | 1.20 | 0.00 |" in text
    for key in ("strategies-toy", "ratio-toy", "temperature-toy"):
        assert written[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert "### R sweep (ndcg@10 ×100, seeds 1, 2, 3; plot `ratio-toy.png`)" in text
    assert "| hybrid-R2 | 2.0 | 61.00 ± 1.00 | 61.00 ± 1.00 |" in text
    assert "![toy: negative strategies (test)](strategies-toy.png)" in text and "![toy: τ sweep](temperature-toy.png)" in text

    # The same report as a page, its plots inside it.
    page = written["html"].read_text()
    assert page.count('<img src="data:image/png;base64,') == 3 and 'src="strategies-toy.png"' not in page
    assert "<td>hybrid</td>" in page and "Hybrid above every other arm: <strong>yes</strong>" in page

    # Two values (R = 0 and 0.7) are a comparison, not a sweep: no plot.
    two_ratios = [r for r in result_rows() if r["arm"] not in ("hybrid-R2", "hybrid-R0.3")]
    (run_dir / "results.json").write_text(json.dumps(two_ratios))
    assert "ratio-toy" not in write_report([run_dir], tmp_path / "report2")


def synthesize_marker(run_dir, attributes, file="synthetic.jsonl", recorded=None, ablation="none"):
    """A synthesize marker; ``recorded``: the attribute record of the stage's info, which markers written
    before the stage recorded one lack."""
    generation = {"backend": "llama.cpp", "model": "default", "grammar": True, "attributes": attributes, "ablation": ablation,
                  "prompt_style": "two-step", "max_rounds": 2, "negatives_per_pair": 2, "max_words": 80,
                  "temperature": 0.7, "seed": 0, "checks": {}}
    info = {"generator": "llama.cpp:qwen2.5-0.5b"} | ({"attributes": recorded} if recorded else {})
    (run_dir / "stages").mkdir(parents=True, exist_ok=True)
    (run_dir / "stages" / "synthesize.json").write_text(json.dumps({"settings": {"generation": generation, "file": file}, "info": info}))


def test_report_says_how_the_synthetic_negatives_were_made(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "results.json").write_text(json.dumps(result_rows()))
    # Two pairs with 2 negatives, one with none, one with 1: counted from the file, not from the marker.
    records = [{"query_id": f"q{i}", "query": "q", "pos": ["p"], "neg": ["n"] * count} for i, count in enumerate((2, 0, 2, 1))]
    (run_dir / "synthetic.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (run_dir / "attributes.yaml").write_text("domain: [Oceanography, Geology]\n")
    synthesize_marker(run_dir, attributes=None)

    summary = synthesis_summary(run_dir)
    assert (summary["pairs"], summary["negatives"], summary["pairs_by_negatives"]) == (4, 5, {2: 2, 1: 1, 0: 1})
    text = write_report([run_dir], tmp_path / "report")["markdown"].read_text()
    assert "| generator | llama.cpp:qwen2.5-0.5b, temperature 0.7, seed 0, JSON grammar |" in text
    assert "| attributes | proposed by the LLM from a corpus sample (`attributes.yaml`) |" in text
    assert "| domain | Oceanography; Geology |" in text
    assert "| `synthetic.jsonl` | 4 pairs, 5 negatives (pairs: 2 with 2, 1 with 1, 1 with 0) |" in text

    synthesize_marker(run_dir, attributes="scifact")
    assert synthesis_summary(run_dir)["attributes"][0] == "`scifact` (shipped with syneg)"
    synthesize_marker(run_dir, attributes=str(tmp_path / "moved.yaml"))
    assert synthesis_summary(run_dir)["attributes"] == ("`moved.yaml` (no longer found)", {})
    # A marker that records the values the stage used is read as it is: the attribute file changed since
    # (or an ablation given a file too) does not change what the report says was used.
    used = {"source": "proposed", "name": "attributes.yaml", "values": {"domain": ["Glaciology"]}}
    synthesize_marker(run_dir, attributes=None, recorded=used)
    assert synthesis_summary(run_dir)["attributes"] == ("proposed by the LLM from a corpus sample (`attributes.yaml`)",
                                                        {"domain": ["Glaciology"]})
    synthesize_marker(run_dir, attributes="scifact", ablation="no-attributes", recorded={"source": "none", "name": None, "values": {}})
    assert synthesis_summary(run_dir)["attributes"] == ("none (ablation `no-attributes`)", {})
    assert "How the synthetic negatives" not in write_report([tmp_path / "run" / "results.json"], tmp_path / "r2")["markdown"].read_text()
    (run_dir / "stages" / "synthesize.json").write_text("{}")
    with pytest.raises(DataError, match=r"synthesize.json: not a synthesize stage marker"):
        synthesis_summary(run_dir)


@pytest.mark.parametrize(("dataset", "pairs", "negatives", "domain"),
                         [("scifact", 200, 298, "Epidemiology"), ("nfcorpus", 200, 140, "Cardiovascular Disease")])
def test_synthesis_summary_of_the_committed_experiments(dataset, pairs, negatives, domain):
    """The experiment run folders in bench/experiments, as committed: marker, generated file and attributes."""
    summary = synthesis_summary(EXPERIMENT_RUNS / dataset)
    assert summary["generator"] == "llama.cpp:qwen2.5-0.5b"
    assert (summary["pairs"], summary["negatives"]) == (pairs, negatives)
    assert sum(summary["pairs_by_negatives"].values()) == pairs
    assert domain in summary["attributes"][1]["domain"]


def test_report_page_of_the_committed_scifact_run(browser, tmp_path):
    """report.html of the committed SciFact run as chromium renders it, moved away from the plot files:
    the tables, the verdict, the composition, the synthesis, the probe and every plot are in the page."""
    written = write_report([EXPERIMENT_RUNS / "scifact"], tmp_path / "report")
    page = written["html"].rename(tmp_path / "alone.html")
    dom = browser.dump_dom(page)
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", dom)).split())
    for heading in ("scifact (test split, ×100, mean ± std over seeds)", "Hard negatives per training instance, by source",
                    "How the synthetic negatives were made", "Tuning and sweep arms (fewer seeds)", "Shortcut probe", "R sweep"):
        assert heading in text
    assert "Hybrid above every other arm: no" in text and "Margin over the best retrieved-only arm" in text
    assert "hybrid hybrid 0.7 0.05 2 3" in text
    plots = [path for path in written.values() if path.suffix == ".png"]
    images = re.findall(r'<img src="data:image/png;base64,([^"]+)"', dom)
    assert len(images) == len(plots) == 3 and all(base64.b64decode(image)[:4] == b"\x89PNG" for image in images)
    assert dom.count("<table") >= 6
    assert browser.screenshot(page, tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_errors_name_the_run(tmp_path):
    with pytest.raises(DataError, match="no results.json"):
        load_rows([tmp_path])
    (tmp_path / "results.json").write_text("{oops")
    with pytest.raises(DataError, match="results.json: not valid JSON"):
        load_rows([tmp_path])


def pools(dataset, tmp_path, synthetic_text):
    """A mined pool of real documents and a 'synthetic' pool made by ``synthetic_text(rng, document)``."""
    rng = random.Random(0)
    documents = list(dataset.corpus.values())
    retrieved, synthetic = [], []
    for query_id, doc_id in dataset.pairs():
        instance = TrainingInstance(query_id, dataset.queries[query_id], [doc_id], [dataset.corpus[doc_id].full_text])
        picks = rng.sample(documents, 3)
        retrieved.append(replace(instance, negatives=[Negative(d.full_text, "bm25", id=d.id) for d in picks[:2]]))
        synthetic.append(replace(instance, negatives=[Negative(synthetic_text(rng, picks[2]), "synthetic")]))
    write_training_set(tmp_path / "mined.jsonl", retrieved)
    write_training_set(tmp_path / "synthetic.jsonl", synthetic)
    return tmp_path / "synthetic.jsonl", tmp_path / "mined.jsonl"


def test_probe_samples_are_balanced_per_pair(scifact_subset, tmp_path):
    dataset = scifact_subset("train", 12, 80)
    synthetic, mined = pools(dataset, tmp_path, lambda rng, document: document.full_text)
    _texts, labels, groups = probe_samples(synthetic, mined)
    assert labels.sum() == len(labels) / 2 == len(set(groups.tolist()))


def test_probe_tells_a_marked_source_apart_and_not_an_unmarked_one(scifact_subset, tmp_path, dense_encoder):
    """Same documents on both sides: near chance. A recognisable style on the synthetic side: near certain."""
    dataset = scifact_subset("train", 40, 200)
    alike = shortcut_probe(*pools(dataset, tmp_path, lambda rng, document: document.full_text), encoder=dense_encoder)
    assert alike.queries >= 30 and 0.3 < alike.auc < 0.7
    assert 0.3 < alike.words_auc < 0.7  # the same documents: the words cannot tell them apart either

    styled_dir = tmp_path / "styled"
    styled_dir.mkdir()
    styled = shortcut_probe(
        *pools(dataset, styled_dir, lambda rng, document: "In this essay we explore, in simple terms, the following: " + document.text[:300]),
        encoder=dense_encoder,
    )
    assert styled.auc > 0.9 and styled.accuracy > 0.8
    assert 0 <= styled.length_auc <= 1
    assert styled.words_auc > 0.95  # the stock phrase's words give the source away without a model
    typical = [entry["word"] for entry in styled.telltale["synthetic"][:3]]
    assert set(typical) <= {"essay", "explore", "simple", "terms", "following"}, styled.telltale


def test_probe_needs_a_few_queries(scifact_subset, tmp_path, dense_encoder):
    dataset = scifact_subset("train", 2, 10)
    result = shortcut_probe(*pools(dataset, tmp_path, lambda rng, document: document.full_text), encoder=dense_encoder)
    assert result.auc is None and result.queries == 2


def test_rows_carry_the_model_free_cues_of_probes_that_measured_words():
    from syneg.pipeline.results import rows_of

    probe = {"before": {"auc": 0.9, "length_auc": 0.54, "words_auc": 0.99}, "after": {"auc": 0.95}}
    row = rows_of({"arm": "hybrid"}, {"metrics": {"test": {"ndcg@10": 0.5}}, "shortcut_probe": probe})[0]
    assert (row["probe_auc_before"], row["probe_auc_after"], row["probe_length_auc"], row["probe_words_auc"]) == (0.9, 0.95, 0.54, 0.99)
    # a probe from before the words cue: its row stays as written then (committed results rebuild unchanged)
    earlier = {"before": {"auc": 0.9, "length_auc": 0.54}, "after": {"auc": 0.95}}
    row = rows_of({"arm": "hybrid"}, {"metrics": {"test": {"ndcg@10": 0.5}}, "shortcut_probe": earlier})[0]
    assert "probe_length_auc" not in row and "probe_words_auc" not in row
