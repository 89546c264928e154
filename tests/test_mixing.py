from __future__ import annotations

import logging
from collections import Counter

import pytest
from rich.console import Console

from syneg.data import (
    Document,
    Negative,
    TrainingInstance,
    demo_path,
    load_beir,
    read_training_set,
    write_training_set,
)
from syneg.mixing import MixStats, mix, synthetic_count


def pool(query_id: str, doc_id: str, counts: dict[str, int]) -> TrainingInstance:
    """One pair's pool: ``counts[source]`` negatives per source, with ids unique to the pair."""
    negatives = [
        Negative(
            f"{source} text {i} for {query_id}",
            source,
            id=None if source == "synthetic" else f"{query_id}-{source}{i}",
        )
        for source, count in counts.items()
        for i in range(count)
    ]
    return TrainingInstance(query_id, f"query {query_id}", [doc_id], [f"positive of {query_id}"], negatives)


def pools(pairs: int, **counts: int) -> list[TrainingInstance]:
    return [pool(f"q{i}", f"d{i}", counts) for i in range(pairs)]


@pytest.fixture
def corpus() -> dict[str, Document]:
    return {f"c{i}": Document(f"c{i}", f"corpus text {i}", title=f"title {i}") for i in range(50)}


def sources(instance: TrainingInstance) -> Counter[str]:
    return Counter(n.source for n in instance.negatives)


@pytest.mark.parametrize(
    ("n", "ratio", "expected"),
    [
        (3, 0.7, 1),  # the paper's best R: 1 synthetic + 2 retrieved, as in its Figure 1
        (3, 0.1, 1),  # 0.27 rounds to 0: clamped up, both kinds always present
        (3, 5.0, 2),  # 2.5 rounds to 3: clamped down to n - 1
        (5, 1.0, 3),  # 2.5: half up, not to even (Python's round would give 2)
        (4, 1.0, 2),
        (10, 0.7, 4),  # 4.12
        (10, 0.2, 2),  # 1.67
        (10, 2.7, 7),  # 7.30
    ],
)
def test_synthetic_count_rounds_half_up_and_clamps(n: int, ratio: float, expected: int) -> None:
    assert synthetic_count(n, ratio) == expected


def test_synthetic_count_rejects_impossible_budgets() -> None:
    with pytest.raises(ValueError, match="num_negatives >= 2"):
        synthetic_count(1, 0.7)
    with pytest.raises(ValueError, match="positive"):
        synthetic_count(3, 0.0)


def test_hybrid_gives_every_instance_both_kinds_at_ratio() -> None:
    retrieved, synthetic = pools(4, bm25=5, dense=5), pools(4, synthetic=3)
    instances, stats = mix("hybrid", retrieved, synthetic, num_negatives=3, ratio=0.7)
    assert len(instances) == 4
    for instance in instances:
        counts = sources(instance)
        assert counts["synthetic"] == 1 and counts["bm25"] + counts["dense"] == 2
        assert not any(n.details for n in instance.negatives)
    assert stats.per_source["synthetic"] == 4 and stats.negatives == 12
    assert stats.filled == 0 and stats.short == 0
    assert stats.synthetic_to_retrieved == pytest.approx(0.5)


def test_hybrid_fills_a_short_synthetic_pool_from_the_retrieved_one() -> None:
    instances, stats = mix("hybrid", pools(3, bm25=10), pools(3, synthetic=3), num_negatives=10, ratio=0.7)
    for instance in instances:
        assert sources(instance) == {"synthetic": 3, "bm25": 7}
        fills = [n for n in instance.negatives if n.details]
        assert len(fills) == 1
        assert fills[0].source == "bm25"
        assert fills[0].details == {"filled_for": "synthetic", "filled_from": "retrieved"}
    assert stats.fills == {("synthetic", "retrieved"): 3}


def test_hybrid_fills_from_random_when_both_pools_run_out(corpus: dict[str, Document]) -> None:
    instances, stats = mix(
        "hybrid", pools(2, dense=1), pools(2, synthetic=1), corpus, num_negatives=4, ratio=1.0
    )
    for instance in instances:
        assert sources(instance) == {"synthetic": 1, "dense": 1, "random": 2}
        assert len({n.id for n in instance.negatives if n.id}) == 3
    assert stats.fills == {("synthetic", "random"): 2, ("retrieved", "random"): 2}
    assert stats.short == 0


def test_short_instances_are_counted_without_a_corpus(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="syneg.mixing"):
        instances, stats = mix("synthetic", (), pools(3, synthetic=1), num_negatives=3)
    assert [len(i.negatives) for i in instances] == [1, 1, 1]
    assert stats.short == 3
    assert "pass a corpus" in caplog.text


def test_an_empty_pool_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="syneg.mixing"):
        instances, stats = mix("hybrid", pools(2, bm25=5), num_negatives=3)
    assert all(sources(i) == {"bm25": 3} for i in instances)
    assert stats.fills == {("synthetic", "retrieved"): 2}
    assert "no synthetic negatives" in caplog.text


def test_a_pair_missing_from_one_pool_is_kept_and_filled() -> None:
    retrieved = pools(2, bm25=4)
    synthetic = [pool("q1", "d1", {"synthetic": 2}), pool("q9", "d9", {"synthetic": 3})]
    instances, stats = mix("hybrid", retrieved, synthetic, num_negatives=3)
    by_query = {i.query_id: sources(i) for i in instances}
    assert by_query == {
        "q0": {"bm25": 3},  # no synthetic pool: its synthetic slot is filled from the retrieved one
        "q1": {"synthetic": 1, "bm25": 2},
        "q9": {"synthetic": 3},  # no retrieved pool: filled from the synthetic one
    }
    assert stats.fills == {("synthetic", "retrieved"): 1, ("retrieved", "synthetic"): 2}


@pytest.mark.parametrize(
    ("choice", "expected"), [("bm25", {"bm25"}), ("dense", {"dense"}), ("both", {"bm25", "dense"})]
)
def test_retrieved_uses_the_chosen_retrievers(choice: str, expected: set[str]) -> None:
    instances, stats = mix(
        "retrieved", pools(5, bm25=4, dense=4, synthetic=4), num_negatives=4, retrieved_sources=choice
    )
    assert {n.source for i in instances for n in i.negatives} == expected
    assert all(len(i.negatives) == 4 for i in instances) and stats.filled == 0


def test_top_sampling_interleaves_bm25_and_dense_by_rank() -> None:
    instances, _ = mix("retrieved", pools(1, bm25=3, dense=3), num_negatives=4, sampling_strategy="top")
    assert sorted(n.id for n in instances[0].negatives) == ["q0-bm250", "q0-bm251", "q0-dense0", "q0-dense1"]


def test_direct_mixes_at_dataset_level() -> None:
    instances, stats = mix("direct", pools(10, bm25=5), pools(10, synthetic=5), num_negatives=3, ratio=0.7)
    kinds = [frozenset(sources(i)) for i in instances]
    # round(10 * 0.7 / 1.7) = round(4.12) = 4 instances get only synthetic negatives, the others only retrieved.
    assert kinds.count(frozenset({"synthetic"})) == 4 == stats.synthetic_only
    assert kinds.count(frozenset({"bm25"})) == 6
    assert all(len(i.negatives) == 3 for i in instances)
    assert stats.per_source == {"synthetic": 12, "bm25": 18}


def test_direct_fills_a_short_side_from_the_other_pool() -> None:
    instances, stats = mix("direct", pools(4, bm25=5), pools(4, synthetic=1), num_negatives=3, ratio=1.0)
    synthetic_side = [i for i in instances if any(n.source == "synthetic" for n in i.negatives)]
    assert len(synthetic_side) == 2
    assert all(sources(i) == {"synthetic": 1, "bm25": 2} for i in synthetic_side)
    assert stats.fills == {("synthetic", "retrieved"): 4}


def test_random_draws_corpus_documents_that_are_not_positives() -> None:
    dataset = load_beir(demo_path(), split="train")
    instances, stats = mix("random", dataset=dataset, num_negatives=5)
    assert len(instances) == len(list(dataset.pairs()))
    for instance in instances:
        ids = [n.id for n in instance.negatives]
        assert len(set(ids)) == 5
        assert not set(ids) & set(dataset.relevant(instance.query_id))
        assert all(
            n.source == "random" and n.text == dataset.corpus[n.id].full_text for n in instance.negatives
        )
    assert stats.per_source == {"random": 5 * len(instances)}


def test_random_needs_a_corpus() -> None:
    with pytest.raises(ValueError, match="corpus"):
        mix("random", pools(1, bm25=3))


def test_in_batch_has_no_hard_negatives() -> None:
    instances, stats = mix("in-batch", pools(3, bm25=3), pools(3, synthetic=3))
    assert [i.negatives for i in instances] == [[], [], []]
    assert stats.negatives == 0 and stats.short == 0


def test_same_seed_same_mix_other_seed_other_mix() -> None:
    def run(seed: int, order: slice = slice(None)) -> dict[str, list[str | None]]:
        retrieved, synthetic = pools(20, bm25=10, dense=10)[order], pools(20, synthetic=5)[order]
        instances, _ = mix("direct", retrieved, synthetic, num_negatives=4, seed=seed)
        return {i.query_id: [n.text for n in i.negatives] for i in instances}

    assert run(1) == run(1)
    assert run(1) != run(2)
    # Each pair draws from its own generator: the file's order does not matter.
    assert run(1, slice(None, None, -1)) == run(1)


def test_pools_never_yield_a_positive_or_a_repeated_document() -> None:
    instance = pool("q0", "d0", {"bm25": 2})
    instance.negatives += [
        Negative("positive of q0", "dense", id="other"),  # the positive's text under another id
        Negative("x", "dense", id="d0"),  # the positive's id
        Negative("bm25 text 0 for q0", "dense", id="q0-bm250"),  # found by both retrievers
    ]
    instances, stats = mix("retrieved", [instance], num_negatives=5)
    assert sorted(n.id for n in instances[0].negatives) == ["q0-bm250", "q0-bm251"]
    assert stats.short == 1


def test_demo_dataset_round_trip(tmp_path) -> None:
    dataset = load_beir(demo_path(), split="train")
    doc_ids = list(dataset.corpus)
    retrieved, synthetic = [], []
    for query_id, doc_id in dataset.pairs():
        others = [d for d in doc_ids if d not in dataset.relevant(query_id)][:4]
        negatives = [
            Negative(dataset.corpus[d].full_text, "bm25" if j % 2 else "dense", id=d, score=0.5)
            for j, d in enumerate(others)
        ]
        retrieved.append(
            TrainingInstance(
                query_id, dataset.queries[query_id], [doc_id], [dataset.corpus[doc_id].full_text], negatives
            )
        )
        synthetic.append(
            TrainingInstance(
                query_id,
                dataset.queries[query_id],
                [doc_id],
                [dataset.corpus[doc_id].full_text],
                [
                    Negative(
                        f"A plausible but wrong answer to: {dataset.queries[query_id]}",
                        "synthetic",
                        details={"domain": "Virology"},
                    )
                ],
            )
        )
    instances, stats = mix("hybrid", retrieved, synthetic, dataset, num_negatives=3, ratio=0.7)
    path = tmp_path / "hybrid.jsonl"
    write_training_set(path, instances)
    back = list(read_training_set(path))
    assert [sources(i)["synthetic"] for i in back] == [1] * len(retrieved)
    assert all(len(i.negatives) == 3 for i in back)
    synthetic_negative = next(n for n in back[0].negatives if n.source == "synthetic")
    assert synthetic_negative.details == {"domain": "Virology"}
    assert stats.instances == len(retrieved) and stats.filled == 0


def test_statistics_table_names_sources_and_fills() -> None:
    _, stats = mix("hybrid", pools(2, bm25=10), pools(2, synthetic=1), num_negatives=5, ratio=1.0)
    console = Console(width=120, record=True)
    console.print(stats.table())
    text = console.export_text()
    assert "hybrid, 2 instances x 5 negatives, R = 1" in text
    assert "of which filled: synthetic <- retrieved" in text and "realised R" in text


def test_unknown_options_are_rejected() -> None:
    with pytest.raises(ValueError, match="strategy"):
        mix("mixed")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="retrieved_sources"):
        mix("retrieved", retrieved_sources="ance")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ratio"):
        mix("hybrid", ratio=-1)


def test_cli_mix(tmp_path) -> None:
    from typer.testing import CliRunner

    from syneg.cli import app

    write_training_set(tmp_path / "mined.jsonl", pools(4, bm25=4, dense=4))
    write_training_set(tmp_path / "synth.jsonl", pools(4, synthetic=2))
    output = tmp_path / "mixed.jsonl"
    result = CliRunner().invoke(
        app,
        [
            "mix",
            "--retrieved",
            str(tmp_path / "mined.jsonl"),
            "--synthetic",
            str(tmp_path / "synth.jsonl"),
            "-o",
            str(output),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "synthetic" in result.output
    assert [sources(i)["synthetic"] for i in read_training_set(output)] == [1, 1, 1, 1]


def test_stats_defaults() -> None:
    stats = MixStats("hybrid", 3)
    assert stats.negatives == 0 and stats.synthetic_to_retrieved is None
