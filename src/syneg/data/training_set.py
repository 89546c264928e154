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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from syneg.data.errors import DataError
from syneg.data.jsonl import read_jsonl

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
        """Build an instance from a jsonl record; plain FlagEmbedding records are accepted too."""
        for key in ("query", "pos"):
            if key not in record:
                raise DataError(f"{where}: missing field {key!r}")
        if not isinstance(record["pos"], list) or not record["pos"]:
            raise DataError(f"{where}: 'pos' must be a non-empty list of texts")
        texts = record.get("neg", [])
        if not isinstance(texts, list):
            raise DataError(f"{where}: 'neg' must be a list of texts")
        count = len(texts)

        def column(key: str, default: Any) -> list[Any]:
            values = record.get(key)
            if values is None:
                return [default() if callable(default) else default for _ in range(count)]
            if not isinstance(values, list) or len(values) != count:
                raise DataError(f"{where}: {key!r} must be a list with one entry per negative ({count})")
            return values

        ids, sources = column("neg_ids", None), column("neg_sources", "random")
        scores, all_scores, details = column("neg_scores", None), column("neg_all_scores", dict), column("neg_details", dict)
        for source in sources:
            if source not in NEGATIVE_SOURCES:
                raise DataError(f"{where}: unknown negative source {source!r} (expected one of {', '.join(NEGATIVE_SOURCES)})")
        negatives = [
            Negative(text=t, source=s, id=i, score=sc, scores=a or {}, details=d or {})
            for t, s, i, sc, a, d in zip(texts, sources, ids, scores, all_scores, details, strict=True)
        ]
        return cls(
            query_id=str(record.get("query_id", "")),
            query=record["query"],
            pos_ids=record.get("pos_ids") or [""] * len(record["pos"]),
            pos=record["pos"],
            negatives=negatives,
            pos_scores=record.get("pos_scores"),
        )


def write_training_set(path: str | Path, instances: Iterable[TrainingInstance], append: bool = False) -> int:
    """Write instances as jsonl (one line each, flushed as written); returns how many were written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with path.open("a" if append else "w", encoding="utf-8") as handle:
        for instance in instances:
            handle.write(json.dumps(instance.to_record(), ensure_ascii=False) + "\n")
            handle.flush()
            written += 1
    return written


def read_training_set(path: str | Path) -> Iterator[TrainingInstance]:
    """Read a training-set jsonl written by syneg or FlagEmbedding; errors name the file and line."""
    for line_number, record in read_jsonl(path):
        yield TrainingInstance.from_record(record, where=f"{path}:{line_number}")


def negatives_per_instance(path: str | Path) -> list[int]:
    """How many negatives each line of a training-set jsonl holds, without building the instances."""
    return [len(record.get("neg", [])) for _, record in read_jsonl(path)]
