"""Training sets as jsonl, readable by FlagEmbedding and carrying every negative's provenance.

One line per training instance. FlagEmbedding's fields come first (``query``, ``pos``, ``neg``,
``pos_scores``, ``neg_scores``), so its fine-tuning scripts read our files unchanged; syneg's own
fields follow: ``query_id``, ``pos_ids``, ``neg_ids`` and, for each negative, its ``neg_sources``
entry (``bm25``, ``dense``, ``synthetic`` or ``random``), every score known for it
(``neg_all_scores``) and free-form ``neg_details`` (a synthetic negative's attributes, reasoning,
checks and revision rounds). Mixing strategies and shortcut diagnostics depend on this provenance.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from syneg.data.errors import DataError
from syneg.data.jsonl import read_jsonl
from syneg.data.storage import atomic_writer, storage_error

NegativeSource = Literal["bm25", "dense", "synthetic", "random"]
NEGATIVE_SOURCES: tuple[str, ...] = get_args(NegativeSource)
# The sources of retrieved (mined) negatives, as opposed to synthetic and random ones.
RETRIEVED_SOURCES: tuple[NegativeSource, ...] = ("bm25", "dense")
# Which retrievers a stage draws on: mining's ``retriever``, mixing's ``retrieved_sources``.
Retrievers = Literal["bm25", "dense", "both"]
# How negatives are taken from a ranked pool: the best first, or a seeded sample (mining and mixing).
SamplingStrategy = Literal["top", "random"]


@dataclass
class Negative:
    """One negative passage and where it came from.

    ``score`` is the score of the model that ranked or checked it (what FlagEmbedding calls
    ``neg_scores``); ``scores`` holds every score known, by scorer name.
    """

    text: str
    source: NegativeSource
    id: str | None = None
    score: float | None = None
    scores: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainingInstance:
    query_id: str
    query: str
    pos_ids: list[str]
    pos: list[str]
    negatives: list[Negative] = field(default_factory=list)
    pos_scores: list[float] | None = None

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"query": self.query, "pos": self.pos, "neg": [n.text for n in self.negatives]}
        if self.pos_scores is not None:
            record["pos_scores"] = self.pos_scores
        # FlagEmbedding needs one float per negative, so the field is written only when all are known.
        if self.negatives and all(n.score is not None for n in self.negatives):
            record["neg_scores"] = [n.score for n in self.negatives]
        record["query_id"] = self.query_id
        record["pos_ids"] = self.pos_ids
        record["neg_ids"] = [n.id for n in self.negatives]
        record["neg_sources"] = [n.source for n in self.negatives]
        record["neg_all_scores"] = [n.scores for n in self.negatives]
        if any(n.details for n in self.negatives):
            record["neg_details"] = [n.details for n in self.negatives]
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any], where: str = "record") -> TrainingInstance:
        """Build an instance from a jsonl record; plain FlagEmbedding records are accepted too.

        Every field is checked for its type, and each per-negative (per-positive) column for its length:
        a wrong value is a DataError naming ``where`` and the field, never a value silently taken."""
        for key in ("query", "pos"):
            if key not in record:
                raise DataError(f"{where}: missing field {key!r}")
        query, texts, positives = record["query"], record.get("neg", []), record["pos"]
        if not isinstance(query, str):
            raise DataError(f"{where}: 'query' must be a string, got {type(query).__name__}")
        if not isinstance(positives, list) or not positives or not all(isinstance(t, str) for t in positives):
            raise DataError(f"{where}: 'pos' must be a non-empty list of texts")
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise DataError(f"{where}: 'neg' must be a list of texts")

        def column(key: str, count: int, default: Any, valid: Callable[[Any], bool], expected: str) -> list[Any]:
            values = record.get(key)
            if values is None:
                return [default() if callable(default) else default for _ in range(count)]
            if not isinstance(values, list) or len(values) != count or not all(valid(v) for v in values):
                kind = "positive" if key.startswith("pos") else "negative"
                raise DataError(f"{where}: {key!r} must be a list with one entry per {kind} ({count}), each {expected}")
            return values

        count = len(texts)
        ids = column("neg_ids", count, None, lambda v: v is None or isinstance(v, str), "an id (a string or null)")
        sources = column("neg_sources", count, "random", lambda v: True, "a source")
        for source in sources:
            if source not in NEGATIVE_SOURCES:
                raise DataError(f"{where}: unknown negative source {source!r} (expected one of {', '.join(NEGATIVE_SOURCES)})")
        scores = column("neg_scores", count, None, lambda v: v is None or _is_number(v), "a score (a number or null)")
        all_scores = column("neg_all_scores", count, dict,
                            lambda v: v is None or (isinstance(v, dict) and all(_is_number(x) for x in v.values())),
                            "a mapping of scorer name to score")
        details = column("neg_details", count, dict, lambda v: v is None or isinstance(v, dict), "a mapping")
        pos_ids = column("pos_ids", len(positives), "", lambda v: isinstance(v, str), "an id (a string)")
        pos_scores = record.get("pos_scores")
        if pos_scores is not None:
            pos_scores = column("pos_scores", len(positives), None, _is_number, "a score (a number)")
        query_id = record.get("query_id", "")
        if query_id is None:
            query_id = ""
        if isinstance(query_id, bool) or not isinstance(query_id, (str, int)):
            raise DataError(f"{where}: 'query_id' must be a string, got {type(query_id).__name__}")
        negatives = [
            Negative(text=t, source=s, id=i, score=sc, scores=a or {}, details=d or {})
            for t, s, i, sc, a, d in zip(texts, sources, ids, scores, all_scores, details, strict=True)
        ]
        return cls(query_id=str(query_id), query=query, pos_ids=pos_ids, pos=positives, negatives=negatives,
                   pos_scores=pos_scores)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def write_training_set(path: str | Path, instances: Iterable[TrainingInstance], append: bool = False) -> int:
    """Write instances as jsonl (one line each, flushed as written); returns how many were written.

    A new file replaces an earlier one only once complete, so a full disk or a kill leaves the earlier one
    whole; appended lines are flushed one by one, and a torn last line is dropped when the file is resumed
    (:func:`syneg.synth.synthesize.completed_pairs`). A write the machine refuses is a StorageError naming ``path``."""
    path = Path(path)
    written = 0
    if not append:
        with atomic_writer(path) as handle:
            for instance in instances:
                handle.write(json.dumps(instance.to_record(), ensure_ascii=False) + "\n")
                written += 1
        return written
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as handle:
            for instance in instances:
                handle.write(json.dumps(instance.to_record(), ensure_ascii=False) + "\n")
                handle.flush()
                written += 1
    except OSError as error:
        raise storage_error(error, path) from None
    return written


def read_training_set(path: str | Path) -> Iterator[TrainingInstance]:
    """Read a training-set jsonl written by syneg or FlagEmbedding; errors name the file and line."""
    for line_number, record in read_jsonl(path):
        yield TrainingInstance.from_record(record, where=f"{path}:{line_number}")


def negatives_per_instance(path: str | Path) -> list[int]:
    """How many negatives each line of a training-set jsonl holds, without building the instances."""
    counts = []
    for line, record in read_jsonl(path):
        negatives = record.get("neg", [])
        if not isinstance(negatives, list):
            raise DataError(f"{path}:{line}: 'neg' must be a list of texts")
        counts.append(len(negatives))
    return counts
