from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from syneg.data import DataError, demo_path, load_beir


def write_beir(folder: Path, corpus: list, queries: list, qrels: str, split: str = "test") -> Path:
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in corpus) + "\n")
    (folder / "queries.jsonl").write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in queries) + "\n")
    (folder / "qrels" / f"{split}.tsv").write_text(qrels)
    return folder


DOCS = [{"_id": "d1", "title": "T1", "text": "one"}, {"_id": "d2", "title": "", "text": "two"}]
QUERIES = [{"_id": "q1", "text": "first?"}, {"_id": "q2", "text": "second?"}]
QRELS = "query-id\tcorpus-id\tscore\nq1\td1\t1\r\nq2\td2\t2\r\n"


def test_demo_dataset_is_consistent():
    train, test = load_beir(demo_path(), "train"), load_beir(demo_path(), "test")
    assert len(train.corpus) >= 200 and len(train.queries) >= 20 and len(test.queries) >= 10
    assert not set(train.queries) & set(test.queries)
    for data in (train, test):
        for query_id, doc_id in data.pairs():
            assert query_id in data.queries and doc_id in data.corpus


def test_loads_a_valid_folder_with_crlf_qrels_and_header(tmp_path):
    data = load_beir(write_beir(tmp_path, DOCS, QUERIES, QRELS), "test")
    assert data.qrels == {"q1": {"d1": 1}, "q2": {"d2": 2}}
    assert data.corpus["d1"].full_text == "T1 one" and data.corpus["d2"].full_text == "two"
    assert list(data.pairs()) == [("q1", "d1"), ("q2", "d2")]


def test_split_keeps_only_judged_queries(tmp_path):
    data = load_beir(write_beir(tmp_path, DOCS, QUERIES, "q1\td1\t1\n"), "test")
    assert list(data.queries) == ["q1"]


def test_trec_style_four_column_qrels(tmp_path):
    data = load_beir(write_beir(tmp_path, DOCS, QUERIES, "q1 0 d1 1\n".replace(" ", "\t")), "test")
    assert data.qrels == {"q1": {"d1": 1}}


def test_bad_json_names_file_and_line(tmp_path):
    write_beir(tmp_path, [json.dumps(DOCS[0]), '{"_id": "d2", "text": '], QUERIES, QRELS)
    with pytest.raises(DataError, match=r"corpus\.jsonl:2: invalid JSON"):
        load_beir(tmp_path, "test")


def test_missing_field_names_file_and_line(tmp_path):
    write_beir(tmp_path, DOCS, [QUERIES[0], {"_id": "q2"}], QRELS)
    with pytest.raises(DataError, match=r"queries\.jsonl:2: missing field 'text'"):
        load_beir(tmp_path, "test")


def test_duplicate_ids_name_both_lines(tmp_path):
    write_beir(tmp_path, [DOCS[0], DOCS[1], DOCS[0]], QUERIES, QRELS)
    with pytest.raises(DataError, match=r"corpus\.jsonl:3: duplicate document id 'd1' \(first at line 1\)"):
        load_beir(tmp_path, "test")


def test_empty_texts_are_skipped_with_one_warning(tmp_path, caplog):
    docs = [*DOCS, {"_id": "d3", "title": "", "text": "  "}, {"_id": "d4", "text": ""}]
    with caplog.at_level(logging.WARNING):
        data = load_beir(write_beir(tmp_path, docs, QUERIES, QRELS), "test")
    assert set(data.corpus) == {"d1", "d2"}
    assert "Skipped 2 documents with empty title and text" in caplog.text and "line 3" in caplog.text


def test_qrels_naming_unknown_ids_warn_with_a_count(tmp_path, caplog):
    qrels = QRELS + "q1\tmissing-doc\t1\nq9\td1\t1\nq9\td2\t1\n"
    with caplog.at_level(logging.WARNING):
        data = load_beir(write_beir(tmp_path, DOCS, QUERIES, qrels), "test")
    assert data.qrels == {"q1": {"d1": 1}, "q2": {"d2": 2}}
    assert "Skipped 2 qrels rows naming a query missing" in caplog.text and "line 5" in caplog.text
    assert "Skipped 1 qrels rows naming a document missing" in caplog.text


def test_qrels_matching_nothing_is_an_error(tmp_path):
    write_beir(tmp_path, DOCS, QUERIES, "x1\ty1\t1\nx2\ty2\t1\n")
    with pytest.raises(DataError, match="none of its 2 rows"):
        load_beir(tmp_path, "test")


def test_malformed_qrels_rows(tmp_path):
    write_beir(tmp_path, DOCS, QUERIES, QRELS + "q1\td2\n")
    with pytest.raises(DataError, match=r"test\.tsv:4: expected 3 tab-separated columns"):
        load_beir(tmp_path, "test")
    write_beir(tmp_path, DOCS, QUERIES, QRELS + "q1\td2\thigh\n")
    with pytest.raises(DataError, match=r"test\.tsv:4: score 'high' is not a number"):
        load_beir(tmp_path, "test")


def test_missing_split_lists_the_available_ones(tmp_path):
    write_beir(tmp_path, DOCS, QUERIES, QRELS, split="dev")
    with pytest.raises(DataError, match=r"no such split 'test' \(splits found: dev\)"):
        load_beir(tmp_path, "test")


def test_not_a_folder():
    with pytest.raises(DataError, match="not a folder"):
        load_beir("/nonexistent/beir", "test")


def test_real_scifact(scifact_path):
    train, test = load_beir(scifact_path, "train"), load_beir(scifact_path, "test")
    assert len(train.corpus) == 5183
    assert (len(train.queries), sum(map(len, train.qrels.values()))) == (809, 919)
    assert (len(test.queries), sum(map(len, test.qrels.values()))) == (300, 339)
