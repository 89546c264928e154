"""See what a model trains on: every instance and negative of a training set as one browsable HTML page.

``syneg view FILE_OR_RUN -o page.html`` (or :func:`view`) reads a training-set jsonl written by
``syneg mine``, ``syneg synthesize`` or ``syneg mix`` (plain FlagEmbedding files work too), or a run
folder of ``syneg run``, whose synthesis file, ``mined.jsonl`` and arms' ``train.jsonl`` are shown, each
as a set to choose from. The page shows, for each query, its positives and every negative with its
source (colour and label), its scores (dense similarity to the query and to the positive, BM25 where
known) and, for a synthetic negative, its attributes, reasoning, checks (value, threshold, verdict),
revision rounds and the candidates rejected on the way.

The page is one file that opens from disk, with no server and no network: the data travels as JSON in
the page and is rendered 50 instances at a time, so ten thousand instances filter without delay. The
filters (set, source, failed check, attribute value, free text) and the sort order live in the
address's ``#`` part, so a filtered view can be bookmarked or shared: ``page.html#source=synthetic&q=telomere``
shows the synthetic negatives of the queries or texts that mention telomeres.

Texts, positives and negatives that recur (mixed sets of a run repeat the same mined documents and
synthetic negatives) are stored once in the page.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from syneg.data import DataError, TrainingInstance
from syneg.data.jsonl import read_jsonl
from syneg.data.storage import atomic_write_text
from syneg.pages import asset, script_json, standalone_page
from syneg.report import synthesis_file

RUN_FOLDER_SIGNS = ("config.yaml", "stages", "results.json")  # what `syneg run` leaves in a run folder
QUERY_SIMILARITY_SCORES = ("query_similarity", "dense")  # synthetic and mined names of the dense query score


def training_sets(source: str | Path) -> list[tuple[str, Path]]:
    """(label, file) of each training set to show: the file itself, or those of a run folder that exist
    (its synthesis file, ``mined.jsonl``, then every arm's and seed's ``train.jsonl``)."""
    source = Path(source)
    if source.is_file():
        return [(source.name, source)]
    if not source.is_dir():
        raise DataError(f"{source}: file not found")
    if not any((source / sign).exists() for sign in RUN_FOLDER_SIGNS):
        raise DataError(f"{source}: neither a training-set jsonl nor a run folder of `syneg run` "
                        f"(no {', '.join(RUN_FOLDER_SIGNS)})")
    found = []
    synthetic = synthesis_file(source)
    if synthetic is not None:
        found.append((f"synthesize: {synthetic.name}", synthetic))
    if (source / "mined.jsonl").is_file():
        found.append(("mine: mined.jsonl", source / "mined.jsonl"))
    for mixed in sorted((source / "arms").glob("*/seed-*/train.jsonl")):
        found.append((f"mix: {mixed.parent.parent.name} {mixed.parent.name}", mixed))
    if not found:
        raise DataError(f"{source}: this run folder holds no training set (no synthesis file, mined.jsonl or "
                        "arms/*/seed-*/train.jsonl); `syneg run CONFIG --until mix` writes them")
    return found


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities (which Python's json reads but JSON cannot hold) as None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(key): _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


class _Interner:
    """Index of each distinct value in a list: what recurs across sets is written once."""

    def __init__(self) -> None:
        self.values: list[Any] = []
        self._index: dict[str, int] = {}

    def __call__(self, value: Any, key: str) -> int:
        if key not in self._index:
            self._index[key] = len(self.values)
            self.values.append(value)
        return self._index[key]


def page_data(sets: list[tuple[str, Path]], title: str) -> dict[str, Any]:
    """What the page's script renders: the sets, and every instance with its texts and negatives stored
    once. Errors name the file and line at fault."""
    texts, negatives = _Interner(), _Interner()
    instances = []
    for set_index, (_label, path) in enumerate(sets):
        for line, record in read_jsonl(path):
            where = f"{path}:{line}"
            instance = TrainingInstance.from_record(record, where=where)
            negative_indices = []
            for negative in instance.negatives:
                scores = negative.scores if isinstance(negative.scores, dict) else {}
                entry = _finite({
                    "text": texts(negative.text, negative.text), "source": negative.source, "id": negative.id,
                    "score": negative.score, "scores": scores, "details": negative.details if isinstance(negative.details, dict) else {},
                    "similarity": next((scores[name] for name in QUERY_SIMILARITY_SCORES if isinstance(scores.get(name), float | int)), None),
                })
                negative_indices.append(negatives(entry, json.dumps(entry, sort_keys=True)))
            pos_scores = instance.pos_scores if isinstance(instance.pos_scores, list) else []
            instances.append(_finite({
                "set": set_index,
                "line": line,
                "query_id": instance.query_id,
                "query": texts(instance.query, instance.query),
                "positives": [{"text": texts(text, text), "id": pos_id, "score": pos_scores[i] if i < len(pos_scores) else None}
                              for i, (text, pos_id) in enumerate(zip(instance.pos, instance.pos_ids, strict=False))],
                "negatives": negative_indices,
            }))
    return {"title": title, "sets": [{"label": label, "file": path.name} for label, path in sets],
            "texts": texts.values, "negatives": negatives.values, "instances": instances}


PAGE_BODY = """<header class="top">
  <h1 id="title"></h1>
  <div id="controls" class="controls">
    <label id="set-control">set <select id="set"></select></label>
    <span id="sources" class="sources" role="group" aria-label="sources"></span>
    <label>failed check <select id="failed"><option value="">any verdict</option></select></label>
    <label>attribute <select id="attr"><option value="">any value</option></select></label>
    <label>sort <select id="sort">
      <option value="">file order</option>
      <option value="score-desc">hardest first (similarity to query ↓)</option>
      <option value="score-asc">easiest first (similarity to query ↑)</option>
    </select></label>
    <input id="q" type="search" placeholder="search queries, texts, reasoning" aria-label="search">
  </div>
  <div id="summary" class="summary"></div>
  <nav class="pager" id="pager-top"></nav>
</header>
<main id="instances"></main>
<nav class="pager" id="pager-bottom"></nav>
<noscript>This page renders its data with JavaScript; allow scripts for this file.</noscript>
"""


def render_page(data: dict[str, Any]) -> str:
    """The HTML page of :func:`page_data`'s data."""
    body = PAGE_BODY + f'<script type="application/json" id="data">{script_json(data)}</script>'
    return standalone_page(data["title"], body, asset("page.css") + asset("view.css"), asset("view.js"))


def view(source: str | Path, output: str | Path | None = None) -> Path:
    """Write the browsable page of a training set or run folder; returns its path.

    ``output`` defaults to the jsonl's name with ``.html``, or ``view.html`` in a run folder.

    >>> import syneg, tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> instance = syneg.TrainingInstance("q1", "What lowers blood pressure?", ["d1"], ["Salt reduction lowers it."],
    ...                                   [syneg.Negative("Salt is mined from rock deposits.", "bm25", id="d7")])
    >>> syneg.write_training_set(folder / "train.jsonl", [instance])
    1
    >>> syneg.view(folder / "train.jsonl").name
    'train.html'

    Open the page in a browser; ``page.html#source=synthetic&failed=any`` shows the synthetic negatives
    that passed their checks only after a revision.
    """
    source = Path(source)
    sets = training_sets(source)
    if output is None:
        output = source.with_suffix(".html") if source.is_file() else source / "view.html"
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(output, render_page(page_data(sets, f"syneg view: {source.name}")))
    return output
