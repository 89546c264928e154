from __future__ import annotations

import json

import pytest

from syneg.data import DataError, Negative, TrainingInstance, read_training_set, write_training_set


def instance(scores=(0.4, 0.3)) -> TrainingInstance:
    return TrainingInstance(
        query_id="q1",
        query="what is x?",
        pos_ids=["d1"],
        pos=["x is y"],
        pos_scores=[0.9],
        negatives=[
            Negative(text="x is not z", source="bm25", id="d7", score=scores[0], scores={"bm25": 7.1, "dense": 0.4}),
            Negative(text="about x", source="synthetic", id="syn-1", score=scores[1], details={"rounds": 1}),
        ],
    )


def test_round_trip_keeps_provenance(tmp_path):
    path = tmp_path / "train.jsonl"
    assert write_training_set(path, [instance(), instance()]) == 2
    back = list(read_training_set(path))
    assert back[0] == instance()


def test_records_are_flagembedding_compatible(tmp_path):
    path = tmp_path / "train.jsonl"
    write_training_set(path, [instance()])
    record = json.loads(path.read_text())
    assert list(record)[:5] == ["query", "pos", "neg", "pos_scores", "neg_scores"]
    assert record["neg"] == ["x is not z", "about x"] and record["neg_scores"] == [0.4, 0.3]
    assert record["neg_sources"] == ["bm25", "synthetic"] and record["neg_ids"] == ["d7", "syn-1"]


def test_neg_scores_written_only_when_all_known(tmp_path):
    path = tmp_path / "train.jsonl"
    write_training_set(path, [instance(scores=(0.4, None))])
    assert "neg_scores" not in json.loads(path.read_text())


def test_append_mode_writes_incrementally(tmp_path):
    path = tmp_path / "train.jsonl"
    write_training_set(path, [instance()])
    write_training_set(path, [instance()], append=True)
    assert len(list(read_training_set(path))) == 2


def test_reads_plain_flagembedding_records(tmp_path):
    path = tmp_path / "fe.jsonl"
    path.write_text(json.dumps({"query": "q", "pos": ["p"], "neg": ["n1", "n2"]}) + "\n")
    (read,) = read_training_set(path)
    assert [n.text for n in read.negatives] == ["n1", "n2"] and read.negatives[0].source == "random"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r"bad\.jsonl:2: invalid JSON"),
        (json.dumps({"pos": ["p"]}), r"bad\.jsonl:2: missing field 'query'"),
        (json.dumps({"query": "q", "pos": ["p"], "neg": ["n"], "neg_sources": ["web"]}), "unknown negative source 'web'"),
        (json.dumps({"query": "q", "pos": ["p"], "neg": ["n"], "neg_scores": [1, 2]}), "one entry per negative"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"query": "q", "pos": ["p"], "neg": []}) + "\n" + line + "\n")
    with pytest.raises(DataError, match=message):
        list(read_training_set(path))


def test_a_line_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"query": "q", "pos": ["p"]}\n{"query": "caf\xe9", "pos": ["p"]}\n')  # Latin-1, not UTF-8
    with pytest.raises(DataError, match=r"bad\.jsonl:2: not UTF-8 text"):
        list(read_training_set(path))
