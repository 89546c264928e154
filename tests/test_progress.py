"""The progress display's rate and ETA, on a clock the test moves (the lines are what a log file gets)."""

from __future__ import annotations

import re

import pytest

from syneg import progress
from syneg.progress import Progress


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(progress.time, "monotonic", fake)
    return fake


def eta_seconds(line: str) -> int:
    hours, minutes, seconds = re.search(r"ETA (\d+):(\d\d):(\d\d)", line).groups()
    return 3600 * int(hours) + 60 * int(minutes) + int(seconds)


def test_the_eta_follows_the_recent_pace_after_a_fast_replay(clock: Clock, capsys: pytest.CaptureFixture[str]) -> None:
    """A resumed synthesis: 19 pairs served from the cache in a blink, then a pair every 3 minutes."""
    with Progress("Synthesizing", total=181, unit="pairs") as bar:
        for _ in range(19):
            clock.now += 0.1
            bar.advance()
        for _ in range(5):
            clock.now += 180
            bar.advance()
        capsys.readouterr()
        clock.now += 31  # the next advance prints a line (at least every 30 s)
        bar.update(bar.completed, "accepted 3")
        line = capsys.readouterr().err.strip().splitlines()[-1]
    remaining_at_3_minutes = (181 - 24) * 180
    # The average since the start (24 pairs in 15 minutes) would say under 2 hours.
    assert eta_seconds(line) > 0.8 * remaining_at_3_minutes, line
    assert "pairs/min" in line
    summary = capsys.readouterr().err.strip().splitlines()[-1]
    assert "24/181 pairs in 0:15:33" in summary and "1.5 pairs/min" in summary, summary  # the average


def test_a_steady_pace_shows_its_rate_exactly(clock: Clock, capsys: pytest.CaptureFixture[str]) -> None:
    with Progress("Encoding documents", total=1000, unit="texts") as bar:
        for _ in range(50):
            clock.now += 2
            bar.advance(10)
        clock.now += 31
        bar.update(bar.completed)  # no unit done: the pace is unchanged, a line is printed
        line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "500/1,000 texts · 5.0 texts/s · ETA 0:01:40" in line, line
