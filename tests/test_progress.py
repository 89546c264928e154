"""The progress display's rate and ETA, on a clock the test moves (the lines are what a log file gets)."""

from __future__ import annotations

import io
import re
from types import SimpleNamespace

import pytest
from rich.console import Console

from syneg import progress
from syneg.progress import Progress


class Log:
    """A fake clock for the display, and the log file its lines go to (never a terminal, whatever the
    environment says: rich takes FORCE_COLOR for one)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = 1000.0
        self.file = io.StringIO()
        monkeypatch.setattr(progress, "time", SimpleNamespace(monotonic=lambda: self.now))
        monkeypatch.setattr(progress, "status_console", Console(file=self.file, force_terminal=False, width=200))
        monkeypatch.setattr(progress, "_verbosity", "normal")

    def last_line(self) -> str:
        return self.file.getvalue().strip().splitlines()[-1]


@pytest.fixture
def log(monkeypatch: pytest.MonkeyPatch) -> Log:
    return Log(monkeypatch)


def eta_seconds(line: str) -> int:
    hours, minutes, seconds = re.search(r"ETA (\d+):(\d\d):(\d\d)", line).groups()
    return 3600 * int(hours) + 60 * int(minutes) + int(seconds)


def test_the_eta_follows_the_recent_pace_after_a_fast_replay(log: Log) -> None:
    """A resumed synthesis: 19 pairs served from the cache in a few seconds, then a pair every 3 minutes."""
    with Progress("Synthesizing", total=181, unit="pairs") as bar:
        for _ in range(19):
            log.now += 0.25
            bar.advance()
        for _ in range(5):
            log.now += 180
            bar.advance()
        log.now += 31
        bar.update(bar.completed, "accepted 3")  # a new detail prints a line (at least every 30 s)
        line = log.last_line()
    remaining_at_3_minutes = (181 - 24) * 180
    # The average since the start (24 pairs in 15 minutes) would say under 2 hours.
    assert eta_seconds(line) > 0.8 * remaining_at_3_minutes, line
    assert "pairs/min" in line
    summary = log.last_line()
    assert "24/181 pairs in 0:15:36" in summary and "1.5 pairs/min" in summary, summary  # the average


def test_a_detail_alone_adds_no_time_to_a_steady_pace(log: Log) -> None:
    with Progress("Encoding documents", total=1000, unit="texts") as bar:
        for _ in range(50):
            log.now += 2
            bar.advance(10)
        log.now += 31
        bar.update(bar.completed, "batch 50")  # no text done: the pace is unchanged
        line = log.last_line()
    assert "500/1,000 texts · 5.0 texts/s · ETA 0:01:40" in line, line


def test_quick_advances_are_timed_as_steps_of_a_second_and_a_resume_counts_from_its_start(log: Log) -> None:
    """Mining advances once per query, in milliseconds and unevenly: the pace is timed over steps of at least
    a second, so it does not jump with the last few calls."""
    with Progress("Selecting negatives", unit="queries") as bar:
        bar.start(1000, completed=400)  # 400 done before a resume: not in the rate, nor in the average
        for index in range(600):
            log.now += 0.001 if index % 2 else 0.019  # 100 queries a second, one quick and one slow in turn
            bar.advance()
            if index == 548:
                line = log.last_line()
    summary = log.last_line()
    rate = float(re.search(r"([\d.]+) queries/s", line).group(1))
    assert line.startswith("Selecting negatives: ") and 99 <= rate <= 101, line
    assert "1,000/1,000 queries in 0:00:06 (100.0 queries/s)" in summary, summary
