from __future__ import annotations

import json

import pytest

from syneg.data import load_beir
from syneg.evaluation import compare, evaluate, evaluate_run, read_trec_run, write_trec_run

QRELS = {"q1": {"d1": 1, "d2": 2}, "q2": {"d3": 1}}


def test_metrics_on_a_hand_checked_run():
    run = {"q1": {"d2": 3.0, "x": 2.0, "d1": 1.0}, "q2": {"x": 2.0, "d3": 1.0}}
    metrics = evaluate_run(QRELS, run, ["mrr@10", "recall@2", "ndcg@10", "mrr@1"]).metrics
    assert metrics["mrr@10"] == pytest.approx((1 + 0.5) / 2)
    assert metrics["mrr@1"] == pytest.approx(0.5)
    assert metrics["recall@2"] == pytest.approx((0.5 + 1) / 2)
    # trec_eval's nDCG (BEIR's) takes the grade itself as the gain. q1: gain 2 (d2) at rank 1 and 1
    # (d1) at rank 3, over the ideal 2 then 1.
    import math

    ndcg_q1 = (2 + 1 / math.log2(4)) / (2 + 1 / math.log2(3))
    ndcg_q2 = (1 / math.log2(3)) / 1
    assert metrics["ndcg@10"] == pytest.approx((ndcg_q1 + ndcg_q2) / 2, rel=1e-4)


def test_query_id_hits_are_ignored_and_missing_queries_score_zero():
    run = {"q1": {"q1": 9.0, "d2": 1.0}}
    result = evaluate_run(QRELS, run, ["mrr@10"])
    assert result.per_query["q1"]["mrr@10"] == 1.0 and result.per_query["q2"]["mrr@10"] == 0.0
    assert result.metrics["mrr@10"] == 0.5


def test_unknown_metric():
    with pytest.raises(ValueError, match="Unknown metric"):
        evaluate_run(QRELS, {}, ["bleu@4"])


def test_trec_run_round_trip(tmp_path):
    run = {"q1": {"d1": 0.5, "d2": 0.9}, "q2": {"d3": 1.0}}
    write_trec_run(tmp_path / "run.trec", run, tag="my model")
    lines = (tmp_path / "run.trec").read_text().splitlines()
    assert lines[0] == "q1 Q0 d2 1 0.900000 my_model"
    assert read_trec_run(tmp_path / "run.trec") == run


def test_compare_marks_significance(demo_test):
    bm25 = evaluate(demo_test, "bm25", show_progress=False)
    table = compare([bm25, bm25], print_table=False)
    assert table["bm25"]["ndcg@10"] == bm25.metrics["ndcg@10"]


def test_bm25_on_real_scifact_matches_reference(scifact_path):
    """REFERENCE.md: bm25s lucene BM25 on SciFact test scores nDCG@10 66.17, R@100 87.59."""
    result = evaluate(load_beir(scifact_path, "test"), "bm25", show_progress=False)
    assert abs(100 * result.metrics["ndcg@10"] - 66.2) < 1.0
    assert abs(100 * result.metrics["recall@100"] - 87.6) < 1.0


@pytest.mark.slow
def test_dense_on_real_scifact_subset_beats_chance(scifact_subset, dense_encoder):
    """The real model on 100 SciFact test queries over their positives and 400 other abstracts."""
    subset = scifact_subset("test", num_queries=100, num_other_docs=400)
    dense = evaluate(subset, "default", encoder=dense_encoder, show_progress=False)
    bm25 = evaluate(subset, "bm25", show_progress=False)
    assert dense.metrics["ndcg@10"] > 0.6 and bm25.metrics["ndcg@10"] > 0.6
    assert json.dumps(dense.to_dict())  # serializable for --json
