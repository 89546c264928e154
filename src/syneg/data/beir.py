"""Loading and validating datasets in the BEIR folder layout.

A BEIR folder holds ``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl`` (``_id``,
``text``) and ``qrels/{split}.tsv`` (``query-id``, ``corpus-id``, ``score``; header optional).
Malformed input raises :class:`~syneg.data.errors.DataError` naming the file and line; problems
where skipping is the sensible choice (empty texts, qrels rows naming unknown ids) are skipped and
reported as one warning with a count and the first offending line. Texts that are not valid Unicode
(bytes that are not UTF-8 in the file, or a lone surrogate such as ``"\\ud800"`` in its JSON, which no
encoder, tokenizer or output file accepts) are repaired with U+FFFD and reported the same way; their
count is kept in :attr:`BeirDataset.repaired` for the stages' statistics.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from syneg.data.errors import DataError
from syneg.data.storage import storage_error
from syneg.data.jsonl import read_jsonl

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Document:
    """A corpus passage. ``full_text`` is what retrievers index: the title, then the text."""

    id: str
    text: str
    title: str = ""

    @property
    def full_text(self) -> str:
        return f"{self.title} {self.text}".strip() if self.title else self.text


@dataclass
class BeirDataset:
    """A corpus, its queries and the relevance judgements of one split.

    ``qrels`` maps query id to ``{doc id: grade}``; grades ``<= 0`` are judged non-relevant.
    Only queries that have qrels in the split are kept in ``queries`` unless ``split`` is None.

    Example::

        >>> from syneg.data import load_beir, demo_path
        >>> data = load_beir(demo_path(), split="test")
        >>> len(data.corpus) > 100, len(data.queries) == len(data.qrels)
        (True, True)
    """

    path: Path
    corpus: dict[str, Document]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)
    split: str | None = None
    # Lines of corpus.jsonl and queries.jsonl whose text was not valid Unicode, repaired with U+FFFD.
    repaired: dict[str, int] = field(default_factory=dict)

    def relevant(self, query_id: str) -> list[str]:
        """Ids of the documents judged relevant (grade > 0) to a query, strongest first."""
        grades = self.qrels.get(query_id, {})
        return sorted((d for d, g in grades.items() if g > 0), key=lambda d: -grades[d])

    def with_queries(self, query_ids: Iterable[str], split: str | None = None) -> BeirDataset:
        """The same corpus with only these queries and their qrels (``split`` names the subset)."""
        ids = list(query_ids)
        return BeirDataset(self.path, self.corpus, {q: self.queries[q] for q in ids}, {q: self.qrels[q] for q in ids},
                           self.split if split is None else split, self.repaired)

    def pairs(self) -> Iterator[tuple[str, str]]:
        """Every (query id, relevant doc id) pair of the split, in file order."""
        for query_id in self.queries:
            for doc_id in self.relevant(query_id):
                yield query_id, doc_id

    def __repr__(self) -> str:
        return (
            f"BeirDataset(path={str(self.path)!r}, split={self.split!r}, docs={len(self.corpus)}, "
            f"queries={len(self.queries)}, judgements={sum(len(v) for v in self.qrels.values())})"
        )


class _SkipCounter:
    """Collects skipped lines of one kind, to report once with a count instead of per line."""

    def __init__(self, what: str, done: str = "Skipped") -> None:
        self.what = what
        self.done = done
        self.count = 0
        self.first: str | None = None

    def add(self, where: str) -> None:
        self.count += 1
        if self.first is None:
            self.first = where

    def report(self) -> None:
        if self.count:
            logger.warning("%s %d %s (first at %s).", self.done, self.count, self.what, self.first)


# A surrogate left alone after JSON decoding (json.loads pairs the valid ones into one character).
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _repair_records(path: Path, repaired: _SkipCounter) -> Iterator[tuple[int, dict]]:
    """The lines of a corpus or queries file, every string field valid Unicode: repairs are counted, never fatal."""
    not_utf8: list[int] = []
    for line_number, record in read_jsonl(path, repaired=not_utf8):
        surrogates = False
        for key, value in record.items():
            if isinstance(value, str) and _LONE_SURROGATE.search(value):
                record[key], surrogates = _LONE_SURROGATE.sub("\ufffd", value), True
        if surrogates or not_utf8[-1:] == [line_number]:
            repaired.add(f"line {line_number}")
        yield line_number, record


def _require_str(record: dict, key: str, path: Path, line_number: int) -> str:
    if key not in record:
        raise DataError(f"{path}:{line_number}: missing field {key!r}")
    value = record[key]
    if key == "_id":
        if isinstance(value, int) and not isinstance(value, bool):  # numeric ids, as some BEIR exports write them
            return str(value)
        if not isinstance(value, str) or not value.strip():
            raise DataError(f"{path}:{line_number}: field '_id' must be a non-empty string or an integer, got {value!r:.40}")
        return value
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DataError(f"{path}:{line_number}: field {key!r} must be a string, got {type(value).__name__}")
    return value


def _records_with_unique_ids(path: Path, kind: str, repaired: _SkipCounter) -> Iterator[tuple[int, str, str, dict]]:
    """``(line, id, text, record)`` for every line, refusing a duplicate id with both lines named."""
    first_seen: dict[str, int] = {}
    for line_number, record in _repair_records(path, repaired):
        record_id = _require_str(record, "_id", path, line_number)
        text = _require_str(record, "text", path, line_number)
        if record_id in first_seen:
            raise DataError(f"{path}:{line_number}: duplicate {kind} id {record_id!r} (first at line {first_seen[record_id]})")
        first_seen[record_id] = line_number
        yield line_number, record_id, text, record


def load_corpus(path: str | Path, repaired: dict[str, int] | None = None) -> dict[str, Document]:
    """Read a BEIR ``corpus.jsonl``; documents with neither title nor text are skipped with a warning, and
    text that is not valid Unicode is repaired with one (counted in ``repaired["corpus"]`` when given)."""
    path = Path(path)
    corpus: dict[str, Document] = {}
    empty = _SkipCounter(f"documents with empty title and text in {path}")
    invalid = _SkipCounter(f"lines of {path} holding text that is not valid Unicode (replaced with U+FFFD)", "Repaired")
    for line_number, doc_id, text, record in _records_with_unique_ids(path, "document", invalid):
        title = record.get("title")
        if title is None:
            title = ""
        if not isinstance(title, str):
            raise DataError(f"{path}:{line_number}: field 'title' must be a string, got {type(title).__name__}")
        if not text.strip() and not title.strip():
            empty.add(f"line {line_number}, id {doc_id!r}")
            continue
        corpus[doc_id] = Document(id=doc_id, text=text, title=title)
    empty.report()
    invalid.report()
    if repaired is not None and invalid.count:
        repaired["corpus"] = invalid.count
    if not corpus:
        raise DataError(f"{path}: no documents")
    return corpus


def load_queries(path: str | Path, repaired: dict[str, int] | None = None) -> dict[str, str]:
    """Read a BEIR ``queries.jsonl``; queries with empty text are skipped with a warning, and text that is
    not valid Unicode is repaired with one (counted in ``repaired["queries"]`` when given)."""
    path = Path(path)
    queries: dict[str, str] = {}
    empty = _SkipCounter(f"queries with empty text in {path}")
    invalid = _SkipCounter(f"lines of {path} holding text that is not valid Unicode (replaced with U+FFFD)", "Repaired")
    for line_number, query_id, text, _ in _records_with_unique_ids(path, "query", invalid):
        if not text.strip():
            empty.add(f"line {line_number}, id {query_id!r}")
            continue
        queries[query_id] = text
    empty.report()
    invalid.report()
    if repaired is not None and invalid.count:
        repaired["queries"] = invalid.count
    return queries


def load_qrels(
    path: str | Path,
    query_ids: set[str] | dict | None = None,
    doc_ids: set[str] | dict | None = None,
) -> dict[str, dict[str, int]]:
    """Read a BEIR qrels tsv (``query-id``, ``corpus-id``, ``score``; a header line is optional).

    Rows naming a query or document not in ``query_ids`` / ``doc_ids`` are skipped with a warning;
    a file where every row does so is an error, since it almost always means the wrong folder.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    qrels: dict[str, dict[str, int]] = {}
    unknown_query = _SkipCounter(f"qrels rows naming a query missing from queries.jsonl in {path}")
    unknown_doc = _SkipCounter(f"qrels rows naming a document missing from corpus.jsonl in {path}")
    rows = 0
    try:
        handle = path.open("rb")
    except OSError as error:
        raise storage_error(error, path, "read") from None
    with handle:
        for line_number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as error:
                raise DataError(f"{path}:{line_number}: not UTF-8 text ({error.reason} at byte {error.start + 1})") from None
            if not line.strip():
                continue
            columns = line.split("\t")
            if len(columns) == 4:  # TREC qrels: query-id, iteration, corpus-id, score
                columns = [columns[0], columns[2], columns[3]]
            if len(columns) != 3:
                raise DataError(
                    f"{path}:{line_number}: expected 3 tab-separated columns (query-id, corpus-id, score), "
                    f"got {len(columns)}"
                )
            query_id, doc_id, score_text = (c.strip() for c in columns)
            try:
                value = float(score_text)
            except ValueError:
                if line_number == 1:  # header
                    continue
                raise DataError(f"{path}:{line_number}: score {score_text!r} is not a number") from None
            # A grade is an integer: truncating 0.5 to 0 would silently turn a relevant document into a non-relevant one.
            if not value.is_integer():
                raise DataError(f"{path}:{line_number}: score {score_text!r} is not an integer grade")
            score = int(value)
            if not query_id or not doc_id:
                raise DataError(f"{path}:{line_number}: empty {'query-id' if not query_id else 'corpus-id'}")
            rows += 1
            if query_ids is not None and query_id not in query_ids:
                unknown_query.add(f"line {line_number}, query {query_id!r}")
                continue
            if doc_ids is not None and doc_id not in doc_ids:
                unknown_doc.add(f"line {line_number}, document {doc_id!r}")
                continue
            qrels.setdefault(query_id, {})[doc_id] = score
    if rows and not qrels:
        raise DataError(
            f"{path}: none of its {rows} rows names a known query and document "
            f"(first unknown at {unknown_query.first or unknown_doc.first}); is this the right dataset folder?"
        )
    unknown_query.report()
    unknown_doc.report()
    return qrels


def available_splits(path: str | Path) -> list[str]:
    return sorted(p.stem for p in (Path(path) / "qrels").glob("*.tsv"))


# sha1 of a file by (resolved path, size, modification time): a digest asked again in one process is free.
_FILE_SHA1: dict[tuple[str, int, int], str] = {}


def dataset_digest(path: str | Path) -> str:
    """The sha1 of a BEIR folder's content: ``corpus.jsonl``, ``queries.jsonl`` and every ``qrels/*.tsv``,
    by name, size and bytes. The same data gives the same digest wherever it sits and however it is
    reached (a symbolic link, a copy, a relative path); the pipeline fingerprints its stages with it.

    Example::

        >>> from syneg.data import demo_path
        >>> len(dataset_digest(demo_path()))
        40
    """
    path = Path(path)
    if not (path / "corpus.jsonl").is_file():
        raise DataError(f"{path}: not a BEIR dataset folder (no corpus.jsonl)")
    digest = hashlib.sha1()
    for file in [path / "corpus.jsonl", path / "queries.jsonl", *sorted((path / "qrels").glob("*.tsv"))]:
        if not file.is_file():
            continue  # load_beir names a missing queries.jsonl when the data is read
        stat = file.stat()
        key = (str(file.resolve()), stat.st_size, stat.st_mtime_ns)
        if key not in _FILE_SHA1:
            with file.open("rb") as handle:
                _FILE_SHA1[key] = hashlib.file_digest(handle, "sha1").hexdigest()
        digest.update(f"{file.relative_to(path).as_posix()}\t{stat.st_size}\t{_FILE_SHA1[key]}\n".encode())
    return digest.hexdigest()


def load_beir(path: str | Path, split: str | None = "test") -> BeirDataset:
    """Load a BEIR folder; with a split, keep only the queries judged in ``qrels/{split}.tsv``.

    Args:
        path: The folder holding ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/``.
        split: The qrels file to read (``train``, ``dev``, ``test``...), or None for no qrels.

    Raises:
        DataError: for a missing file or split, or malformed content; the message names the file and line.
    """
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: not a folder (expected a BEIR dataset folder with corpus.jsonl)")
    repaired: dict[str, int] = {}
    corpus = load_corpus(path / "corpus.jsonl", repaired)
    queries = load_queries(path / "queries.jsonl", repaired)
    if split is None:
        return BeirDataset(path=path, corpus=corpus, queries=queries, repaired=repaired)
    qrels_path = path / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        found = ", ".join(available_splits(path)) or "none"
        raise DataError(f"{qrels_path}: no such split {split!r} (splits found: {found})")
    qrels = load_qrels(qrels_path, query_ids=queries, doc_ids=corpus)
    split_queries = {query_id: queries[query_id] for query_id in qrels}
    return BeirDataset(path=path, corpus=corpus, queries=split_queries, qrels=qrels, split=split, repaired=repaired)
