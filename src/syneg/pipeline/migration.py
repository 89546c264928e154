"""Markers of syneg 0.1.0's path-based format, rewritten once to content fingerprints.

Up to syneg 0.1.0 the split stage fingerprinted the data folder's path as resolved from the run
folder, so a clone at another place, or one reaching the data through a symbolic link, redid every
stage. A split marker that records a path is given the digest of the config's data instead, when that
path still names the same data (same digest; or, where it no longer exists, a folder of the same
name), and every marker downstream is fingerprinted anew from it. Attribute files recorded as
absolute paths become relative to the run folder. Nothing is marked done that was not.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from syneg.data import dataset_digest, demo_path
from syneg.pipeline.config import PIPELINE_STAGES
from syneg.pipeline.markers import StageMarkers
from syneg.pipeline.plan import Planner


def migrate_path_markers(markers: StageMarkers, planner: Planner) -> int:
    """Rewrite a run folder's markers of the path-based format; returns how many changed."""
    split = markers.recorded("split")
    legacy = split["settings"].get("data") if split else None
    if not isinstance(legacy, str):
        return 0
    recorded_path = demo_path() if legacy == "demo" else Path(os.path.normpath(planner.output / legacy))
    same = (dataset_digest(recorded_path) == dataset_digest(planner.config.data) if recorded_path.is_dir()
            else recorded_path.name == Path(planner.config.data).name)
    if not same:
        return 0
    data = planner.split().settings["data"]

    def change(stage: str, settings: dict[str, Any]) -> dict[str, Any]:
        if stage == "split":
            return settings | {"data": data}
        attributes = settings.get("generation", {}).get("attributes") if stage == "synthesize" else None
        if attributes and Path(attributes).is_absolute():
            return settings | {"generation": settings["generation"] | {"attributes": planner.portable(attributes)}}
        return settings

    changed = markers.rewrite(change, PIPELINE_STAGES)
    markers.console.print(f"↻ {changed} stage markers of the path-based format now fingerprint the data by content "
                          f"({markers.folder})", soft_wrap=True)
    return changed
