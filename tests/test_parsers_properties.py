"""Property-based tests of every parser of syneg's inputs (issue 21, part 3).

Each parser is fed generated input, well-formed and not: BEIR corpus, queries and qrels, the
training-set jsonl, LLM answers (as text, and as HTTP bodies of an OpenAI-compatible endpoint), the
pipeline config and attribute files. Every input either loads, with the values it holds (never a
silently changed one), or raises syneg's own error (a DataError or LLMError, which the CLI maps to one
line and exit code 2) naming the file and line or the config key; never another exception.
``tests/conftest.py`` prints how many examples each parser was given.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import string
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from syneg.data import DataError, TrainingInstance, load_corpus, load_qrels, load_queries, read_training_set
from syneg.data.training_set import NEGATIVE_SOURCES, Negative
from syneg.llm import ChatRequest, Completion, LLMClient, LLMError, OpenAICompatibleBackend, parse_json_answer
from syneg.pipeline import RunConfig
from syneg.synth.attributes import AttributeSet, DomainsAnswer
from syneg.synth.revision import CritiqueAnswer
from syneg.synth.writing import NegativeAnswer, PlainNegativeAnswer, Reflection

EXAMPLES = int(os.environ.get("SYNEG_HYPOTHESIS_EXAMPLES", 500))
PROPERTY = settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                                  HealthCheck.too_slow, HealthCheck.data_too_large])

# JSON values of every kind, small, with unicode and the numbers JSON allows.
scalars = st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                           max_leaves=8)
identifiers = st.text(string.ascii_letters + string.digits + "-_é", min_size=1, max_size=8)
texts = st.text(max_size=40)


@pytest.fixture(scope="module")
def api_key_set() -> Any:
    patcher = pytest.MonkeyPatch()
    patcher.setenv("SYNEG_TEST_KEY", "sk-test")
    yield
    patcher.undo()


def own_error_names(error: Exception, path: Path) -> None:
    """syneg's error, naming the file: ``PATH: ...`` or ``PATH:LINE: ...``."""
    assert isinstance(error, DataError), f"{type(error).__name__}: {error}"
    assert str(error).startswith(str(path)), str(error)


def write_lines(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def count(examples: dict[str, int], parser: str) -> None:
    examples[parser] = examples.get(parser, 0) + 1


# --- BEIR ----------------------------------------------------------------------------------------------

good_records = st.fixed_dictionaries(
    {"_id": identifiers | st.integers(0, 10**6), "text": texts},
    optional={"title": texts | st.none(), "metadata": json_values},
)
beir_lines = st.lists(
    good_records.map(lambda r: json.dumps(r, ensure_ascii=False).encode())
    | st.dictionaries(st.sampled_from(["_id", "text", "title"]), json_values, max_size=3).map(lambda r: json.dumps(r).encode())
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.binary(max_size=30).filter(lambda b: b"\n" not in b and b"\r" not in b),
    max_size=8,
)


@PROPERTY
@given(lines=beir_lines)
@example(lines=[b'{"_id": "0", "text": "0"}', b"\x1c"])  # found by CI: a separator control character alone is a blank line
def test_corpus_loads_or_names_the_line(tmp_path: Path, lines: list[bytes], examples: dict[str, int]) -> None:
    count(examples, "BEIR corpus.jsonl")
    path = tmp_path / "corpus.jsonl"
    write_lines(path, lines)
    try:
        corpus = load_corpus(path)
    except Exception as error:  # noqa: BLE001 - the property is about which exceptions
        own_error_names(error, path)
        return
    # decoded before the blank test: a line of Unicode whitespace only (b"\x1c", U+2028) is blank to the loader
    decoded = [line.decode("utf-8", "replace") for line in lines]  # bytes not UTF-8: U+FFFD
    records = [json.loads(text) for text in decoded if text.strip()]
    expected = {str(r["_id"]): r for r in records if (r.get("text") or "").strip() or (r.get("title") or "").strip()}
    assert list(corpus) == list(expected)
    for doc_id, document in corpus.items():
        record = expected[doc_id]
        assert (document.text, document.title) == (record["text"] or "", record.get("title") or "")


@PROPERTY
@given(lines=beir_lines)
def test_queries_load_or_name_the_line(tmp_path: Path, lines: list[bytes], examples: dict[str, int]) -> None:
    count(examples, "BEIR queries.jsonl")
    path = tmp_path / "queries.jsonl"
    write_lines(path, lines)
    try:
        queries = load_queries(path)
    except Exception as error:  # noqa: BLE001
        own_error_names(error, path)
        return
    decoded = [line.decode("utf-8", "replace") for line in lines]
    records = [json.loads(text) for text in decoded if text.strip()]
    assert queries == {str(r["_id"]): r["text"] for r in records if (r["text"] or "").strip()}


qrels_cells = identifiers | st.sampled_from(["", " ", "0", "1", "2", "-1", "1.0", "0.5", "nan", "inf", "1e400", "score"]) | st.text(max_size=6)
qrels_lines = st.lists(
    st.lists(qrels_cells, min_size=1, max_size=5).map(lambda cells: "\t".join(cells).encode("utf-8"))
    | st.tuples(identifiers, identifiers, st.integers(-2, 3)).map(lambda row: "\t".join(map(str, row)).encode())
    | st.binary(max_size=20).filter(lambda b: b"\n" not in b and b"\r" not in b),
    max_size=8,
)


@PROPERTY
@given(lines=qrels_lines)
def test_qrels_load_or_name_the_line(tmp_path: Path, lines: list[bytes], examples: dict[str, int]) -> None:
    count(examples, "BEIR qrels tsv")
    path = tmp_path / "test.tsv"
    write_lines(path, lines)
    try:
        qrels = load_qrels(path)
    except Exception as error:  # noqa: BLE001
        own_error_names(error, path)
        return
    seen: dict[tuple[str, str], int] = {}
    for number, raw in enumerate(path.read_bytes().split(b"\n"), start=1):  # lines end at \n alone, as files are read
        line = raw.decode("utf-8").rstrip("\r")
        if not line.strip():
            continue
        columns = line.split("\t")
        columns = [columns[0], columns[2], columns[3]] if len(columns) == 4 else columns
        query_id, doc_id, score = (c.strip() for c in columns)
        if number == 1 and not re.fullmatch(r"\s*[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?\s*", score, re.I) and score.lower() not in ("nan", "inf", "-inf", "+inf", "infinity"):
            continue  # a header
        seen[(query_id, doc_id)] = int(float(score))
    assert {(q, d): s for q, grades in qrels.items() for d, s in grades.items()} == seen


# --- training-set jsonl ------------------------------------------------------------------------------

numbers = st.floats(allow_nan=False, allow_infinity=False, width=32) | st.integers(-100, 100)
negatives = st.builds(
    Negative,
    text=texts,
    source=st.sampled_from(NEGATIVE_SOURCES),
    id=identifiers | st.none(),
    score=numbers | st.none(),
    scores=st.dictionaries(identifiers, numbers, max_size=2),
    details=st.dictionaries(identifiers, json_values, max_size=2),
)
instances = st.integers(1, 3).flatmap(lambda n: st.builds(
    TrainingInstance,
    query_id=identifiers,
    query=texts,
    pos_ids=st.lists(identifiers, min_size=n, max_size=n),
    pos=st.lists(texts, min_size=n, max_size=n),
    negatives=st.lists(negatives, max_size=4),
    pos_scores=st.none() | st.lists(numbers, min_size=n, max_size=n),
))
training_fields = ["query", "pos", "neg", "pos_scores", "neg_scores", "query_id", "pos_ids", "neg_ids", "neg_sources",
                   "neg_all_scores", "neg_details"]


@PROPERTY
@given(instance=instances, field=st.sampled_from(training_fields), value=json_values, mutate=st.booleans(),
       cut=st.integers(0, 400))
def test_training_set_round_trips_or_names_the_line(tmp_path: Path, instance: TrainingInstance, field: str, value: Any,
                                                    mutate: bool, cut: int, examples: dict[str, int]) -> None:
    count(examples, "training-set jsonl")
    record = instance.to_record()
    if mutate:
        record[field] = value
    line = json.dumps(record, ensure_ascii=False)
    path = tmp_path / "train.jsonl"
    truncated = mutate and 0 < cut < len(line) and field == "query"  # a torn line, on some examples
    path.write_text(line[:cut] + "\n" if truncated else line + "\n", encoding="utf-8")
    try:
        [read] = read_training_set(path)
    except Exception as error:  # noqa: BLE001
        own_error_names(error, path)
        assert str(error).startswith(f"{path}:1:"), str(error)
        return
    if not mutate:
        if any(n.score is None for n in instance.negatives):
            # by design: FlagEmbedding reads one float per negative, so neg_scores is written only when all are known
            instance.negatives = [Negative(n.text, n.source, n.id, None, n.scores, n.details) for n in instance.negatives]
        assert read == instance
    assert isinstance(read.query, str) and all(isinstance(t, str) for t in read.pos + [n.text for n in read.negatives])
    assert all(isinstance(i, str) for i in read.pos_ids) and len(read.pos_ids) == len(read.pos)
    assert all(n.score is None or (isinstance(n.score, (int, float)) and not isinstance(n.score, bool)) for n in read.negatives)


# --- LLM answers -------------------------------------------------------------------------------------

ANSWER_TYPES: list[type[BaseModel]] = [NegativeAnswer, PlainNegativeAnswer, Reflection, CritiqueAnswer, DomainsAnswer]


def answer_texts(answer_type: type[BaseModel]) -> st.SearchStrategy[str]:
    fields = list(answer_type.model_fields)
    objects = st.dictionaries(st.sampled_from(fields) | st.text(max_size=8), json_values | st.text(max_size=2000), max_size=6)
    as_json = objects.map(lambda o: json.dumps(o, ensure_ascii=False))
    return st.one_of(
        st.text(max_size=300),
        as_json,
        st.tuples(as_json, st.integers(0, 200)).map(lambda t: t[0][: t[1]]),  # truncated JSON
        as_json.map(lambda j: f"Sure! Here it is:\n```json\n{j}\n```"),
        st.lists(st.tuples(st.sampled_from(fields), st.text(max_size=40)), max_size=4).map(
            lambda lines: "\n".join(f"{name.title()}: {value}" for name, value in lines)),
        st.sampled_from(["", " ", "\n\n", "{", "}", "{}", "null", "[]", '"x"', "{" * 5000 + "}" * 5000,
                         '{"a": ' + "[" * 100000 + "]" * 100000 + "}", "negative" + " " * 200000 + "x",
                         "```" + " " * 100000 + "x", "\u202e{\"negative\": \"\u0000\ud7ff\"}"]),
    )


class TextBackend:
    """A backend answering every request with one given text."""

    name, model = "fixed", "fixed"

    def __init__(self, text: str) -> None:
        self.text = text

    async def complete(self, request: ChatRequest) -> Completion:
        return Completion(self.text)

    async def aclose(self) -> None:
        pass


@PROPERTY
@given(data=st.data(), answer_type=st.sampled_from(ANSWER_TYPES))
def test_llm_answers_validate_or_fail_as_llm_errors(data: st.DataObject, answer_type: type[BaseModel],
                                                    examples: dict[str, int]) -> None:
    count(examples, "LLM answer (parse_json_answer + answer types)")
    text = data.draw(answer_texts(answer_type))
    client = LLMClient(TextBackend(text), None, max_attempts=1)
    try:
        answer, _ = asyncio.run(client.generate(ChatRequest.chat(None, "q"), answer_type))
    except LLMError:
        assert client.stats.failures
        return
    assert isinstance(answer, answer_type)
    for name, field in answer_type.model_fields.items():
        value = getattr(answer, name)
        assert isinstance(value, field.annotation if isinstance(field.annotation, type) else list), (name, value)
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        return
    text_fields = [n for n, field in answer_type.model_fields.items() if field.annotation is str and n in parsed] \
        if isinstance(parsed, dict) else []
    if text_fields and all(isinstance(parsed[n], str) for n in text_fields):
        # the text fields of a well-formed JSON answer are taken as written (pydantic may coerce the others:
        # "0" is False for a bool, as CI's 5,000-example run drew)
        assert {n: getattr(answer, n) for n in text_fields} == {n: parsed[n] for n in text_fields}


@PROPERTY
@given(text=st.text(max_size=500) | st.binary(max_size=50).map(lambda b: b.decode("latin-1")))
def test_parse_json_answer_returns_a_dict_or_an_llm_error(text: str, examples: dict[str, int]) -> None:
    count(examples, "parse_json_answer (free text)")
    try:
        value = parse_json_answer(text, ["negative", "reasoning"])
    except LLMError as error:
        assert error.kind in ("empty", "invalid_json")
        return
    assert isinstance(value, dict)


class CannedBackend(OpenAICompatibleBackend):
    """The OpenAI-compatible backend over an in-memory transport answering one given HTTP response."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__("http://endpoint/v1", "m", api_key_env="SYNEG_TEST_KEY", max_retries=0)
        self.response = (status, body)

    @property
    def client(self) -> httpx.AsyncClient:
        status, body = self.response
        return httpx.AsyncClient(transport=httpx.MockTransport(lambda request: httpx.Response(status, content=body)))


chat_bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"choices": st.lists(st.fixed_dictionaries({"message": st.dictionaries(
        st.sampled_from(["content", "role"]), json_values, max_size=2)}, optional={"finish_reason": json_values}), max_size=2)},
        optional={"usage": json_values | st.dictionaries(st.sampled_from(["prompt_tokens", "completion_tokens"]), json_values)},
    ).map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=40),
)


@PROPERTY
@given(status=st.sampled_from([200, 200, 200, 400, 401, 404]), body=chat_bodies)
def test_chat_completion_bodies_parse_or_fail_as_llm_errors(status: int, body: bytes, examples: dict[str, int],
                                                            api_key_set: None) -> None:
    count(examples, "OpenAI-compatible HTTP body")
    backend = CannedBackend(status, body)
    try:
        completion = asyncio.run(backend.complete(ChatRequest.chat(None, "q")))
    except LLMError as error:
        assert error.kind in ("http_4xx", "invalid_response")
        return
    assert isinstance(completion.text, str)
    assert isinstance(completion.prompt_tokens, int) and isinstance(completion.completion_tokens, int)
    assert completion.finish_reason is None or isinstance(completion.finish_reason, str)


# --- pipeline config and attribute files -------------------------------------------------------------

NUMBER_KEYS = ["train_queries", "validation_queries", "positives_per_query", "split_seed"]
yaml_values = json_values | st.sampled_from([".inf", "-.inf", ".nan", "yes", "no", "on", "1e3", "0x1F", "~"])
config_sections = {
    "mine": ["retriever", "num_negatives", "relative_margin", "sampling_strategy", "range_max", "retriver"],
    "synthesize": ["attributes", "negatives_per_pair", "max_rounds", "checks", "temperature", "backend"],
    "mix": ["num_negatives", "ratio", "retrieved_sources"],
    "train": ["temperature", "batch_size", "epochs", "precision"],
    "evaluate": ["split", "metrics", "bm25"],
}
configs = st.fixed_dictionaries(
    {"data": st.just("demo") | json_values},
    optional={
        **{key: json_values | st.integers(-3, 300) for key in NUMBER_KEYS},
        "seeds": st.lists(st.integers(0, 9) | st.booleans() | json_values, max_size=3),
        **{section: st.dictionaries(st.sampled_from(keys), yaml_values | st.integers(-1, 60) | st.floats(-1, 2), max_size=3)
           for section, keys in config_sections.items()},
        "arms": st.lists(st.fixed_dictionaries({"name": identifiers | json_values, "strategy": st.sampled_from(
            ["hybrid", "retrieved", "zero-shot", "synthetic", "Hybrid"])}, optional={"ratio": yaml_values | st.floats(-1, 3)}),
            max_size=3),
        "unknown_key": json_values,
    },
)


def yaml_text(config: dict[str, Any]) -> str:
    """YAML with the special spellings (``.inf``, ``yes``) written bare, as a user would."""
    text = yaml.safe_dump(config, allow_unicode=True)
    return re.sub(r"'(\.inf|-\.inf|\.nan|yes|no|on|1e3|0x1F|~)'", r"\1", text)


@PROPERTY
@given(config=configs, raw=st.none() | st.binary(max_size=60))
def test_config_loads_or_names_the_key(tmp_path: Path, config: dict[str, Any], raw: bytes | None,
                                       examples: dict[str, int]) -> None:
    count(examples, "pipeline config (YAML)")
    path = tmp_path / "config.yaml"
    path.write_bytes(raw if raw is not None else yaml_text(config).encode())
    try:
        loaded = RunConfig.load(path)
    except Exception as error:  # noqa: BLE001
        own_error_names(error, path)
        if raw is None and "YAML" not in str(error):
            # a validation error names each key at fault: "path: key: message" or "path: section.key: message"
            assert re.match(rf"{re.escape(str(path))}: [\w.()]+: ", str(error)), str(error)
        return
    written = yaml.safe_load(path.read_bytes())
    for key in NUMBER_KEYS:
        if key in written:
            assert getattr(loaded, key) == written[key] and not isinstance(written[key], bool)
    for section in config_sections:
        for key, value in (written.get(section) or {}).items():
            loaded_value = getattr(getattr(loaded, section), key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                assert loaded_value == value and loaded_value == loaded_value  # finite, as written
            if isinstance(value, bool) and isinstance(loaded_value, (int, float)) and not isinstance(loaded_value, bool):
                pytest.fail(f"{section}.{key}: the boolean {value} was taken as the number {loaded_value}")


attribute_lists = st.lists(st.text(max_size=10) | json_values, max_size=3) | json_values
attribute_files = st.dictionaries(
    st.sampled_from(["domain", "difficulty", "length", "extra", "lenght", "domains"]),
    attribute_lists | st.dictionaries(identifiers | st.sampled_from(["domain", ""]), attribute_lists, max_size=2),
    max_size=4,
)


@PROPERTY
@given(data=attribute_files, raw=st.none() | st.binary(max_size=40))
def test_attribute_files_load_or_name_the_key(tmp_path: Path, data: dict[str, Any], raw: bytes | None,
                                              examples: dict[str, int]) -> None:
    count(examples, "attribute file (YAML)")
    path = tmp_path / "attributes.yaml"
    path.write_bytes(raw if raw is not None else yaml.safe_dump(data, allow_unicode=True).encode())
    try:
        attributes = AttributeSet.load(path)
    except Exception as error:  # noqa: BLE001
        own_error_names(error, path)
        return
    written = yaml.safe_load(path.read_bytes())
    assert set(written) <= {"domain", "difficulty", "length", "extra"}
    assert attributes.domain == written["domain"]
    for key in ("difficulty", "length"):
        if written.get(key):
            assert getattr(attributes, key) == written[key]
    assert attributes.extra == (written.get("extra") or {})
    for values in attributes.values().values():
        assert values and all(isinstance(v, str) and v.strip() for v in values)


# --- the defects these properties found, one input each ----------------------------------------------

DEFECTS = [
    ("qrels", b"q1\td1\t1e400\n", "not an integer grade"),  # was OverflowError
    ("qrels", b"q1\td1\t1\nq\xff\td\t1\n", ":2: not UTF-8"),  # was UnicodeDecodeError
    ("qrels", b"q1\td1\t0.5\n", "not an integer grade"),  # was silently grade 0: relevant turned non-relevant
    ("qrels", b"q1\td1\tnan\n", "not an integer grade"),  # was silently taken for a header
    ("corpus", b'{"_id": true, "text": "a"}\n', "'_id'"),  # was the id "True"
    ("corpus", b'{"_id": 1.5, "text": "a"}\n', "'_id'"),  # was the id "1.5"
    ("corpus", b'{"_id": "1", "text": "a", "title": 0}\n', "'title'"),  # was silently no title
    ("corpus", b'{"_id": "1", "text": ' + b"[" * 100000 + b"]" * 100000 + b"}\n", ":1: JSON nested too deeply"),  # RecursionError
    ("training", b'{"query": 3, "pos": ["a"]}\n', "'query'"),
    ("training", b'{"query": "q", "pos": [3]}\n', "'pos'"),
    ("training", b'{"query": "q", "pos": ["a"], "neg": [null]}\n', "'neg'"),
    ("training", b'{"query": "q", "pos": ["a", "b"], "pos_ids": ["x"]}\n', "'pos_ids'"),
    ("training", b'{"query": "q", "pos": ["a"], "neg": ["b"], "neg_scores": ["x"]}\n', "'neg_scores'"),
    ("training", b'{"query": "q", "pos": ["a"], "neg": ["b"], "neg_all_scores": [[1]]}\n', "'neg_all_scores'"),
    ("config", b"data: demo\nseeds: [yes]\n", "seeds:"),  # was seed 1
    ("config", b"data: demo\ntrain_queries: on\n", "train_queries:"),  # was 1 query
    ("config", b"data: demo\ntrain: {temperature: .inf}\n", "train.temperature:"),
    ("config", b"data: demo\nmine: {retriver: bm25}\n", "known: retriever,"),
    ("config", b"data: demo\nx: \xff\n", ":2: not UTF-8"),  # was UnicodeDecodeError
    ("config", b"data: " + b"[" * 5000 + b"]" * 5000 + b"\n", "nested too deeply"),  # was RecursionError
    ("attributes", b"domain: [a]\nextra: [tone]\n", "'extra'"),  # was AttributeError
    ("attributes", b"domain: [a]\nlenght: [short]\n", "unknown key 'lenght'"),  # was silently the default lengths
    ("attributes", b"domain: ['  ']\n", "'domain'"),
    ("attributes", b"domain: [a]\nextra: {domain: [b]}\n", "'extra.domain'"),
    ("attributes", b"domain: [\xff]\n", ":1: not UTF-8"),
]
LOADERS = {"qrels": load_qrels, "corpus": load_corpus, "training": lambda p: list(read_training_set(p)),
           "config": RunConfig.load, "attributes": AttributeSet.load}


@pytest.mark.parametrize(("parser", "content", "message"), DEFECTS)
def test_found_defects_are_named_errors(tmp_path: Path, parser: str, content: bytes, message: str) -> None:
    path = tmp_path / "input"
    path.write_bytes(content)
    with pytest.raises(DataError) as raised:
        LOADERS[parser](path)
    assert str(raised.value).startswith(str(path)) and message in str(raised.value)


@pytest.mark.parametrize("text", [
    "{" * 5000 + "}" * 5000, '{"a": ' + "[" * 100000 + "]" * 100000 + "}",  # RecursionError from json
    "negative" + " " * 200000 + "x", "```" + " " * 200000 + "x",  # quadratic regexes: minutes, now milliseconds
])
def test_hostile_answers_fail_fast_as_llm_errors(text: str) -> None:
    with pytest.raises(LLMError):
        parse_json_answer(text, ["negative"])


@pytest.mark.parametrize("body", [b'{"choices": [{"message": {"content": 5}}]}',  # text 5: AttributeError later
                                  b'{"choices": [{"message": {"content": "x"}}], "usage": [1]}'])  # AttributeError
def test_odd_chat_completions_are_invalid_responses_or_plain_text(body: bytes, api_key_set: None) -> None:
    try:
        completion = asyncio.run(CannedBackend(200, body).complete(ChatRequest.chat(None, "q")))
    except LLMError as error:
        assert error.kind == "invalid_response"
    else:
        assert completion.text == "x" and completion.prompt_tokens == 0
