from __future__ import annotations

import pytest

from syneg.retrieval import mine


def negatives_are_clean(dataset, result, num_negatives):
    for instance in result.instances:
        judged = set(dataset.qrels[instance.query_id])
        ids = [n.id for n in instance.negatives]
        assert not judged & set(ids), "a judged positive was mined as a negative"
        assert len(ids) == len(set(ids)) and len(ids) <= num_negatives


@pytest.mark.parametrize("retriever", ["bm25", "dense", "both"])
def test_mines_every_pair_without_positives(demo_train, retriever):
    result = mine(demo_train, retriever=retriever, num_negatives=3, show_progress=False, verbose=False)
    assert [(i.query_id, i.pos_ids[0]) for i in result.instances] == list(demo_train.pairs())
    negatives_are_clean(demo_train, result, 3)
    sources = {n.source for i in result.instances for n in i.negatives}
    assert sources == ({"bm25", "dense"} if retriever == "both" else {retriever})
    assert result.stats.short_instances == 0
    assert result.stats.removed["positives"] > 0  # the queries' own positives rank high and are dropped
    if retriever == "both":  # interleaved: the first negative from BM25, the second from the dense model
        assert all([n.source for n in i.negatives][:2] == ["bm25", "dense"] for i in result.instances)
        assert all(set(i.negatives[0].scores) == {"bm25", "dense"} for i in result.instances)


def test_relative_margin_is_positive_aware(demo_train):
    result = mine(demo_train, retriever="dense", relative_margin=0.1, num_negatives=3, show_progress=False, verbose=False)
    for instance in result.instances:
        hardest_positive = min(
            p for i in result.instances if i.query_id == instance.query_id for p in i.pos_scores
        )
        assert all(n.score <= hardest_positive * 0.9 + 1e-6 for n in instance.negatives)
    assert result.stats.removed["relative_margin"] > 0


def test_max_score_and_range_min(demo_train):
    top = mine(demo_train, retriever="dense", num_negatives=4, show_progress=False, verbose=False)
    skipped = mine(demo_train, retriever="dense", num_negatives=2, range_min=2, show_progress=False, verbose=False)
    for a, b in zip(top.instances, skipped.instances, strict=True):
        assert [n.id for n in b.negatives] == [n.id for n in a.negatives][2:4]
    capped = mine(demo_train, retriever="dense", max_score=0.5, num_negatives=3, show_progress=False, verbose=False)
    assert all(n.score <= 0.5 for i in capped.instances for n in i.negatives)


def test_random_sampling_is_seeded(demo_train):
    def run(seed):
        result = mine(demo_train, "bm25", num_negatives=2, range_max=15, sampling_strategy="random", seed=seed, show_progress=False, verbose=False)
        return [[n.id for n in i.negatives] for i in result.instances]

    assert run(1) == run(1) and run(1) != run(2)


def test_too_few_candidates_are_counted(demo_train):
    result = mine(demo_train, "bm25", num_negatives=3, absolute_margin=1e6, show_progress=False, verbose=False)
    assert result.stats.short_instances == len(result.instances)
    assert all(not i.negatives for i in result.instances)


def test_positives_per_query(demo_train):
    result = mine(demo_train, "bm25", num_negatives=1, positives_per_query=1, show_progress=False, verbose=False)
    assert len(result.instances) == len(demo_train.queries)


def test_bad_options(demo_train):
    with pytest.raises(ValueError, match="retriever"):
        mine(demo_train, retriever="splade")
    with pytest.raises(ValueError, match="range_max"):
        mine(demo_train, range_min=5, range_max=5)


def test_statistics_table_is_printed(demo_train, capsys):
    result = mine(demo_train, "bm25", num_negatives=2, show_progress=False, verbose=True)
    err = capsys.readouterr().err
    assert "Positive" in err and "Negative" in err and "instances for" in err
    summary = result.stats.summary()
    assert summary["negative_scores"]["count"] == sum(len(i.negatives) for i in result.instances)


@pytest.mark.slow
def test_dense_mining_on_real_scifact(scifact_subset):
    """Real data, real model: 40 SciFact train queries over their positives and 600 other abstracts."""
    subset = scifact_subset("train", num_queries=40, num_other_docs=600)
    result = mine(subset, retriever="both", num_negatives=4, relative_margin=0.05, show_progress=False, verbose=False)
    negatives_are_clean(subset, result, 4)
    summary = result.stats.summary()
    assert summary["positive_scores"]["mean"] > summary["negative_scores"]["mean"] > 0.2
    assert summary["negatives_by_source"]["bm25"] > 0 and summary["negatives_by_source"]["dense"] > 0
    assert result.stats.short_instances <= 0.1 * len(result.instances)
