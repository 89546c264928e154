"""Stage markers: ``RUN/stages/<stage>.json``, one per completed stage, recording its settings, their
fingerprint and the stage's counts. A stage is done when its marker records the fingerprint of the
settings it would run with now (and its outputs are there)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from rich.console import Console

from syneg.data import DataError
from syneg.data.storage import atomic_write_text
from syneg.progress import activity

MARKERS_FOLDER = "stages"


def fingerprint(settings: Any) -> str:
    """The fingerprint of a stage's settings: what its marker must record for the stage to count as done."""
    return hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def marker_file(run: Path, stage: str) -> Path:
    """The marker of a stage (``mix/hybrid/seed-1``) in a run folder."""
    return run / MARKERS_FOLDER / (stage.replace("/", "__") + ".json")


def read_marker(marker: Path) -> dict[str, Any]:
    """A marker's record (fingerprint, settings, info); a malformed marker is an error naming it."""
    try:
        recorded = json.loads(marker.read_text())
        if isinstance(recorded, dict) and {"fingerprint", "settings", "info"} <= recorded.keys():
            return recorded
    except json.JSONDecodeError:
        pass
    raise DataError(f"{marker}: not a stage marker (fingerprint, settings, info); delete it to redo the stage")


class StageMarkers:
    """The markers of one run folder: which stages are done, and doing the others."""

    def __init__(self, run: Path, console: Console) -> None:
        self.run = run
        self.folder = run / MARKERS_FOLDER
        self.folder.mkdir(parents=True, exist_ok=True)
        self.console = console

    def recorded(self, name: str) -> dict[str, Any] | None:
        """A stage's marker (fingerprint, settings, info), or None when it has none."""
        marker = marker_file(self.run, name)
        return read_marker(marker) if marker.is_file() else None

    def done(self, name: str, settings: Any) -> dict[str, Any] | None:
        """The info of a stage done with these settings, else None."""
        recorded = self.recorded(name)
        return recorded["info"] if recorded and recorded.get("fingerprint") == fingerprint(settings) else None

    def complete(self, name: str, settings: Any, work: Callable[[], dict[str, Any]],
                 outputs: Iterable[Path] = ()) -> dict[str, Any]:
        """The stage's info: its marker's, when done with these settings and its ``outputs`` are all
        there; else ``work``'s, run now and recorded. A marker whose outputs are gone (a fresh clone of a
        repository that commits markers but not models) is redone with the same fingerprint."""
        expected = fingerprint(settings)
        marker = marker_file(self.run, name)
        recorded = self.recorded(name)
        if recorded is not None:
            missing = [str(path) for path in outputs if not path.exists()]
            if recorded.get("fingerprint") == expected and not missing:
                self.console.print(f"[dim]✓ {name}: done before, skipped[/dim]")
                return recorded["info"]
            reason = "settings changed since it ran" if recorded.get("fingerprint") != expected else f"{missing[0]} is gone"
            self.console.print(f"↻ {name}: {reason}, redoing it", soft_wrap=True)
            marker.unlink()
        self.console.print(f"▶ {name}")
        start = time.perf_counter()
        with activity(name):
            info = work()
        info["seconds"] = round(time.perf_counter() - start, 1)
        atomic_write_text(marker, json.dumps({"fingerprint": expected, "settings": settings, "info": info}, indent=2, default=str))
        self.console.print(f"✓ {name} ({info['seconds']:.0f} s)")
        return info

    def rewrite(self, change: Callable[[str, dict[str, Any]], dict[str, Any]], stages: tuple[str, ...]) -> int:
        """Apply ``change(stage, settings)`` to every marker's recorded settings, in the order of ``stages``,
        and fingerprint them anew; a marker whose upstream stage's fingerprint changed follows it, so what
        was done stays done and what was out of date stays so. Returns how many markers changed."""
        renamed: dict[str, str] = {}  # old fingerprint → new (arms differing only in training share a mix fingerprint)
        changed = 0
        stage_of = {marker: marker.stem.split("__")[0] for marker in self.folder.glob("*.json")}
        markers = [marker for marker, stage in stage_of.items() if stage in stages]
        for marker in sorted(markers, key=lambda marker: (stages.index(stage_of[marker]), marker.name)):
            recorded = read_marker(marker)
            settings = change(stage_of[marker], dict(recorded["settings"]))
            if "upstream" in settings:  # "<fingerprint>" or "<mined>:<synthetic>"
                settings["upstream"] = ":".join(renamed.get(part, part) for part in str(settings["upstream"]).split(":"))
            new = fingerprint(settings)
            if new != recorded["fingerprint"]:
                renamed[recorded["fingerprint"]] = new
                atomic_write_text(marker, json.dumps(recorded | {"fingerprint": new, "settings": settings}, indent=2, default=str))
                changed += 1
        return changed
