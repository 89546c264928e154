from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from sentence_transformers import SentenceTransformer

from syneg.data import Negative, TrainingInstance, demo_path, load_beir, write_training_set
from syneg.mixing import mix
from syneg.retrieval.encoder import resolve_model
from syneg.training import build_loss, temperature_to_scale, to_dataset, train, write_model_card


@pytest.fixture(scope="session")
def model() -> SentenceTransformer:
    model = SentenceTransformer(resolve_model("default"), local_files_only=True)
    model.max_seq_length = 64  # keeps every step a few seconds on a shared CPU
    return model


@pytest.fixture(scope="session")
def hybrid_set() -> list[TrainingInstance]:
    """Demo pairs with a hand-made synthetic negative and two retrieved ones (other demo passages)."""
    dataset = load_beir(demo_path(), split="train")
    doc_ids = list(dataset.corpus)
    retrieved, synthetic = [], []
    for n, (query_id, doc_id) in enumerate(dataset.pairs()):
        base = TrainingInstance(
            query_id, dataset.queries[query_id], [doc_id], [dataset.corpus[doc_id].full_text]
        )
        others = [d for d in doc_ids[n * 3 : n * 3 + 6] if d not in dataset.relevant(query_id)]
        retrieved.append(
            replace(base, negatives=[Negative(dataset.corpus[d].full_text, "bm25", id=d) for d in others])
        )
        text = f"{dataset.queries[query_id]} Experts disagree and no study has answered this question yet."
        synthetic.append(replace(base, negatives=[Negative(text, "synthetic")]))
    instances, _ = mix("hybrid", retrieved, synthetic, dataset, num_negatives=3, ratio=0.7)
    return instances


def test_temperature_is_the_inverse_of_the_scale() -> None:
    assert temperature_to_scale(0.02) == pytest.approx(50.0)
    assert temperature_to_scale(0.05) == pytest.approx(20.0)  # sentence-transformers' default scale
    with pytest.raises(ValueError):
        temperature_to_scale(0)


def test_build_loss(model: SentenceTransformer) -> None:
    from sentence_transformers.sentence_transformer.losses import (
        CachedGISTEmbedLoss,
        MultipleNegativesRankingLoss,
    )

    infonce = build_loss(model, temperature=0.02)
    assert isinstance(infonce, MultipleNegativesRankingLoss) and infonce.scale == pytest.approx(50.0)
    gist = build_loss(model, "gist", temperature=0.01)
    assert isinstance(gist, CachedGISTEmbedLoss) and gist.temperature == 0.01
    assert gist.guide is not model and not any(p.requires_grad for p in gist.guide.parameters())
    assert not gist.contrast_anchors and not gist.contrast_positives
    with pytest.raises(ValueError, match="loss"):
        build_loss(model, "triplet")  # type: ignore[arg-type]


def test_to_dataset_aligns_negatives_and_counts_sources() -> None:
    def instance(query_id: str, positives: int, sources: list[str]) -> TrainingInstance:
        negatives = [
            Negative(f"{query_id} neg {i}", s, details={"filled_for": "synthetic"} if s == "random" else {})
            for i, s in enumerate(sources)
        ]
        return TrainingInstance(
            query_id,
            f"q {query_id}",
            [f"{query_id}-{p}" for p in range(positives)],
            [f"{query_id} pos {p}" for p in range(positives)],
            negatives,
        )

    instances = [instance("a", 2, ["synthetic", "bm25", "random"]), instance("b", 1, ["dense", "synthetic"])]
    data = to_dataset(instances)
    assert data.dataset.column_names == ["anchor", "positive", "negative_1", "negative_2"]
    assert data.rows == 3 and data.instances == 2  # one row per positive
    assert data.cut_negatives == 2 and data.dropped_rows == 0
    assert data.source_counts == {"synthetic": 3, "bm25": 2, "dense": 1}
    assert data.source_shares()["synthetic"] == pytest.approx(0.5)

    fixed = to_dataset(instances, num_negatives=3)
    assert fixed.rows == 2 and fixed.dropped_rows == 1 and fixed.filled == 2

    pairs = to_dataset(instances, num_negatives=0)
    assert pairs.dataset.column_names == ["anchor", "positive"] and not pairs.source_counts


@pytest.mark.slow
def test_a_few_steps_lower_the_loss_with_hard_negatives(model: SentenceTransformer) -> None:
    import copy

    import torch

    dataset = load_beir(demo_path(), split="train")
    doc_ids = list(dataset.corpus)
    instances = []
    for query_id, doc_id in list(dataset.pairs())[:12]:
        # The demo corpus is grouped by topic, so a positive's neighbours are on the same topic: hard negatives.
        at = doc_ids.index(doc_id)
        hard = [d for d in doc_ids[max(at - 2, 0) : at + 3] if d not in dataset.relevant(query_id)][:2]
        negatives = [Negative(dataset.corpus[d].full_text, "dense", id=d) for d in hard]
        instances.append(
            TrainingInstance(
                query_id, dataset.queries[query_id], [doc_id], [dataset.corpus[doc_id].full_text], negatives
            )
        )
    columns = to_dataset(instances).dataset
    assert columns.column_names == ["anchor", "positive", "negative_1", "negative_2"]

    student = copy.deepcopy(model)
    student.max_seq_length = 32
    loss = build_loss(student, temperature=0.02)
    features = [student.preprocess(columns[name]) for name in columns.column_names]
    optimizer = torch.optim.AdamW(student.parameters(), lr=5e-5)
    student.train()
    losses = []
    for _ in range(4):
        value = loss(features, labels=None)
        losses.append(value.item())
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
    with torch.no_grad():
        losses.append(loss(features, labels=None).item())
    assert losses[-1] < 0.9 * losses[0], losses


@pytest.mark.slow
def test_train_saves_a_loadable_model_with_its_card_and_resumes(
    tmp_path: Path, hybrid_set: list[TrainingInstance]
) -> None:
    from typer.testing import CliRunner

    from syneg.cli import app

    training_set = tmp_path / "hybrid.jsonl"
    write_training_set(training_set, hybrid_set[:8])
    output = tmp_path / "model"
    options = [
        "--batch-size",
        "4",
        "--max-seq-length",
        "32",
        "--save-steps",
        "1",
        "--temperature",
        "0.02",
        "--seed",
        "3",
        "--query-prompt",
        "query: ",
    ]
    result = CliRunner().invoke(
        app, ["train", str(training_set), "-o", str(output), "--max-steps", "2", *options]
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (output / "checkpoints").iterdir()) == ["checkpoint-1", "checkpoint-2"]

    info = json.loads((output / "syneg_training.json").read_text())
    assert info["source_counts"] == {"synthetic": 8, "bm25": 16}
    assert info["temperature"] == 0.02 and info["hyperparameters"]["steps_trained"] == 2
    assert info["hyperparameters"]["prompts"] == {"anchor": "query: "}
    card = (output / "README.md").read_text()
    assert "| synthetic | 8 | 33.3% |" in card and "| bm25 | 16 | 66.7% |" in card
    assert "temperature τ = 0.02 (scale 50)" in card and str(training_set) in card

    loaded = SentenceTransformer(str(output), local_files_only=True)
    assert loaded.encode(["how do mRNA vaccines work?"]).shape == (1, 384)

    resumed = train(
        training_set,
        output,
        max_steps=3,
        batch_size=4,
        max_seq_length=32,
        save_steps=1,
        seed=3,
        resume_from_checkpoint=True,
    )
    assert resumed.global_step == 3

    write_model_card(output, evaluation={"ndcg@10": 0.5})
    write_model_card(output, evaluation={"recall@100": 0.9})
    card = (output / "README.md").read_text()
    assert card.count("<!-- syneg:begin -->") == 1
    assert "| ndcg@10 | 0.5000 |" in card and "| recall@100 | 0.9000 |" in card


@pytest.mark.slow
def test_bf16_training_smoke_on_real_minilm(tmp_path: Path, hybrid_set: list[TrainingInstance]) -> None:
    """A couple of steps of the real model under bf16 autocast, chosen by ``precision="auto"`` where the CPU
    runs bf16 natively: the loss stays that of fp32, the saved weights stay fp32, the card says why bf16."""
    from syneg.system import training_precision

    if training_precision("auto").precision != "bf16":
        pytest.skip(f"auto trains in {training_precision('auto').precision} here: {training_precision('auto').reason}")
    training_set = tmp_path / "hybrid.jsonl"
    write_training_set(training_set, hybrid_set[:8])
    options = {"max_steps": 2, "batch_size": 4, "max_seq_length": 32, "save_steps": 10, "seed": 3, "show_progress": False}
    bf16 = train(training_set, tmp_path / "bf16", **options)
    fp32 = train(training_set, tmp_path / "fp32", precision="fp32", **options)
    assert bf16.precision.precision == "bf16" and bf16.precision.reason.startswith("auto: ")
    assert fp32.precision.precision == "fp32" and bf16.global_step == fp32.global_step == 2
    assert bf16.training_loss == pytest.approx(fp32.training_loss, rel=0.05, abs=0.02)
    loaded = SentenceTransformer(str(tmp_path / "bf16"), local_files_only=True)
    assert {str(p.dtype) for p in loaded.parameters()} == {"torch.float32"}
    info = json.loads((tmp_path / "bf16" / "syneg_training.json").read_text())
    assert info["precision"]["precision"] == "bf16"
    assert "- Precision: bf16 autocast (fp32 weights) on cpu; auto: " in (tmp_path / "bf16" / "README.md").read_text()


def test_a_checkpoint_is_also_written_after_a_set_training_time(
    tmp_path: Path, hybrid_set: list[TrainingInstance], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Steps of minutes and save_steps above the run's steps would leave no checkpoint to resume from: one is
    written when CHECKPOINT_MINUTES of training have passed since the last (here 0: after every step)."""
    from syneg.training import progress

    training_set = tmp_path / "hybrid.jsonl"
    write_training_set(training_set, hybrid_set[:8])
    options = {"batch_size": 4, "max_seq_length": 32, "save_steps": 50, "seed": 3, "show_progress": False}
    train(training_set, tmp_path / "untimed", max_steps=2, **options)
    # the trainer's own: the last step only
    assert [p.name for p in (tmp_path / "untimed" / "checkpoints").glob("checkpoint-*")] == ["checkpoint-2"]
    monkeypatch.setattr(progress, "CHECKPOINT_MINUTES", 0.0)
    train(training_set, tmp_path / "timed", max_steps=2, **options)
    assert sorted(p.name for p in (tmp_path / "timed" / "checkpoints").glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
